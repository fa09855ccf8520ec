"""Shared test fixtures: paths to the golden data in ../shared/fixtures."""

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """The golden data folder; tests that need it are skipped if it is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"golden fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A models folder whose base/ holds tiny StyleGAN2, e4e and RetinaFace files (written once)."""
    from tiny_models import write_tiny_models

    return write_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture()
def tiny_runtime(tiny_models_dir, tmp_path):
    """A CPU Runtime over the tiny base models with its own empty styles/ folder."""
    from jojogan_ext.runtime import Runtime

    models = tmp_path / "models"
    models.mkdir()
    (models / "base").symlink_to(tiny_models_dir / "base", target_is_directory=True)
    (models / "styles").mkdir()
    return Runtime(models, detector_network="retinaface_mobile0.25", verify_detector=False)  # random weights


@pytest.fixture()
def mean_face_runtime(tiny_runtime):
    """The tiny runtime with an inverter that records its calls and answers the mean face for every crop.

    For tests about the job around inversion: the tiny e4e is the slowest part of a job.
    """
    from jojogan_ext.runtime import Runtime

    base, inversions = tiny_runtime.base, []

    def mean_face(aligned: list) -> torch.Tensor:
        inversions.append(len(aligned))
        return base.latent_avg.expand(len(aligned), base.generator.n_latent, -1)  # [B, n_latent, style_dim]

    runtime = Runtime(
        tiny_runtime.models_dir, detector_network="retinaface_mobile0.25", base=base, inverter=mean_face,
        verify_detector=False,
    )  # fmt: skip
    runtime.inversions = inversions
    return runtime
