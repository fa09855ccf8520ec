"""FFHQ face alignment as JoJoGAN does it, its inverse, and the feathered paste-back of stylized faces.

The aligned crop is a similarity transform of the original (centre c, half-axes x and y), so every
crop can be warped back exactly. `align_face` reproduces the reference pixels (shrink, crop,
reflect-pad + blur, QUAD warp); it must not change that algorithm, only its speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.ndimage
from PIL import Image

from jojogan_ext.args import MAX_FEATHER
from jojogan_ext.errors import ImageError
from jojogan_ext.images import PixelFormat, image_from_array, to_rgb, upright

MaskShape = Literal["ellipse", "box"]
MASK_SHAPES: tuple[str, ...] = ("ellipse", "box")
# Mask geometry in crop-normalized units: the aligned crop spans -1..1 on both axes, 0 at its centre.
# An FFHQ face spans about u -0.55..0.55 and v -0.6 (hairline)..0.82 (chin, close to the crop's
# bottom edge); both outlines reach 0 at or inside the crop's edges and leave its corners alone.
ELLIPSE_CENTER = (0.0, 0.1)
ELLIPSE_SEMI_AXES = (0.85, 0.9)
BOX_HALF_SIDE = 1.0
BOX_CORNER_RADIUS = 0.3
# Width of the soft edge, inside the outline, as a fraction of the crop side (the crop side is about
# 2.2 eye-to-mouth heights, so the feather grows with the face); 0 gives a hard edge. The default
# keeps the chin at full weight.
DEFAULT_FEATHER = 0.08


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """An aligned square crop and the similarity transform that produced it.

    Aligned pixel (i, j) of a crop of side S has its centre at original pixel
    `center + u * x_axis + v * y_axis` with u = 2 (i + 0.5) / S - 1, v = 2 (j + 0.5) / S - 1
    (original pixel centres at integer coordinates, as in the reference).
    """

    image: Image.Image  # RGB, size x size
    center: np.ndarray  # [2] c: centre of the crop in original pixels
    x_axis: np.ndarray  # [2] from the centre to the middle of the crop's right edge
    y_axis: np.ndarray  # [2] from the centre to the middle of the crop's bottom edge
    source_size: tuple[int, int]  # (width, height) of the upright image the face was aligned from

    @property
    def size(self) -> int:
        """Side of the aligned crop in pixels."""
        return self.image.width

    @property
    def quad(self) -> np.ndarray:
        """Corners [4, 2] in original pixels: top-left, bottom-left, bottom-right, top-right."""
        return quad_from_frame(self.center, self.x_axis, self.y_axis)

    def to_original(self, points: np.ndarray, size: int | None = None) -> np.ndarray:
        """Map points [N, 2] of an aligned crop of side `size` (default: this crop) to original pixels."""
        side = self.size if size is None else size
        uv = (np.asarray(points, dtype=np.float64) + 0.5) * (2.0 / side) - 1.0
        return self.center + uv @ np.stack([self.x_axis, self.y_axis])

    def to_aligned(self, points: np.ndarray, size: int | None = None) -> np.ndarray:
        """Map original-pixel points [N, 2] into an aligned crop of side `size` (default: this crop)."""
        side = self.size if size is None else size
        return (self.normalized(points) + 1.0) * (side / 2.0) - 0.5

    def normalized(self, points: np.ndarray) -> np.ndarray:
        """Original-pixel points [..., 2] in crop-normalized (u, v) coordinates (the crop is -1..1)."""
        axes = np.stack([self.x_axis, self.y_axis], axis=1)  # [2, 2], columns x and y
        return (np.asarray(points, dtype=np.float64) - self.center) @ np.linalg.inv(axes).T


def ffhq_frame(landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre c and half-axes x, y of the FFHQ crop from five landmarks (eyes and mouth corners used).

    Rows: eye_left, eye_right, nose, mouth_left, mouth_right in pixels; the nose does not matter.
    """
    points = np.asarray(landmarks5, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"landmarks5 must have shape [5, 2], not {list(points.shape)}")
    if not np.isfinite(points).all():
        raise ImageError("The face landmarks are not finite numbers; detect the face again.")
    eye_left, eye_right, mouth_left, mouth_right = points[0], points[1], points[3], points[4]
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (mouth_left + mouth_right) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    # x: eye_to_eye plus eye_to_mouth turned 90 degrees counter-clockwise on screen, scaled to the face.
    x_axis = np.array([eye_to_eye[0] + eye_to_mouth[1], eye_to_eye[1] - eye_to_mouth[0]])
    length = np.hypot(*x_axis)
    if not length > 0:
        raise ImageError("The face landmarks are degenerate (eyes and mouth coincide); use another face.")
    x_axis /= length
    x_axis *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y_axis = np.array([-x_axis[1], x_axis[0]])
    center = eye_avg + eye_to_mouth * 0.1
    return center, x_axis, y_axis


