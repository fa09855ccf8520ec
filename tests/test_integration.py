"""The web UI's core side: settings-driven services and the restyle step that never fails generation."""

import contextlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from jojogan_ext import integration
from jojogan_ext.packs import save_pack

from tiny_models import astronaut


@pytest.fixture()
def services(tiny_models_dir, tmp_path, monkeypatch):
    """Services of a fresh web UI whose models/JoJoGAN holds the tiny base models and one pack."""
    monkeypatch.setattr(integration, "_SERVICES", {})
    extension = tmp_path / "extension"
    (extension / "models" / "base").mkdir(parents=True)  # what the extension ships: empty folders
    (extension / "models" / "base" / ".gitkeep").touch()
    models = tmp_path / "webui_models" / "JoJoGAN"
    models.mkdir(parents=True)
    (models / "base").symlink_to(tiny_models_dir / "base", target_is_directory=True)
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
    assert found.runtime.models_dir == tmp_path / "webui_models" / "JoJoGAN"  # the host's models folder
    settings |= {"jojogan_allow_download": True, "jojogan_models_dir": str(tmp_path / "elsewhere")}
    again = integration.services_from_settings(settings.get, extension, tmp_path / "webui_models", "cpu")
    assert again is found and found.runtime.allow_download  # live settings apply at once
    assert found.runtime.models_dir == tmp_path / "webui_models" / "JoJoGAN"  # the folder needs a restart
    settings |= {"jojogan_precision": "float16", "jojogan_max_image_megapixels": 2.5}
    integration.services_from_settings(settings.get, extension, tmp_path / "webui_models", "cpu")
    assert found.runtime.dtype == torch.float32  # half precision is for GPUs only
    assert found.runtime.image_limits.max_pixels == 2_500_000
    assert found.jobs.compact  # trained packs are saved compact unless the setting says otherwise
    settings |= {"jojogan_compact_packs": False}
    integration.services_from_settings(settings.get, extension, tmp_path / "webui_models", "cpu")
    assert not found.jobs.compact


def test_restyle_or_keep_never_raises(services, fixtures):
    found = services[0]
    image = astronaut(fixtures)
    assert found.restyle_or_keep(image, None) == (image, {}, "") and found.restyle_or_keep(image, None).note == ""
    assert found.restyle_or_keep(image, {"enabled": False, "pack": "ink"}) == (image, {}, "")
    kept, infotext, message = found.restyle_or_keep(image, {"pack": "ink", "strength": 5})
    assert kept is image and infotext == {} and message.startswith("Invalid RestyleArgs: strength")
    kept, _, message = found.restyle_or_keep(image, {"pack": "nope"})
    assert kept is image and "no style pack named 'nope'" in message
    outcome = found.restyle_or_keep(image, {"enabled": True})
    assert outcome.image is image and "No style pack was chosen" in outcome.message
    assert outcome.note == outcome.message  # nothing changed: the user is told why
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


