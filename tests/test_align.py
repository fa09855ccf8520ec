"""FFHQ alignment against the reference goldens, its inverse transform, masks and paste-back."""

import hashlib
import io
import json

import numpy as np
import pytest
import scipy.ndimage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from jojogan_ext.errors import ImageError
from jojogan_ext.faces.align import (
    MAX_FEATHER,
    align_face,
    center_crop_face,
    face_mask,
    ffhq_frame,
    ffhq_quad,
    paste_back,
)
from jojogan_ext.images import image_from_array, to_rgb

# How each golden case's input is derived from astronaut.png (quads.json "input" / "landmarks").
CASES = {
    "A_full": (lambda pixels: pixels, lambda points: points),
    "B_topcrop60": (lambda pixels: pixels[60:], lambda points: points - [0, 60]),
    "C_up6": (lambda pixels: np.repeat(np.repeat(pixels, 6, 0), 6, 1), lambda points: points * 6 + 2.5),
}
RUNS = [(case, size) for case in CASES for size in (256, 1024)]


@pytest.fixture(scope="module")
def golden(fixtures) -> dict:
    """quads.json, landmarks.json and the astronaut pixels."""
    folder = fixtures / "align"
    with Image.open(folder / "astronaut.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    return {
        "folder": folder,
        "quads": json.loads((folder / "quads.json").read_text()),
        "points": np.array(json.loads((folder / "landmarks.json").read_text())["reduction_5"]["points"]),
        "pixels": pixels,
    }


@pytest.fixture(scope="module")
def smooth_astronaut(golden) -> Image.Image:
    """The astronaut blurred a little, so interpolation error stays small in round trips."""
    return Image.fromarray(golden["pixels"]).filter(ImageFilter.GaussianBlur(3))


def case_input(golden: dict, case: str) -> tuple[Image.Image, np.ndarray]:
    """The input image and 5 landmarks of one golden case."""
    make_pixels, move_points = CASES[case]
    return Image.fromarray(make_pixels(golden["pixels"])), move_points(golden["points"])


@pytest.mark.parametrize(("case", "size"), RUNS)
def test_quad_matches_the_reference(golden, case, size):
    _, points = case_input(golden, case)
    expected = np.array(golden["quads"]["cases"][case]["runs"][str(size)]["quad_original"])
    assert np.abs(ffhq_quad(points) - expected).max() < 1e-6


def test_five_points_give_the_68_point_quad(golden):
    expected = np.array(golden["quads"]["five_point"]["quad_from_68"])
    assert np.abs(ffhq_quad(golden["points"]) - expected).max() < 1e-6


@pytest.mark.parametrize(("case", "size"), RUNS)
def test_aligned_pixels_equal_the_reference(golden, case, size):
    image, points = case_input(golden, case)
    run = golden["quads"]["cases"][case]["runs"][str(size)]
    aligned = align_face(image, points, size)
    assert aligned.image.mode == "RGB" and aligned.image.size == (size, size)
    if run.get("output_png"):
        with Image.open(golden["folder"] / run["output_png"]) as reference:
            assert np.array_equal(np.asarray(aligned.image), np.asarray(reference.convert("RGB")))
    assert hashlib.sha256(aligned.image.tobytes()).hexdigest() == run["output_rgb_sha256"]
    assert np.abs(aligned.quad - np.array(run["quad_original"])).max() < 1e-6


def test_aligned_pixels_sit_where_the_frame_says(golden):
    """Bilinear samples of the original at to_original(i, j) equal the aligned pixels (no shift)."""
    image, points = case_input(golden, "A_full")
    aligned = align_face(image, points, 256)
    grid = np.stack(np.meshgrid(np.arange(256), np.arange(256)), axis=-1).reshape(-1, 2)  # [N, 2] (i, j)
    source = aligned.to_original(grid)  # [N, 2] (x, y)
    inside = (source >= 0).all(axis=1) & (source[:, 0] <= 511) & (source[:, 1] <= 511)
    pixels = golden["pixels"].astype(np.float64)
    for channel in range(3):
        sampled = scipy.ndimage.map_coordinates(pixels[..., channel], source[inside][:, ::-1].T, order=1)
        actual = np.asarray(aligned.image)[..., channel].reshape(-1)[inside]
        assert np.abs(sampled - actual).max() <= 1.0


