"""The argument models: strict types and one JSON schema under pydantic 1.10 (A1111) and 2.x (Forge)."""

import json
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jojogan_ext.args import RestyleArgs, TrainArgs, field_info, from_infotext, infotext, parse, schema
from jojogan_ext.errors import JojoganError

SCHEMAS = Path(__file__).parent / "data" / "schemas.json"
MODELS = {"TrainArgs": TrainArgs, "RestyleArgs": RestyleArgs}


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
    ],
)
def test_lossy_or_wrong_types_are_refused_in_the_same_words_on_both_stacks(model, data, problem):
    with pytest.raises(JojoganError, match=f"^Invalid {model.__name__}: {problem}"):
        parse(model, data)


def test_lossless_values_are_taken():
    args = parse(TrainArgs, {"iterations": 300.0, "strength": 1, "seed": None})
    assert (args.iterations, type(args.iterations), args.strength, args.seed) == (300, int, 1.0, None)
    assert parse(RestyleArgs, {"face_indices": [0, 2.0]}).face_indices == [0, 2]


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
            if hint in (int, float) or typing.get_args(hint)[:1] in ((int,), (float,)):
                assert "maximum" in properties[name], name


@given(
    pack=st.text(min_size=1, max_size=30).filter(lambda text: text.strip() == text and "," not in text),
    strength=st.floats(0, 1),
    faces=st.none() | st.lists(st.integers(0, 20), min_size=1, max_size=4),
    max_faces=st.integers(1, 64),
    color_match=st.booleans(),
)
def test_infotext_round_trips_every_option(pack, strength, faces, max_faces, color_match):
    args = parse(
        RestyleArgs,
        {"pack": pack, "strength": strength, "face_indices": faces, "max_faces": max_faces, "color_match": color_match},
    )
    params = infotext(args)
    assert set(params) >= {"JoJoGAN pack", "JoJoGAN strength"}
    assert parse(RestyleArgs, from_infotext(params)) == args
    assert all(label not in params for label in ("JoJoGAN confidence", "JoJoGAN feather"))  # defaults left out
