"""The Packs tab's Compose section: live previews (cached, on the test face), saving, the source lists and the
one-sentence refusals, on real packs over the tiny base."""

import json

import numpy as np
import pytest
from PIL import Image

from jojogan_ext.args import parse_recipe
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.packs import load_pack, preview_path, read_pack_metadata, save_pack
from jojogan_ext.previews import render_preview
from jojogan_ext.ui import TabHandlers, build_tab
from jojogan_ext.ui.common import NEW_PACK_NEXT
from jojogan_ext.ui.compose_section import MIX_ROWS, MODES, NO_SOURCE

from tiny_models import styled_generator, tiny_generator

SWAP, MIX = list(MODES)


def add_pack(runtime, name: str, seed: int, base=None) -> None:
    """A float32 pack `name` of `styled_generator(runtime's base, seed)`, recorded as made from `base`."""
    generator = styled_generator(runtime.base.generator, seed=seed)
    save_pack(runtime.packs.new_path(name), generator, base=base or runtime.base.generator, title=name, dtype="float32")


@pytest.fixture()
def handlers(mean_face_runtime):
    add_pack(mean_face_runtime, "ink", 5)
    add_pack(mean_face_runtime, "oil", 6)
    return TabHandlers(mean_face_runtime, TrainingJobs(mean_face_runtime, pack_dtype="float32"))


def swap(low: str | None, high: str | None, at: str = "16", transition: float = 0.0) -> list:
    """The Compose controls for a swap (mode, low, high, R, T, mix sources, mix weights)."""
    return [SWAP, low, high, at, transition, *[NO_SOURCE] * MIX_ROWS, *[0.0] * MIX_ROWS]


def mix(*pairs: tuple[str, float]) -> list:
    """The Compose controls for a mix of (source, weight) rows."""
    rows = list(pairs) + [(NO_SOURCE, 0.0)] * (MIX_ROWS - len(pairs))
    return [MIX, "base", "ink", "32", 0.0, *[s for s, _ in rows], *[w for _, w in rows]]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_the_controls_make_the_recipes_the_cli_and_rest_take(handlers):
    assert handlers.compose_recipe(*swap("base", "ink", "32", 0.5)) == parse_recipe(
        {"mode": "swap", "low": "base", "high": "ink", "at": 32, "transition": 0.5}
    )
    assert handlers.compose_recipe(*mix(("ink", 0.7), (NO_SOURCE, 1.0), ("base", 0.3))) == parse_recipe(
        {"mode": "mix", "weights": {"ink": 0.7, "base": 0.3}}
    )


def test_the_preview_renders_the_composition_once_on_the_average_face_then_on_the_test_face(handlers, fixtures):
    runtime, try_on = handlers.runtime, handlers.try_on
    status, image = handlers.compose_preview(*swap("base", "ink"))
    recipe = parse_recipe({"mode": "swap", "low": "base", "high": "ink", "at": 16})
    assert status == (
        "Preview: Layers up to 16 px from base, above from ink. "
        "Shown on the base model's average face (no test face yet)."
    )
    assert np.array_equal(pixels(image), pixels(runtime.render_average_face(runtime.composer.generator(recipe))))
    assert handlers.compose_preview(*swap("base", "ink"))[1] is image and try_on.renders == 1  # cached
    handlers.compose_preview(*swap("base", "ink", "32"))
    handlers.compose_preview(*mix(("ink", 0.5), ("oil", 0.5)))
    assert try_on.renders == 3
    try_on.remember_restyled(Image.open(fixtures / "align" / "A_full_256.png").convert("RGB"))
    status, on_face = handlers.compose_preview(*swap("base", "ink"))
    assert status.endswith("Shown on the first face of your last restyle.") and try_on.renders == 4
    expected = render_preview(runtime.composer.generator(recipe), runtime.invert([try_on.face.image]))
    assert np.array_equal(pixels(on_face), pixels(expected))


@pytest.mark.parametrize(
    ("controls", "text"),
    [
        (swap("base", None), "Choose the low and the high source of the swap"),
        (swap("base", "nope"), "no style pack named 'nope'"),
        (swap("base", "ink", None), "Choose the swap resolution R"),
        (swap("base", "ink", "12"), "Invalid SwapRecipe"),
        (swap("base", "ink", "128"), "The swap resolution 128 is above the generator's 64 px; choose 4 … 64."),
        (swap("base", "other"), "other.safetensors was trained on another base generator"),
        (mix(), "Choose at least one source to mix"),
        (mix(("ink", 0.5), ("ink", 0.5)), "'ink' is chosen twice in the mix"),
        (mix(("ink", 0.0), ("oil", 0.0)), "The mix weights add up to 0"),
    ],
)
def test_refusals_are_one_sentence_in_the_status(handlers, controls, text):
    add_pack(handlers.runtime, "other", 7, base=tiny_generator(seed=9))
    status, image = handlers.compose_preview(*controls)
    assert status.startswith("⚠️") and text in status and image is None
    assert status.count(". ") == 0 and "Error" not in status  # one sentence, no exception names
    assert handlers.try_on.renders == 0
    status, *_library = handlers.compose_save("new", False, *controls)
    assert (
        status.startswith("⚠️") and text in status and not (handlers.runtime.packs.folder / "new.safetensors").exists()
    )


