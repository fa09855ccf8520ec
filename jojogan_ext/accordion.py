"""The face-restyling accordion of txt2img/img2img and Extras: its controls, the script arguments they make,
and pasted generation parameters read back into them.

The host builds the controls first, then applies saved defaults (`ui-config.json`) and pasted parameters to
them, and only then runs the script: so the arguments are always read from the controls' values at run time,
never from state captured while building. Gradio only; the web UI glue in scripts/ wires this to the host.
"""

from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from .args import (
    BASE_SOURCE,
    INFOTEXT_FIELDS,
    NO_SWAP,
    RestyleArgs,
    field_info,
    format_face_packs,
    from_infotext,
    parse_face_packs,
    schema,
    swap_resolution,
)
from .controls import checkbox, label, property_type, slider, whole_numbers
from .errors import JojoganError
from .runtime import Runtime

# The accordion's controls, in the order `build_restyle_controls` returns them (= the script's arguments).
ACCORDION_FIELDS = (
    "enabled",
    "pack",
    "strength",
    "face_indices",
    "max_faces",
    "confidence",
    "min_face_size",
    "feather",
    "color_match",
    "face_packs",
    "swap_at",
    "swap_into",
)
# Closed sections below pack and strength (as ADetailer groups its options), each in rows of controls (two side
# by side, or one across): pack and strength are all most restyles need.
SECTIONS = (
    (
        "Faces and blending",
        (("face_indices", "max_faces"), ("confidence", "min_face_size"), ("feather", "color_match")),
    ),
    ("Per-face packs and layer swap", (("face_packs",), ("swap_at", "swap_into"))),
)
TEXT_FIELDS = {"face_indices": "all", "face_packs": "e.g. 1=ink, 3=sketch"}  # field → placeholder


def pack_names(runtime: Runtime) -> list[str]:
    """The names of the usable style packs, sorted."""
    return [info.name for info in runtime.packs.list()]


def pack_dropdown(
    runtime: Runtime, elem_id: str, value: str = "", field: str = "pack", first: tuple[str, ...] = ()
) -> gr.Dropdown:
    """A style pack dropdown for `field` (the packs after the `first` choices) with a refresh button beside it.

    Its value is always a string ("" = none chosen), never None: the host converts pasted values with
    `type(component.value)`, which would turn every pack name into None.
    """

    def choices() -> list[str]:
        return [*first, *pack_names(runtime)]

    names = choices()
    with gr.Row():
        dropdown = gr.Dropdown(
            choices=names,
            value=value or (names[0] if names else ""),
            label=label(field),
            info=field_info(RestyleArgs, field)["description"],
            allow_custom_value=True,  # a pasted or saved pack name is kept even before the list is refreshed
            elem_id=elem_id,
            scale=8,
        )
        # the host's small tool button (its `tool` class; the standalone app's style.css gives the same look)
        refresh = gr.Button("🔄", size="sm", scale=0, min_width=40, elem_classes=["tool"], elem_id=f"{elem_id}_refresh")
    refresh.click(lambda: gr.update(choices=choices()), inputs=[], outputs=[dropdown])
    # the host builds this once at start-up: opening the list re-reads the packs folder (packs trained since)
    dropdown.focus(lambda: gr.update(choices=choices()), inputs=[], outputs=[dropdown], queue=False)
    return dropdown


def restyle_control(runtime: Runtime, name: str, elem_prefix: str, pack: str = "") -> gr.components.Component:
    """One RestyleArgs control: pack dropdown, faces or face packs textbox, swap dropdowns, checkbox or slider."""
    elem_id = f"{elem_prefix}_{name}"
    if name == "pack":
        return pack_dropdown(runtime, elem_id, pack)
    if name == "swap_into":
        return pack_dropdown(runtime, elem_id, BASE_SOURCE, field=name, first=(BASE_SOURCE,))
    if name == "swap_at":
        info = field_info(RestyleArgs, name)
        choices = [NO_SWAP, *(str(value) for value in schema(RestyleArgs)["properties"][name]["enum"])]
        return gr.Dropdown(choices=choices, value=NO_SWAP, label=label(name), info=info["description"], elem_id=elem_id)
    if name in TEXT_FIELDS:
        info = field_info(RestyleArgs, name)
        return gr.Textbox(
            value="", label=label(name), info=info["description"], placeholder=TEXT_FIELDS[name], elem_id=elem_id
        )
    if property_type(RestyleArgs, name) == "boolean":
        return checkbox(RestyleArgs, name, elem_id)
    return slider(RestyleArgs, name, elem_id)


