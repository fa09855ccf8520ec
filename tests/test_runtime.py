"""Runtime: lazy loading through the real files, conversion caches, unload, LPIPS backbone, offline errors."""

import pytest
import torch
import torchvision

from jojogan_ext.errors import CheckpointError, JojoganError, MissingWeightsError
from jojogan_ext.runtime import Runtime, lpips_model

from tiny_models import N_LATENT, STYLE_DIM, tiny_discriminator, tiny_generator


def test_models_load_once_and_unload(tiny_runtime):
    base = tiny_runtime.base
    assert tiny_runtime.base is base  # loaded once
    assert base.generator.size == 64 and base.discriminator is not None
    assert not any(p.requires_grad for p in base.generator.parameters())
    fingerprint = tiny_runtime.base_fingerprint
    tiny_runtime.unload()
    assert tiny_runtime.base is not base and tiny_runtime.base_fingerprint == fingerprint


def test_invert_fits_the_generator(tiny_runtime, fixtures):
    from PIL import Image

    face = Image.open(fixtures / "align" / "A_full_256.png")
    w_plus = tiny_runtime.invert([face, face])
    assert w_plus.shape == (2, N_LATENT, STYLE_DIM) and torch.isfinite(w_plus).all()
    torch.testing.assert_close(w_plus[0], w_plus[1])


def test_rosinality_pt_is_converted_once(tmp_path):
    base = tmp_path / "models" / "base"
    base.mkdir(parents=True)
    generator, discriminator = tiny_generator(), tiny_discriminator()
    checkpoint = {"g_ema": generator.state_dict(), "g": generator.state_dict(), "d": discriminator.state_dict()}
    torch.save(checkpoint | {"latent_avg": torch.zeros(STYLE_DIM)}, base / "stylegan2-ffhq-config-f.pt")
    runtime = Runtime(tmp_path / "models")
    loaded = runtime.base
    cache = base / "stylegan2-ffhq-config-f.safetensors"
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns
    for key, value in generator.state_dict().items():
        assert torch.equal(loaded.generator.state_dict()[key], value), key
    runtime.unload()
    runtime.base  # noqa: B018 (loads again, from the cache)
    assert cache.stat().st_mtime_ns == stamp


def test_missing_files_give_one_message(tmp_path):
    runtime = Runtime(tmp_path / "empty")
    with pytest.raises(MissingWeightsError) as error:
        runtime.base  # noqa: B018
    assert "stylegan2-ffhq-config-f.pt" in str(error.value) and "381.5 MB" in str(error.value)
    assert str(tmp_path / "empty" / "base") in str(error.value)
    with pytest.raises(JojoganError, match="Unknown face detector"):
        Runtime(tmp_path, detector_network="dlib").detector  # noqa: B018


def test_lpips_takes_the_vgg16_backbone():
    vgg = torchvision.models.vgg16(weights=None).state_dict()
    model = lpips_model(vgg)
    assert torch.equal(model.net.slice1.get_submodule("0").weight, vgg["features.0.weight"])
    assert torch.equal(model.net.slice5.get_submodule("28").bias, vgg["features.28.bias"])
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert model(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert model(x, -x).item() > 0
    del vgg["features.10.weight"]
    with pytest.raises(CheckpointError, match=r"features\.10\.weight"):
        lpips_model(vgg)
