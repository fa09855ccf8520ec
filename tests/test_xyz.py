"""X/Y/Z plot axes (issue 16) against a stand-in of the host's scripts/xyz_grid.py, and a grid run on tiny models.

The stand-in has the real module's structure (A1111 1.10.1 82a973c and Forge dfdcbab6 are the same here):
`AxisOption(label, type, apply, format_value=..., confirm=None, cost=0.0, choices=None, prepare=None)` with
its two subclasses, a module-level `axis_options` list, and the module loaded under its file name and listed in
`modules.scripts.scripts_data` as `ScriptClassData(script_class, path, basedir, module)`. `run_grid` does what
its `run` does per grid: values converted with the axis's `type` (or taken from the dropdown when it has
`choices`), `confirm(p, values)` before the first image, then for each cell `pc = copy(p)` and
`opt.apply(pc, x, xs)` for every axis; `pc.extra_generation_params` stays the dict all cells share.
The live tier (tests/webui) runs the real script.
"""

import time
import types
from collections import namedtuple
from copy import copy

import numpy as np
import pytest

from jojogan_ext import integration, xyz
from jojogan_ext.args import RestyleArgs, infotext, parse
from jojogan_ext.errors import JojoganError
from jojogan_ext.restyle import Restyler

from tiny_models import astronaut, save_styled_pack

ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])


def format_value_add_label(p, opt, x):
    return f"{opt.label}: {round(x, 8) if isinstance(x, float) else x}"


class AxisOption:
    def __init__(
        self,
        label,
        type,
        apply,
        format_value=format_value_add_label,
        confirm=None,
        cost=0.0,
        choices=None,
        prepare=None,
    ):
        self.label, self.type, self.apply, self.format_value = label, type, apply, format_value
        self.confirm, self.cost, self.prepare, self.choices = confirm, cost, prepare, choices


class AxisOptionImg2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = True


def host_scripts() -> tuple[list, types.ModuleType]:
    """The host's loaded scripts: the X/Y/Z plot module (with a few of its own axes) among others."""
    module = types.ModuleType("xyz_grid.py")
    module.AxisOption, module.AxisOptionImg2Img = AxisOption, AxisOptionImg2Img
    module.axis_options = [
        AxisOption("Nothing", str, lambda p, x, xs: None),
        AxisOption("Seed", int, lambda p, x, xs: setattr(p, "seed", x)),
        AxisOptionImg2Img("Image CFG Scale", float, lambda p, x, xs: setattr(p, "image_cfg_scale", x)),
    ]
    module.Script = type("Script", (), {"__module__": "xyz_grid.py"})
    other = types.ModuleType("prompts_from_file.py")
    other.Script = type("Script", (), {"__module__": "prompts_from_file.py"})
    data = [
        ScriptClassData(other.Script, "scripts/prompts_from_file.py", ".", other),
        ScriptClassData(module.Script, "scripts/xyz_grid.py", ".", module),
    ]
    return data, module


def option(module, label: str) -> AxisOption:
    return next(opt for opt in module.axis_options if opt.label == label)


def axis_values(opt: AxisOption, text: str, dropdown: list[str], p) -> list:
    """The host's process_axis for plain lists: the dropdown when the axis has choices, else the text split."""
    values = dropdown if opt.choices is not None else [part.strip() for part in text.split(",")]
    values = [opt.type(value) for value in values]
    if opt.confirm:
        opt.confirm(p, values)
    return values


def run_grid(p, x: tuple, y: tuple, cell) -> list:
    """The host's grid loop: each cell a shallow copy of `p` with both axes applied; returns the cells' results."""
    (x_opt, xs), (y_opt, ys) = x, y
    results = []
    for y_value in ys:
        for x_value in xs:
            pc = copy(p)
            x_opt.apply(pc, x_value, xs)
            y_opt.apply(pc, y_value, ys)
            results.append(cell(pc))
    return results


@pytest.fixture()
def registered(tiny_runtime) -> types.ModuleType:
    data, module = host_scripts()
    found = xyz.find_xyz_module(data)
    assert found is module
    added = xyz.add_axes(module, lambda: [i.name for i in tiny_runtime.packs.list()], tiny_runtime.packs.existing)
    assert added == ["JoJoGAN pack", "JoJoGAN strength", "JoJoGAN swap resolution"]
    return module


def test_axes_are_appended_once_with_the_hosts_option_class(registered, tiny_runtime):
    labels = [opt.label for opt in registered.axis_options]
    assert labels[:3] == ["Nothing", "Seed", "Image CFG Scale"] and len(labels) == 6
    assert xyz.add_axes(registered, list, tiny_runtime.packs.existing) == []  # a UI reload adds nothing
    assert len(registered.axis_options) == 6
    pack, strength, swap = (option(registered, label) for label in labels[3:])
    assert all(type(opt) is AxisOption for opt in (pack, strength, swap))  # shown on txt2img and img2img
    save_styled_pack(tiny_runtime, "ink")
    assert pack.choices() == ["ink"] and pack.type is str and pack.cost > swap.cost > strength.cost == 0
    assert strength.type is float and strength.choices is None  # typed values: ranges like 0-1 [5] work
    assert swap.choices() == ["off", "4", "8", "16", "32", "64", "128", "256", "512", "1024"]
    assert xyz.find_xyz_module(host_scripts()[0][:1]) is None  # no X/Y/Z plot script: nothing to add to


