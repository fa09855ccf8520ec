"""A different style pack per face (issue 16): the restyler, the refusals, the CLI and the REST API."""

import shutil

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from test_api import b64, png_image, url
from test_cli import assert_one_line_error, cli

from jojogan_ext.api import API_PREFIX, create_router
from jojogan_ext.args import RestyleArgs
from jojogan_ext.errors import MissingPackError
from jojogan_ext.faces.detect import Face
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.restyle import Restyler
from jojogan_ext.runtime import Runtime

from tiny_models import astronaut, astronaut_landmarks, save_styled_pack

WIDTH = 512  # the astronaut's width: the second copy of her starts here


@pytest.fixture()
def two_packs(tiny_runtime) -> Runtime:
    """The tiny runtime with two clearly different packs, 'bold' and 'sketch'."""
    save_styled_pack(tiny_runtime, "bold")
    save_styled_pack(tiny_runtime, "sketch", seed=12)
    return tiny_runtime


@pytest.fixture()
def two_faces(fixtures) -> tuple[Image.Image, list[Face]]:
    """The astronaut twice, side by side, and her two faces (face 0 on the left, face 1 on the right)."""
    single = astronaut(fixtures)
    image = Image.new("RGB", (2 * WIDTH, single.height))
    image.paste(single, (0, 0))
    image.paste(single, (WIDTH, 0))
    landmarks = astronaut_landmarks(fixtures)
    left = Face(box=(175.0, 76.0, 265.0, 166.0), score=0.99, landmarks5=landmarks)
    right = Face(
        box=(175.0 + WIDTH, 76.0, 265.0 + WIDTH, 166.0), score=0.99, landmarks5=landmarks + np.array([WIDTH, 0])
    )
    return image, [left, right]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_each_face_looks_as_its_own_pack_makes_it(two_packs, two_faces):
    image, faces = two_faces
    restyler = Restyler(two_packs)
    loads = []
    load = two_packs.packs.load
    two_packs.packs.load = lambda name: loads.append(name) or load(name)  # count the pack files read
    mixed = restyler.restyle(image, RestyleArgs(pack="bold", face_packs={1: "sketch"}, strength=0.8), faces=faces)
    assert sorted(loads) == ["bold", "sketch"]  # each pack read once
    assert mixed.message == "Restyled 2 faces with 'bold', 'sketch'."
    all_bold = restyler.restyle(image, RestyleArgs(pack="bold", strength=0.8), faces=faces)
    all_sketch = restyler.restyle(image, RestyleArgs(pack="sketch", strength=0.8), faces=faces)
    assert sorted(loads) == ["bold", "sketch"]  # the generators were cached

    left, right = np.s_[:, :WIDTH], np.s_[:, WIDTH:]
    assert np.array_equal(pixels(mixed.image)[left], pixels(all_bold.image)[left])
    assert np.array_equal(pixels(mixed.image)[right], pixels(all_sketch.image)[right])
    assert np.abs(pixels(all_bold.image)[right] - pixels(all_sketch.image)[right]).max() > 10  # the packs differ
    assert [face.index for face in mixed.faces] == [0, 1]


def test_faces_not_chosen_stay_as_they_are(two_packs, two_faces):
    image, faces = two_faces
    args = RestyleArgs(pack="bold", face_indices=[1], face_packs={0: "sketch", 1: "sketch"})
    result = Restyler(two_packs).restyle(image, args, faces=faces)
    assert [face.index for face in result.faces] == [1] and result.message == "Restyled 1 face with 'sketch'."
    assert np.array_equal(pixels(result.image)[:, :WIDTH], pixels(image)[:, :WIDTH])


def test_a_missing_face_pack_is_named_before_any_model_loads(two_packs, two_faces, tmp_path):
    """A folder with the packs but no base model: the missing pack is reported, not the missing model files."""
    models = tmp_path / "bare"
    shutil.copytree(two_packs.packs.folder, models / "styles")
    bare = Runtime(models)
    image, _ = two_faces
    for args in (
        RestyleArgs(pack="bold", face_packs={1: "watercolour"}),
        RestyleArgs(pack="bold", swap_at=16, swap_into="watercolour"),
    ):
        with pytest.raises(MissingPackError, match="no style pack named 'watercolour'"):
            Restyler(bare).restyle(image, args)  # with detection: it never starts
    assert bare._base is None and bare._detector is None


