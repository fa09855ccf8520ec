"""Composing styles (issue 16): layer swaps and mixes of real packs on the tiny base, their maths and refusals."""

import itertools
import json

import pytest
import torch
from PIL import Image

from jojogan_ext.args import parse_recipe
from jojogan_ext.compose import COMPOSE_GPU_BYTES, recipe_weights, resolutions, tensor_resolution
from jojogan_ext.errors import JojoganError, MissingPackError, MissingWeightsError, PackError, PackExistsError
from jojogan_ext.nn.stylegan2 import Generator
from jojogan_ext.packs import load_pack, save_pack, tensors_fingerprint
from jojogan_ext.runtime import Runtime

from tiny_models import SIZE, STYLE_DIM, styled_generator, tiny_generator


def add_pack(runtime, name: str, seed: int, base: Generator | None = None, generator: Generator | None = None):
    """Save (or replace) a float32 pack `name`: `styled_generator(runtime's base, seed)` unless `generator` is given."""
    base = base or runtime.base.generator
    styled = generator or styled_generator(runtime.base.generator, seed=seed)
    path = runtime.packs.new_path(name, overwrite=True)
    return save_pack(path, styled, base=base, title=name, dtype="float32")


@pytest.fixture()
def packs(tiny_runtime):
    """(runtime, {name: tensors}) with float32 packs 'ink' and 'oil' and the base's synthesis tensors as 'base'."""
    add_pack(tiny_runtime, "ink", seed=5)
    add_pack(tiny_runtime, "oil", seed=6)
    tensors = {name: load_pack(tiny_runtime.packs.existing(name)).tensors for name in ("ink", "oil")}
    tensors["base"] = {k: v.detach().clone() for k, v in tiny_runtime.base.generator.synthesis_parameters().items()}
    return tiny_runtime, tensors


def compose(runtime, name: str, recipe: dict, **options):
    path = runtime.compose_pack(name, parse_recipe(recipe), dtype="float32", **options)
    return load_pack(path)


def swap(low: str, high: str, at: int, transition: float = 0.0) -> dict:
    return {"mode": "swap", "low": low, "high": high, "at": at, "transition": transition}


def test_tensor_resolution_is_the_size_each_layer_computes_at(tiny_runtime):
    generator = tiny_runtime.base.generator
    seen: dict[str, int] = {}
    hooks = [
        module.register_forward_hook(lambda m, i, out, name=name: seen.__setitem__(name, out.shape[-1]))
        for name, module in generator.named_modules()
        if name in ("conv1", "to_rgb1") or (name.count(".") == 1 and name.startswith(("convs.", "to_rgbs.")))
    ]
    generator.synthesis(torch.zeros(1, generator.n_latent, STYLE_DIM))
    for hook in hooks:
        hook.remove()
    for key in generator.synthesis_parameters():
        parts = key.split(".")
        layer = (
            "conv1" if parts[0] == "input" else parts[0] if parts[0] in ("conv1", "to_rgb1") else ".".join(parts[:2])
        )
        assert tensor_resolution(key) == seen[layer], key
    assert resolutions(SIZE) == [4, 8, 16, 32, 64]
    assert [tensor_resolution(k) for k in ("convs.0.bias", "convs.1.bias", "convs.2.bias", "to_rgbs.0.bias")] == [
        8,
        8,
        16,
        8,
    ]
    with pytest.raises(ValueError):
        tensor_resolution("style.1.weight")


@pytest.mark.parametrize("at", [4, 8, 16, 32, 64])
def test_hard_swap_takes_every_tensor_bit_for_bit_from_its_source(packs, at):
    runtime, tensors = packs
    composed = compose(runtime, f"swap{at}", swap("ink", "oil", at))
    assert composed.tensors.keys() == tensors["ink"].keys()
    for key, value in composed.tensors.items():
        source = "ink" if tensor_resolution(key) <= at else "oil"
        assert value.dtype == torch.float32 and torch.equal(value, tensors[source][key]), key


