"""Face detection on facexlib's real RetinaFace (random weights saved in tmp) and its post-processing."""

import io
import tracemalloc

import numpy as np
import pytest
import torch
from facexlib.detection.retinaface import RetinaFace
from PIL import Image, ImageOps

from jojogan_ext.errors import CheckpointError, ImageError, MissingWeightsError
from jojogan_ext.faces.detect import (
    DEFAULT_NETWORK,
    DETECTOR_CHOICES,
    LANDMARK_NAMES,
    NETWORKS,
    Face,
    FaceDetector,
    detection_size,
    faces_from_raw,
    order_faces,
    resolve_network,
)

# Random mobile0.25 weights score every prior between about 0.45 and 0.5: this keeps a few dozen.
RANDOM_WEIGHTS_THRESHOLD = 0.49


def random_retinaface_weights(path, network_name: str, prefix: str = "") -> None:
    """Save the state dict of a freshly built (randomly initialised) facexlib RetinaFace."""
    torch.manual_seed(0)
    network = RetinaFace(network_name=network_name, half=False, phase="test", device=torch.device("cpu"))
    torch.save({prefix + key: value for key, value in network.state_dict().items()}, path)


@pytest.fixture(scope="module")
def mobile_weights(tmp_path_factory):
    """detection_mobilenet0.25_Final.pth with random weights."""
    path = tmp_path_factory.mktemp("weights") / "detection_mobilenet0.25_Final.pth"
    random_retinaface_weights(path, "mobile0.25")
    return path


@pytest.fixture(scope="module")
def detector(mobile_weights) -> FaceDetector:
    """The mobile0.25 detector on CPU."""
    return FaceDetector(mobile_weights, network="retinaface_mobile0.25")


@pytest.fixture(scope="module")
def astronaut(fixtures) -> Image.Image:
    """The 512 x 512 RGB test photo, downscaled to 128 to keep random-weight detection fast."""
    with Image.open(fixtures / "align" / "astronaut.png") as image:
        return image.convert("RGB").resize((128, 128), Image.Resampling.BILINEAR)


def assert_valid_faces(faces: list, image_size: tuple[int, int]) -> None:
    """Types, shapes and the documented order of detector output."""
    assert isinstance(faces, list)
    for face in faces:
        assert isinstance(face, Face)
        assert len(face.box) == 4 and all(isinstance(value, float) for value in face.box)
        assert face.box[2] > face.box[0] and face.box[3] > face.box[1]
        assert face.box[0] < image_size[0] and face.box[1] < image_size[1]
        assert isinstance(face.score, float) and 0.0 <= face.score <= 1.0
        assert face.landmarks5.shape == (5, 2) and face.landmarks5.dtype == np.float64
        assert not face.landmarks5.flags.writeable
    areas = [face.area for face in faces]
    assert areas == sorted(areas, reverse=True)


def test_detect_on_astronaut_gives_valid_faces(detector, astronaut):
    faces = detector.detect(astronaut, threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0)
    assert len(faces) > 0
    assert_valid_faces(faces, astronaut.size)
    assert all(face.score >= RANDOM_WEIGHTS_THRESHOLD for face in faces)
    limited = detector.detect(astronaut, threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0, max_faces=2)
    assert [face.box for face in limited] == [face.box for face in faces[:2]]


def test_landmarks_follow_facexlibs_row_layout(detector, astronaut):
    """facexlib rows are x1 y1 x2 y2 score then (x, y) pairs: eye_l, eye_r, nose, mouth_l, mouth_r."""
    with torch.inference_mode():
        raw = detector.network.detect_faces(astronaut, conf_threshold=RANDOM_WEIGHTS_THRESHOLD)
    assert len(raw) > 0
    for row in raw:
        (face,) = faces_from_raw(row[None], threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0)
        assert face.box == tuple(float(value) for value in row[:4])
        for index, name in enumerate(LANDMARK_NAMES):
            assert face.landmarks5[index].tolist() == [float(row[5 + 2 * index]), float(row[6 + 2 * index])], name


def test_large_images_are_downscaled_and_coordinates_mapped_back(mobile_weights, fixtures):
    with Image.open(fixtures / "align" / "astronaut.png") as image:
        full = image.convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)
    small_side = FaceDetector(mobile_weights, network="retinaface_mobile0.25", max_side=128)
    on_full = small_side.detect(full, threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0)
    by_hand = full.resize((128, 128), Image.Resampling.BILINEAR, reducing_gap=3.0)
    on_small = small_side.detect(by_hand, threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0)
    assert len(on_full) == len(on_small) > 0
    for big, small in zip(on_full, on_small, strict=True):
        assert np.allclose(big.box, np.array(small.box) * 2)
        assert np.allclose(big.landmarks5, small.landmarks5 * 2)