def quad_from_frame(center: np.ndarray, x_axis: np.ndarray, y_axis: np.ndarray) -> np.ndarray:
    """Corners [4, 2]: c-x-y (top-left), c-x+y (bottom-left), c+x+y (bottom-right), c+x-y (top-right)."""
    return np.stack(
        [center - x_axis - y_axis, center - x_axis + y_axis, center + x_axis + y_axis, center + x_axis - y_axis]
    )


def ffhq_quad(landmarks5: np.ndarray) -> np.ndarray:
    """The FFHQ crop quad [4, 2] (original pixels) for five landmarks, as the reference computes it."""
    return quad_from_frame(*ffhq_frame(landmarks5))


def align_face(image: Image.Image, landmarks5: np.ndarray, size: int = 1024) -> AlignedFace:
    """The FFHQ-aligned size x size RGB crop of a face, pixel-identical to JoJoGAN's align_face.

    `landmarks5` are in the upright frame `images.to_rgb(image)` (what FaceDetector reports).
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, not {size}")
    rgb = to_rgb(image)
    center, x_axis, y_axis = ffhq_frame(landmarks5)
    crop = _ffhq_warp(rgb, quad_from_frame(center, x_axis, y_axis), float(np.hypot(*x_axis) * 2), size)
    return AlignedFace(crop, center, x_axis, y_axis, rgb.size)


def center_crop_face(image: Image.Image, size: int = 1024) -> AlignedFace:
    """A reference that is already a face crop: the centred square, resized to size x size.

    No detection; the returned frame matches the crop, so paste_back works on it too.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, not {size}")
    rgb = to_rgb(image)
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    square = rgb.crop((left, top, left + side, top + side)) if rgb.width != rgb.height else rgb
    crop = square.copy() if side == size else square.resize((size, size), Image.Resampling.LANCZOS)
    half = side / 2.0
    # The crop's outer edges lie half a pixel outside the centres of its first and last pixels.
    center = np.array([left + half - 0.5, top + half - 0.5])
    return AlignedFace(crop, center, np.array([half, 0.0]), np.array([0.0, half]), rgb.size)


def face_mask(
    u: np.ndarray, v: np.ndarray, shape: MaskShape = "ellipse", feather: float = DEFAULT_FEATHER
) -> np.ndarray:
    """Blend weights in [0, 1] at crop-normalized points (u, v): 1 on the face, 0 outside the shape.

    The edge falls off over `feather` x crop side (smoothstep), inside the shape's outline.
    """
    _check_feather(feather)
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if shape == "ellipse":
        semi_u, semi_v = ELLIPSE_SEMI_AXES
        du, dv = u - ELLIPSE_CENTER[0], v - ELLIPSE_CENTER[1]
        level_set = 1.0 - (du / semi_u) ** 2 - (dv / semi_v) ** 2
        gradient = 2.0 * np.hypot(du / semi_u**2, dv / semi_v**2)
        # Distance to the outline to first order (exact on it); infinite at the centre, where the
        # gradient vanishes, which the clip below turns into full weight.
        with np.errstate(divide="ignore"):
            inside = level_set / gradient
    elif shape == "box":
        straight = BOX_HALF_SIDE - BOX_CORNER_RADIUS
        du = np.abs(u) - straight
        dv = np.abs(v) - straight
        outside = np.hypot(np.maximum(du, 0.0), np.maximum(dv, 0.0)) + np.minimum(np.maximum(du, dv), 0.0)
        inside = BOX_CORNER_RADIUS - outside  # exact distance to the rounded outline
    else:
        raise ValueError(f"mask shape must be one of {MASK_SHAPES}, not {shape!r}")
    ramp = 2.0 * feather  # the crop side is 2 normalized units
    if ramp < 1e-6:  # below a millionth of the crop side: a hard edge
        return (inside > 0).astype(np.float32)
    level = np.clip(inside / ramp, 0.0, 1.0)
    return (level * level * (3.0 - 2.0 * level)).astype(np.float32)