def test_apply_sets_the_cell_only_and_the_script_reads_it(registered):
    p = types.SimpleNamespace(extra_generation_params={})
    accordion_args = {"enabled": False, "pack": "ink", "strength": 1.0, "feather": 0.3}
    cells = run_grid(
        p,
        (option(registered, "JoJoGAN strength"), [0.25, 0.5]),
        (option(registered, "JoJoGAN swap resolution"), ["off", "16"]),
        lambda pc: xyz.cell_arguments(accordion_args, pc),
    )
    assert not hasattr(p, xyz.CELL_ATTRIBUTE)  # only the cells' copies carry values
    assert [(c["strength"], c["swap_at"]) for c in cells] == [(0.25, None), (0.5, None), (0.25, 16), (0.5, 16)]
    assert all(c["enabled"] and c["pack"] == "ink" and c["feather"] == 0.3 for c in cells)  # an axis turns it on
    assert xyz.cell_arguments(accordion_args, p) is accordion_args  # no grid: the accordion decides
    assert xyz.cell_arguments(None, p) is None


def test_bad_values_stop_the_grid_before_its_first_image(registered, tiny_runtime):
    save_styled_pack(tiny_runtime, "ink")
    p = types.SimpleNamespace()
    pack, strength, swap = (option(registered, axis.label) for axis in xyz.AXES)
    assert axis_values(pack, "", ["ink"], p) == ["ink"]
    cases = [
        (pack, "", ["ink", "gone"], "JoJoGAN pack 'gone': There is no style pack named 'gone'"),
        (pack, "", [""], "JoJoGAN pack: an empty value is not a style pack"),
        (strength, "0.5, 2", [], r"JoJoGAN strength 2\.0: Invalid RestyleArgs: strength: must be at most 1\.0\.$"),
        (swap, "", ["16", "48"], "JoJoGAN swap resolution '48': Invalid RestyleArgs: swap_at: must be 4, 8,"),
        (swap, "", ["big"], "JoJoGAN swap resolution: 'big' is not a resolution; use off, 4, 8"),
    ]
    for opt, text, dropdown, message in cases:
        with pytest.raises(JojoganError, match=f"^{message}"):
            axis_values(opt, text, dropdown, p)


def test_a_grid_of_3_packs_by_3_strengths_reads_each_pack_once(registered, tiny_runtime, fixtures):
    for seed, name in enumerate(("ink", "oil", "sketch"), 11):
        save_styled_pack(tiny_runtime, name, seed=seed)
    services = integration.Services(tiny_runtime, None, Restyler(tiny_runtime), exclusive=lambda: None)
    loads = []
    load = tiny_runtime.packs.load
    tiny_runtime.packs.load = lambda name: loads.append(name) or load(name)  # count the pack files read
    image = astronaut(fixtures)
    p = types.SimpleNamespace(extra_generation_params={"Steps": 20})  # one dict, shared by every cell
    # the accordion: off, another pack; random detector weights find "faces" at a low confidence
    script_args = {"enabled": False, "pack": "oil", "confidence": 0.05, "max_faces": 1}

    def cell(pc) -> tuple[np.ndarray, dict]:
        outcome = services.restyle_or_keep(image, xyz.cell_arguments(script_args, pc))
        outcome.record(pc.extra_generation_params, log=lambda line: None)
        return np.asarray(outcome.image, dtype=np.int16), dict(pc.extra_generation_params)

    pack, strength = option(registered, "JoJoGAN pack"), option(registered, "JoJoGAN strength")
    started = time.perf_counter()
    cells = run_grid(  # packs on the inner axis: the order that would reload a pack per cell without a cache
        p,
        (pack, axis_values(pack, "", ["ink", "oil", "sketch"], p)),
        (strength, axis_values(strength, "0.2, 0.6, 1", [], p)),
        cell,
    )
    seconds = time.perf_counter() - started
    assert sorted(loads) == ["ink", "oil", "sketch"], loads  # 9 cells, each pack read once
    expected = [(name, str(value)) for value in (0.2, 0.6, 1.0) for name in ("ink", "oil", "sketch")]
    assert [(params["JoJoGAN pack"], params["JoJoGAN strength"]) for _, params in cells] == expected
    assert all(params["Steps"] == 20 and "JoJoGAN note" not in params for _, params in cells)
    pictures = [picture for picture, _ in cells]
    assert all(not np.array_equal(a, b) for i, a in enumerate(pictures) for b in pictures[i + 1 :])  # 9 looks
    print(f"3x3 grid: {len(loads)} pack reads, {seconds:.1f} s for 9 cells on tiny models")


def test_a_cell_without_a_swap_does_not_keep_the_previous_cells_swap_in_its_infotext(registered, tiny_runtime):
    shared = {"Steps": 20}
    for swap, entries in ((16, {"JoJoGAN swap resolution": "16"}), (None, {})):
        params = infotext(parse(RestyleArgs, {"pack": "ink", "swap_at": swap}))
        integration.RestyleOutcome(None, params, "").record(shared, log=lambda line: None)
        assert {key: shared[key] for key in shared if "swap" in key} == entries