def test_8000_pixel_image_does_not_explode_memory(mobile_weights):
    detector = FaceDetector(mobile_weights, network="retinaface_mobile0.25", max_side=512)  # fewer priors: faster
    huge = Image.new("RGB", (8000, 8000), (128, 120, 110))
    tracemalloc.start()
    try:
        faces = detector.detect(huge, threshold=0.5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(faces, list)
    # NumPy reports its buffers to tracemalloc; a full-size float32 BGR copy alone would be 768 MB.
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_exif_orientation_is_applied_before_detection(detector, astronaut):
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    astronaut.crop((0, 0, 128, 96)).save(buffer, format="PNG", exif=exif.tobytes())
    with Image.open(io.BytesIO(buffer.getvalue())) as rotated:
        faces = detector.detect(rotated, threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0)
        upright = ImageOps.exif_transpose(rotated)
    assert upright.size == (96, 128)
    expected = detector.detect(upright, threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0)
    assert len(faces) == len(expected) > 0
    assert [face.box for face in faces] == [face.box for face in expected]
    assert_valid_faces(faces, upright.size)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "CMYK", "P", "1"])
def test_any_mode_is_accepted(detector, astronaut, mode):
    if mode == "I;16":
        grey = np.asarray(astronaut.convert("L")).astype("<u2") * 257
        image = Image.frombytes("I;16", astronaut.size, grey.tobytes())
    else:
        image = astronaut.convert(mode)
    assert_valid_faces(detector.detect(image, threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0), image.size)


def test_tiny_and_faceless_inputs_give_no_faces(detector):
    assert detector.detect(Image.new("RGB", (1, 1))) == []
    assert detector.detect(Image.new("RGB", (64, 64), (90, 90, 90)), threshold=1.0) == []
    with pytest.raises(ImageError, match="empty"):
        detector.detect(Image.new("RGB", (0, 0)))


def test_module_prefix_is_stripped_like_facexlib(tmp_path, detector, astronaut):
    prefixed = tmp_path / "detection_mobilenet0.25_Final.pth"
    random_retinaface_weights(prefixed, "mobile0.25", prefix="module.")
    loaded = FaceDetector(prefixed, network="retinaface_mobile0.25")
    ours = loaded.detect(astronaut, threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0)
    reference = detector.detect(astronaut, threshold=RANDOM_WEIGHTS_THRESHOLD, min_size=0)
    assert [face.box for face in ours] == [face.box for face in reference]


def test_resnet50_network_loads_and_runs(tmp_path, astronaut):
    weights = tmp_path / "detection_Resnet50_Final.pth"
    random_retinaface_weights(weights, "resnet50")
    resnet = FaceDetector(weights, network="retinaface_resnet50")
    assert resnet.network_name == "retinaface_resnet50"
    assert_valid_faces(resnet.detect(astronaut.resize((64, 64)), threshold=0.5, min_size=0), (64, 64))


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"detection_Resnet50_Final\.pth"):
        FaceDetector(tmp_path / "detection_Resnet50_Final.pth", network="retinaface_resnet50")


def test_auto_picks_mobilenet_on_cpu_and_resnet50_elsewhere(mobile_weights):
    assert DEFAULT_NETWORK == "auto"
    assert DETECTOR_CHOICES[0] == "auto" and set(DETECTOR_CHOICES[1:]) == set(NETWORKS)
    assert resolve_network("auto", "cpu") == "retinaface_mobile0.25"
    assert resolve_network("auto", torch.device("cuda", 1)) == "retinaface_resnet50"
    assert resolve_network("retinaface_resnet50", "cpu") == "retinaface_resnet50"
    assert FaceDetector(mobile_weights).network_name == "retinaface_mobile0.25"  # the default is auto
    with pytest.raises(ValueError, match="network must be one of"):
        resolve_network("dlib", "cpu")


def test_unreadable_or_foreign_weights_are_checkpoint_errors(tmp_path, mobile_weights):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match=r"garbage\.pth"):
        FaceDetector(garbage)
    with pytest.raises(CheckpointError, match="do not fit the retinaface_resnet50"):
        FaceDetector(mobile_weights, network="retinaface_resnet50")
    not_tensors = tmp_path / "numbers.pth"
    torch.save({"weight": 1}, not_tensors)
    with pytest.raises(CheckpointError, match="not a state dict"):
        FaceDetector(not_tensors)
    pickled_object = tmp_path / "object.pth"
    torch.save({"weight": tmp_path}, pickled_object)  # a Path: refused by weights_only loading
    with pytest.raises(CheckpointError, match="could not be read"):
        FaceDetector(pickled_object)
    with pytest.raises(ValueError, match="network must be one of"):
        FaceDetector(mobile_weights, network="yolo")


