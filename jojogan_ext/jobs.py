"""Background training jobs shared by the UI and the API: one at a time, progress, preview, cancel.

The web UI glue passes `exclusive` (its GPU queue lock) and `before`/`after` hooks (move the SD model
off the GPU and back); the core never imports the web UI.
"""

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .args import CompactArgs, TrainArgs, dump, parse
from .compact import describe
from .errors import BusyError, CancelledError, JojoganError
from .packs import StylePack
from .runtime import AlignedReference, Runtime
from .train import check_training, finetune


@dataclass
class TrainingJob:
    """The state of one training job, as shown by the UI and returned by the API."""

    id: str
    args: TrainArgs
    state: str = "queued"  # queued | running | saving | done | cancelled | failed
    step: int = 0
    total: int = 0
    loss: float | None = None
    preview: Image.Image | None = None
    message: str = ""
    pack_name: str | None = None
    faces: list[str] = field(default_factory=list)  # which face of each reference trains
    said_faces: bool = False  # a reference showed several faces, so the choice is part of the messages
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running", "saving")

    @property
    def eta_seconds(self) -> float | None:
        """Estimated seconds left, from the pace so far."""
        if self.state != "running" or self.step == 0:
            return None
        return (time.monotonic() - self.started) / self.step * (self.total - self.step)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view (without the preview image)."""
        return {
            "id": self.id,
            "state": self.state,
            "step": self.step,
            "total": self.total,
            "loss": self.loss,
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "message": self.message,
            "pack": self.pack_name,
            "faces": self.faces,
        }


def compact_note(pack: StylePack, budget: CompactArgs | None) -> str:
    """What saving compact did, for the job's last message ('' when it was not asked for)."""
    if pack.is_compact:
        return f" {describe(pack.metadata)}."
    return " Kept in full: no compact form within the quality budget was smaller." if budget is not None else ""


class TrainingJobs:
    """Runs at most one finetuning at a time in a background thread; keeps the recent jobs' states."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        exclusive: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        before: Callable[[], None] | None = None,
        after: Callable[[], None] | None = None,
        observe: Callable[[TrainingJob], None] | None = None,
        interrupted: Callable[[], bool] | None = None,
        pack_dtype: str = "float16",
        keep: int = 20,
        compact: bool = True,
    ):
        self.runtime = runtime
        self.exclusive, self.before, self.after = exclusive, before, after
        self.observe, self.interrupted = observe, interrupted
        self.pack_dtype = pack_dtype
        self.compact = compact  # save trained packs compact (within CompactArgs' default budget)
        self.keep = keep
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    def start(
        self,
        references: Sequence[Image.Image],
        args: TrainArgs,
        test_face: Image.Image | None = None,
        overwrite: bool = False,
    ) -> TrainingJob:
        """Queue a training; BusyError if one is already running, PackError if the name is taken or unsafe."""
        check_training(self.runtime, references, args, test_face, fetch=False)  # options, every missing model file
        # refuse a bad or taken name up front; the job (its messages, the pack's title) uses the cleaned name
        target = self.runtime.packs.new_path(args.name, overwrite=overwrite)
        args = parse(TrainArgs, {**dump(args), "name": target.stem})
        with self._lock:
            if any(job.active for job in self._jobs.values()):
                raise BusyError("A style is already training; wait for it to finish or cancel it.")
            job = TrainingJob(uuid.uuid4().hex[:12], args, total=args.iterations)
            self._jobs[job.id] = job
            for old in [j for j in self._jobs.values() if not j.active][: -self.keep or None]:
                del self._jobs[old.id]
        thread = threading.Thread(
            target=self._run, args=(job, list(references), test_face, overwrite), daemon=True, name="jojogan-train"
        )
        thread.start()
        return job

    def get(self, job_id: str) -> TrainingJob:
        """A job by id, or a JojoganError."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JojoganError(f"There is no training job '{job_id}'.")
        return job

    def current(self) -> TrainingJob | None:
        """The running job, else the most recent one."""
        with self._lock:
            jobs = list(self._jobs.values())
        active = [job for job in jobs if job.active]
        return (active or jobs or [None])[-1]

    def cancel(self, job_id: str) -> TrainingJob:
        """Ask a job to stop (it stops before its next step; nothing is saved)."""
        job = self.get(job_id)
        job.cancel_requested.set()
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> TrainingJob:
        """Block until the job has ended (for the CLI and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get(job_id)
        while job.active and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
        return job

    def _run(self, job: TrainingJob, references: list[Image.Image], test_face: Image.Image | None, overwrite: bool):
        compact = CompactArgs() if self.compact else None

        def on_progress(step: int, total: int, loss: float, preview: Image.Image | None) -> None:
            job.step, job.total, job.loss = step, total, loss
            if preview is not None:
                job.preview = preview
            job.message = f"Step {step}/{total}, loss {loss:.4f}"
            if step == total and compact is not None:
                job.message += "; measuring the compact form…"
            if self.observe is not None:
                self.observe(job)

        def on_faces(chosen: list[AlignedReference]) -> None:
            job.faces = [reference.describe(number) for number, reference in enumerate(chosen, 1)]
            if any(reference.face_count > 1 for reference in chosen):  # a choice was made: say which
                job.message = "Training on " + "; ".join(job.faces) + "."
                job.said_faces = True
                if self.observe is not None:
                    self.observe(job)

        def on_wait() -> None:
            job.message = f"Step {job.step}/{job.total}: waiting for the device (a restyle is running)…"
            if self.observe is not None:
                self.observe(job)

        def should_stop() -> bool:
            return job.cancel_requested.is_set() or (self.interrupted is not None and self.interrupted())

        try:
            with self.exclusive():
                if self.before is not None:
                    self.before()
                try:
                    job.state, job.started = "running", time.monotonic()
                    job.message = "Aligning and inverting the references…"
                    pack = finetune(
                        self.runtime,
                        references,
                        job.args,
                        on_progress,
                        should_stop,
                        test_face,
                        on_faces=on_faces,
                        on_wait=on_wait,
                        compact=compact,
                        pack_dtype=self.pack_dtype,
                    )
                    job.state, job.message = "saving", f"Saving style pack '{job.args.name}'…"
                    if self.observe is not None:
                        self.observe(job)
                    target = self.runtime.packs.new_path(job.args.name, overwrite=overwrite)
                    # a cancel that arrives while the files are written still leaves the packs folder as it was
                    path = pack.save(target, self.pack_dtype, overwrite=overwrite, should_stop=should_stop)
                finally:
                    if self.after is not None:
                        self.after()
            job.pack_name, job.preview = path.stem, pack.preview
            trained_on = f", trained on {'; '.join(job.faces)}" if job.said_faces else ""
            job.state, job.message = "done", f"Saved style pack '{path.stem}'{trained_on}.{compact_note(pack, compact)}"
        except CancelledError as error:
            job.state, job.message = "cancelled", str(error)
        except JojoganError as error:
            job.state, job.message = "failed", str(error)
        except (RuntimeError, OSError, MemoryError) as error:  # torch/IO failures: report, keep the process alive
            job.state, job.message = "failed", f"Training failed: {type(error).__name__}: {str(error)[:300]}"
        finally:
            job.finished = time.monotonic()
