"""Gradio controls built from the argument models (bounds, defaults and descriptions come from `args`).

Shared by the JoJoGAN tab (`ui`) and the txt2img/img2img/Extras accordion (`accordion`); no web UI import.
"""

from typing import Any

import gradio as gr
from pydantic import BaseModel

from .args import field_info, schema

LABELS = {
    "enabled": "Restyle faces with JoJoGAN",
    "pack": "Style pack",
    "face_indices": "Faces",
    "face_packs": "Face packs",
    "swap_at": "Swap resolution",
    "swap_into": "Swap into",
    "max_faces": "Max faces",
    "color_match": "Match colours",
    "min_face_size": "Minimum face size (px)",
    "name": "Style pack name",
    "references_are_aligned": "References are aligned face crops",
    "reference_face": "Face in each reference (0 = largest)",
    "preserve_color": "Preserve colours",
    "identity_weight": "Identity weight",
    "seed": "Seed",
}
SLIDER_STEPS = {"identity_weight": 0.1}


def label(name: str) -> str:
    """The control label for a field name."""
    return LABELS.get(name, name.replace("_", " ").capitalize())


def property_type(model: type[BaseModel], name: str) -> str | None:
    """The JSON-schema type of a field ('integer', 'number', 'boolean', 'string', 'array')."""
    return schema(model)["properties"][name].get("type")


def slider(model: type[BaseModel], name: str, elem_id: str) -> gr.Slider:
    """A slider spanning the field's bounds, starting at its default."""
    info = field_info(model, name)
    step = 1 if property_type(model, name) == "integer" else SLIDER_STEPS.get(name, 0.01)
    return gr.Slider(
        minimum=info["minimum"],
        maximum=info["maximum"],
        value=info["default"],
        step=step,
        label=label(name),
        info=info["description"],
        elem_id=elem_id,
    )


def checkbox(model: type[BaseModel], name: str, elem_id: str) -> gr.Checkbox:
    """A checkbox starting at the field's default; style.css puts its hint below it (gradio draws it above)."""
    info = field_info(model, name)
    return gr.Checkbox(
        value=info["default"],
        label=label(name),
        info=info["description"],
        elem_id=elem_id,
        elem_classes=["jojogan-checkbox"],
    )


def number(model: type[BaseModel], name: str, elem_id: str, value: float | None = None) -> gr.Number:
    """A number box (for fields whose range makes a poor slider), at `value` or the field's default."""
    info = field_info(model, name)
    default = info["default"] if value is None else value
    integer = property_type(model, name) != "number"
    return gr.Number(
        value=default, label=label(name), info=info["description"], precision=0 if integer else None, elem_id=elem_id
    )


def choices_dropdown(model: type[BaseModel], name: str, elem_id: str) -> gr.Dropdown:
    """A dropdown of a Literal field's choices."""
    info = field_info(model, name)
    options = schema(model)["properties"][name]["enum"]
    return gr.Dropdown(
        choices=options, value=info["default"], label=label(name), info=info["description"], elem_id=elem_id
    )


def whole_numbers(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Sliders hand integers over as floats (300.0); give integer fields ints again."""
    for name, value in data.items():
        if property_type(model, name) == "integer" and isinstance(value, float) and value.is_integer():
            data[name] = int(value)
    return data
