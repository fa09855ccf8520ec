"""Gradio builders shared by the web UI (JoJoGAN tab, txt2img/img2img accordion) and the standalone app.

Uses only what gradio 3.41 and 4.x share; their differences live in `uploaded_path` and `enable_queue`.
Controls take bounds and defaults from `args.TrainArgs`/`RestyleArgs`. Handlers show the JojoganError
sentence in a status box instead of raising; nothing here imports the web UI. Image inputs are gr.File
uploads, never gr.Image: gradio would decode those itself, before our size check (with Pillow's bomb
guard switched off by the web UI), so every picture reaches the image gate (`Runtime.image_limits`) undecoded.
"""

import contextlib
import functools
import inspect
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from . import weights
from .accordion import ACCORDION_FIELDS, restyle_control, restyle_values
from .api import MAX_REFERENCES
from .args import RestyleArgs, TrainArgs, field_info, parse
from .controls import checkbox, choices_dropdown, label, number, slider, whole_numbers
from .errors import ImageError, JojoganError
from .images import ImageLimits
from .jobs import TrainingJob, TrainingJobs
from .pack_card import empty_card_html, image_data_uri, pack_card_html
from .packs import DETAIL_KEYS, PackInfo, thumbnail_image, update_pack_details
from .previews import render_preview
from .restyle import Restyler
from .runtime import Runtime
from .style_gallery import PublishedStyle, gallery_html, published_styles, resolve

# The Restyle tab's controls (after the image): the accordion's, without its on/off switch.
RESTYLE_TAB_FIELDS = ACCORDION_FIELDS[1:]
# The Train tab's argument controls, in order.
TRAIN_FIELDS = (
    "name",
    "references_are_aligned",
    "reference_face",
    "iterations",
    "strength",
    "preserve_color",
    "loss",
    "identity_weight",
    "learning_rate",
    "seed",
)
# the pack details the Packs tab edits (PackDetails fields), with their labels and text box heights
DETAIL_LABELS = {"title": "Title", "author": "Author", "description": "Description", "license": "Licence"}
DETAIL_LINES = {"title": 1, "author": 1, "description": 3, "license": 2}
# what a new pack (trained, imported or downloaded) is good for next
NEW_PACK_NEXT = "It is chosen in the Restyle tab: upload a picture there to try it."
EMPTY_STATUS = "No style packs yet: train one, import one or download a published style (see below)."
POLL_SECONDS = 1.0
# outputs of every action that changes the library: pack gallery, names state, selected pack, restyle pack
LIBRARY_OUTPUTS = 4
PLACEHOLDER_SIZE = 64
# what torch and the file system raise when work fails for reasons other than the user's input
WORK_FAILURES = (RuntimeError, OSError, MemoryError)

Exclusive = Callable[[], contextlib.AbstractContextManager]


# --- gradio version differences ------------------------------------------------------------------


def uploaded_path(item: Any) -> Path:
    """The path of one gr.File upload: gradio 3 hands temp-file objects over, gradio 4 path strings."""
    return Path(item if isinstance(item, str | os.PathLike) else item.name)


def uploaded_image(item: Any, limits: ImageLimits, what: str | None = None) -> Image.Image:
    """One uploaded picture (a gr.File upload, a path, or a PIL image from Python) through the image gate."""
    return limits.open(item if isinstance(item, Image.Image) else uploaded_path(item), what)


def lossless(component: type[gr.Image] | type[gr.Gallery], **kwargs: Any) -> gr.components.Component:
    """An image output served as PNG: gradio 4 would re-encode results as lossy WebP (gradio 3 sends PNG)."""
    if "format" in inspect.signature(component.__init__).parameters:
        kwargs["format"] = "png"
    return component(**kwargs)


def enable_queue(blocks: gr.Blocks, workers: int = 4) -> gr.Blocks:
    """Turn the queue on (generators need it) with a few workers, so a training's progress never blocks the UI."""
    if "default_concurrency_limit" in inspect.signature(blocks.queue).parameters:  # gradio 4
        return blocks.queue(default_concurrency_limit=workers)
    return blocks.queue(concurrency_count=workers)  # gradio 3


