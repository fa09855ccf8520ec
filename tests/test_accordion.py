"""The txt2img/img2img/Extras accordion in the host's order of events: build the controls, apply saved
defaults or pasted parameters to them, then run the script with the values the browser sends.

`saved_defaults` and `paste` do what A1111 1.10.1 and Forge do after `ui()` (modules/ui_loadsave.py sets the
saved value on the component; modules/infotext_utils.py converts each pasted value with `type(component.value)`
unless the paste function returns it ready). The same steps run against the real hosts in tests/webui/.
"""

import gradio as gr
import pytest

from jojogan_ext import integration
from jojogan_ext.accordion import (
    ACCORDION_FIELDS,
    build_restyle_controls,
    paste_field_names,
    paste_fields,
    restyle_values,
    script_arguments,
)
from jojogan_ext.args import INFOTEXT_FIELDS, RestyleArgs, defaults, dump, field_info, infotext, parse
from jojogan_ext.errors import JojoganError

from tiny_models import astronaut, save_styled_pack


def saved_defaults(controls, values: dict) -> None:
    """ui-config.json applied as the host does, after ui(): each saved value set on its component."""
    for field, value in values.items():
        controls[ACCORDION_FIELDS.index(field)].value = value


def paste(fields, params: dict) -> dict:
    """The host's paste: each infotext field's value, converted with type(component.value) as the host does."""
    pasted = {}
    for component, key in fields:
        value = key(params) if callable(key) else params.get(key)
        if value is None:
            continue
        value_type = type(component.value)
        if value_type is bool and value == "False":
            value = False
        elif value_type is int:
            value = float(value)
        else:
            try:
                value = value_type(value)
            except TypeError:  # NoneType("ink"): the host keeps the control as it was
                continue
        component.value = value
        pasted[component] = value
    return pasted


def browser_values(controls) -> list:
    """What the browser sends as the script's arguments: every control's current value."""
    return [control.value for control in controls]


@pytest.fixture()
def services(tiny_runtime):
    return integration.Services(tiny_runtime, None, integration.Restyler(tiny_runtime), exclusive=lambda: None)


def build(runtime, **kwargs):
    with gr.Blocks(analytics_enabled=False):
        return build_restyle_controls(runtime, elem_prefix="jojogan_txt2img", **kwargs)


def test_controls_cover_every_restyle_option_with_bounds_from_the_model(tiny_runtime):
    save_styled_pack(tiny_runtime)
    with gr.Blocks(analytics_enabled=False):
        controls = build_restyle_controls(tiny_runtime, elem_prefix="jojogan_txt2img")
        switch = gr.Checkbox(value=True)
        reused = build_restyle_controls(tiny_runtime, enabled=switch, elem_prefix="jojogan_img2img")
    assert set(ACCORDION_FIELDS) == set(defaults(RestyleArgs))  # every option, so pasting can restore each
    assert len(controls) == len(ACCORDION_FIELDS) and reused[0] is switch
    assert isinstance(controls[0], gr.Checkbox) and controls[0].value is False
    assert isinstance(controls[1], gr.Dropdown) and controls[1].value == "bold"
    for field in ("strength", "max_faces", "confidence", "min_face_size", "feather"):
        control = controls[ACCORDION_FIELDS.index(field)]
        info = field_info(RestyleArgs, field)
        assert (control.minimum, control.maximum, control.value) == (info["minimum"], info["maximum"], info["default"])


def test_control_values_become_restyle_arguments():
    values = restyle_values([True, "bold", 0.5, "0, 2", 3.0, 0.7, 40.0, 0.1, True])
    assert parse(RestyleArgs, values) == RestyleArgs(
        enabled=True,
        pack="bold",
        strength=0.5,
        face_indices=[0, 2],
        max_faces=3,
        confidence=0.7,
        min_face_size=40,
        feather=0.1,
        color_match=True,
    )
    assert parse(RestyleArgs, restyle_values([None] * 9)) == RestyleArgs(enabled=False)  # the Extras API's Nones
    assert restyle_values([True, "bold", 1.0, ""])["face_indices"] is None
    with pytest.raises(JojoganError, match="not a list of face numbers"):
        restyle_values([True, "bold", 1.0, "left one"])


def test_script_arguments_take_the_api_object_or_the_control_values():
    assert script_arguments([{"pack": "ink"}, False, "", 1.0]) == {"pack": "ink"}  # alwayson_scripts args
    assert script_arguments([True, "ink", 0.5])["strength"] == 0.5
    assert script_arguments([]) is None
    with pytest.raises(JojoganError, match="must be one object"):
        script_arguments(["ink"])


