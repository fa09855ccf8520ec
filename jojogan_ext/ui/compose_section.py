"""The Packs tab's "Compose a new pack": a layer swap or a mix of packs and the base, previewed live on the test
face (the core `TryOn` and `Composer` cache what they render and load), then saved like the CLI and REST do."""

import contextlib
import inspect
import json
from typing import Any

import gradio as gr
from PIL import Image

from ..args import BASE_SOURCE, Recipe, SwapRecipe, field_info, parse_recipe
from ..compose import describe, resolutions
from ..errors import JojoganError
from ..packs import PackInfo
from .common import LIBRARY_OUTPUTS, NEW_PACK_NEXT, Handlers, rendered_image, shows_errors

MODES = {"Swap layers by resolution": "swap", "Mix": "mix"}
MIX_ROWS = 4  # mix sources offered at once (a recipe takes up to MAX_COMPOSE_SOURCES)
NO_SOURCE = "(none)"
DEFAULT_AT = 32
DEFAULT_SIZE = 1024  # the resolutions offered when no pack records its generator's size


def generator_size(infos: list[PackInfo]) -> int:
    """The generator size the packs record (every usable pack fits the same base), else 1024."""
    for info in infos:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            return int(json.loads(info.metadata["jojogan.config"])["size"])
    return DEFAULT_SIZE


def source_choices(infos: list[PackInfo]) -> list[str]:
    """What a composition can draw on: the base model and every pack."""
    return [BASE_SOURCE, *(info.name for info in infos if info.name != BASE_SOURCE)]


def default_resolution(levels: list[str]) -> str:
    """R = 32 where the generator has it, else its size."""
    return str(DEFAULT_AT) if str(DEFAULT_AT) in levels else levels[-1]


def resolution_choices(infos: list[PackInfo]) -> list[str]:
    """The swap resolutions R offered: 4 … the generator's size, as text (dropdown values)."""
    return [str(level) for level in resolutions(generator_size(infos))]


class ComposeHandlers(Handlers):
    """Preview and save a composition; refresh its source lists when the library changes."""

    def compose_recipe(
        self, mode: str | None, low: str | None, high: str | None, at: Any, transition: Any, *mix: Any
    ) -> Recipe:
        """The recipe the controls describe: (mode, low, high, R, T, source 1…n, weight 1…n); a sentence when
        something is missing."""
        if mode not in MODES:
            raise JojoganError(f"Choose how to compose: {' or '.join(MODES)}.")
        if MODES[mode] == "swap":
            if not low or not high:
                raise JojoganError("Choose the low and the high source of the swap ('base' or a pack).")
            if not str(at).isdigit():
                raise JojoganError("Choose the swap resolution R (4, 8, … up to the generator's size).")
            return parse_recipe({"mode": "swap", "low": low, "high": high, "at": int(at), "transition": transition})
        sources, weights = mix[:MIX_ROWS], mix[MIX_ROWS:]
        chosen: dict[str, float] = {}
        for source, weight in zip(sources, weights, strict=True):
            if not source or source == NO_SOURCE:
                continue
            if source in chosen:
                raise JojoganError(f"'{source}' is chosen twice in the mix; choose each source once.")
            chosen[source] = float(weight or 0)
        if not chosen:
            raise JojoganError("Choose at least one source to mix ('base' or a pack).")
        return parse_recipe({"mode": "mix", "weights": chosen})

    @shows_errors(outputs=2, cleared=(None,))
    def compose_preview(self, *controls: Any) -> tuple[str, Image.Image]:
        """The composition rendered on the test face (or the average face), from the caches when it was before."""
        recipe = self.compose_recipe(*controls)
        face = self.try_on.face
        with self.exclusive():
            image = self.try_on.recipe(recipe)
        on = face.described if face is not None else "the base model's average face (no test face yet)"
        return f"Preview: {describe(recipe)} Shown on {on}.", image

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def compose_save(self, name: str | None, overwrite: bool, *controls: Any) -> tuple[Any, ...]:
        """Save the composition as a new pack (its preview on the test face), like `packs blend/mix` and REST."""
        recipe = self.compose_recipe(*controls)
        target = (name or "").strip()
        if not target:
            raise JojoganError("Give the new pack a name, then save it.")
        self.runtime.packs.new_path(target, overwrite=bool(overwrite))  # a taken name before any work
        face = self.try_on.face
        with self.exclusive():
            latent = self.try_on.latent(face) if face is not None else None
            path = self.runtime.compose_pack(
                target, recipe, overwrite=bool(overwrite), dtype=self.jobs.pack_dtype, test_latent=latent
            )
        message = f"Saved the composition as style pack '{path.stem}'. {NEW_PACK_NEXT}"
        return (message, *self.library(path.stem, restyle_with_it=True))

    def compose_sources(
        self, low: str | None, high: str | None, at: str | None, *mix_sources: str | None
    ) -> tuple[Any, ...]:
        """The source and resolution lists as the library is now; choices that are gone are cleared."""
        infos = self.runtime.packs.list()
        sources, levels = source_choices(infos), resolution_choices(infos)
        kept = [gr.update(choices=sources, value=value if value in sources else None) for value in (low, high)]
        level = at if at in levels else default_resolution(levels)
        mixed = [NO_SOURCE, *sources]
        rows = [gr.update(choices=mixed, value=value if value in mixed else NO_SOURCE) for value in mix_sources]
        return (*kept, gr.update(choices=levels, value=level), *rows)


