"""Heavy work takes turns on the device: concurrent restyles run one at a time (on the runtime's device
worker), a training lets restyles in between its steps, and whoever waited says so."""

import threading
import time

import pytest

from jojogan_ext.args import RestyleArgs, TrainArgs
from jojogan_ext.faces.detect import Face
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.restyle import Restyler

from tiny_models import astronaut, astronaut_landmarks, save_styled_pack


@pytest.fixture()
def restyle_once(mean_face_runtime, fixtures):
    """A function restyling the astronaut's face with pack 'bold'; the runtime's inverter tracks overlap."""
    runtime = mean_face_runtime
    save_styled_pack(runtime)
    face = Face(box=(175.0, 76.0, 265.0, 166.0), score=0.99, landmarks5=astronaut_landmarks(fixtures))
    image, restyler = astronaut(fixtures), Restyler(runtime)
    running, overlap, invert = [], [], runtime._inverter

    def tracked(aligned):
        running.append(1)
        overlap.append(len(running))
        time.sleep(0.05)  # long enough for the others to pile up
        running.pop()
        return invert(aligned)

    runtime._inverter = tracked
    restyle = lambda: restyler.restyle(image, RestyleArgs(pack="bold"), faces=[face])  # noqa: E731
    restyle.overlap = overlap
    return restyle


def test_concurrent_restyles_run_one_at_a_time(restyle_once):
    results = []
    threads = [threading.Thread(target=lambda: results.append(restyle_once())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and max(restyle_once.overlap) == 1


def test_a_restyle_does_not_wait_for_a_whole_training(mean_face_runtime, restyle_once, fixtures):
    jobs = TrainingJobs(mean_face_runtime)
    job = jobs.start([astronaut(fixtures)], TrainArgs(name="long", iterations=2000, references_are_aligned=True))
    try:
        while job.step < 2:
            time.sleep(0.02)
        result = restyle_once()  # between two training steps
        assert job.active and job.step < job.total, job.state
        assert result.message.startswith("Restyled 1 face with 'bold'.")
    finally:
        jobs.cancel(job.id)
        jobs.wait(job.id, timeout=60)


def test_work_already_on_the_device_runs_inline(mean_face_runtime):
    (thread, waited), _ = mean_face_runtime.on_device(lambda: mean_face_runtime.on_device(threading.current_thread))
    assert thread.name.startswith("jojogan-device") and waited == 0.0  # no deadlock: the same worker ran it