def test_saved_defaults_restyle_without_touching_a_control(tiny_runtime, services, fixtures):
    """Settings → Defaults saved with JoJoGAN on and a pack: Generate restyles at once (it used to do nothing)."""
    controls = build(tiny_runtime)  # built before the pack exists, as on a first start
    assert controls[ACCORDION_FIELDS.index("pack")].value == ""  # a string, never None
    save_styled_pack(tiny_runtime, "bold")
    saved_defaults(controls, {"enabled": True, "pack": "bold", "strength": 0.6, "confidence": 0.05})
    restyle_args = script_arguments(browser_values(controls))
    outcome = services.restyle_or_keep(astronaut(fixtures), restyle_args)
    assert outcome.infotext["JoJoGAN pack"] == "bold" and outcome.infotext["JoJoGAN strength"] == "0.6"
    assert outcome.infotext["JoJoGAN confidence"] == "0.05" and outcome.note == ""


def test_pasting_parameters_restores_every_option_even_without_packs_at_build(tiny_runtime):
    controls = build(tiny_runtime)  # no packs yet: the pack dropdown's value is ""
    args = parse(
        RestyleArgs,
        {
            "pack": "ink",
            "strength": 0.7,
            "face_indices": [0, 2],
            "face_packs": {2: "sketch", 0: "oil paint"},
            "max_faces": 3,
            "feather": 0.3,
            "color_match": True,
            "swap_at": 32,
            "swap_into": "sketch",
        },
    )
    params = infotext(args)  # what the generation info says under the restyled image
    assert set(params) == {
        "JoJoGAN pack",
        "JoJoGAN strength",
        "JoJoGAN faces",
        "JoJoGAN face packs",
        "JoJoGAN max faces",
        "JoJoGAN feather",
        "JoJoGAN color match",
        "JoJoGAN swap resolution",
        "JoJoGAN swap into",
    }  # defaults are left out
    assert params["JoJoGAN face packs"] == "0=oil paint, 2=sketch"
    paste(paste_fields(controls), {"Steps": "20", **params})
    restored = parse(RestyleArgs, script_arguments(browser_values(controls)))
    assert dump(restored) == {**dump(args), "enabled": True}
    assert restored.confidence == field_info(RestyleArgs, "confidence")["default"]


def test_pasting_parameters_without_jojogan_leaves_the_accordion_alone(tiny_runtime):
    controls = build(tiny_runtime)
    saved_defaults(controls, {"enabled": True, "pack": "mine", "feather": 0.3})
    assert paste(paste_fields(controls), {"Steps": "20", "Sampler": "Euler"}) == {}
    assert browser_values(controls)[:2] == [True, "mine"]


def test_pasted_defaults_reset_options_that_the_infotext_leaves_out(tiny_runtime):
    """The infotext records only what differs from the defaults: pasting it resets the rest."""
    controls = build(tiny_runtime)
    saved_defaults(controls, {"feather": 0.4, "max_faces": 2})
    paste(paste_fields(controls), {"JoJoGAN pack": "ink", "JoJoGAN strength": "1.0"})
    restored = parse(RestyleArgs, script_arguments(browser_values(controls)))
    assert restored.feather == field_info(RestyleArgs, "feather")["default"] and restored.max_faces == 8


def test_unreadable_pasted_values_keep_their_defaults(tiny_runtime):
    controls = build(tiny_runtime)
    paste(paste_fields(controls), {"JoJoGAN pack": "ink", "JoJoGAN strength": "strong", "JoJoGAN faces": "a, b"})
    restored = parse(RestyleArgs, script_arguments(browser_values(controls)))
    assert restored.pack == "ink" and restored.strength == 1.0 and restored.face_indices is None


def test_face_packs_and_swap_controls_read_as_the_args_models_fields():
    names = ("enabled", "pack", "face_packs", "swap_at", "swap_into")
    values = restyle_values([True, "ink", "1=sketch; 3 = oil paint", "64", "sketch"], names)
    assert values["face_packs"] == {1: "sketch", 3: "oil paint"} and values["swap_at"] == 64
    assert restyle_values([True, "ink", "", "off", "base"], names) | {"enabled": True} == {
        "enabled": True, "pack": "ink", "face_packs": {}, "swap_at": None, "swap_into": "base"
    }  # fmt: skip
    assert restyle_values([None] * 5, names)["face_packs"] == {}  # the Extras API's Nones
    with pytest.raises(JojoganError, match="Face packs: 'ink' is not face=pack"):
        restyle_values([True, "x", "ink"], names)


def test_pasting_parameters_without_face_packs_clears_them(tiny_runtime):
    controls = build(tiny_runtime)
    saved_defaults(controls, {"face_packs": "1=sketch", "swap_at": "16"})
    paste(paste_fields(controls), {"JoJoGAN pack": "ink", "JoJoGAN strength": "1.0"})
    restored = parse(RestyleArgs, script_arguments(browser_values(controls)))
    assert restored.face_packs == {} and restored.swap_at is None and restored.swap_into == "base"


def test_paste_field_names_are_the_infotext_labels():
    assert paste_field_names() == list(INFOTEXT_FIELDS.values())