def test_hard_swap_with_the_base_model(packs):
    runtime, tensors = packs
    composed = compose(runtime, "pose of base", swap("base", "oil", 8))
    for key, value in composed.tensors.items():
        assert torch.equal(value, tensors["base" if tensor_resolution(key) <= 8 else "oil"][key]), key


def test_a_mix_is_the_normalised_weighted_sum(packs):
    runtime, tensors = packs
    composed = compose(runtime, "mixed", {"mode": "mix", "weights": {"ink": 3.5, "oil": 1.0, "base": 0.5}})
    for key, value in composed.tensors.items():
        expected = 0.7 * tensors["ink"][key] + 0.2 * tensors["oil"][key] + 0.1 * tensors["base"][key]
        assert torch.allclose(value, expected, rtol=0, atol=1e-6), key
    same = compose(runtime, "scaled", {"mode": "mix", "weights": {"ink": 0.7, "oil": 0.2, "base": 0.1}})
    for key, value in same.tensors.items():
        assert torch.allclose(value, composed.tensors[key], rtol=0, atol=1e-6)


def test_a_mix_of_one_weight_only_copies_that_source_exactly(packs):
    runtime, tensors = packs
    composed = compose(runtime, "only ink", {"mode": "mix", "weights": {"ink": 2.0, "oil": 0.0}})
    assert all(torch.equal(value, tensors["ink"][key]) for key, value in composed.tensors.items())


@pytest.mark.parametrize(
    "recipe",
    [
        swap("a", "b", 16, 0.0),
        swap("a", "b", 4, 0.7),
        swap("a", "b", 64, 2.0),
        swap("a", "a", 8, 1.0),
        {"mode": "mix", "weights": {"a": 1e-3, "b": 99.0, "base": 7.0}},
        {"mode": "mix", "weights": {"a": 0.0, "b": 0.25}},
    ],
)
def test_weights_are_normalised_at_every_resolution(recipe):
    weights = recipe_weights(parse_recipe(recipe), SIZE)
    for level in range(len(resolutions(SIZE))):
        assert sum(share[level] for share in weights.values()) == pytest.approx(1.0, abs=1e-12)
        assert all(share[level] >= 0 for share in weights.values())


@pytest.mark.parametrize("transition", [0.0, 0.25, 1.0, 3.0])
@pytest.mark.parametrize("at", [4, 16, 32])
def test_transitions_move_monotonically_from_low_to_high(packs, at, transition):
    weights = recipe_weights(parse_recipe(swap("ink", "oil", at, transition)), SIZE)
    high = weights["oil"]
    assert all(a <= b for a, b in itertools.pairwise(high)), high
    assert high[0] < 0.5 and (at == SIZE or high[-1] > 0.5)
    if transition:  # centred between R and 2R: symmetric around that point
        position = resolutions(SIZE).index(at)
        if position + 1 < len(high):
            assert high[position] + high[position + 1] == pytest.approx(1.0)
    runtime, tensors = packs
    composed = compose(runtime, "soft", swap("ink", "oil", at, transition))
    for key, value in composed.tensors.items():
        share = high[resolutions(SIZE).index(tensor_resolution(key))]
        expected = (1 - share) * tensors["ink"][key] + share * tensors["oil"][key]
        assert torch.allclose(value, expected, rtol=0, atol=1e-6), key