def paste_back(
    original: Image.Image,
    stylized_crops: Sequence[Image.Image],
    aligned_faces: Sequence[AlignedFace],
    *,
    feather: float = DEFAULT_FEATHER,
    mask_shape: MaskShape = "ellipse",
    color_match: bool = False,
) -> Image.Image:
    """Warp each stylized crop (any size) back onto `original` through its face's inverse transform.

    Soft mask per face, optional per-channel mean/std colour matching to the original face, faces
    may reach past the frame; later faces blend over earlier ones. `original` is taken upright (EXIF
    orientation applied, as detection and alignment did); the result has its size and mode, and
    pixels outside every mask keep their exact values (palette images are re-quantized).
    """
    if len(stylized_crops) != len(aligned_faces):
        raise ValueError(f"{len(stylized_crops)} stylized crops for {len(aligned_faces)} faces")
    if mask_shape not in MASK_SHAPES:
        raise ValueError(f"mask shape must be one of {MASK_SHAPES}, not {mask_shape!r}")
    _check_feather(feather)
    original = upright(original)
    for face in aligned_faces:
        if tuple(face.source_size) != original.size:
            raise ValueError(f"a face was aligned in a {face.source_size} image, not this {original.size} one")
    palette = original.mode in ("P", "PA")
    canvas = original.convert("RGB") if palette else original
    pixel_format = PixelFormat.of(canvas)
    pixels = np.array(canvas)  # [H, W] or [H, W, C] in the canvas mode, edited in place
    for crop, face in zip(stylized_crops, aligned_faces, strict=True):
        _paste_face(pixels, canvas.mode, pixel_format, to_rgb(crop), face, feather, mask_shape, color_match)
    result = image_from_array(pixels, canvas.mode)
    return PixelFormat.of(original).restore(result, like=original) if palette else result


def _paste_face(
    pixels: np.ndarray,
    mode: str,
    pixel_format: PixelFormat,
    crop: Image.Image,
    face: AlignedFace,
    feather: float,
    mask_shape: MaskShape,
    color_match: bool,
) -> None:
    """Blend one stylized crop into `pixels` inside the bounding box of its quad (clipped to the frame)."""
    height, width = pixels.shape[:2]
    quad = face.quad
    left, top = max(int(np.floor(quad[:, 0].min())), 0), max(int(np.floor(quad[:, 1].min())), 0)
    right = min(int(np.ceil(quad[:, 0].max())) + 1, width)
    bottom = min(int(np.ceil(quad[:, 1].max())) + 1, height)
    if left >= right or top >= bottom:
        return  # the face lies entirely outside the frame
    region = pixels[top:bottom, left:right]
    region_image = image_from_array(region, mode)
    region_rgb = np.asarray(pixel_format.color_channels(region_image), dtype=np.float32)  # [h, w, 3]

    grid_x, grid_y = np.meshgrid(np.arange(left, right), np.arange(top, bottom))
    uv = face.normalized(np.stack([grid_x, grid_y], axis=-1))  # [h, w, 2]
    mask = face_mask(uv[..., 0], uv[..., 1], mask_shape, feather)  # [h, w]
    warped = _warp_crop(crop, face, (left, top, right, bottom))  # [h, w, 3]
    if color_match:
        warped = _match_colors(warped, region_rgb, mask)
    blended = region_rgb + (warped - region_rgb) * mask[..., None]
    blended_image = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    restored = np.asarray(pixel_format.restore(blended_image, like=region_image))
    changed = mask > 0
    pixels[top:bottom, left:right] = np.where(changed[..., None] if restored.ndim == 3 else changed, restored, region)


def _warp_crop(crop: Image.Image, face: AlignedFace, box: tuple[int, int, int, int]) -> np.ndarray:
    """The crop resampled onto the original pixels of `box` through the face's inverse transform."""
    left, top, right, bottom = box
    side = float(np.hypot(*face.x_axis) * 2)  # the crop side in original pixels
    if crop.width > 2 * side or crop.height > 2 * side:
        # Pre-shrink with a proper filter: a bilinear warp alone would alias a 1024 crop onto a small face.
        target = max(1, int(np.ceil(side)))
        crop = crop.resize((target, target), Image.Resampling.LANCZOS)
    scale = np.array([crop.width / 2.0, crop.height / 2.0])
    to_normalized = np.linalg.inv(np.stack([face.x_axis, face.y_axis], axis=1))  # [2, 2]
    # Pillow samples output pixel centres (X + 0.5) and reads the source in edge coordinates:
    # source = scale * (to_normalized @ (X + 0.5 + (left, top) - 0.5 - c) + 1).
    matrix = scale[:, None] * to_normalized
    offset = scale * (to_normalized @ (np.array([left - 0.5, top - 0.5]) - face.center) + 1.0)
    coefficients = (matrix[0, 0], matrix[0, 1], offset[0], matrix[1, 0], matrix[1, 1], offset[1])
    warped = crop.transform(
        (right - left, bottom - top), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR
    )
    return np.asarray(warped, dtype=np.float32)