def build_restyle_controls(
    runtime: Runtime,
    *,
    enabled: gr.components.Component | None = None,
    elem_prefix: str = "jojogan",
    pack: str = "",
) -> list[gr.components.Component]:
    """The accordion's controls in ACCORDION_FIELDS order, created in the current Blocks context.

    Pass `enabled` to use an existing switch (an InputAccordion, say) instead of a new checkbox, and `pack`
    to preselect a pack (the "Default style pack" setting). `script_arguments(values)` reads them back.
    """
    made: dict[str, gr.components.Component] = {}
    if enabled is None:  # off until the user turns it on, whatever the API's default
        info = field_info(RestyleArgs, "enabled")["description"]
        enabled = gr.Checkbox(value=False, label=label("enabled"), info=info, elem_id=f"{elem_prefix}_enabled")
    made["enabled"] = enabled
    for name in ("pack", "strength"):
        made[name] = restyle_control(runtime, name, elem_prefix, pack)
    for title, rows in SECTIONS:
        with gr.Accordion(title, open=False):
            for row in rows:
                with gr.Row():
                    for name in row:
                        made[name] = restyle_control(runtime, name, elem_prefix)
    return [made[name] for name in ACCORDION_FIELDS]


def parse_face_indices(value: Any) -> list[int] | None:
    """'0, 2' (or a list) → [0, 2]; empty → None (all faces); anything else → JojoganError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        parts = value.replace(";", ",").replace(" ", ",").split(",")
        try:
            return [int(part) for part in parts if part]
        except ValueError:
            raise JojoganError(
                f"Faces '{value}' is not a list of face numbers; write them like 0, 2 (0 = largest)."
            ) from None
    if isinstance(value, list | tuple):
        return list(value)
    raise JojoganError(f"Faces must be a list of face numbers, not {value!r}.")


def parse_face_pack_text(value: Any) -> dict[int, str]:
    """'1=ink, 3=sketch' (or a dict) → {1: 'ink', 3: 'sketch'}; empty → {}; anything else → JojoganError."""
    if value is None or isinstance(value, dict):
        return dict(value or {})
    try:
        return parse_face_packs(value)
    except ValueError as error:
        raise JojoganError(f"Face packs: {error}; write them like 1=ink, 3=sketch (0 = largest).") from None


def parse_swap_at(value: Any) -> int | None:
    """The swap resolution dropdown's text ('off', '64') → None or 64; a number passes through."""
    try:
        return swap_resolution(value)
    except ValueError as error:
        raise JojoganError(f"Swap resolution {error}; choose {NO_SWAP}, 4, 8, … 1024.") from None


def restyle_values(values: Sequence[Any], fields: Sequence[str] = ACCORDION_FIELDS) -> dict[str, Any]:
    """Control values (in `fields` order) → a RestyleArgs dict; None leaves a field at its default.

    A missing or None `enabled` means disabled (the Extras REST API passes None for every argument).
    Validate the result with `args.parse(RestyleArgs, ...)`.
    """
    data: dict[str, Any] = {}
    for name, value in zip(fields, values, strict=False):
        if name == "face_indices":
            data[name] = parse_face_indices(value)
        elif name == "face_packs":
            data[name] = parse_face_pack_text(value)
        elif name == "swap_at":
            data[name] = parse_swap_at(value)
        elif value is not None:
            data[name] = value
    if "enabled" in fields:
        data["enabled"] = bool(data.get("enabled", False))
    return whole_numbers(RestyleArgs, data)


def script_arguments(values: Sequence[Any]) -> dict[str, Any] | None:
    """The host's script arguments → a RestyleArgs dict (None: nothing to do).

    Two forms: the API's `alwayson_scripts {"JoJoGAN": {"args": [{...RestyleArgs...}]}}` puts one dict first
    (without "enabled" it restyles, RestyleArgs' default); the UI (and positional API args) hand over the
    controls' values in ACCORDION_FIELDS order.
    """
    if not values:
        return None
    if isinstance(values[0], dict):
        return dict(values[0])
    if values[0] is None or isinstance(values[0], bool):
        return restyle_values(values)
    raise JojoganError(
        f'The JoJoGAN script argument must be one object like {{"pack": "name"}}, not {values[0]!r:.80}.'
    )


def paste_fields(
    controls: Sequence[gr.components.Component],
) -> list[tuple[gr.components.Component, Callable[[dict[str, Any]], Any]]]:
    """The script's `infotext_fields`: for each control, what pasted generation parameters set it to.

    Each function returns the value already in the control's type (or None: leave the control alone), so
    the host's `type(component.value)` conversion never loses it. Parameters without a JoJoGAN pack leave
    the accordion alone; with one, every control is set (absent fields mean their defaults).
    """
    by_field = dict(zip(ACCORDION_FIELDS, controls, strict=True))

    def reader(field: str) -> Callable[[dict[str, Any]], Any]:
        def read(params: dict[str, Any]) -> Any:
            values = from_infotext(params)
            if not values:
                return None
            if field == "face_indices":
                return ", ".join(str(index) for index in values[field] or [])
            if field == "face_packs":
                return format_face_packs(values[field])
            if field == "swap_at":
                return NO_SWAP if values[field] is None else str(values[field])
            return values[field]

        return read

    return [(control, reader(field)) for field, control in by_field.items()]


def paste_field_names() -> list[str]:
    """The infotext keys the host may copy between tabs ("Send to img2img")."""
    return list(INFOTEXT_FIELDS.values())