def test_recipe_metadata_round_trips_with_provenance(packs):
    runtime, tensors = packs
    recipe = swap("ink", "base", 16, 0.5)
    composed = compose(runtime, "ink face", recipe)
    assert composed.metadata["jojogan.source"] == "composed"
    assert composed.json_field("jojogan.base")["sha256"] == runtime.base_fingerprint
    stored = composed.json_field("jojogan.recipe")
    assert parse_recipe(stored["recipe"]) == parse_recipe(recipe)
    assert stored["resolutions"] == resolutions(SIZE)
    expected = recipe_weights(parse_recipe(recipe), SIZE)
    assert {s["name"]: s["weights"] for s in stored["sources"]} == expected
    sha = {s["name"]: s["sha256"] for s in stored["sources"]}
    assert sha == {"ink": tensors_fingerprint(tensors["ink"]), "base": runtime.base_fingerprint}
    assert {s["name"]: s["kind"] for s in stored["sources"]} == {"ink": "trained", "base": "base"}

    runtime.packs.rename("ink", "renamed")  # the sha256 still identifies the parent after a rename
    assert tensors_fingerprint(runtime.packs.load("renamed").tensors) == sha["ink"]
    again = compose(runtime, "again", {**stored["recipe"], "low": "renamed"})
    assert all(torch.equal(value, composed.tensors[key]) for key, value in again.tensors.items())


def test_composed_packs_compose_again(packs):
    runtime, tensors = packs
    mixed = compose(runtime, "mixed", {"mode": "mix", "weights": {"ink": 1, "oil": 1}})
    swapped = compose(runtime, "mixed pose", swap("mixed", "base", 8))
    for key, value in swapped.tensors.items():
        expected = mixed.tensors[key] if tensor_resolution(key) <= 8 else tensors["base"][key]
        assert torch.equal(value, expected), key
    (parent, base) = swapped.json_field("jojogan.recipe")["sources"]
    assert parent["name"] == "mixed" and parent["kind"] == "composed"
    assert parent["sha256"] == tensors_fingerprint(mixed.tensors) and base["name"] == "base"


def test_the_preview_is_rendered_by_the_composed_generator(packs):
    runtime, _ = packs
    composed = compose(runtime, "oil face", swap("base", "oil", 8))
    preview_file = runtime.packs.existing("oil face").with_name("oil face.preview.png")
    assert preview_file.is_file() and composed.metadata["modelspec.thumbnail"].startswith("data:image/png")
    generator = composed.generator(runtime.base.generator)
    expected = runtime.render_average_face(generator)
    with Image.open(preview_file) as preview:
        assert preview.size == (SIZE, SIZE) and list(preview.convert("RGB").getdata()) == list(expected.getdata())
    faceless = Image.new("RGB", (96, 96), "gray")
    with pytest.raises(JojoganError, match="No face was found in the test face"):
        runtime.compose_pack("faceless", parse_recipe(swap("base", "oil", 8)), test_face=faceless)
    assert not (runtime.packs.folder / "faceless.safetensors").exists()


