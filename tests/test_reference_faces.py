"""Which face of a multi-face reference trains: the documented order (largest first), the user's pick, and
the choice said back to the user (job status, API, pack metadata)."""

import json

import numpy as np
import pytest

from jojogan_ext.args import TrainArgs
from jojogan_ext.errors import JojoganError
from jojogan_ext.faces.align import align_face
from jojogan_ext.faces.detect import Face, order_faces
from jojogan_ext.jobs import TrainingJobs

from tiny_models import astronaut, astronaut_landmarks


@pytest.fixture()
def group_photo(tiny_runtime, fixtures, monkeypatch):
    """The astronaut, 'detected' as a large face and a smaller one that scores higher (as on real group photos).

    Only the detector's output is given (its weights here are random); ordering and choosing are the code's own.
    """
    landmarks = astronaut_landmarks(fixtures)
    large = Face(box=(175.0, 76.0, 265.0, 166.0), score=0.97, landmarks5=landmarks)
    centre = landmarks.mean(axis=0)
    small = Face(box=(200.0, 100.0, 240.0, 140.0), score=0.999, landmarks5=centre + (landmarks - centre) * 0.5)
    monkeypatch.setattr(tiny_runtime, "detect", lambda image: order_faces([small, large]))
    return astronaut(fixtures), large, small


def test_the_largest_face_trains_by_default_and_another_on_request(tiny_runtime, group_photo):
    image, large, small = group_photo
    size = tiny_runtime.align_size
    for index, face in ((0, large), (1, small)):
        (chosen,) = tiny_runtime.align_references([image], False, index)
        expected = align_face(image, face.landmarks5, size).image
        assert np.array_equal(np.asarray(chosen.image), np.asarray(expected))
        assert (chosen.face_index, chosen.face_count) == (index, 2)
    with pytest.raises(JojoganError, match="Reference 1 shows 2 faces, so there is no face 2"):
        tiny_runtime.align_references([image], False, 2)


def test_the_job_says_which_face_trained(tiny_runtime, group_photo):
    image, _, _ = group_photo
    jobs = TrainingJobs(tiny_runtime)
    job = jobs.wait(jobs.start([image], TrainArgs(name="group", iterations=1, reference_face=1)).id, timeout=120)
    assert job.state == "done", job.message
    assert job.summary()["faces"] == ["reference 1: face 1 of 2 (by size, 0 = the largest)"]
    assert "face 1 of 2" in job.message
    training = json.loads(tiny_runtime.packs.load("group").metadata["jojogan.training"])
    assert training["reference_faces"] == job.faces
