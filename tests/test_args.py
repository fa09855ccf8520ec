"""The argument models: strict types and one JSON schema under pydantic 1.10 (A1111) and 2.x (Forge)."""

import json
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jojogan_ext.args import (
    CompactArgs,
    MixRecipe,
    RestyleArgs,
    SwapRecipe,
    TrainArgs,
    field_info,
    from_infotext,
    infotext,
    parse,
    schema,
)
from jojogan_ext.errors import JojoganError

SCHEMAS = Path(__file__).parent / "data" / "schemas.json"
MODELS = {
    "TrainArgs": TrainArgs,
    "RestyleArgs": RestyleArgs,
    "SwapRecipe": SwapRecipe,
    "MixRecipe": MixRecipe,
    "CompactArgs": CompactArgs,
}


@pytest.mark.parametrize(
    "model, data, problem",
    [
        (TrainArgs, {"iterations": 300.7}, "iterations: must be a whole number"),
        (TrainArgs, {"iterations": "300"}, "iterations: must be a whole number"),
        (TrainArgs, {"iterations": True}, "iterations: must be a whole number"),
        (TrainArgs, {"name": 5}, "name: must be text"),
        (TrainArgs, {"strength": "0.5"}, "strength: must be a number"),
        (TrainArgs, {"strength": False}, "strength: must be a number"),
        (TrainArgs, {"preserve_color": 1}, "preserve_color: must be true or false"),
        (TrainArgs, {"preserve_color": "yes"}, "preserve_color: must be true or false"),
        (TrainArgs, {"loss": 3}, "loss: must be text"),
        (TrainArgs, {"seed": 1.5}, "seed: must be a whole number"),
        (RestyleArgs, {"pack": 5}, "pack: must be text"),
        (RestyleArgs, {"face_indices": ["1"]}, "face_indices: must be a whole number"),
        (RestyleArgs, {"face_indices": 1}, "face_indices: must be a list of whole numbers"),
        (RestyleArgs, {"max_faces": 2.5}, "max_faces: must be a whole number"),
        (RestyleArgs, {"sneaky": 1}, "sneaky: is not an option here"),
        (RestyleArgs, {"face_packs": {"one": "ink"}}, "face_packs: must be a whole number, not 'one'"),
        (RestyleArgs, {"face_packs": {"1.5": "ink"}}, "face_packs: must be a whole number"),
        (RestyleArgs, {"face_packs": {"1": 5}}, "face_packs: must be text"),
        (RestyleArgs, {"face_packs": "1=ink"}, "face_packs: must be an object of texts by whole numbers"),
        (RestyleArgs, {"face_packs": {"64": "ink"}}, "face_packs: face 64 does not exist; faces are numbered 0"),
        (RestyleArgs, {"face_packs": {"1": ""}}, "face_packs.1: must be at least 1 character long"),
        (RestyleArgs, {"face_packs": {"1": "x" * 201}}, "face_packs.1: must be at most 200 characters long"),
        (RestyleArgs, {"face_packs": {str(i): "ink" for i in range(17)}}, "face_packs: at most 16 faces can have"),
        (RestyleArgs, {"swap_at": 48}, "swap_at: must be 4, 8, 16, 32, 64, 128, 256, 512 or 1024"),
        (RestyleArgs, {"swap_into": ""}, "swap_into: must be at least 1 character long"),
        (TrainArgs, {"loss": "l2"}, "loss: must be 'discriminator' or 'lpips'"),
        (TrainArgs, {"iterations": 5000}, r"iterations: must be at most 2000\."),
        (TrainArgs, {"learning_rate": 0}, r"learning_rate: must be above 0\.0\."),
        (RestyleArgs, {"strength": -0.5}, r"strength: must be at least 0\.0\."),
        (RestyleArgs, {"face_indices": [-1]}, r"face_indices\.0: must be at least 0\."),
        (SwapRecipe, {"mode": "swap", "low": "a", "high": "b", "at": "16"}, "at: must be a whole number"),
        (SwapRecipe, {"mode": "swap", "low": "a", "high": "b", "at": True}, "at: must be a whole number"),
        (SwapRecipe, {"mode": "swap", "low": 5, "high": "b", "at": 16}, "low: must be text"),
        (MixRecipe, {"mode": "mix", "weights": {"a": "0.5"}}, "weights: must be a number"),
        (MixRecipe, {"mode": "mix", "weights": [1]}, "weights: must be an object of numbers"),
    ],
)
def test_lossy_or_wrong_types_are_refused_in_the_same_words_on_both_stacks(model, data, problem):
    with pytest.raises(JojoganError, match=f"^Invalid {model.__name__}: {problem}"):
        parse(model, data)