@pytest.mark.parametrize(
    ("recipe", "error", "text"),
    [
        (swap("ink", "nowhere", 16), MissingPackError, "no style pack named 'nowhere'"),
        ({"mode": "mix", "weights": {"ink": 1, "ghost": 1}}, MissingPackError, "'ghost'"),
        (swap("ink", "other base", 16), PackError, "other base.safetensors was trained on another base"),
        (swap("small", "ink", 16), PackError, "small.safetensors does not fit the base model"),
        ({"mode": "mix", "weights": {"ink": -0.5, "oil": 1}}, JojoganError, "weights.ink"),
        ({"mode": "mix", "weights": {"ink": 0, "base": 0}}, JojoganError, "add up to 0"),
        ({"mode": "mix", "weights": {}}, JojoganError, "1 to 8 sources"),
        ({"mode": "mix", "weights": {f"p{n}": 1 for n in range(9)}}, JojoganError, "1 to 8 sources"),
        (swap("ink", "oil", 128), JojoganError, "above the generator's 64 px"),
        (swap("ink", "oil", 2), JojoganError, "at"),
        (swap("ink", "oil", 24), JojoganError, "at"),
        (swap("ink", "oil", 16, -1.0), JojoganError, "transition"),
        ({"mode": "blend", "low": "ink"}, JojoganError, 'needs "mode"'),
        ({"mode": "swap", "low": "ink", "high": "oil"}, JojoganError, "at"),
        ({**swap("ink", "oil", 16), "weights": {"ink": 1}}, JojoganError, "weights"),
    ],
)
def test_refusals_are_one_sentence_and_write_nothing(packs, recipe, error, text):
    runtime, _ = packs
    add_pack(runtime, "other base", 0, base=tiny_generator(seed=9))
    small = Generator(SIZE // 2, style_dim=STYLE_DIM, n_mlp=2, channel_max=16)
    add_pack(runtime, "small", 0, base=small, generator=small)
    before = sorted(path.name for path in runtime.packs.folder.iterdir())
    with pytest.raises(error, match=text.replace("(", r"\(").replace(".", r"\.")):
        runtime.compose_pack("result", parse_recipe(recipe))
    assert sorted(path.name for path in runtime.packs.folder.iterdir()) == before


def test_an_existing_name_is_refused_unless_overwriting(packs):
    runtime, tensors = packs
    recipe = parse_recipe(swap("ink", "oil", 16))
    with pytest.raises(PackExistsError, match="already exists"):
        runtime.compose_pack("ink", recipe)
    path = runtime.compose_pack("ink", recipe, overwrite=True, dtype="float32")
    replaced = load_pack(path).tensors
    assert all(torch.equal(replaced[key], tensors["oil"][key]) for key in replaced if tensor_resolution(key) > 16)


def test_generators_are_cached_by_recipe_and_sources_are_read_once(packs):
    runtime, tensors = packs
    composer = runtime.composer
    half = parse_recipe({"mode": "mix", "weights": {"ink": 1, "base": 1}})
    first = composer.generator(half)
    assert composer.generator(parse_recipe({"mode": "mix", "weights": {"ink": 1, "base": 1}})) is first
    ink = composer.sources(composer.pack_files(half))["ink"].tensors
    other = composer.generator(parse_recipe({"mode": "mix", "weights": {"ink": 3, "base": 1}}))
    assert other is not first and composer.sources(composer.pack_files(half))["ink"].tensors is ink
    expected = {key: 0.5 * tensors["ink"][key] + 0.5 * tensors["base"][key] for key in tensors["ink"]}
    for key, value in first.synthesis_parameters().items():
        assert torch.allclose(value, expected[key], rtol=0, atol=1e-6)
    add_pack(runtime, "ink", seed=8)  # replaced on disk: composed again from the new file
    assert composer.generator(half) is not first
    half_precision = composer.generator(half, dtype=torch.bfloat16)
    assert half_precision.input.input.dtype == torch.bfloat16


def test_composing_a_pack_holds_only_its_sources_and_one_result(packs):
    runtime, _ = packs
    composer = runtime.composer
    composer.generator(parse_recipe({"mode": "mix", "weights": {"oil": 1, "base": 1}}))
    runtime.compose_pack("ink swap", parse_recipe(swap("ink", "base", 8)))
    cached_files = {key[0] for key in composer._packs}
    assert cached_files == {str(runtime.packs.existing("ink"))} and not composer._generators
    data = json.loads(load_pack(runtime.packs.existing("ink swap")).metadata["jojogan.recipe"])
    assert [source["name"] for source in data["sources"]] == ["ink", "base"]


def test_the_host_makes_room_first_and_a_missing_base_is_named(packs, tmp_path):
    runtime, _ = packs
    asked: list[int] = []
    runtime.make_room = asked.append
    runtime.compose_pack("room", parse_recipe(swap("ink", "base", 8)))
    assert asked == [COMPOSE_GPU_BYTES]
    empty = Runtime(tmp_path / "no models")
    with pytest.raises(MissingWeightsError, match=r"stylegan2-ffhq-config-f\.pt"):
        empty.compose_pack("x", parse_recipe({"mode": "mix", "weights": {"base": 1}}))