def test_save_writes_the_composed_pack_and_refreshes_the_library(handlers, fixtures):
    runtime = handlers.runtime
    handlers.try_on.remember_restyled(Image.open(fixtures / "align" / "A_full_256.png").convert("RGB"))
    _, shown = handlers.compose_preview(*swap("oil", "ink", "16", 1.0))
    status, _gallery, names, selected, restyle_pack = handlers.compose_save(
        " swapped ", False, *swap("oil", "ink", "16", 1.0)
    )
    assert status == f"Saved the composition as style pack 'swapped'. {NEW_PACK_NEXT}"
    assert names == ["ink", "oil", "swapped"] and selected["value"] == "swapped" and restyle_pack["value"] == "swapped"
    path = runtime.packs.existing("swapped")
    metadata = read_pack_metadata(path)
    assert metadata["jojogan.source"] == "composed"
    assert json.loads(metadata["jojogan.recipe"])["recipe"] == {
        "mode": "swap", "low": "oil", "high": "ink", "at": 16, "transition": 1.0,
    }  # fmt: skip
    expected = runtime.composer.generator(parse_recipe(json.loads(metadata["jojogan.recipe"])["recipe"]))
    assert all(
        np.array_equal(value.numpy(), expected.synthesis_parameters()[key].detach().numpy())
        for key, value in load_pack(path).tensors.items()
    )
    assert np.array_equal(pixels(Image.open(preview_path(path)).convert("RGB")), pixels(shown))  # the test face
    # a taken name is refused unless "Replace" is ticked
    status, *_ = handlers.compose_save("swapped", False, *mix(("ink", 1.0)))
    assert status.startswith("⚠️ A style pack named 'swapped' already exists")
    status, *_ = handlers.compose_save("swapped", True, *mix(("ink", 1.0)))
    assert status.startswith("Saved the composition as style pack 'swapped'.")
    assert json.loads(read_pack_metadata(path)["jojogan.recipe"])["recipe"]["mode"] == "mix"
    assert handlers.compose_save("  ", False, *mix(("ink", 1.0)))[0] == "⚠️ Give the new pack a name, then save it."


def test_the_source_lists_follow_the_library(handlers):
    low, high, at, *rows = handlers.compose_sources("base", "ink", "32", "oil", "gone", NO_SOURCE, None)
    assert low["choices"] == ["base", "ink", "oil"] and low["value"] == "base"
    assert high["value"] == "ink" and at["choices"] == ["4", "8", "16", "32", "64"] and at["value"] == "32"
    assert [row["value"] for row in rows] == ["oil", NO_SOURCE, NO_SOURCE, NO_SOURCE]
    assert rows[0]["choices"] == [NO_SOURCE, "base", "ink", "oil"]
    handlers.runtime.packs.delete("ink")
    low, high, at, *rows = handlers.compose_sources("base", "ink", "128", *[NO_SOURCE] * MIX_ROWS)
    assert high["value"] is None and at["value"] == "32"  # a gone pack and an impossible R are cleared


def test_the_section_builds_closed_with_the_packs_as_sources(handlers):
    found = {
        c["props"].get("elem_id"): c["props"]
        for c in build_tab(handlers.runtime, handlers.jobs).config["components"]
        if c["props"].get("elem_id")
    }
    assert found["jojogan_compose"]["open"] is False and found["jojogan_try_on"]["open"] is True

    def values(choices: list) -> list:  # gradio 4 lists (label, value) pairs, gradio 3 plain values
        return [choice[1] if isinstance(choice, list | tuple) else choice for choice in choices]

    assert values(found["jojogan_compose_low"]["choices"]) == ["base", "ink", "oil"]
    assert found["jojogan_compose_high"]["value"] == "ink"
    assert values(found["jojogan_compose_at"]["choices"]) == ["4", "8", "16", "32", "64"]
    assert values(found["jojogan_compose_source_1"]["choices"])[0] == NO_SOURCE
