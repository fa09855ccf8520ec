"""Property tests (hypothesis): damaged packs, styles and images only ever raise our error type.

A single changed byte or a truncation anywhere in a valid file either still reads as a valid file or is
refused with a JojoganError (a ValueError); nothing else escapes, nothing is written on refusal.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jojogan_ext.checkpoints import load_jojogan_style, load_stylegan2
from jojogan_ext.errors import CheckpointError, ImageError, JojoganError, PackError
from jojogan_ext.images import open_image
from jojogan_ext.packs import load_pack

from .conftest import temp_files, tree_digest
from .hostile_inputs import encode, noise_image, valid_pack, valid_style

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def damage(draw, size: int) -> tuple[str, int, int]:
    """A truncation (keep the first n bytes) or a single-byte change (position, new value)."""
    if draw(st.booleans()):
        return "truncate", draw(st.integers(0, size - 1)), 0
    # half of the changes hit the first 2 KB: the headers, where the structure lives
    position = draw(st.one_of(st.integers(0, min(size, 2048) - 1), st.integers(0, size - 1)))
    return "change", position, draw(st.integers(0, 255))


def damaged(data: st.DataObject, original: bytes) -> bytes:
    """`original` with one drawn damage applied."""
    kind, position, value = data.draw(damage(len(original)))
    if kind == "truncate":
        return original[:position]
    changed = bytearray(original)
    changed[position] = value if value != changed[position] else value ^ 0xFF
    return bytes(changed)


@pytest.fixture(scope="module")
def originals(tiny_models_dir, tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("originals")
    base = load_stylegan2(tiny_models_dir / "base" / "stylegan2-ffhq-config-f.safetensors").generator
    return {
        "pack": valid_pack(folder, base).read_bytes(),
        "style": valid_style(folder, base).read_bytes(),
        "png": encode(noise_image(24, 16), "PNG"),
        "jpeg": encode(noise_image(24, 16), "JPEG"),
        "gif": encode(noise_image(24, 16).convert("P"), "GIF"),
        "webp": encode(noise_image(24, 16), "WEBP"),
        "tiff": encode(noise_image(24, 16), "TIFF"),
        "tiff_deflate": encode(noise_image(24, 16), "TIFF", compression="tiff_deflate"),
    }


@FUZZ
@given(data=st.data())
def test_damaged_packs_raise_only_pack_errors(runtime, originals, tmp_path, data):
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(damaged(data, originals["pack"]))
    try:
        load_pack(path).check_fits(runtime.base.generator)
    except PackError as error:
        assert "damaged.safetensors" in str(error)
    before = tree_digest(runtime.packs.folder)
    try:
        imported = runtime.import_pack(path, "fuzzed", overwrite=True)
    except JojoganError:
        assert tree_digest(runtime.packs.folder) == before
    else:
        imported.unlink()
        imported.with_name("fuzzed.preview.png").unlink()
    assert temp_files(runtime.packs.folder) == []


@FUZZ
@given(data=st.data())
def test_damaged_styles_raise_only_checkpoint_errors(runtime, originals, tmp_path, data):
    path = tmp_path / "damaged.pt"
    path.write_bytes(damaged(data, originals["style"]))
    try:
        load_jojogan_style(path)
    except CheckpointError as error:
        assert "damaged.pt" in str(error)


@settings(FUZZ, max_examples=400)
@given(data=st.data(), kind=st.sampled_from(["png", "jpeg", "gif", "webp", "tiff", "tiff_deflate"]))
def test_damaged_images_raise_only_image_errors(originals, data, kind):
    try:
        image = open_image(damaged(data, originals[kind]))
    except ImageError:
        return
    assert image.mode == "RGB"
