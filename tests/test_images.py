"""The image gate: every odd but valid image becomes correct 8-bit RGB; everything else an ImageError."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from jojogan_ext.errors import ImageError
from jojogan_ext.images import BACKGROUND_RGB, PixelFormat, image_from_array, open_image, to_rgb


def encode(image: Image.Image, format: str = "PNG", **params) -> bytes:
    """The image saved to memory in `format`."""
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload, CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height RGB pixels, then breaks off after a few bytes of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    stream = zlib.compressobj()
    start = stream.compress(bytes(1 + 3 * min(width, 64))) + stream.flush(zlib.Z_SYNC_FLUSH)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", start)


@pytest.fixture(scope="module")
def astronaut(fixtures) -> Image.Image:
    """The 512 x 512 RGB test photo."""
    with Image.open(fixtures / "align" / "astronaut.png") as image:
        return image.convert("RGB")


def test_png_path_bytes_and_image_give_the_same_rgb(fixtures, astronaut):
    path = fixtures / "align" / "astronaut.png"
    from_path = open_image(path)
    from_str = open_image(str(path))
    from_bytes = open_image(path.read_bytes())
    from_image = open_image(astronaut)
    for opened in (from_path, from_str, from_bytes, from_image):
        assert opened.mode == "RGB" and opened.size == (512, 512)
        assert np.array_equal(np.asarray(opened), np.asarray(astronaut))


def test_rgb_without_exif_passes_through_to_rgb_unchanged(astronaut):
    assert to_rgb(astronaut) is astronaut


def test_grayscale_becomes_equal_rgb_channels():
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    rgb = np.asarray(open_image(encode(grey)))
    assert rgb.shape == (16, 16, 3)
    for channel in range(3):
        assert np.array_equal(rgb[..., channel], np.asarray(grey))


def test_one_bit_image_becomes_black_and_white():
    bits = Image.fromarray(np.array([[True, False], [False, True]]))
    assert bits.mode == "1"
    rgb = np.asarray(open_image(encode(bits)))
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, 1].tolist() == [0, 0, 0]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_on_white(mode):
    rgba = np.zeros((1, 3, 4), dtype=np.uint8)
    rgba[0, :, :3] = 40  # dark grey in every pixel
    rgba[0, :, 3] = [0, 255, 128]  # transparent, opaque, half
    image = Image.fromarray(rgba).convert(mode)
    rgb = np.asarray(open_image(encode(image))).astype(int)
    assert rgb[0, 0].tolist() == list(BACKGROUND_RGB)
    assert rgb[0, 1].tolist() == [40, 40, 40]
    expected_half = 40 * 128 / 255 + 255 * 127 / 255
    assert np.all(np.abs(rgb[0, 2] - expected_half) <= 1)


def test_palette_with_transparent_index_becomes_white():
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([200, 10, 10, 0, 0, 0] + [0, 0, 0] * 254)
    palette_image.putpixel((0, 0), 0)
    palette_image.putpixel((1, 0), 1)
    data = encode(palette_image, transparency=1)
    rgb = np.asarray(open_image(data))
    assert rgb[0, 0].tolist() == [200, 10, 10]
    assert rgb[0, 1].tolist() == list(BACKGROUND_RGB)


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_images_are_scaled_not_clipped(mode):
    values = np.array([[0, 257 * 128, 65535]], dtype=">u2" if mode == "I;16B" else "<u2")
    image = Image.frombytes(mode, (3, 1), values.tobytes())
    assert np.asarray(image.convert("RGB"))[0, 1, 0] == 255  # what a plain convert does: white
    rgb = np.asarray(to_rgb(image))
    assert rgb[0, :, 0].tolist() == [0, 128, 255]
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_sixteen_bit_png_file_opens_with_correct_grey():
    image = Image.frombytes("I;16", (2, 1), np.array([1000, 40000], dtype="<u2").tobytes())
    data = encode(image)
    with Image.open(io.BytesIO(data)) as reopened:
        assert reopened.mode in ("I", "I;16")  # Pillow 9.5 decodes 16-bit grey PNG as "I"
    rgb = np.asarray(open_image(data))
    assert rgb[0, :, 1].tolist() == [round(1000 / 257), round(40000 / 257)]


def test_int32_image_with_8_bit_values_is_taken_as_8_bit():
    grey = Image.fromarray(np.array([[0, 100, 255]], dtype=np.uint8)).convert("I")
    assert np.asarray(to_rgb(grey))[0, :, 0].tolist() == [0, 100, 255]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # 0..1 floats
        ([0.0, 100.0, 255.0], [0, 100, 255]),  # 0..255 floats
        ([-5.0, 257.0 * 128, 65535.0], [0, 128, 255]),  # 16-bit range; negatives show as 0
        ([0.0, 50000.0, 100000.0], [0, 128, 255]),  # beyond 16 bit: scaled by the maximum
        ([np.nan, 0.25, 1.0], [0, 64, 255]),  # NaN shows as 0
    ],
)
def test_float_images_follow_the_documented_range_rule(values, expected):
    image = Image.fromarray(np.array([values], dtype=np.float32))
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == expected


def test_cmyk_becomes_rgb():
    cmyk = Image.frombytes("CMYK", (2, 1), bytes([0, 0, 0, 0, 0, 255, 255, 0]))
    rgb = np.asarray(open_image(encode(cmyk, "JPEG", quality=100))).astype(int)
    assert np.all(np.abs(rgb[0, 0] - [255, 255, 255]) <= 8)
    assert np.asarray(to_rgb(cmyk))[0, 1].tolist() == [255, 0, 0]


def test_exif_orientation_is_applied():
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = [255, 0, 0]  # left half red
    stored[:, 20:] = [0, 0, 255]  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored left edge becomes the top
    data = encode(Image.fromarray(stored), exif=exif.tobytes())
    upright = open_image(data)
    assert upright.size == (20, 40)
    pixels = np.asarray(upright)
    assert pixels[5, 10].tolist() == [255, 0, 0] and pixels[35, 10].tolist() == [0, 0, 255]
    with Image.open(io.BytesIO(data)) as lazy:
        assert to_rgb(lazy).size == (20, 40)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), color) for color in [(255, 0, 0), (0, 0, 255)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(buffer.getvalue())) as check:
        assert check.n_frames == 2
    first = np.asarray(open_image(buffer.getvalue()))
    assert first[4, 4].tolist() == [255, 0, 0]


def test_one_pixel_image_is_fine():
    assert open_image(encode(Image.new("RGB", (1, 1), (1, 2, 3)))).getpixel((0, 0)) == (1, 2, 3)


def test_empty_image_is_refused():
    with pytest.raises(ImageError, match="empty"):
        to_rgb(Image.new("RGB", (0, 0)))


def test_truncated_png_is_an_image_error(astronaut):
    data = encode(astronaut)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        open_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    "data", [b"", b"not an image at all", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))]
)
def test_non_image_bytes_are_an_image_error(data):
    with pytest.raises(ImageError, match="not an image"):
        open_image(data)


def test_missing_and_non_image_files_are_image_errors(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        open_image(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ImageError, match=r"notes\.png"):
        open_image(text)


def test_declared_size_is_checked_before_decoding_even_without_pillows_guard(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # what the web UI does process-wide
    data = png_header_only(8000, 8000)  # 64 megapixels declared, almost no pixel data: decoding would fail
    started = time.perf_counter()
    with pytest.raises(ImageError, match="megapixel limit"):
        open_image(data)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(ImageError, match="megapixel limit"):
        open_image(png_header_only(100_000, 100_000))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        open_image(png_header_only(64, 64))  # within the limit, the same stub fails only when decoded


def test_pillows_own_bomb_guard_is_also_an_image_error():
    with pytest.raises(ImageError, match="too large"):
        open_image(png_header_only(100_000, 100_000))


def test_limits_are_configurable(astronaut):
    data = encode(astronaut)
    with pytest.raises(ImageError, match="megapixel limit"):
        open_image(data, max_pixels=512 * 512 - 1)
    with pytest.raises(ImageError, match="MiB limit"):
        open_image(data, max_bytes=len(data) - 1)
    with pytest.raises(ImageError, match="megapixel limit"):
        open_image(astronaut, max_pixels=1000)
    assert open_image(data, max_pixels=512 * 512, max_bytes=len(data)).size == (512, 512)


def test_lazy_truncated_image_object_is_an_image_error(astronaut):
    data = encode(astronaut)
    lazy = Image.open(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        open_image(lazy)


def test_other_source_types_are_a_type_error():
    with pytest.raises(TypeError):
        open_image(12345)


@pytest.mark.parametrize(
    ("mode", "values"),
    [
        ("L", np.array([[0, 7, 255]], dtype=np.uint8)),
        ("I;16", np.array([[0, 257 * 9, 65535]], dtype="<u2")),
        ("I;16B", np.array([[0, 257 * 9, 65535]], dtype=">u2")),
        ("I", np.array([[0, 257 * 9, 65535]], dtype=np.int32)),
        ("F", np.array([[0.0, 9 / 255, 1.0]], dtype=np.float32)),
        ("1", np.array([[False, True, True]])),
        ("RGBA", np.array([[[1, 2, 3, 0], [4, 5, 6, 128], [7, 8, 9, 255]]], dtype=np.uint8)),
        ("LA", np.array([[[1, 0], [5, 128], [9, 255]]], dtype=np.uint8)),
        ("CMYK", np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 255, 0]]], dtype=np.uint8)),
    ],
)
def test_pixel_format_round_trip_restores_mode_and_values(mode, values):
    image = image_from_array(values, mode)
    assert image.mode == mode
    pixel_format = PixelFormat.of(image)
    restored = pixel_format.restore(pixel_format.color_channels(image), like=image)
    assert restored.mode == mode and restored.size == image.size
    assert np.array_equal(np.asarray(restored), values)