def seed_value(seed: Any) -> int | None:
    """The seed box's text (or a number from Python) as a seed; empty, or a negative number, = random (None).

    A text box, not gr.Number: gradio 3 shows an empty number box as 0, which would fix the seed.
    """
    if isinstance(seed, str):
        text = seed.strip()
        if not text:
            return None
        try:
            seed = int(text)
        except ValueError:
            raise JojoganError(f"The seed must be a whole number (empty = random), not {text[:20]!r}.") from None
    if seed is None or seed < 0:
        return None
    return int(seed)


def train_values(values: Sequence[Any]) -> dict[str, Any]:
    """Train tab control values (TRAIN_FIELDS order) → a TrainArgs dict (empty seed = random; so is the -1 that
    earlier versions showed and a saved ui-config.json may still hold)."""
    data = dict(zip(TRAIN_FIELDS, values, strict=True))
    data["seed"] = seed_value(data["seed"])
    data["name"] = str(data["name"] or "").strip()
    return whole_numbers(TrainArgs, data)


# --- messages ------------------------------------------------------------------------------------


def failure_message(error: BaseException) -> str:
    """The sentence shown for a failed action."""
    if isinstance(error, JojoganError):
        return f"⚠️ {error}"
    logging.getLogger("jojogan_ext").warning("JoJoGAN action failed", exc_info=error)
    first_line = str(error).splitlines()[0][:300] if str(error) else ""
    detail = f": {first_line.rstrip('.')}" if first_line else ""
    return (
        f"⚠️ Something went wrong{detail}. Try again; if it keeps failing, report it with the details from the console."
    )


def shows_errors(outputs: int, cleared: tuple[Any, ...] | None = None) -> Callable[[Callable], Callable]:
    """Handler decorator: errors become the status text (the first of `outputs`).

    The other outputs stay as they are, or take the `cleared` values (e.g. an empty result image).
    """

    def failed(error: BaseException) -> Any:
        message = failure_message(error)
        rest = cleared if cleared is not None else tuple(gr.update() for _ in range(outputs - 1))
        return message if outputs == 1 else (message, *rest)

    def decorate(handler: Callable) -> Callable:
        if inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
                try:
                    yield from handler(*args, **kwargs)
                except (JojoganError, *WORK_FAILURES) as error:
                    yield failed(error)

            return stream

        @functools.wraps(handler)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except (JojoganError, *WORK_FAILURES) as error:
                return failed(error)

        return call

    return decorate