def raw_row(box, score, landmarks=None) -> list:
    """One facexlib-style row; landmarks default to five points inside the box."""
    x1, y1, x2, y2 = box
    if landmarks is None:
        landmarks = [
            (x1 + 1, y1 + 1),
            (x2 - 1, y1 + 1),
            ((x1 + x2) / 2, (y1 + y2) / 2),
            (x1 + 1, y2 - 1),
            (x2 - 1, y2 - 1),
        ]
    return [x1, y1, x2, y2, score, *np.ravel(landmarks)]


def test_post_processing_threshold_min_size_and_max_faces():
    raw = np.array(
        [
            raw_row((0, 0, 100, 100), 0.95),
            raw_row((200, 0, 250, 50), 0.90),  # exactly at the threshold: kept
            raw_row((300, 0, 400, 100), 0.89),  # below: dropped
            raw_row((0, 200, 10, 240), 0.99),  # shorter side 10 < 16: dropped
            raw_row((0, 300, 40, 340), np.nan),  # not finite: dropped
            raw_row((50, 300, 50, 340), 0.99),  # empty box: dropped
        ]
    )
    faces = faces_from_raw(raw, threshold=0.9, min_size=16)
    assert [face.score for face in faces] == [0.95, 0.90]
    assert len(faces_from_raw(raw, threshold=0.9, min_size=16, max_faces=1)) == 1
    assert len(faces_from_raw(raw, threshold=0.0, min_size=0)) == 5
    assert faces_from_raw(raw, threshold=1.0) == []


def test_post_processing_orders():
    small_left = raw_row((0, 0, 20, 20), 0.99)
    big_right = raw_row((300, 0, 400, 100), 0.91)
    middle = raw_row((150, 0, 200, 50), 0.95)
    raw = np.array([small_left, big_right, middle])
    by = {
        order: [face.box[0] for face in faces_from_raw(raw, threshold=0.5, min_size=0, order=order)]
        for order in ("largest", "left_to_right", "score")
    }
    assert by == {"largest": [300, 150, 0], "left_to_right": [0, 150, 300], "score": [0, 150, 300]}
    faces = faces_from_raw(raw, threshold=0.5, min_size=0, order="left_to_right")
    assert [face.box for face in order_faces(faces)] == [
        face.box for face in faces_from_raw(raw, threshold=0.5, min_size=0)
    ]
    with pytest.raises(ValueError, match="face order"):
        order_faces(faces, "random")


def test_post_processing_keeps_landmark_order_and_maps_scale():
    landmarks = [(30, 40), (70, 41), (50, 60), (35, 80), (65, 81)]
    raw = np.array([raw_row((10, 20, 90, 100), 0.97, landmarks)], dtype=np.float32)
    (face,) = faces_from_raw(raw, threshold=0.5, min_size=0, scale=(0.5, 0.25))
    assert face.box == (20.0, 80.0, 180.0, 400.0)
    assert face.landmarks5.tolist() == [[60, 160], [140, 164], [100, 240], [70, 320], [130, 324]]
    assert dict(zip(LANDMARK_NAMES, face.landmarks5[:, 0].tolist(), strict=True)) == {
        "eye_left": 60,
        "eye_right": 140,
        "nose": 100,
        "mouth_left": 70,
        "mouth_right": 130,
    }
    assert face.width == 160 and face.height == 320 and face.area == 160 * 320 and face.center == (100, 240)


def test_post_processing_drops_boxes_that_cannot_be_in_the_image():
    raw = np.array(
        [
            raw_row((10, 10, 60, 60), 0.9),
            raw_row((-500, -500, -400, -400), 0.9),  # entirely outside
            raw_row((-1e22, -1e22, 1e22, 1e22), 0.9),  # far larger than the image
            raw_row((80, 80, 140, 140), 0.9),  # partly outside: kept
        ]
    )
    faces = faces_from_raw(raw, threshold=0.5, min_size=0, image_size=(100, 100), order="left_to_right")
    assert [face.box[0] for face in faces] == [10, 80]


def test_post_processing_refuses_malformed_input():
    assert faces_from_raw(np.zeros((0, 15))) == []
    with pytest.raises(ValueError, match="face order"):
        faces_from_raw(np.zeros((0, 15)), order="random")
    with pytest.raises(ValueError, match=r"\[N, 15\]"):
        faces_from_raw(np.zeros((3, 14)))
    with pytest.raises(ValueError, match="max_faces"):
        faces_from_raw(np.array([raw_row((0, 0, 50, 50), 0.99)]), max_faces=0)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((8000, 8000), (1280, 1280)), ((100, 50), (100, 50)), ((3000, 1000), (1280, 427)), ((1, 5000), (1, 1280))],
)
def test_detection_size(size, expected):
    assert detection_size(*size) == expected