def test_frame_maps_quad_corners_to_crop_corners(golden):
    aligned = align_face(Image.fromarray(golden["pixels"]), golden["points"], 256)
    corners = aligned.to_aligned(aligned.quad)
    assert np.allclose(corners, [[-0.5, -0.5], [-0.5, 255.5], [255.5, 255.5], [255.5, -0.5]], atol=1e-9)
    assert np.allclose(aligned.to_aligned(aligned.quad, size=64)[2], [63.5, 63.5], atol=1e-9)
    points = np.array([[10.0, 20.0], [300.5, 400.25]])
    assert np.allclose(aligned.to_original(aligned.to_aligned(points)), points, atol=1e-9)


landmark_sets = (
    st.lists(st.tuples(st.floats(-500, 500), st.floats(-500, 500)), min_size=5, max_size=5)
    .map(np.array)
    .filter(lambda points: np.hypot(*(points[1] - points[0])) > 1.0)
)
similarities = st.tuples(
    st.floats(-np.pi, np.pi), st.floats(0.05, 20.0), st.floats(-2000, 2000), st.floats(-2000, 2000)
)


def apply_similarity(points: np.ndarray, similarity: tuple[float, float, float, float]) -> np.ndarray:
    """Rotate by angle, scale, then translate points [N, 2]."""
    angle, scale, shift_x, shift_y = similarity
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ (scale * rotation).T + [shift_x, shift_y]


@given(points=landmark_sets, similarity=similarities)
@settings(max_examples=200, deadline=None)
def test_quad_follows_similarity_transforms_of_the_landmarks(points, similarity):
    moved = ffhq_quad(apply_similarity(points, similarity))
    expected = apply_similarity(ffhq_quad(points), similarity)
    assert np.allclose(moved, expected, rtol=1e-9, atol=1e-6)


@given(
    u=st.lists(st.floats(-3, 3), min_size=1, max_size=50),
    v=st.lists(st.floats(-3, 3), min_size=1, max_size=50),
    shape=st.sampled_from(["ellipse", "box"]),
    feather=st.floats(0.0, MAX_FEATHER),
)
@settings(max_examples=200, deadline=None)
def test_masks_stay_in_zero_one_and_cover_the_face(u, v, shape, feather):
    grid_u, grid_v = np.meshgrid(np.array(u), np.array(v))
    mask = face_mask(grid_u, grid_v, shape, feather)
    assert mask.dtype == np.float32 and mask.shape == grid_u.shape
    assert ((mask >= 0) & (mask <= 1)).all()
    assert (mask[(np.abs(grid_u) >= 1) | (np.abs(grid_v) >= 1)] == 0).all()  # nothing outside the crop
    assert face_mask(np.zeros(1), np.array([0.1]), shape, feather)[0] == 1.0


@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_default_mask_covers_the_whole_face(golden, shape):
    """Every dlib landmark of the astronaut (jaw, brows, eyes, mouth) gets full weight by default."""
    landmarks_68 = np.array(json.loads((golden["folder"] / "landmarks.json").read_text())["landmarks_68"], float)
    aligned = align_face(Image.fromarray(golden["pixels"]), golden["points"], 64)
    uv = aligned.normalized(landmarks_68)
    assert (face_mask(uv[:, 0], uv[:, 1], shape) == 1.0).all()