def format_duration(seconds: float) -> str:
    """12 s, 3:05 or 1:02:03."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def progress_text(job: TrainingJob) -> str:
    """One line about a training job: step/total, loss and ETA while running, else its message."""
    if job.state != "running" or job.step == 0:
        return job.message or f"Training '{job.args.name}': {job.state}…"
    on = f" on {'; '.join(job.faces)}" if job.said_faces else ""
    parts = [f"Training '{job.args.name}'{on}: step {job.step}/{job.total}"]
    if job.loss is not None:
        parts.append(f"loss {job.loss:.4f}")
    if job.eta_seconds is not None:
        parts.append(f"about {format_duration(job.eta_seconds)} left")
    return ", ".join(parts) + "."


# --- the handlers --------------------------------------------------------------------------------


class TabHandlers:
    """What the JoJoGAN tab's buttons do, callable without a browser; each returns its outputs in order.

    The first output of every handler is its tab's status text.
    """

    def __init__(
        self,
        runtime: Runtime,
        jobs: TrainingJobs,
        *,
        exclusive: Exclusive = contextlib.nullcontext,
        catalog: Mapping[str, weights.WeightFile] = weights.CATALOG,
        poll_seconds: float = POLL_SECONDS,
    ):
        self.runtime, self.jobs, self.exclusive = runtime, jobs, exclusive
        self.catalog, self.poll_seconds = catalog, poll_seconds
        self.restyler = Restyler(runtime)
        self._download_dir: Path | None = None

    def library(self, selected: str | None = None, restyle_with_it: bool = False) -> tuple[Any, ...]:
        """Fresh pack gallery, names, selected-pack dropdown (on `selected` when it exists) and restyle dropdown.

        `restyle_with_it` also picks `selected` in the Restyle tab (a pack just trained or imported).
        """
        infos = self.runtime.packs.list()
        names = [info.name for info in infos]
        gallery = [(self.preview_image(info), caption(info)) for info in infos]
        value = selected if selected in names else (names[0] if names else None)
        restyle = gr.update(choices=names, value=value) if restyle_with_it else gr.update(choices=names)
        return gallery, names, gr.update(choices=names, value=value), restyle

    def no_library_change(self) -> tuple[Any, ...]:
        """Leave the library outputs as they are."""
        return tuple(gr.update() for _ in range(LIBRARY_OUTPUTS))

    def preview_image(self, info: PackInfo) -> Image.Image:
        """The pack's preview PNG, else its thumbnail, else a grey square."""
        if info.preview is not None:
            with contextlib.suppress(ImageError):
                return self.runtime.image_limits.open(info.preview)
        thumbnail = thumbnail_image(info.metadata)
        if thumbnail is not None:
            return thumbnail
        return Image.new("RGB", (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), (128, 128, 128))

    def references(self, files: Sequence[Any] | None) -> list[Image.Image]:
        """The uploaded reference portraits, opened through the image gate."""
        if not files:
            raise JojoganError("Upload at least one reference portrait (a face in the style you want).")
        if len(files) > MAX_REFERENCES:
            raise JojoganError(f"Use at most {MAX_REFERENCES} reference portraits, not {len(files)}.")
        sources = [item if isinstance(item, Image.Image) else uploaded_path(item) for item in files]
        return self.runtime.image_limits.open_all(sources, "Reference")

    def test_face(self, upload: Any) -> Image.Image | None:
        """The optional test photo through the image gate."""
        return None if upload is None else uploaded_image(upload, self.runtime.image_limits, "The test face")

    # --- Train -----------------------------------------------------------------------------------
    @shows_errors(outputs=2)
    def prepare(
        self, files: Sequence[Any] | None, test_face: Any, aligned: bool, reference_face: float | None = 0
    ) -> tuple[str, list[tuple[Image.Image, str]]]:
        """JoJoGAN's paired data: each reference aligned, next to its e4e inversion rendered by the base model."""
        references = self.references(files)
        test = self.test_face(test_face)
        self.runtime.require_models(detector=not aligned)  # every missing model file, named at once
        with self.exclusive():
            chosen = self.runtime.align_references(references, bool(aligned), int(reference_face or 0))
            if test is not None:
                chosen += self.runtime.align_references([test], bool(aligned))
            aligned_faces = [reference.image for reference in chosen]
            w_plus = self.runtime.invert(aligned_faces)  # [N, n_latent, style_dim]
            generator = self.runtime.base.generator
            inversions = [render_preview(generator, w_plus[i : i + 1]) for i in range(len(aligned_faces))]
        items = []
        for position, (face, inversion) in enumerate(zip(aligned_faces, inversions, strict=True), 1):
            what = f"#{position}" if position <= len(references) else "test"
            items += [(face, f"{what} aligned"), (inversion, f"{what} inverted")]
        count = len(references)
        message = (
            f"Prepared {count} reference{'s' if count != 1 else ''}: check that each inversion looks like its face, "
            "then press Train."
        )
        if any(reference.face_count > 1 for reference in chosen[:count]):  # say which face was taken
            message += " Training on " + "; ".join(r.describe(n) for n, r in enumerate(chosen[:count], 1)) + "."
        return message, items

    @shows_errors(outputs=2 + LIBRARY_OUTPUTS)
    def train(
        self, files: Sequence[Any] | None, test_face: Any, overwrite: bool, *values: Any
    ) -> Iterator[tuple[Any, ...]]:
        """Start a training and follow it: status and live preview about every `poll_seconds`, then the new pack."""
        args = parse(TrainArgs, train_values(values))
        references = self.references(files)
        job = self.jobs.start(references, args, self.test_face(test_face), overwrite)
        shown_text, shown_preview = None, None
        while job.active:
            text = progress_text(job)
            if text != shown_text or job.preview is not shown_preview:  # send only what changed
                preview = job.preview if job.preview is not shown_preview else gr.update()
                shown_text, shown_preview = text, job.preview
                yield (text, preview, *self.no_library_change())
            time.sleep(self.poll_seconds)
        if job.state == "done":
            message = f"{job.message} {NEW_PACK_NEXT}"
            yield (message, job.preview or gr.update(), *self.library(job.pack_name, restyle_with_it=True))
        else:
            yield (f"⚠️ {job.message}", gr.update(), *self.no_library_change())

    def cancel(self) -> str:
        """Ask the running training to stop before its next step."""
        job = self.jobs.current()
        if job is None or not job.active:
            return "No training is running."
        self.jobs.cancel(job.id)
        return f"Cancelling '{job.args.name}': it stops before its next step and saves nothing."

    # --- Restyle ---------------------------------------------------------------------------------
    @shows_errors(outputs=3, cleared=(None, []))
    def restyle(self, image: Any, *values: Any) -> tuple[str, Image.Image, list]:
        """Restyle the faces of one uploaded image; also shows each face's aligned and stylized crop."""
        if image is None:
            raise JojoganError("Upload an image to restyle.")
        args = parse(RestyleArgs, restyle_values(values, RESTYLE_TAB_FIELDS))
        picture = uploaded_image(image, self.runtime.image_limits)
        with self.exclusive():
            result = self.restyler.restyle(picture, args)
        crops = []
        for face in result.faces:
            crops += [(face.aligned, f"face {face.index}: aligned"), (face.stylized, f"face {face.index}: restyled")]
        return result.message, result.image, crops

    # --- Packs -----------------------------------------------------------------------------------
    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def refresh(self, selected: str | None = None) -> tuple[Any, ...]:
        """Re-read the packs folder; unusable files are named in the status."""
        library = self.library(selected)
        count = len(library[1])
        lines = [f"{count} style pack{'s' if count != 1 else ''}." if count else EMPTY_STATUS]
        lines += [f"Skipped: {problem}" for problem in self.runtime.packs.problems()]
        return ("\n".join(lines), *library)

    def select(self, names: list[str] | None, event: gr.SelectData) -> Any:
        """A click in the pack gallery selects that pack."""
        index = event.index if isinstance(event.index, int) else None
        if not names or index is None or not 0 <= index < len(names):
            return gr.update()
        return gr.update(value=names[index])

    def card(self, info: PackInfo | None) -> str:
        """The HTML card of a pack (its preview, details and training facts), or the empty-library hint."""
        if info is None:
            return empty_card_html()
        preview = None
        if info.preview is not None:
            with contextlib.suppress(ImageError):
                preview = self.runtime.image_limits.open(info.preview)
        preview = preview or thumbnail_image(info.metadata)
        return pack_card_html(
            info.name,
            info.metadata,
            file_name=info.path.name,
            file_size=info.path.stat().st_size,
            preview_uri=image_data_uri(preview) if preview is not None else None,
        )

    @shows_errors(outputs=2 + len(DETAIL_KEYS))
    def show(self, name: str | None) -> tuple[Any, ...]:
        """The selected pack's card and its editable details (the status is left alone when all is well)."""
        if not name:
            return (gr.update(), self.card(None), *("" for _ in DETAIL_KEYS))
        info = self.runtime.packs.info(name)
        details = (info.metadata.get(key, "") for key in DETAIL_KEYS.values())
        return (gr.update(), self.card(info), *details)

    @shows_errors(outputs=2 + LIBRARY_OUTPUTS)
    def save_details(self, name: str | None, *values: Any) -> tuple[Any, ...]:
        """Write the edited title, author, description and licence into the selected pack's metadata."""
        if not name:
            raise JojoganError("Select a style pack first, then edit its details.")
        path = self.runtime.packs.existing(name)
        update_pack_details(path, dict(zip(DETAIL_KEYS, values, strict=True)))
        message = f"Saved the details of '{name}'; the pack's weights are unchanged."
        return (message, self.card(self.runtime.packs.info(name)), *self.library(name))

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def import_file(self, upload: Any, name: str | None, overwrite: bool) -> tuple[Any, ...]:
        """Import an uploaded style pack (.safetensors) or JoJoGAN style (.pt)."""
        if upload is None:
            raise JojoganError("Choose a .safetensors style pack or a JoJoGAN .pt file to import.")
        source = uploaded_path(upload)
        target = (name or "").strip() or source.stem
        with self.exclusive():
            path = self.runtime.import_pack(source, target, overwrite=bool(overwrite))
        message = f"Imported {source.name} as style pack '{path.stem}'. {NEW_PACK_NEXT}"
        return (message, *self.library(path.stem, restyle_with_it=True))

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def rename(self, name: str | None, new_name: str | None) -> tuple[Any, ...]:
        """Rename the selected pack (and its preview); a taken name is refused."""
        if not name:
            raise JojoganError("Select a style pack to rename.")
        path = self.runtime.packs.rename(name, (new_name or "").strip())
        return (f"Renamed '{name}' to '{path.stem}'.", *self.library(path.stem))

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def delete(self, name: str | None) -> tuple[Any, ...]:
        """Delete the selected pack and its preview."""
        if not name:
            raise JojoganError("Select a style pack to delete.")
        self.runtime.packs.delete(name)
        return (f"Deleted style pack '{name}'.", *self.library())

    @shows_errors(outputs=2)
    def download(self, name: str | None) -> tuple[str, Any]:
        """A copy of the pack file in a temp folder (gradio serves files from there in every version)."""
        if not name:
            raise JojoganError("Select a style pack to download.")
        path = self.runtime.packs.existing(name)
        if self._download_dir is None:
            self._download_dir = Path(tempfile.mkdtemp(prefix="jojogan-downloads-"))
        copy = self._download_dir / path.name
        shutil.copyfile(path, copy)
        return f"'{path.stem}' is ready: save it with the link below.", gr.update(value=str(copy), visible=True)

    def published(self) -> list[PublishedStyle]:
        """JoJoGAN's published styles, each with its title, size and whether it is downloaded or a pack here."""
        folders = self.runtime.folders.search_dirs("styles")
        downloaded = {name for name in self.catalog if weights.locate(name, folders) is not None}
        return published_styles(self.catalog, downloaded, {info.name for info in self.runtime.packs.list()})

    def published_styles(self) -> list[str]:
        """The published styles' dropdown labels: human title and file name."""
        return [style.label for style in self.published()]

    def published_table(self) -> str:
        """The published styles as a small table (title, file, size, downloaded or a pack)."""
        return gallery_html(self.published())

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def fetch(self, entry_name: str | None) -> Iterator[tuple[Any, ...]]:
        """Download a published JoJoGAN style (or use the copy already in the styles folder) and import it."""
        style = resolve(self.published(), entry_name)
        if style is None:
            raise JojoganError("Choose one of the published styles to download.")
        entry = style.entry
        name = Path(entry.name).stem
        self.runtime.packs.new_path(name)  # refuse a taken name before downloading 130 MB
        progress: dict[str, Any] = {"done": 0, "total": entry.size}
        outcome: dict[str, Any] = {}

        def on_progress(_: str, done: int, total: int | None) -> None:
            progress.update(done=done, total=total)

        def work() -> None:
            try:
                found = weights.require(
                    [entry],
                    self.runtime.folders,
                    allow_download=True,
                    on_progress=on_progress,
                    progress=False,
                    catalog=self.catalog,
                )
                outcome["path"] = found[entry.name]
            except (JojoganError, *WORK_FAILURES) as error:
                outcome["error"] = error

        worker = threading.Thread(target=work, name="jojogan-fetch", daemon=True)
        worker.start()
        while worker.is_alive():
            done, total = weights.human_size(progress["done"]), weights.human_size(progress["total"])
            yield (f"Downloading {entry.name}: {done} of {total}…", *self.no_library_change())
            worker.join(self.poll_seconds / 2)
        if "error" in outcome:
            raise outcome["error"]
        yield (f"Importing {entry.name}…", *self.no_library_change())
        with self.exclusive():
            path = self.runtime.import_pack(outcome["path"], name)
        message = f"Imported {entry.name} as style pack '{path.stem}'. {NEW_PACK_NEXT}"
        yield (message, *self.library(path.stem, restyle_with_it=True))


