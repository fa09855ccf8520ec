"""Trust in a face detector file: its catalog sha256, or else a behavioural self-check on a shipped portrait.

A detector file placed by hand is only known by its name; a same-size network trained with other anchors
loads strictly and still finds eight "faces" in a portrait. So a file whose sha256 is not the catalog's must
find exactly one face in `selfcheck_portrait.png` with its five landmarks where they belong, once per file:
the verdict is kept in a small JSON file (by path, size and mtime, then by sha256). Never downloads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from jojogan_ext.errors import CheckpointError
from jojogan_ext.faces.detect import FaceDetector
from jojogan_ext.files import atomic_write_bytes

# The astronaut (Eileen Collins, NASA, public domain; scikit-image's `astronaut.png`), cropped to
# (100, 0)-(340, 240) and resized to 160 px. Her five landmarks there (eye_left, eye_right, nose,
# mouth_left, mouth_right), from dlib's 68 points scaled into the crop.
PORTRAIT = Path(__file__).with_name("selfcheck_portrait.png")
PORTRAIT_LANDMARKS = np.array([[68.8, 67.7], [97.7, 69.4], [83.3, 84.7], [67.3, 92.7], [97.3, 94.0]])
# A landmark may be this far from where it belongs, as a fraction of the eye distance (~29 px): dlib's
# and RetinaFace's points differ by a few pixels; a wrongly anchored network misses by the face's size.
LANDMARK_TOLERANCE = 0.35
# Faces are counted from this score on: below the everyday 0.9, so that a sound network whose score on
# a 160-px portrait is a little lower still finds its one face, while a wrongly anchored one's extra
# "faces" still count.
SELF_CHECK_THRESHOLD = 0.6
SELF_CHECK_VERSION = "1"


def self_check_problem(detector: FaceDetector) -> str | None:
    """None when `detector` finds exactly one face in the shipped portrait with landmarks where expected.

    Otherwise what went wrong, as the end of a sentence ("it finds 8 faces in …").
    """
    with Image.open(PORTRAIT) as portrait:
        faces = detector.detect(portrait.convert("RGB"), threshold=SELF_CHECK_THRESHOLD)
    if len(faces) != 1:
        return f"it finds {len(faces)} faces in a portrait that shows one"
    eye_distance = float(np.linalg.norm(PORTRAIT_LANDMARKS[1] - PORTRAIT_LANDMARKS[0]))
    misses = np.linalg.norm(faces[0].landmarks5 - PORTRAIT_LANDMARKS, axis=1) / eye_distance
    if not np.all(misses <= LANDMARK_TOLERANCE):
        return (
            f"its landmarks miss the portrait's eyes, nose and mouth by up to {misses.max():.1f} eye distances "
            f"(at most {LANDMARK_TOLERANCE} allowed)"
        )
    return None


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class DetectorVerdicts:
    """The self-check verdicts of detector files, kept in one JSON file so each file is checked once."""

    record: Path  # e.g. <models>/base/detector_checks.json

    def require_sound(self, detector: FaceDetector, catalog_sha256: str | None) -> None:
        """Return when `detector`'s file is the catalog's (by sha256) or passes the self-check; else CheckpointError.

        The self-check runs once per file: the verdict is looked up by path, size and mtime (no hashing),
        then by sha256 (a copy or a touched file), and only then computed and recorded.
        """
        path = detector.weights
        stat = path.stat()
        entries = self._read()
        place = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        entry = next((e for e in entries if {k: e.get(k) for k in place} == place), None)
        if entry is None:
            sha256 = file_sha256(path)
            known = next((e for e in entries if e.get("sha256") == sha256), None)
            if sha256 == catalog_sha256:
                problem = None
            elif known is not None:
                problem = known.get("problem")
            else:
                problem = self_check_problem(detector)
            entry = {**place, "sha256": sha256, "problem": problem}
            self._write([e for e in entries if e.get("path") != place["path"]] + [entry])
        if entry.get("problem"):
            raise CheckpointError(
                f"The face detector {path.name} failed its self-check: {entry['problem']}; it is not the "
                f"{detector.network_name} network it is named for. Replace it with the original file "
                "(delete it and download it again)."
            )

    def _read(self) -> list[dict]:
        try:
            data = json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent or damaged: check again
            return []
        if not isinstance(data, dict) or data.get("version") != SELF_CHECK_VERSION:
            return []
        entries = data.get("files")
        return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []

    def _write(self, entries: list[dict]) -> None:
        data = {"version": SELF_CHECK_VERSION, "files": entries[-64:]}
        with contextlib.suppress(OSError):  # a read-only models folder: the check simply runs again next time
            atomic_write_bytes(self.record, json.dumps(data, indent=1).encode())