@given(
    angle=st.floats(-0.7, 0.7),
    scale=st.floats(0.5, 1.4),
    shift=st.tuples(st.floats(-150, 150), st.floats(-100, 150)),  # the face stays partly inside the frame
    size=st.sampled_from([256, 320]),
    shape=st.sampled_from(["ellipse", "box"]),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_pasting_back_the_unchanged_crop_reproduces_the_original(
    golden, smooth_astronaut, angle, scale, shift, size, shape
):
    centre = golden["points"].mean(axis=0)
    points = apply_similarity(golden["points"] - centre, (angle, scale, *shift)) + centre
    aligned = align_face(smooth_astronaut, points, size)
    result = paste_back(smooth_astronaut, [aligned.image], [aligned], mask_shape=shape)
    assert result.size == smooth_astronaut.size and result.mode == "RGB"
    grid = np.stack(np.meshgrid(np.arange(512), np.arange(512)), axis=-1)  # [H, W, 2]
    uv = aligned.normalized(grid)
    mask = face_mask(uv[..., 0], uv[..., 1], shape)
    original = np.asarray(smooth_astronaut).astype(np.float64)
    difference = np.abs(np.asarray(result).astype(np.float64) - original)
    assert (difference[mask == 0] == 0).all()
    # Where the quad leaves the frame the reference pads by p >= 0.3 qsize (more when the quad reaches
    # further out) and blurs the image's outer p / 3 pixels; compare the face away from that band.
    # Bilinear there and back blurs a little.
    qsize = np.hypot(*aligned.x_axis) * 2
    beyond = max(0.0, -aligned.quad.min(), aligned.quad.max() - 511)
    band = (beyond + 0.1 * qsize + 0.3 * qsize) / 3 + 3
    edge_distance = np.minimum(
        np.minimum(grid[..., 0], 511 - grid[..., 0]), np.minimum(grid[..., 1], 511 - grid[..., 1])
    )
    compared = (mask == 1) & (edge_distance > band)
    assert compared.sum() > 500
    assert difference[compared].mean() < 1.5
    assert np.percentile(difference[compared], 99) < 4


def solid(color: tuple[int, int, int], size: int = 64) -> Image.Image:
    """A stylized crop stand-in of one colour (a real PIL image, any size works)."""
    return Image.new("RGB", (size, size), color)


def image_in_mode(pixels: np.ndarray, mode: str) -> Image.Image:
    """The RGB pixels as an image of `mode`; 16-bit and float greys use their full value range."""
    grey = np.asarray(Image.fromarray(pixels).convert("L"))
    if mode in ("I;16", "I;16B"):
        return image_from_array((grey.astype(np.uint32) * 257).astype(">u2" if mode == "I;16B" else "<u2"), mode)
    if mode == "F":
        return image_from_array(grey / np.float32(255), "F")  # 0..1 floats
    return Image.fromarray(pixels).convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "I;16B", "I", "F", "CMYK"])
def test_paste_back_keeps_size_and_mode_and_leaves_the_rest_untouched(golden, mode):
    original = image_in_mode(golden["pixels"], mode)
    aligned = align_face(original, golden["points"], 128)
    result = paste_back(original, [solid((250, 250, 250))], [aligned])
    assert result.size == original.size and result.mode == original.mode
    grid = np.stack(np.meshgrid(np.arange(512), np.arange(512)), axis=-1)
    uv = aligned.normalized(grid)
    mask = face_mask(uv[..., 0], uv[..., 1])
    before, after = np.asarray(original), np.asarray(result)
    if mode != "P":  # palette images are re-quantized as a whole
        assert np.array_equal(after[mask == 0], before[mask == 0])
    assert not np.array_equal(after[mask == 1], before[mask == 1])
    assert np.asarray(to_rgb(result))[100:110, 220:230].mean() > 200  # the pasted light face, in range