def caption(info: PackInfo) -> str:
    """A gallery caption: the pack name, with its title when that differs."""
    return info.name if info.title == info.name else f"{info.title} ({info.name})"


# --- the tab -------------------------------------------------------------------------------------


def build_tab(
    runtime: Runtime,
    jobs: TrainingJobs,
    *,
    exclusive: Exclusive = contextlib.nullcontext,
    catalog: Mapping[str, weights.WeightFile] = weights.CATALOG,
    theme: Any = None,
    css: str | None = None,
) -> gr.Blocks:
    """The JoJoGAN tab (Train, Restyle, Packs) as gr.Blocks, for `on_ui_tabs` and the standalone app.

    `theme` and `css` only count where these Blocks are the page (the standalone app); the web UI uses its own.
    """
    handlers = TabHandlers(runtime, jobs, exclusive=exclusive, catalog=catalog)
    with gr.Blocks(analytics_enabled=False, title="JoJoGAN", theme=theme, css=css) as blocks:
        with gr.Tab("Train", elem_id="jojogan_train_tab"):
            train = build_train_tab()
        with gr.Tab("Restyle", elem_id="jojogan_restyle_tab"):
            restyle = build_restyle_tab(runtime)
        with gr.Tab("Packs", elem_id="jojogan_packs_tab") as packs_tab:
            packs = build_packs_tab(handlers)
        library = [packs["gallery"], packs["names"], packs["selected"], restyle["controls"][0]]

        train["prepare"].click(
            handlers.prepare,
            inputs=[train["references"], train["test_face"], train["aligned"], train["reference_face"]],
            outputs=[train["status"], train["pairs"]],
        )
        train["train"].click(
            handlers.train,
            inputs=[train["references"], train["test_face"], train["overwrite"], *train["controls"]],
            outputs=[train["status"], train["preview"], *library],
        )
        train["cancel"].click(handlers.cancel, inputs=[], outputs=[train["status"]], queue=False)

        restyle["button"].click(
            handlers.restyle,
            inputs=[restyle["image"], *restyle["controls"]],
            outputs=[restyle["status"], restyle["result"], restyle["crops"]],
            api_name="jojogan_restyle",
        )

        status = packs["status"]
        packs["refresh"].click(
            handlers.refresh, inputs=[packs["selected"]], outputs=[status, *library], api_name="jojogan_packs"
        )
        packs["gallery"].select(handlers.select, inputs=[packs["names"]], outputs=[packs["selected"]])
        shown = [status, packs["card"], *packs["details"]]
        packs["selected"].change(handlers.show, inputs=[packs["selected"]], outputs=shown, api_name="jojogan_pack")
        packs["save"].click(
            handlers.save_details,
            inputs=[packs["selected"], *packs["details"]],
            outputs=[status, packs["card"], *library],
        )
        packs["import"].click(
            handlers.import_file,
            inputs=[packs["upload"], packs["import_name"], packs["overwrite"]],
            outputs=[status, *library],
        )
        packs["rename"].click(
            handlers.rename, inputs=[packs["selected"], packs["new_name"]], outputs=[status, *library]
        )
        packs["delete"].click(handlers.delete, inputs=[packs["selected"]], outputs=[status, *library])
        packs["download"].click(handlers.download, inputs=[packs["selected"]], outputs=[status, packs["file"]])
        packs["fetch"].click(handlers.fetch, inputs=[packs["published"]], outputs=[status, *library]).then(
            handlers.published_table, inputs=[], outputs=[packs["published_table"]], queue=False
        )
        # The packs folder as it is now (packs trained or imported since the UI was built): whenever the Packs tab
        # is opened and, on gradio 4, on every page load. Not on load under gradio 3.41: an output arriving while a
        # file uploads can leave that upload hanging at "Uploading..." (seen on a loaded machine).
        loads = [packs_tab.select] + ([] if gr.__version__.startswith("3.") else [blocks.load])
        for event in loads:
            event(handlers.refresh, inputs=[packs["selected"]], outputs=[status, *library], queue=False).then(
                handlers.show, inputs=[packs["selected"]], outputs=shown, queue=False
            )
    return blocks


