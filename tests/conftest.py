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