def test_paste_back_keeps_the_alpha_channel(golden):
    rgba = np.dstack([golden["pixels"], np.tile(np.arange(512, dtype=np.uint8)[None, :] // 2, (512, 1))])
    original = Image.fromarray(rgba)
    aligned = align_face(original, golden["points"], 64)
    result = np.asarray(paste_back(original, [solid((255, 0, 0))], [aligned]))
    assert np.array_equal(result[..., 3], rgba[..., 3])
    assert result[120, 225, :3].tolist() == [255, 0, 0]


def test_paste_back_works_in_the_upright_frame_of_exif_rotated_images(golden):
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down: same size, so a frame mix-up would not raise
    buffer = io.BytesIO()
    Image.fromarray(golden["pixels"][::-1, ::-1]).save(buffer, format="PNG", exif=exif.tobytes())
    with Image.open(io.BytesIO(buffer.getvalue())) as stored:
        aligned = align_face(stored, golden["points"], 256)
        result = np.asarray(paste_back(stored, [solid((255, 0, 0))], [aligned]))
    reference = align_face(Image.fromarray(golden["pixels"]), golden["points"], 256)
    assert np.array_equal(np.asarray(aligned.image), np.asarray(reference.image))
    assert result.shape == golden["pixels"].shape
    assert result[106, 225].tolist() == [255, 0, 0]  # the face in the upright picture


def test_several_faces_in_one_pass(golden):
    original = Image.fromarray(golden["pixels"])
    second_points = golden["points"] * 0.5 + [250, 250]
    faces = [align_face(original, golden["points"], 128), align_face(original, second_points, 128)]
    result = np.asarray(paste_back(original, [solid((255, 0, 0)), solid((0, 0, 255), 1024)], faces))
    first_centre = faces[0].center.round().astype(int)
    second_centre = faces[1].center.round().astype(int)
    assert result[first_centre[1], first_centre[0]].tolist() == [255, 0, 0]
    assert result[second_centre[1], second_centre[0]].tolist() == [0, 0, 255]


def test_faces_partly_or_wholly_outside_the_frame(golden):
    image, points = case_input(golden, "B_topcrop60")  # the quad leaves the top of this image
    aligned = align_face(image, points, 128)
    assert aligned.quad[:, 1].min() < 0
    result = paste_back(image, [solid((0, 255, 0))], [aligned])
    assert result.size == image.size
    assert np.asarray(result)[40, 225].tolist() == [0, 255, 0]
    far_away = align_face(image, points, 64)
    moved = type(far_away)(
        far_away.image, far_away.center + np.array([5000.0, 0.0]), far_away.x_axis, far_away.y_axis, image.size
    )
    assert np.array_equal(np.asarray(paste_back(image, [solid((0, 255, 0))], [moved])), np.asarray(image))


def test_colour_matching_pulls_the_crop_to_the_original_colours(smooth_astronaut, golden):
    aligned = align_face(smooth_astronaut, golden["points"], 256)
    brighter = Image.fromarray(np.clip(np.asarray(aligned.image).astype(int) + 40, 0, 255).astype(np.uint8))
    grid = np.stack(np.meshgrid(np.arange(512), np.arange(512)), axis=-1)
    uv = aligned.normalized(grid)
    inner = face_mask(uv[..., 0], uv[..., 1]) == 1
    original = np.asarray(smooth_astronaut).astype(float)
    plain = np.asarray(paste_back(smooth_astronaut, [brighter], [aligned])).astype(float)
    matched = np.asarray(paste_back(smooth_astronaut, [brighter], [aligned], color_match=True)).astype(float)
    assert (plain[inner] - original[inner]).mean() > 30
    assert abs((matched[inner] - original[inner]).mean()) < 2


def test_center_crop_face_is_a_consistent_frame():
    pixels = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    face = center_crop_face(image, 200)
    assert np.array_equal(np.asarray(face.image), pixels[:, 50:250])
    assert np.allclose(face.quad, [[49.5, -0.5], [49.5, 199.5], [249.5, 199.5], [249.5, -0.5]])
    result = np.asarray(paste_back(image, [face.image], [face], mask_shape="box", feather=0.05)).astype(int)
    assert np.abs(result - pixels).max() <= 1  # identity warp: every pixel comes back (float rounding)
    small = center_crop_face(image, 64)
    assert small.image.size == (64, 64)
    assert np.array_equal(
        np.asarray(small.image), np.asarray(image.crop((50, 0, 250, 200)).resize((64, 64), Image.Resampling.LANCZOS))
    )


def test_bad_landmarks_and_arguments_are_refused(golden):
    image = Image.fromarray(golden["pixels"])
    with pytest.raises(ImageError, match="degenerate"):
        ffhq_frame(np.zeros((5, 2)))
    with pytest.raises(ImageError, match="finite"):
        ffhq_frame(np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match=r"\[5, 2\]"):
        ffhq_frame(np.zeros((68, 2)))
    with pytest.raises(ImageError, match="larger than the image"):
        align_face(image, golden["points"] * 1e6, 64)
    aligned = align_face(image, golden["points"], 64)
    with pytest.raises(ValueError, match="2 stylized crops for 1 faces"):
        paste_back(image, [aligned.image, aligned.image], [aligned])
    with pytest.raises(ValueError, match="aligned in a"):
        paste_back(image.resize((256, 256)), [aligned.image], [aligned])
    with pytest.raises(ValueError, match="feather"):
        paste_back(image, [aligned.image], [aligned], feather=0.9)
    with pytest.raises(ValueError, match="mask shape"):
        paste_back(image, [aligned.image], [aligned], mask_shape="circle")