def build_train_tab() -> dict[str, Any]:
    """Train: references (+ test face), arguments, Prepare / Train / Cancel, status, live preview, pairs."""
    with gr.Row():
        with gr.Column():
            references = gr.File(
                label=f"Reference portraits (1–{MAX_REFERENCES})",
                file_count="multiple",
                file_types=["image"],
                elem_id="jojogan_references",
            )
            test_face = gr.File(label="Test face (optional preview)", file_types=["image"], elem_id="jojogan_test_face")
            name = gr.Textbox(
                value=field_info(TrainArgs, "name")["default"],
                label=label("name"),
                info=field_info(TrainArgs, "name")["description"],
                elem_id="jojogan_name",
            )
            aligned = checkbox(TrainArgs, "references_are_aligned", "jojogan_references_are_aligned")
            reference_face = number(TrainArgs, "reference_face", "jojogan_reference_face")
            iterations = slider(TrainArgs, "iterations", "jojogan_iterations")
            strength = slider(TrainArgs, "strength", "jojogan_train_strength")
            preserve_color = checkbox(TrainArgs, "preserve_color", "jojogan_preserve_color")
            with gr.Accordion("Advanced", open=False):
                loss = choices_dropdown(TrainArgs, "loss", "jojogan_loss")
                identity_weight = slider(TrainArgs, "identity_weight", "jojogan_identity_weight")
                learning_rate = number(TrainArgs, "learning_rate", "jojogan_learning_rate")
                seed = gr.Textbox(
                    value="",
                    label=label("seed"),
                    info=field_info(TrainArgs, "seed")["description"],
                    placeholder="random",
                    elem_id="jojogan_seed",
                )
                overwrite = gr.Checkbox(
                    value=False, label="Replace a pack of the same name", elem_id="jojogan_overwrite"
                )
            with gr.Row():
                prepare = gr.Button("Prepare", elem_id="jojogan_prepare")
                train = gr.Button("Train", variant="primary", elem_id="jojogan_train")
                cancel = gr.Button("Cancel", variant="stop", elem_id="jojogan_cancel")
        with gr.Column():
            status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="jojogan_train_status")
            preview = lossless(gr.Image, label="Live preview", type="pil", interactive=False, elem_id="jojogan_preview")
            pairs = lossless(
                gr.Gallery,
                label="Aligned references and their e4e inversions (the paired data)",
                columns=4,
                object_fit="contain",
                elem_id="jojogan_pairs",
            )
    by_field = {
        "name": name,
        "references_are_aligned": aligned,
        "reference_face": reference_face,
        "iterations": iterations,
        "strength": strength,
        "preserve_color": preserve_color,
        "loss": loss,
        "identity_weight": identity_weight,
        "learning_rate": learning_rate,
        "seed": seed,
    }
    return {
        "references": references,
        "test_face": test_face,
        "controls": [by_field[field] for field in TRAIN_FIELDS],
        "aligned": aligned,
        "reference_face": reference_face,
        "overwrite": overwrite,
        "prepare": prepare,
        "train": train,
        "cancel": cancel,
        "status": status,
        "preview": preview,
        "pairs": pairs,
    }