def _match_colors(warped: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift/scale each channel of `warped` so its mask-weighted mean and std match `target`'s."""
    weights = mask[..., None].astype(np.float64)  # [h, w, 1]
    total = weights.sum()
    if total < 1.0:
        return warped
    mean_warped = (warped * weights).sum(axis=(0, 1)) / total
    mean_target = (target * weights).sum(axis=(0, 1)) / total
    std_warped = np.sqrt((((warped - mean_warped) ** 2) * weights).sum(axis=(0, 1)) / total)
    std_target = np.sqrt((((target - mean_target) ** 2) * weights).sum(axis=(0, 1)) / total)
    gain = std_target / np.maximum(std_warped, 1.0)
    return ((warped - mean_warped) * gain + mean_target).astype(np.float32)


def _ffhq_warp(image: Image.Image, quad: np.ndarray, qsize: float, size: int) -> Image.Image:
    """The reference warp: shrink by an integer factor, crop, reflect-pad + blur, then QUAD transform."""
    quad = quad.copy()
    # Shrink: faces over twice the output size are first reduced by an integer factor.
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        reduced = (int(np.rint(float(image.width) / shrink)), int(np.rint(float(image.height) / shrink)))
        if min(reduced) < 1:
            raise ImageError("The face is far larger than the image; check the landmarks.")
        image = image.resize(reduced, Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink

    # Crop: the quad's bounding box plus a border of 10% of the face, within the image.
    border = max(int(np.rint(qsize * 0.1)), 3)
    left, top, right, bottom = _bounds(quad)
    crop = (
        max(left - border, 0),
        max(top - border, 0),
        min(right + border, image.width),
        min(bottom + border, image.height),
    )
    if crop[0] >= crop[2] or crop[1] >= crop[3]:
        raise ImageError("The face lies outside the image; check the landmarks.")
    if crop[2] - crop[0] < image.width or crop[3] - crop[1] < image.height:
        image = image.crop(crop)
        quad -= crop[0:2]

    # Pad: where the quad leaves the image, reflect the image outwards, blur and fade to its median.
    left, top, right, bottom = _bounds(quad)
    pad = (
        max(-left + border, 0),
        max(-top + border, 0),
        max(right - image.width + border, 0),
        max(bottom - image.height + border, 0),
    )
    if max(pad) > border - 4:
        # At least 1 so faces under 2 px cannot divide by zero; the reference's value otherwise.
        pad = np.maximum(pad, max(int(np.rint(qsize * 0.3)), 1))  # [left, top, right, bottom]
        image = _pad_and_blend(image, pad, qsize)
        quad += pad[:2]

    return image.transform((size, size), Image.Transform.QUAD, tuple((quad + 0.5).flatten()), Image.Resampling.BILINEAR)


def _pad_and_blend(image: Image.Image, pad: np.ndarray, qsize: float) -> Image.Image:
    """Reflect-pad by `pad` [left, top, right, bottom], blur towards the new edges and fade to the median."""
    pixels = np.pad(np.float32(image), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")  # [h, w, 3]
    height, width, _ = pixels.shape
    # Distances in float64 (what NumPy 2 computes for the reference; NumPy 1 would use float32).
    rows = np.arange(height, dtype=np.float64)[:, None, None]
    columns = np.arange(width, dtype=np.float64)[None, :, None]
    mask = np.maximum(
        1.0 - np.minimum(columns / pad[0], (width - 1 - columns) / pad[2]),
        1.0 - np.minimum(rows / pad[1], (height - 1 - rows) / pad[3]),
    )  # [h, w, 1]: 1 at the outer edge, <= 0 inside the original
    blur = qsize * 0.02
    pixels += (scipy.ndimage.gaussian_filter(pixels, [blur, blur, 0]) - pixels) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    pixels += (np.median(pixels, axis=(0, 1)) - pixels) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.uint8(np.clip(np.rint(pixels), 0, 255)))


def _bounds(quad: np.ndarray) -> tuple[int, int, int, int]:
    """Integer bounding box (floor of the minima, ceil of the maxima) of a quad [4, 2]."""
    return (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )


def _check_feather(feather: float) -> None:
    """Refuse feather widths outside 0..MAX_FEATHER (a wider ramp would not fit inside the shape)."""
    if not 0.0 <= feather <= MAX_FEATHER:
        raise ValueError(f"feather must be between 0 and {MAX_FEATHER}, not {feather}")
