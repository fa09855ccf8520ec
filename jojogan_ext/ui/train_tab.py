"""The Train tab: references (+ test face), arguments, Prepare / Train / Cancel, live preview, pairs."""

import time
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr
from PIL import Image

from ..api import MAX_REFERENCES
from ..args import TrainArgs, field_info, parse
from ..controls import checkbox, choices_dropdown, label, number, slider, whole_numbers
from ..errors import JojoganError
from ..jobs import TrainingJob
from ..previews import render_preview
from .common import (
    LIBRARY_OUTPUTS,
    NEW_PACK_NEXT,
    Handlers,
    format_duration,
    lossless,
    shows_errors,
    uploaded_image,
    uploaded_path,
)

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


class TrainHandlers(Handlers):
    """The Train tab's buttons: Prepare (the paired data), Train (a followed job) and Cancel."""

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