def test_lossless_values_are_taken():
    args = parse(TrainArgs, {"iterations": 300.0, "strength": 1, "seed": None})
    assert (args.iterations, type(args.iterations), args.strength, args.seed) == (300, int, 1.0, None)
    assert parse(RestyleArgs, {"face_indices": [0, 2.0]}).face_indices == [0, 2]
    face_packs = parse(RestyleArgs, {"pack": "ink", "face_packs": {"3": "oil", 1: "sketch"}}).face_packs
    assert face_packs == {1: "sketch", 3: "oil"} and list(face_packs) == [1, 3]  # JSON keys become face numbers


def test_each_face_gets_its_own_pack_or_the_main_one():
    args = parse(RestyleArgs, {"pack": "ink", "face_packs": {1: "sketch", 2: "ink"}, "swap_at": 64, "swap_into": "oil"})
    assert [args.pack_for(face) for face in range(4)] == ["ink", "sketch", "ink", "ink"]
    assert args.packs_used() == ["ink", "sketch", "oil"]
    assert parse(RestyleArgs, {"pack": "ink", "swap_into": "oil"}).packs_used() == ["ink"]  # no swap: not used


def test_direct_construction_is_as_strict_as_parse():
    with pytest.raises(ValueError, match="pack: must be text"):
        RestyleArgs(pack=5)


def test_the_schema_is_the_same_on_both_stacks():
    """Compared with the schema committed from the other stack: no anyOf, bounds of optional fields kept."""
    produced = {name: schema(model) for name, model in MODELS.items()}
    assert produced == json.loads(SCHEMAS.read_text())
    seed = field_info(TrainArgs, "seed")
    assert (seed["minimum"], seed["maximum"], seed["default"]) == (0, 2**31 - 1, None)
    assert "anyOf" not in json.dumps(produced)


def test_every_bound_in_the_models_reaches_the_schema():
    for model in MODELS.values():
        properties = schema(model)["properties"]
        for name, hint in typing.get_type_hints(model).items():
            assert name in properties and "description" in properties[name]
            if typing.get_origin(hint) is dict:
                assert "maxProperties" in properties[name] or name == "weights", name  # a mix's count: parse_recipe
            elif hint in (int, float) or typing.get_args(hint)[:1] in ((int,), (float,)):
                assert "maximum" in properties[name], name


@given(
    pack=st.text(min_size=1, max_size=30).filter(lambda text: text.strip() == text and "," not in text),
    strength=st.floats(0, 1),
    faces=st.none() | st.lists(st.integers(0, 20), min_size=1, max_size=4),
    max_faces=st.integers(1, 64),
    color_match=st.booleans(),
    face_packs=st.dictionaries(
        st.integers(0, 63), st.from_regex(r"[\w\-.()][\w\-. ()]{0,28}[\w\-.()]|\w", fullmatch=True), max_size=16
    ),
    swap_at=st.none() | st.sampled_from([4, 8, 16, 32, 64, 128, 256, 512, 1024]),
)
def test_infotext_round_trips_every_option(pack, strength, faces, max_faces, color_match, face_packs, swap_at):
    values = {"pack": pack, "strength": strength, "face_indices": faces, "max_faces": max_faces}
    values |= {"color_match": color_match, "face_packs": face_packs, "swap_at": swap_at}
    args = parse(RestyleArgs, values)
    params = infotext(args)
    assert set(params) >= {"JoJoGAN pack", "JoJoGAN strength"}
    assert parse(RestyleArgs, from_infotext(params)) == args
    assert all(label not in params for label in ("JoJoGAN confidence", "JoJoGAN feather"))  # defaults left out
