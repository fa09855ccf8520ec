"""Face detection: facexlib's RetinaFace turned into `Face` records in original-image pixels.

The caller hands over the weights file (weights.py finds or downloads it); this module never
downloads. Raw-output post-processing is a pure function, testable on hand-built arrays.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from jojogan_ext.errors import CheckpointError, MissingWeightsError
from jojogan_ext.images import to_rgb

FaceOrder = Literal["largest", "left_to_right", "score"]
FACE_ORDERS: tuple[str, ...] = ("largest", "left_to_right", "score")
# Landmark rows of `Face.landmarks5`, as RetinaFace predicts them; "left" is the image's left.
LANDMARK_NAMES = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")
# network name -> (facexlib's RetinaFace network_name, the weights file facexlib publishes for it)
NETWORKS: dict[str, tuple[str, str]] = {
    "retinaface_resnet50": ("resnet50", "detection_Resnet50_Final.pth"),
    "retinaface_mobile0.25": ("mobile0.25", "detection_mobilenet0.25_Final.pth"),
}
# "auto" picks per device type (README, Performance: MobileNet-0.25 is ~9x faster than ResNet-50 on a
# 2-core CPU and finds the same faces in our real-photo tests; on a GPU both take milliseconds, so the
# larger network's better recall on small and tilted faces is free there).
AUTO = "auto"
AUTO_NETWORKS: dict[str, str] = {"cpu": "retinaface_mobile0.25"}  # device type -> network; others: ResNet-50
AUTO_FALLBACK = "retinaface_resnet50"
DETECTOR_CHOICES: tuple[str, ...] = (AUTO, *NETWORKS)  # what the setting, the CLI and Runtime accept
DEFAULT_NETWORK = AUTO
# Images are downscaled so their longer side is at most this before detection (RetinaFace's largest
# anchors are 512 px, so faces stay well inside its range); coordinates are mapped back.
DEFAULT_MAX_SIDE = 1280
DEFAULT_THRESHOLD = 0.9
DEFAULT_MIN_SIZE = 16.0
NMS_THRESHOLD = 0.4
# One facexlib row: x1, y1, x2, y2, score, then (x, y) of the five landmarks in LANDMARK_NAMES order.
RAW_COLUMNS = 15


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face in original-image pixels (x right, y down)."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    landmarks5: np.ndarray  # [5, 2] (x, y) rows in LANDMARK_NAMES order

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        """Box centre (x, y)."""
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


def order_faces(faces: Sequence[Face], order: FaceOrder = "largest") -> list[Face]:
    """THE face order used everywhere (detection, restyling, references, API answers).

    "largest": box area descending (ties: higher score, then left to right); "left_to_right": box
    centre x ascending (ties: top to bottom); "score": confidence descending (ties: larger first).
    """
    if order == "largest":
        return sorted(faces, key=lambda face: (-face.area, -face.score, face.center))
    if order == "left_to_right":
        return sorted(faces, key=lambda face: (face.center, -face.area))
    if order == "score":
        return sorted(faces, key=lambda face: (-face.score, -face.area, face.center))
    raise ValueError(f"face order must be one of {FACE_ORDERS}, not {order!r}")


def faces_from_raw(
    raw: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_size: float = DEFAULT_MIN_SIZE,
    max_faces: int | None = None,
    order: FaceOrder = "largest",
    scale: float | tuple[float, float] = 1.0,
    image_size: tuple[int, int] | None = None,
) -> list[Face]:
    """Faces from facexlib's `detect_faces` rows [N, 15], filtered, ordered and cut to `max_faces`.

    `scale` is the factor (x, y) the image was resized by before detection; coordinates are divided by
    it. A face is kept when score >= threshold, all values are finite, the box is not empty and its
    shorter side is >= min_size original pixels; with `image_size` (width, height) the box must also
    overlap the image and be at most twice its width and height (no visible face is larger).
    """
    if order not in FACE_ORDERS:
        raise ValueError(f"face order must be one of {FACE_ORDERS}, not {order!r}")
    if max_faces is not None and max_faces < 1:
        raise ValueError(f"max_faces must be None or >= 1, not {max_faces}")
    raw = np.asarray(raw, dtype=np.float64)
    if raw.size == 0:
        return []
    if raw.ndim != 2 or raw.shape[1] != RAW_COLUMNS:
        raise ValueError(f"raw detections must have shape [N, {RAW_COLUMNS}], not {list(raw.shape)}")
    scale_x, scale_y = (scale, scale) if isinstance(scale, int | float) else scale
    per_column = np.array([scale_x, scale_y, scale_x, scale_y, 1.0] + [scale_x, scale_y] * 5)
    rows = raw / per_column  # [N, 15] in original pixels
    faces = []
    for row in rows:
        face = Face(
            box=(float(row[0]), float(row[1]), float(row[2]), float(row[3])),
            score=float(row[4]),
            landmarks5=row[5:].reshape(5, 2).copy(),
        )
        face.landmarks5.flags.writeable = False
        if (
            np.isfinite(row).all()
            and face.score >= threshold
            and min(face.width, face.height) >= min_size
            and (image_size is None or _fits_image(face.box, image_size))
        ):
            faces.append(face)
    faces = order_faces(faces, order)
    return faces if max_faces is None else faces[:max_faces]


def _fits_image(box: tuple[float, float, float, float], image_size: tuple[int, int]) -> bool:
    """Whether a box overlaps the image and is at most twice its size on each axis."""
    width, height = image_size
    x1, y1, x2, y2 = box
    overlaps = x1 < width and y1 < height and x2 > 0 and y2 > 0
    return overlaps and x2 - x1 <= 2 * width and y2 - y1 <= 2 * height


def resolve_network(choice: str, device: str | torch.device) -> str:
    """The network a detector choice means on `device` ("auto": by device type, see AUTO_NETWORKS)."""
    if choice == AUTO:
        return AUTO_NETWORKS.get(torch.device(device).type, AUTO_FALLBACK)
    if choice not in NETWORKS:
        raise ValueError(f"network must be one of {DETECTOR_CHOICES}, not {choice!r}")
    return choice


def detection_size(width: int, height: int, max_side: int = DEFAULT_MAX_SIDE) -> tuple[int, int]:
    """The size an image is resized to before detection: longer side at most `max_side`, aspect kept."""
    factor = min(1.0, max_side / max(width, height))
    return (max(1, round(width * factor)), max(1, round(height * factor)))


class FaceDetector:
    """facexlib's RetinaFace, built from a weights file the caller located; one `detect` at a time.

    `network` is a key of NETWORKS or "auto" (resolved for `device` by `resolve_network`).

    Raises MissingWeightsError when the file is absent and CheckpointError when it is unreadable or
    belongs to another network.
    """

    def __init__(
        self,
        weights: Path,
        *,
        network: str = DEFAULT_NETWORK,
        device: str | torch.device = "cpu",
        max_side: int = DEFAULT_MAX_SIDE,
    ) -> None:
        if max_side < 32:
            raise ValueError(f"max_side must be >= 32 pixels, not {max_side}")
        self.device = torch.device(device)
        network = resolve_network(network, self.device)
        self.network_name = network
        self.weights = Path(weights)
        self.max_side = max_side
        self.network = _load_retinaface(self.weights, network, self.device)

    def detect(
        self,
        image: Image.Image,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        min_size: float = DEFAULT_MIN_SIZE,
        max_faces: int | None = None,
        order: FaceOrder = "largest",
    ) -> list[Face]:
        """Faces in `image` (any mode; EXIF orientation applied first), ordered by `order_faces`.

        Coordinates refer to the upright image `images.to_rgb(image)`; no face gives [].
        """
        rgb = to_rgb(image)
        size = detection_size(rgb.width, rgb.height, self.max_side)
        small = rgb if size == rgb.size else rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
        with torch.inference_mode():
            # RetinaFace.detect_faces converts a PIL RGB image to BGR itself and runs NMS.
            raw = self.network.detect_faces(
                small, conf_threshold=threshold, nms_threshold=NMS_THRESHOLD, use_origin_size=True
            )  # [N, 15]
        return faces_from_raw(
            raw,
            threshold=threshold,
            min_size=min_size,
            max_faces=max_faces,
            order=order,
            scale=(small.width / rgb.width, small.height / rgb.height),
            image_size=rgb.size,
        )


def _load_retinaface(weights: Path, network: str, device: torch.device) -> torch.nn.Module:
    """Build facexlib's RetinaFace for `network` and load `weights` into it (no download)."""
    network_name, expected_file = NETWORKS[network]
    if not weights.is_file():
        raise MissingWeightsError(
            f"Face detector weights not found: {weights} (the {network} detector needs {expected_file}); "
            "download them or put the file there."
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"Face detector weights {weights} could not be read ({error}); delete the file and download it again."
        ) from error
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointError(f"Face detector weights {weights} are not a state dict of tensors; use {expected_file}.")
    # Checkpoints saved from DataParallel prefix every key with "module.", as facexlib strips too.
    state = {key.removeprefix("module."): value for key, value in state.items()}
    from facexlib.detection.retinaface import RetinaFace  # heavy import (cv2, all of facexlib): load on use

    model = RetinaFace(network_name=network_name, half=False, phase="test", device=device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise CheckpointError(
            f"Face detector weights {weights} do not fit the {network} network ({first_line}); "
            f"use {expected_file} or pick the matching network."
        ) from error
    return model.eval().to(device)