def test_the_swap_restyles_with_the_base_below_the_resolution(two_packs, two_faces):
    """A swap at the generator's full size keeps only base layers (pack layers lie above it): the base's face."""
    image, faces = two_faces
    restyler = Restyler(two_packs)
    size = two_packs.base.generator.size
    swapped = restyler.restyle(image, RestyleArgs(pack="bold", swap_at=size), faces=faces)
    base_only = restyler.restyle(image, RestyleArgs(pack="bold", strength=0.0), faces=faces)
    whole = restyler.restyle(image, RestyleArgs(pack="bold"), faces=faces)
    assert np.array_equal(pixels(swapped.image), pixels(base_only.image))
    into_sketch = restyler.restyle(image, RestyleArgs(pack="bold", swap_at=size, swap_into="sketch"), faces=faces)
    all_sketch = restyler.restyle(image, RestyleArgs(pack="sketch"), faces=faces)
    assert np.array_equal(pixels(into_sketch.image), pixels(all_sketch.image))
    partly = restyler.restyle(image, RestyleArgs(pack="bold", swap_at=8), faces=faces)
    assert np.abs(pixels(partly.image) - pixels(whole.image)).max() > 0


def test_api_restyles_faces_with_their_packs_and_names_a_missing_one(two_packs, fixtures):
    app = FastAPI()
    app.include_router(create_router(two_packs, TrainingJobs(two_packs)), prefix=API_PREFIX)
    client = TestClient(app)
    image = b64((fixtures / "align" / "astronaut.png").read_bytes())
    # random detector weights: a low threshold finds "faces" on a regular grid
    args = {"pack": "bold", "confidence": 0.05, "max_faces": 2, "face_packs": {"1": "sketch"}}
    answer = client.post(url("restyle"), json={"image": image, "args": args})
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"] == "Restyled 2 faces with 'bold', 'sketch'."
    direct = Restyler(two_packs).restyle(astronaut(fixtures), RestyleArgs(**args))
    assert np.array_equal(pixels(png_image(answer.json()["image"])), pixels(direct.image))

    missing = client.post(url("restyle"), json={"image": image, "args": {**args, "face_packs": {"1": "gone"}}})
    assert missing.status_code == 404 and "no style pack named 'gone'" in missing.json()["detail"]
    bad = client.post(url("restyle"), json={"image": image, "args": {**args, "face_packs": {"left": "sketch"}}})
    assert bad.status_code == 422 and "args.face_packs: must be a whole number" in bad.json()["detail"]


def test_cli_face_pack_flags(two_packs, fixtures, tmp_path):
    models = two_packs.models_dir
    source = fixtures / "align" / "astronaut.png"
    flags = ["--confidence", "0.05", "--max-faces", "2", "-o", str(tmp_path / "out")]
    done = cli(models, "restyle", str(source), "--pack", "bold", "--face-pack", "1=sketch", *flags)
    assert done.returncode == 0, done.stderr
    assert "Restyled 2 faces with 'bold', 'sketch'." in done.stderr
    direct = Restyler(two_packs).restyle(
        astronaut(fixtures), RestyleArgs(pack="bold", face_packs={1: "sketch"}, confidence=0.05, max_faces=2)
    )
    with Image.open(tmp_path / "out" / "astronaut_jojogan.png") as written:
        assert np.array_equal(pixels(written), pixels(direct.image))

    assert_one_line_error(cli(models, "restyle", str(source), "--pack", "bold", "--face-pack", "1=gone"), "'gone'")
    assert_one_line_error(cli(models, "restyle", str(source), "--pack", "bold", "--face-pack", "one"), "1=ink")
    twice = cli(models, "restyle", str(source), "--pack", "bold", "--face-pack", "1=bold", "--face-pack", "1=sketch")
    assert_one_line_error(twice, "names face 1 twice")
