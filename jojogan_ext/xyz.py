"""Axes for the web UI's own X/Y/Z plot script: "JoJoGAN pack", "JoJoGAN strength", "JoJoGAN swap resolution".

Which restyle argument each axis sets, how its values read and are checked before a grid starts, where a grid
cell keeps them (an attribute of the host's processing object `p`) and the restyle arguments a cell ends up
with. An axis turns restyling on for its grid, whatever the accordion's switch says: choosing a JoJoGAN axis
is asking to see JoJoGAN's effect; every other option comes from the accordion (or the API's object).
No web UI import: the glue hands in the host's loaded scripts and `p`.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any, get_args

from .args import NO_SWAP, RestyleArgs, SwapResolution, parse, swap_resolution
from .errors import JojoganError

# A1111 1.10 and Forge load scripts/xyz_grid.py as a module named after its file
XYZ_MODULE_NAMES = ("xyz_grid.py",)
# Set on each grid cell's copy of `p`: {RestyleArgs field: value}; read by the always-on script
CELL_ATTRIBUTE = "jojogan_xyz"


@dataclass(frozen=True)
class Axis:
    """One X/Y/Z axis: its label in the plot's menu, the restyle argument it sets and how the host reads values."""

    label: str
    field: str
    kind: type  # what the host turns each value into; float gives ranges like "0-1 [5]"
    # the host runs slow-to-change axes in its outer loop: a new pack is a file read, a new strength is not
    cost: float = 0.0


AXES = (
    Axis("JoJoGAN pack", "pack", str, cost=0.2),
    Axis("JoJoGAN strength", "strength", float),
    Axis("JoJoGAN swap resolution", "swap_at", str, cost=0.1),
)


def swap_choices() -> list[str]:
    """The swap resolution axis's choices: off, then every resolution a layer swap can happen at."""
    return [NO_SWAP, *(str(resolution) for resolution in get_args(SwapResolution))]


def axis_value(axis: Axis, value: Any) -> Any:
    """An axis value as the restyle argument takes it ('off' → None for the swap); JojoganError when unreadable."""
    if axis.field == "swap_at":
        try:
            return swap_resolution(value)
        except ValueError as error:
            raise JojoganError(f"{axis.label}: {error}; use {', '.join(swap_choices())}.") from None
    return value.strip() if isinstance(value, str) else value


def check_values(axis: Axis, values: Sequence[Any], existing_pack: Callable[[str], object]) -> None:
    """Refuse a grid before its first image: each value must be a valid restyle argument, each pack must exist
    (`existing_pack` raises for one that does not). One JojoganError sentence naming the axis."""
    for value in values:
        parsed = axis_value(axis, value)
        if axis.field == "pack" and not parsed:
            raise JojoganError(f"{axis.label}: an empty value is not a style pack; choose packs from the list.")
        try:
            parse(RestyleArgs, {axis.field: parsed})
            if axis.field == "pack":
                existing_pack(parsed)
        except JojoganError as error:
            raise JojoganError(f"{axis.label} {value!r}: {error}") from None


def set_cell_value(axis: Axis, p: Any, value: Any, values: Sequence[Any] = ()) -> None:
    """The host's `apply(p, x, xs)`: record the value on this cell's `p` (a new dict: cells share the old one)."""
    setattr(p, CELL_ATTRIBUTE, {**getattr(p, CELL_ATTRIBUTE, {}), axis.field: axis_value(axis, value)})


def cell_arguments(restyle_args: dict[str, Any] | None, p: Any) -> dict[str, Any] | None:
    """The restyle arguments of one image: the script's (accordion or API), with the grid cell's axis values
    over them and restyling on; without axis values, the script's as they are."""
    values = getattr(p, CELL_ATTRIBUTE, None)
    if not values:
        return restyle_args
    return {**(restyle_args or {}), **values, "enabled": True}


def find_xyz_module(scripts_data: Iterable[Any]) -> ModuleType | None:
    """The host's X/Y/Z plot module among its loaded scripts (`modules.scripts.scripts_data`), or None."""
    for data in scripts_data:
        module = getattr(data, "module", None)
        if module is not None and data.script_class.__module__ in XYZ_MODULE_NAMES:
            return module
    return None


def add_axes(
    module: ModuleType, pack_names: Callable[[], list[str]], existing_pack: Callable[[str], object]
) -> list[str]:
    """Append the JoJoGAN axes to the X/Y/Z module's `axis_options` (those already there are left); their labels.

    `pack_names()` fills the pack axis's dropdown when the user picks it; `existing_pack(name)` raises for a
    missing pack.
    """
    present = {option.label for option in module.axis_options}
    choices: dict[str, Callable[[], list[str]]] = {"pack": pack_names, "swap_at": swap_choices}
    added = []
    for axis in AXES:
        if axis.label in present:
            continue
        module.axis_options.append(
            module.AxisOption(
                axis.label,
                axis.kind,
                partial(set_cell_value, axis),
                confirm=lambda p, values, axis=axis: check_values(axis, values, existing_pack),
                cost=axis.cost,
                choices=choices.get(axis.field),
            )
        )
        added.append(axis.label)
    return added