def build_restyle_tab(runtime: Runtime) -> dict[str, Any]:
    """Restyle: image, pack and options → result, face crops, message."""
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Image", file_types=["image"], elem_id="jojogan_restyle_image")
            controls = [restyle_control(runtime, name, "jojogan_restyle") for name in RESTYLE_TAB_FIELDS]
            button = gr.Button("Restyle", variant="primary", elem_id="jojogan_restyle_button")
        with gr.Column():
            status = gr.Textbox(label="Status", interactive=False, elem_id="jojogan_restyle_status")
            result = lossless(gr.Image, label="Result", type="pil", interactive=False, elem_id="jojogan_restyle_result")
            crops = lossless(
                gr.Gallery, label="Faces: aligned and restyled", columns=4, elem_id="jojogan_restyle_crops"
            )
    return {"image": image, "controls": controls, "button": button, "status": status, "result": result, "crops": crops}


def build_packs_tab(handlers: TabHandlers) -> dict[str, Any]:
    """Packs: gallery and the selected pack's card, its editable details, import, rename, delete, download and
    the published styles."""
    gallery_items, names, _, _ = handlers.library()
    first = names[0] if names else None
    _, card_html, *details = handlers.show(first)
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            selected = gr.Dropdown(choices=names, value=first, label="Selected pack", elem_id="jojogan_selected_pack")
            gallery = lossless(
                gr.Gallery,
                value=gallery_items,
                label="Style packs",
                columns=3,
                allow_preview=False,
                object_fit="contain",
                elem_id="jojogan_pack_gallery",
            )
            refresh = gr.Button("Refresh the packs", elem_id="jojogan_packs_refresh")
        with gr.Column(scale=2, min_width=320):
            status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="jojogan_packs_status")
            card = gr.HTML(value=card_html, elem_id="jojogan_pack_card")
            with gr.Accordion("Edit the details", open=False, elem_id="jojogan_pack_details"):
                edits = [
                    gr.Textbox(value=value, label=DETAIL_LABELS[key], lines=lines, elem_id=f"jojogan_pack_{key}")
                    for (key, lines), value in zip(DETAIL_LINES.items(), details, strict=True)
                ]
                save = gr.Button("Save the details", elem_id="jojogan_pack_save_details")
            with gr.Row():
                download = gr.Button("Download", elem_id="jojogan_pack_download")
                delete = gr.Button("Delete", variant="stop", elem_id="jojogan_pack_delete")
            file = gr.File(label="Pack file", interactive=False, visible=False, elem_id="jojogan_pack_file")
            with gr.Row():
                new_name = gr.Textbox(label="New name", elem_id="jojogan_pack_new_name", scale=3)
                rename = gr.Button("Rename", elem_id="jojogan_pack_rename", scale=1)
            with gr.Accordion("Import a style pack or a JoJoGAN .pt", open=False):
                upload = gr.File(
                    label="Style pack (.safetensors) or JoJoGAN style (.pt)",
                    file_types=[".safetensors", ".pt", ".pth"],
                    elem_id="jojogan_import_file",
                )
                import_name = gr.Textbox(label="Name (empty = file name)", elem_id="jojogan_import_name")
                overwrite = gr.Checkbox(value=False, label="Replace a pack of the same name")
                import_button = gr.Button("Import", elem_id="jojogan_import")
            with gr.Accordion("Published JoJoGAN styles", open=False):
                styles = handlers.published_styles()
                published = gr.Dropdown(
                    choices=styles,
                    value=styles[0] if styles else None,
                    label="Style",
                    info="JoJoGAN's pretrained styles (about 133 MB each), downloaded and imported as style packs.",
                    elem_id="jojogan_published_style",
                )
                published_table = gr.HTML(value=handlers.published_table(), elem_id="jojogan_published_table")
                fetch = gr.Button("Download and import", elem_id="jojogan_fetch")
    names_state = gr.State(names)
    return {
        "gallery": gallery,
        "names": names_state,
        "refresh": refresh,
        "status": status,
        "selected": selected,
        "card": card,
        "details": edits,
        "save": save,
        "download": download,
        "delete": delete,
        "file": file,
        "new_name": new_name,
        "rename": rename,
        "upload": upload,
        "import_name": import_name,
        "overwrite": overwrite,
        "import": import_button,
        "published": published,
        "published_table": published_table,
        "fetch": fetch,
    }
