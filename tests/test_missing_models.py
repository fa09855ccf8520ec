"""Every front names every model file a job is missing, at once, before the job starts (not one per attempt)."""

import os
import subprocess
import sys

import pytest
from PIL import Image
from test_api import make_client, url

from jojogan_ext.args import RestyleArgs, TrainArgs
from jojogan_ext.errors import MissingWeightsError
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.packs import save_pack
from jojogan_ext.restyle import Restyler
from jojogan_ext.runtime import BASE_FILE, E4E_FILE, VGG_FILE, Runtime
from jojogan_ext.train import finetune
from jojogan_ext.ui import TabHandlers

from conftest import REPO
from tiny_models import tiny_generator

DETECTOR_FILE = "detection_Resnet50_Final.pth"  # no package ships it, so it is always a file to fetch
ALL_FOR_RESTYLING = (BASE_FILE, E4E_FILE, DETECTOR_FILE)


@pytest.fixture()
def empty(tmp_path) -> Runtime:
    """A runtime whose models folder holds one style pack file and no model files, downloads off."""
    return Runtime(tmp_path / "models", detector_network="retinaface_resnet50")


def listed(message: str) -> set[str]:
    """The file names a missing-files message lists, one per line."""
    return {line.split()[1] for line in message.splitlines() if line.startswith("  - ")}


def portrait() -> Image.Image:
    return Image.new("RGB", (64, 64), (200, 150, 120))


def test_restyling_names_the_generator_the_encoder_and_the_detector(empty, tmp_path):
    generator = tiny_generator()
    save_pack(
        empty.packs.new_path("ink"), generator, base=generator, title="ink"
    )  # the pack is there, the models are not
    with pytest.raises(MissingWeightsError) as error:
        Restyler(empty).restyle(portrait(), RestyleArgs(pack="ink"))
    assert listed(str(error.value)) == set(ALL_FOR_RESTYLING)
    assert str(tmp_path / "models" / "base") in str(error.value) and "381.5 MB" in str(error.value)


@pytest.mark.parametrize(
    "args, expected",
    [
        (TrainArgs(), {BASE_FILE, E4E_FILE, DETECTOR_FILE}),
        (TrainArgs(references_are_aligned=True), {BASE_FILE, E4E_FILE}),
        (TrainArgs(references_are_aligned=True, loss="lpips"), {BASE_FILE, E4E_FILE, VGG_FILE}),
        (TrainArgs(identity_weight=1.0), {BASE_FILE, E4E_FILE, DETECTOR_FILE, VGG_FILE}),
    ],
)
def test_training_names_everything_its_options_need(empty, args, expected):
    with pytest.raises(MissingWeightsError) as error:
        finetune(empty, [portrait()], args, test_face=portrait())
    assert listed(str(error.value)) == expected
    with pytest.raises(MissingWeightsError) as error:  # the job refuses before it starts a thread
        TrainingJobs(empty).start([portrait()], args, test_face=portrait())
    assert listed(str(error.value)) == expected


def test_the_ui_prepare_button_lists_every_missing_file(empty, tmp_path):
    reference = tmp_path / "reference.png"
    portrait().save(reference)
    status, _ = TabHandlers(empty, TrainingJobs(empty)).prepare([str(reference)], None, True)
    assert status.startswith("⚠️ 2 model files are missing") and listed(status) == {BASE_FILE, E4E_FILE}
    status, _ = TabHandlers(empty, TrainingJobs(empty)).prepare([str(reference)], None, False)
    assert listed(status) == {BASE_FILE, E4E_FILE, DETECTOR_FILE}


def test_the_api_answers_503_with_every_missing_file(empty):
    import base64
    import io

    buffer = io.BytesIO()
    portrait().save(buffer, "PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    client = make_client(empty, TrainingJobs(empty))
    answer = client.post(url("train"), json={"references": [image], "args": {"references_are_aligned": True}})
    assert answer.status_code == 503 and listed(answer.json()["detail"]) == {BASE_FILE, E4E_FILE}


def test_the_cli_lists_every_missing_file(tmp_path):
    reference = tmp_path / "reference.png"
    portrait().save(reference)
    command = [sys.executable, "-m", "jojogan_ext", "--models-dir", str(tmp_path / "models"), "--device", "cpu",
               "--detector", "retinaface_resnet50", "train", str(reference), "--name", "ink"]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}
    )
    assert result.returncode == 1 and result.stderr.startswith("error: 3 model files are missing"), result.stderr
    assert listed(result.stderr) == {BASE_FILE, E4E_FILE, DETECTOR_FILE}
