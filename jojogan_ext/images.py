"""The one gate for images entering jojogan_ext: open safely, stand upright, become 8-bit RGB.

`open_image` checks the encoded size and the declared width x height before decoding (the web UI turns
Pillow's decompression-bomb guard off process-wide), reads only common photo formats, applies EXIF
orientation, takes the first frame and maps every Pillow mode to RGB by the rules of `PixelFormat`.
`ImageLimits` carries the configurable limits. Nothing here resizes, crops or otherwise edits the picture.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jojogan_ext.errors import ImageError

# 40 megapixels: a 7300 x 5480 photo, about 120 MB once decoded to RGB. Larger inputs are refused
# before decoding; faces in them would be downscaled for detection anyway.
DEFAULT_MAX_PIXELS = 40_000_000
# 256 MiB of encoded data (files or uploaded bytes); checked before Pillow reads anything.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
# Several images of one request (training references) together: 4 large photos, about 480 MB as RGB.
DEFAULT_MAX_TOTAL_PIXELS = 4 * DEFAULT_MAX_PIXELS
# The formats Pillow may decode for us: photos and screenshots. Everything else (EPS, which runs Ghostscript,
# PSD, FITS, ...) is refused unread, so rarely used decoders never see data a stranger sent.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FORMATS_SENTENCE = "use a PNG, JPEG, WebP, GIF, BMP or TIFF file"
# Transparent pixels are composited on white, like the web UI's default img2img background colour.
BACKGROUND_RGB = (255, 255, 255)

EXIF_ORIENTATION_TAG = 0x0112
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Errors Pillow raises on corrupt, truncated or hostile data while opening or decoding.
# (AttributeError: Pillow 9.5 reads a damaged TIFF's EXIF from a file it already closed.)
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    TypeError,
    KeyError,
    AttributeError,
)
ORIENTATION_TRANSPOSES = (2, 3, 4, 5, 6, 7, 8)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image


def open_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    what: str | None = None,
) -> Image.Image:
    """Open a path, encoded bytes or a PIL image as an upright 8-bit RGB image, refusing unsafe input.

    The declared width x height must not exceed `max_pixels` and encoded data must not exceed
    `max_bytes`; both are checked before decoding. Animations give their first frame; an already
    open PIL image is used at its current frame. Raises ImageError with a sentence for the user, naming
    the image as `what` ("Reference 2") or else by its file name.
    """
    if isinstance(source, Image.Image):
        what = what or "The image"
        _check_pixels(source.size, max_pixels, what)
        _load(source, what)
        return to_rgb(source)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        what = what or "The uploaded image"
        _check_bytes(len(data), max_bytes, what)
        return _open_stream(io.BytesIO(data), what, max_pixels)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        what = what or f"The image {path.name}"
        if not path.is_file():
            raise ImageError(f"{what} was not found ({path}); check the path.")
        _check_bytes(path.stat().st_size, max_bytes, what)
        with path.open("rb") as stream:
            return _open_stream(stream, what, max_pixels)
    raise TypeError(f"open_image takes a path, bytes or a PIL image, not {type(source).__name__}")


@dataclass(frozen=True)
class ImageLimits:
    """The size limits of the image gate; one object per Runtime, so the web UI's settings apply everywhere."""

    max_pixels: int = DEFAULT_MAX_PIXELS  # declared width x height of one image
    max_bytes: int = DEFAULT_MAX_BYTES  # encoded size of one image
    max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS  # all images of one request together

    def open(self, source: ImageSource, what: str | None = None) -> Image.Image:
        """`open_image` under these limits."""
        return open_image(source, max_pixels=self.max_pixels, max_bytes=self.max_bytes, what=what)

    def open_all(self, sources: Iterable[ImageSource], what: str = "Image") -> list[Image.Image]:
        """Open several images, named "<what> 1 (file name)" and so on in messages.

        Refused when together they exceed `max_total_pixels`; the sum is checked after each image, so
        memory never holds much more than that budget.
        """
        images: list[Image.Image] = []
        total = 0
        for number, source in enumerate(sources, 1):
            named = f" ({Path(source).name})" if isinstance(source, str | os.PathLike) else ""
            image = self.open(source, f"{what} {number}{named}")
            total += image.width * image.height
            if total > self.max_total_pixels:
                raise ImageError(
                    f"{what}s 1 to {number} hold {total / 1e6:.1f} megapixels together, more than the "
                    f"{self.max_total_pixels / 1e6:g} megapixel limit for one request; use fewer or smaller images."
                )
            images.append(image)
        return images


