"""The web UI's core side: settings-driven services and the restyle step that never fails generation."""

import contextlib

import pytest
import torch
from PIL import Image

from jojogan_ext import integration
from jojogan_ext.packs import save_pack

from tiny_models import astronaut


@pytest.fixture()
def services(tiny_models_dir, tmp_path, monkeypatch):
    """Services for a fresh extension folder whose models/ holds the tiny base models and one pack."""
    monkeypatch.setattr(integration, "_SERVICES", {})
    extension = tmp_path / "extension"
    (extension / "models").mkdir(parents=True)
    (extension / "models" / "base").symlink_to(tiny_models_dir / "base", target_is_directory=True)
    # the tiny detector has random weights: it would fail the detector self-check
    settings = {
        "jojogan_detector": "retinaface_mobile0.25",
        "jojogan_allow_download": False,
        "jojogan_check_detector": False,
    }
    found = integration.services_from_settings(settings.get, extension, tmp_path / "webui_models", "cpu")
    base = found.runtime.base.generator
    save_pack(found.runtime.packs.new_path("ink"), base, base=base, title="ink")
    return found, settings, extension


def test_one_services_object_follows_the_settings(services, tmp_path):
    found, settings, extension = services
    assert found.runtime.detector_network == "retinaface_mobile0.25" and not found.runtime.allow_download
    settings |= {"jojogan_allow_download": True, "jojogan_models_dir": str(tmp_path / "elsewhere")}
    again = integration.services_from_settings(settings.get, extension, tmp_path / "webui_models", "cpu")
    assert again is found and found.runtime.allow_download  # live settings apply at once
    assert found.runtime.models_dir == extension / "models"  # the folder needs a restart
    settings |= {"jojogan_precision": "float16", "jojogan_max_image_megapixels": 2.5}
    integration.services_from_settings(settings.get, extension, tmp_path / "webui_models", "cpu")
    assert found.runtime.dtype == torch.float32  # half precision is for GPUs only
    assert found.runtime.image_limits.max_pixels == 2_500_000


def test_restyle_or_keep_never_raises(services, fixtures):
    found = services[0]
    image = astronaut(fixtures)
    assert found.restyle_or_keep(image, None) == (image, {}, "")
    assert found.restyle_or_keep(image, {"enabled": False, "pack": "ink"}) == (image, {}, "")
    kept, infotext, message = found.restyle_or_keep(image, {"pack": "ink", "strength": 5})
    assert kept is image and infotext == {} and message.startswith("Invalid RestyleArgs: strength")
    kept, _, message = found.restyle_or_keep(image, {"pack": "nope"})
    assert kept is image and "no style pack named 'nope'" in message
    kept, _, message = found.restyle_or_keep(image, {"enabled": True})
    assert kept is image and "No style pack was chosen" in message
    kept, infotext, message = found.restyle_or_keep(image, {"strength": 0.5}, default_pack="ink")
    assert kept.size == image.size and ("'ink'" in message or "No face" in message)  # the default pack is used


def test_install_hooks_reach_the_training_jobs(services):
    found = services[0]
    calls = []
    found.install_hooks(exclusive=contextlib.nullcontext, before=lambda: calls.append("before"))
    assert found.jobs.before is not None and found.exclusive is contextlib.nullcontext
    found.jobs.before()
    assert calls == ["before"]


def test_failures_inside_restyling_keep_the_image(services, monkeypatch):
    found = services[0]
    image = Image.new("RGB", (32, 32))

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(found.restyler, "restyle", out_of_memory)
    kept, infotext, message = found.restyle_or_keep(image, {"pack": "ink"})
    assert kept is image and infotext == {} and "RuntimeError: CUDA out of memory" in message
