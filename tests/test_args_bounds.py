"""Every bound of the argument models is a value the whole job accepts: the models are the one source of limits.

Each numeric field is set to its lowest, then its highest allowed value (all at once), and the job runs end to
end on tiny models; what a job cannot do is refused before its first expensive step.
"""

import math

import pytest
from PIL import Image

from jojogan_ext.args import RestyleArgs, TrainArgs, schema
from jojogan_ext.errors import MissingWeightsError
from jojogan_ext.faces.detect import Face
from jojogan_ext.restyle import Restyler
from jojogan_ext.runtime import Runtime
from jojogan_ext.train import finetune

from tiny_models import astronaut, astronaut_landmarks, save_styled_pack


def bounds(model, end: str) -> dict:
    """Every bounded field of `model` at its lowest (`end`="low") or highest ("high") allowed value."""
    values = {}
    for name, prop in schema(model)["properties"].items():
        prop = next((option for option in prop.get("anyOf", []) if option.get("type") != "null"), prop)
        low = prop.get("minimum", prop.get("exclusiveMinimum"))
        if end == "low" and low is not None and "exclusiveMinimum" in prop:
            low = math.nextafter(low, math.inf)
        value = low if end == "low" else prop.get("maximum")
        if value is not None:
            values[name] = int(value) if prop.get("type") == "integer" else float(value)
    return values


def test_bounds_cover_the_numeric_fields():
    assert set(bounds(RestyleArgs, "high")) == {"strength", "max_faces", "confidence", "min_face_size", "feather"}
    assert set(bounds(TrainArgs, "low")) == {
        "iterations",
        "strength",
        "identity_weight",
        "learning_rate",
        "seed",
        "reference_face",
    }


@pytest.fixture()
def runtime(mean_face_runtime) -> Runtime:
    save_styled_pack(mean_face_runtime)
    return mean_face_runtime


def small_astronaut(fixtures) -> tuple[Image.Image, Face]:
    """The astronaut at a quarter of its size (fast to detect and paste on) and her face there."""
    image = astronaut(fixtures)
    small = image.resize((image.width // 4, image.height // 4), Image.Resampling.BILINEAR)
    return small, Face(box=(44.0, 19.0, 66.0, 41.0), score=0.99, landmarks5=astronaut_landmarks(fixtures) / 4)


@pytest.mark.parametrize("end", ["low", "high"])
def test_restyling_accepts_every_bound(runtime, fixtures, end):
    image, face = small_astronaut(fixtures)
    args = RestyleArgs(pack="bold", face_indices=[0], **bounds(RestyleArgs, end))
    restyler = Restyler(runtime)
    assert restyler.restyle(image, args, faces=[face]).message == "Restyled 1 face with 'bold'."
    assert restyler.restyle(image, args).image.size == image.size  # detection with the same bounds


@pytest.mark.parametrize("end", ["low", "high"])
def test_training_accepts_every_bound(runtime, fixtures, end):
    values = bounds(TrainArgs, end) | {"iterations": 1, "identity_weight": 0.0}  # 2000 steps: too long for a test
    args = TrainArgs(name="bounds", references_are_aligned=True, **values)
    image, _ = small_astronaut(fixtures)
    pack = finetune(runtime, [image], args, test_face=image)
    assert pack.tensors and runtime.inversions == [1, 1]


def test_an_option_that_needs_missing_weights_is_refused_before_inverting(runtime, fixtures):
    args = TrainArgs(name="identity", references_are_aligned=True, **bounds(TrainArgs, "high"))
    with pytest.raises(MissingWeightsError, match="vgg16"):
        finetune(runtime, [astronaut(fixtures)], args, test_face=astronaut(fixtures))
    assert runtime.inversions == []