def to_rgb(image: Image.Image) -> Image.Image:
    """An already open image as upright 8-bit RGB: EXIF orientation applied, alpha composited on white.

    Returns `image` itself when it is already upright RGB (treat inputs as read-only).
    """
    if image.width < 1 or image.height < 1:
        raise ImageError(f"The image is empty ({image.width}x{image.height} pixels); use a real picture.")
    image = upright(image)
    if has_alpha(image):
        rgba = image.convert("LA").convert("RGBA") if image.mode == "La" else image.convert("RGBA")
        background = Image.new("RGBA", image.size, (*BACKGROUND_RGB, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return PixelFormat.of(image).color_channels(image)


def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (rotate/flip); returns `image` itself when there is none."""
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION_TAG)
    except DECODE_ERRORS:
        return image  # unreadable EXIF block: keep the pixels as stored
    if orientation not in ORIENTATION_TRANSPOSES or _decoder_turned(image):
        return image
    try:
        return ImageOps.exif_transpose(image)
    except DECODE_ERRORS as error:
        raise ImageError(f"The image's EXIF orientation could not be applied ({error}); re-save it.") from error


def _decoder_turned(image: Image.Image) -> bool:
    """Whether Pillow's TIFF decoder already turned the loaded pixels (Pillow 9.5 does, and keeps the tag)."""
    return (
        image.format == "TIFF"
        and getattr(image, "_tile_orientation", None) in ORIENTATION_TRANSPOSES
        and image.im is not None
    )


def has_alpha(image: Image.Image) -> bool:
    """Whether the image carries transparency (an alpha band or a transparent palette/colour key)."""
    return image.mode in ALPHA_MODES or (image.mode in ("P", "L", "RGB") and "transparency" in image.info)


@dataclass(frozen=True)
class PixelFormat:
    """How one image's pixel values map to 8-bit RGB and back; decided once per image.

    `full_scale` is the value shown as 255: 255 for 8-bit modes, 65535 for I;16*. For the ambiguous
    containers "I" (32-bit int) and "F" (float) it is the smallest of 1 (F only), 255, 65535 or the
    image's maximum that covers the data, so 0..1 floats, 8-bit and 16-bit data in them all look
    right; values below 0 show as 0 and NaN as 0. Greyscale becomes R = G = B.
    """

    mode: str
    full_scale: float

    @classmethod
    def of(cls, image: Image.Image) -> PixelFormat:
        """The format of `image` (reads its value range for "I" and "F" images)."""
        if image.mode in SIXTEEN_BIT_MODES:
            return cls(image.mode, 65535.0)
        if image.mode not in ("I", "F"):
            return cls(image.mode, 255.0)
        values = np.asarray(image)
        finite = values[np.isfinite(values)] if image.mode == "F" else values
        maximum = float(finite.max()) if finite.size else 0.0
        scales = (1.0, 255.0, 65535.0) if image.mode == "F" else (255.0, 65535.0)
        return cls(image.mode, next((scale for scale in scales if maximum <= scale), maximum))

    def color_channels(self, image: Image.Image) -> Image.Image:
        """The colour of `image` (in this format) as 8-bit RGB; alpha is dropped, not composited."""
        if image.mode == "RGB":
            return image
        if image.mode in SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
            values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=self.full_scale)
            grey = np.rint(np.clip(values, 0.0, self.full_scale) * np.float32(255.0 / self.full_scale))
            return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
        try:
            if image.mode == "La":
                return image.convert("LA").convert("RGB")
            return image.convert("RGB")
        except ValueError as error:
            raise ImageError(f"Images in Pillow mode {image.mode} are not supported; save it as RGB.") from error

    def restore(self, rgb: Image.Image, like: Image.Image) -> Image.Image:
        """Turn an edited 8-bit RGB image back into this format, taking alpha from `like` (same size).

        Palette ("P"/"PA") images get a fresh adaptive palette; greyscale keeps the RGB luma.
        """
        mode = self.mode
        if mode == "RGB":
            return rgb
        if mode in ALPHA_MODES:
            rgba = rgb.convert("RGBA")
            rgba.putalpha(like.getchannel("A"))
            if mode == "La":
                return rgba.convert("LA").convert("La")
            return rgba if mode == "RGBA" else rgba.convert(mode)
        if mode == "P":
            if has_alpha(like):
                rgba = rgb.convert("RGBA")
                rgba.putalpha(like.convert("RGBA").getchannel("A"))
                return rgba.quantize(256)
            return rgb.quantize(256)
        if mode == "1":
            return rgb.convert("L").convert("1", dither=Image.Dither.NONE)
        if mode in SIXTEEN_BIT_MODES or mode in ("I", "F"):
            grey = np.asarray(rgb.convert("L"), dtype=np.float64) * (self.full_scale / 255.0)
            if mode == "F":
                values = grey.astype(np.float32)
            elif mode == "I":
                values = np.rint(grey).astype(np.int32)
            else:
                dtype = ">u2" if mode == "I;16B" else "<u2" if mode in ("I;16", "I;16L") else "=u2"
                values = np.rint(grey).astype(dtype)
            return Image.frombytes(mode, rgb.size, np.ascontiguousarray(values))
        return rgb.convert(mode)


def image_from_array(values: np.ndarray, mode: str) -> Image.Image:
    """Rebuild an image of `mode` from the array `np.asarray` gave for that mode (any mode but P)."""
    if mode == "1":
        return Image.fromarray(values.astype(bool))
    height, width = values.shape[:2]
    return Image.frombytes(mode, (width, height), np.ascontiguousarray(values))


def _open_stream(stream: io.IOBase, what: str, max_pixels: int) -> Image.Image:
    """Open, size-check, decode the first frame and convert; the stream may be closed afterwards."""
    try:
        image = Image.open(stream, formats=readable_formats())
    except Image.DecompressionBombError as error:
        raise ImageError(f"{what} is too large to open safely ({error}); downscale it first.") from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{what} is not an image this extension reads; {FORMATS_SENTENCE}.") from error
    except DECODE_ERRORS as error:
        raise ImageError(f"{what} could not be read ({_first_line(error)}); {FORMATS_SENTENCE}.") from error
    _check_pixels(image.size, max_pixels, what)
    _load(image, what)
    return to_rgb(image)


def readable_formats() -> list[str]:
    """The allowed formats this Pillow build can decode (WebP support is optional)."""
    if not all(name in Image.OPEN for name in ALLOWED_FORMATS):
        Image.init()  # registers every plugin (what Image.open does for formats it has not seen yet)
    return [name for name in ALLOWED_FORMATS if name in Image.OPEN]


def _load(image: Image.Image, what: str) -> None:
    """Decode the pixels now, turning Pillow's many failure types into one ImageError."""
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageError(f"{what} is too large to open safely ({error}); downscale it first.") from error
    except DECODE_ERRORS as error:
        raise ImageError(f"{what} is truncated or corrupt ({_first_line(error)}); save it again and retry.") from error


def _first_line(error: BaseException) -> str:
    """An exception's message, one line and short, for inclusion in a user sentence."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


def _check_pixels(size: tuple[int, int], max_pixels: int, what: str) -> None:
    """Refuse empty images and images whose declared pixel count exceeds `max_pixels`."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{what} is empty ({width}x{height} pixels); use a real picture.")
    if width * height > max_pixels:
        raise ImageError(
            f"{what} is {width}x{height} = {width * height / 1e6:.1f} megapixels, more than the "
            f"{max_pixels / 1e6:g} megapixel limit; downscale it first."
        )


def _check_bytes(size: int, max_bytes: int, what: str) -> None:
    """Refuse encoded data larger than `max_bytes` before any decoding."""
    if size > max_bytes:
        raise ImageError(
            f"{what} is {size / 2**20:.1f} MiB, more than the {max_bytes / 2**20:g} MiB limit; use a smaller file."
        )
