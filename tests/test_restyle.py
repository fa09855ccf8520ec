"""Restyling on tiny real models: the face changes, the rest does not, strength blends, modes survive."""

import numpy as np
import pytest
import torch
from PIL import Image

from jojogan_ext.args import RestyleArgs
from jojogan_ext.errors import JojoganError, PackError
from jojogan_ext.faces.detect import Face
from jojogan_ext.restyle import RESTYLE_GPU_BYTES, Restyler

from tiny_models import astronaut, astronaut_landmarks, save_styled_pack


@pytest.fixture()
def styled_runtime(tiny_runtime):
    """The tiny runtime with a pack 'bold' whose synthesis weights differ strongly from the base."""
    save_styled_pack(tiny_runtime)
    return tiny_runtime


@pytest.fixture()
def face(fixtures) -> Face:
    landmarks = astronaut_landmarks(fixtures)
    return Face(box=(175.0, 76.0, 265.0, 166.0), score=0.99, landmarks5=landmarks)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_face_changes_and_background_does_not(styled_runtime, fixtures, face):
    image = astronaut(fixtures)
    result = Restyler(styled_runtime).restyle(image, RestyleArgs(pack="bold"), faces=[face])
    assert result.image.size == image.size and result.image.mode == image.mode
    assert len(result.faces) == 1 and result.faces[0].stylized.size == (64, 64)
    assert "Restyled 1 face" in result.message
    diff = np.abs(pixels(result.image) - pixels(image)).mean(axis=2)
    assert diff[100:140, 205:245].mean() > 5  # eyes to mouth
    assert diff[400:, :].max() == 0 and diff[:, 400:].max() == 0  # far from the face: untouched


def test_strength_zero_one_and_between(styled_runtime, fixtures, face):
    restyler, image = Restyler(styled_runtime), astronaut(fixtures)

    def crop(strength: float) -> np.ndarray:
        result = restyler.restyle(image, RestyleArgs(pack="bold", strength=strength), faces=[face])
        return pixels(result.faces[0].stylized)

    zero, half, one = crop(0.0), crop(0.5), crop(1.0)
    distance = np.abs(one - zero).mean()
    assert distance > 5
    assert np.abs(half - zero).mean() < distance and np.abs(half - one).mean() < distance


@pytest.mark.parametrize("mode", ["RGBA", "L", "RGB"])
def test_size_and_mode_are_preserved(styled_runtime, fixtures, face, mode):
    image = astronaut(fixtures).convert(mode)
    result = Restyler(styled_runtime).restyle(image, RestyleArgs(pack="bold"), faces=[face])
    assert (result.image.mode, result.image.size) == (mode, image.size)


def test_no_face_and_bad_requests(styled_runtime, fixtures, face):
    restyler, image = Restyler(styled_runtime), astronaut(fixtures)
    result = restyler.restyle(image, RestyleArgs(pack="bold"), faces=[])
    assert result.image is image and result.faces == [] and "No face" in result.message
    only_second = restyler.restyle(image, RestyleArgs(pack="bold", face_indices=[1]), faces=[face])
    assert only_second.faces == []
    with pytest.raises(JojoganError, match="Choose a style pack"):
        restyler.restyle(image, RestyleArgs(), faces=[face])
    with pytest.raises(PackError, match="no style pack named 'missing'"):
        restyler.restyle(image, RestyleArgs(pack="missing"), faces=[face])
    with pytest.raises(PackError, match="no style pack named 'missing'"):  # also when there is no face
        restyler.restyle(image, RestyleArgs(pack="missing"), faces=[])


def test_detection_path_runs_with_the_real_detector(styled_runtime, fixtures):
    """Random detector weights find nothing sensible, but the whole detect → restyle path must run."""
    result = Restyler(styled_runtime).restyle(astronaut(fixtures), RestyleArgs(pack="bold", confidence=0.99))
    assert result.image.size == (512, 512)
    assert isinstance(result.message, str) and result.message


def test_half_precision_restyles_close_to_float32(styled_runtime, fixtures, face):
    """The precision setting (half precision is for GPUs) runs the e4e and the generator in bfloat16."""
    image = astronaut(fixtures)
    full = Restyler(styled_runtime).restyle(image, RestyleArgs(pack="bold"), faces=[face]).faces[0].stylized
    styled_runtime.unload()
    styled_runtime.dtype = torch.bfloat16
    half = Restyler(styled_runtime).restyle(image, RestyleArgs(pack="bold"), faces=[face]).faces[0].stylized
    assert next(styled_runtime.pack_generator("bold").parameters()).dtype == torch.bfloat16
    assert np.abs(pixels(half) - pixels(full)).mean() < 3  # measured 0.7 grey levels


def test_the_host_frees_memory_before_the_models_are_loaded(styled_runtime, fixtures, face):
    """Forge's glue hands in `make_room`; it is asked for the restyle's memory before any model is built."""
    asked = []
    styled_runtime.unload()
    styled_runtime.make_room = lambda num_bytes: asked.append((num_bytes, styled_runtime._base is None))
    Restyler(styled_runtime).restyle(astronaut(fixtures), RestyleArgs(pack="bold"), faces=[face])
    assert asked == [(RESTYLE_GPU_BYTES, True)]