def build_compose_section(handlers: Handlers) -> dict[str, Any]:
    """Compose a new pack (closed by default): mode, the swap's or the mix's controls, a live preview, name, save."""
    infos = handlers.runtime.packs.list()
    sources, levels = source_choices(infos), resolution_choices(infos)
    first_pack = sources[1] if len(sources) > 1 else None
    transition = field_info(SwapRecipe, "transition")
    with gr.Accordion("Compose a new pack", open=False, elem_id="jojogan_compose"):
        with gr.Row():
            with gr.Column(scale=3, min_width=240):
                mode = gr.Radio(
                    choices=list(MODES), value=next(iter(MODES)), label="Compose by", elem_id="jojogan_compose_mode"
                )
                with gr.Column(visible=True) as swap_box:
                    with gr.Row():
                        low = gr.Dropdown(
                            choices=sources,
                            value=BASE_SOURCE,
                            label="Low resolutions from (pose, face shape)",
                            elem_id="jojogan_compose_low",
                        )
                        high = gr.Dropdown(
                            choices=sources,
                            value=first_pack,
                            label="High resolutions from (texture, colour, lines)",
                            elem_id="jojogan_compose_high",
                        )
                    with gr.Row():
                        at = gr.Dropdown(
                            choices=levels,
                            value=default_resolution(levels),
                            label="Swap at R (px): up to R from the low source",
                            elem_id="jojogan_compose_at",
                        )
                        seam = gr.Slider(
                            minimum=transition["minimum"],
                            maximum=transition["maximum"],
                            step=0.25,
                            value=transition["default"],
                            label="Transition T (octaves; 0 = hard)",
                            elem_id="jojogan_compose_transition",
                        )
                with gr.Column(visible=False) as mix_box:
                    mix_sources, mix_weights = [], []
                    for row in range(MIX_ROWS):
                        with gr.Row():
                            value = [BASE_SOURCE, first_pack][row] if row < 2 and first_pack else NO_SOURCE
                            mix_sources.append(
                                gr.Dropdown(
                                    choices=[NO_SOURCE, *sources],
                                    value=value,
                                    label=f"Source {row + 1}",
                                    elem_id=f"jojogan_compose_source_{row + 1}",
                                )
                            )
                            mix_weights.append(
                                gr.Slider(
                                    minimum=0,
                                    maximum=1,
                                    step=0.05,
                                    value=0.5 if value != NO_SOURCE else 0,
                                    label=f"Weight {row + 1} (weights are normalised)",
                                    elem_id=f"jojogan_compose_weight_{row + 1}",
                                )
                            )
            preview = rendered_image("Preview on the test face", "jojogan_compose_preview", scale=2)
        with gr.Row():
            name = gr.Textbox(label="New pack name", elem_id="jojogan_compose_name", scale=3)
            overwrite = gr.Checkbox(
                value=False, label="Replace a pack of that name", elem_id="jojogan_compose_overwrite"
            )
            save = gr.Button("Save the new pack", variant="primary", elem_id="jojogan_compose_save", scale=1)
    return {
        "mode": mode,
        "swap_box": swap_box,
        "mix_box": mix_box,
        "controls": [mode, low, high, at, seam, *mix_sources, *mix_weights],
        "sources": [low, high, at, *mix_sources],
        "preview": preview,
        "name": name,
        "overwrite": overwrite,
        "save": save,
    }


def show_mode(mode: str | None) -> tuple[Any, Any]:
    """Show the swap's or the mix's controls."""
    swap = MODES.get(mode or "") == "swap"
    return gr.update(visible=swap), gr.update(visible=not swap)


def bind_compose_section(
    handlers: ComposeHandlers, section: dict[str, Any], status: Any, selected: Any, library: list[Any]
) -> None:
    """Preview on every user change (dropdowns on input, sliders on release: not on every drag tick), save, and
    follow the library (the selected-pack dropdown changes with every action that changes the library)."""
    controls, preview = section["controls"], [status, section["preview"]]
    section["mode"].change(show_mode, inputs=[section["mode"]], outputs=[section["swap_box"], section["mix_box"]])
    for control in controls:
        event = control.release if isinstance(control, gr.Slider) else control.input
        # gradio 4 can drop the renders a newer change makes pointless (one takes seconds at 1024 on a CPU)
        latest = {"trigger_mode": "always_last"} if "trigger_mode" in inspect.signature(event).parameters else {}
        event(handlers.compose_preview, inputs=controls, outputs=preview, **latest)
    section["save"].click(
        handlers.compose_save, inputs=[section["name"], section["overwrite"], *controls], outputs=[status, *library]
    )
    selected.change(handlers.compose_sources, inputs=section["sources"], outputs=section["sources"])