def write(path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_the_extension_models_folder_is_adopted_without_losing_anything(tmp_path, monkeypatch):
    """A reinstall deletes the extension folder: files kept there by an earlier version move to <webui>/models/JoJoGAN."""
    monkeypatch.setattr(integration, "_SERVICES", {})
    old, webui_models = tmp_path / "extension" / "models", tmp_path / "webui_models"
    new = webui_models / "JoJoGAN"
    write(old / "base" / ".gitkeep", b"")
    write(old / "base" / "e4e_ffhq_encode.pt", b"old e4e")
    write(old / "styles" / "ink.safetensors", b"old ink")
    write(old / "styles" / "ink.preview.png", b"old ink preview")
    write(old / "styles" / "jojo.safetensors", b"jojo")
    write(old / "styles" / "jojo.preview.png", b"jojo preview")
    write(new / "styles" / "ink.safetensors", b"new ink")  # already adopted once: never overwritten
    (tmp_path / "elsewhere").mkdir()
    (old / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    logged = []
    found = integration.services_from_settings({}.get, old.parent, webui_models, "cpu", log=logged.append)
    assert found.runtime.models_dir == new
    assert (new / "base" / "e4e_ffhq_encode.pt").read_bytes() == b"old e4e"
    assert (new / "styles" / "jojo.safetensors").read_bytes() == b"jojo"
    assert (new / "styles" / "jojo.preview.png").read_bytes() == b"jojo preview"
    assert (new / "styles" / "ink.safetensors").read_bytes() == b"new ink"
    assert not (new / "styles" / "ink.preview.png").exists()  # a preview stays with its pack
    assert (old / "styles" / "ink.safetensors").read_bytes() == b"old ink"  # left, not deleted
    assert (old / "styles" / "ink.preview.png").read_bytes() == b"old ink preview"
    assert (old / "base" / ".gitkeep").exists() and (old / "linked").is_symlink()
    assert not (old / "base" / "e4e_ffhq_encode.pt").exists()  # moved
    (line,) = logged
    assert "Moved 3 files" in line and "Left 3" in line and "styles/ink.safetensors" in line and str(new) in line
    monkeypatch.setattr(integration, "_SERVICES", {})
    integration.services_from_settings({}.get, old.parent, webui_models, "cpu", log=logged.append)
    assert len(logged) == 2 and "Moved" not in logged[1]  # a second start moves nothing more


def test_a_models_folder_in_the_settings_adopts_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(integration, "_SERVICES", {})
    old = tmp_path / "extension" / "models"
    write(old / "styles" / "ink.safetensors")
    logged = []
    settings = {"jojogan_models_dir": str(tmp_path / "chosen")}
    found = integration.services_from_settings(settings.get, old.parent, tmp_path / "webui", "cpu", log=logged.append)
    assert found.runtime.models_dir == tmp_path / "chosen" and logged == []
    assert (old / "styles" / "ink.safetensors").exists()


def test_moving_across_file_systems_copies_then_removes(tmp_path, monkeypatch):
    """os.link and os.replace fail across devices (EXDEV); the move then copies through a temp file."""
    import errno
    import os

    from jojogan_ext import files

    def across_devices(real):
        def call(source, destination):
            if Path(source).is_relative_to(tmp_path / "old") and Path(destination).is_relative_to(tmp_path / "new"):
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
            return real(source, destination)

        return call

    monkeypatch.setattr(files.os, "link", across_devices(os.link))
    monkeypatch.setattr(files.os, "replace", across_devices(os.replace))
    write(tmp_path / "old" / "styles" / "a.safetensors", b"a")
    moved, left = files.move_missing_files(tmp_path / "old", tmp_path / "new")
    assert moved == [tmp_path / "old" / "styles" / "a.safetensors"] and left == []
    assert (tmp_path / "new" / "styles" / "a.safetensors").read_bytes() == b"a"
    assert not (tmp_path / "old" / "styles" / "a.safetensors").exists()
    assert [path.name for path in (tmp_path / "new" / "styles").iterdir()] == ["a.safetensors"]  # no temp left


def test_the_outcome_is_recorded_where_the_user_looks(services, fixtures):
    """Restyled: the infotext entries; unchanged: a note saying why (both also in the log)."""
    found = services[0]
    image = astronaut(fixtures)
    params, logged = {"Steps": "20"}, []
    found.restyle_or_keep(image, {"pack": "nope"}).record(params, logged.append)
    assert "no style pack named 'nope'" in params[integration.NOTE_LABEL] and params["Steps"] == "20"
    assert logged == [f"JoJoGAN: {params[integration.NOTE_LABEL]}"]
    params = {}
    integration.RestyleOutcome(image, {"JoJoGAN pack": "ink"}, "Restyled 1 face with 'ink'.").record(params, print)
    assert params == {"JoJoGAN pack": "ink"}
