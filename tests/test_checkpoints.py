"""Checkpoint loaders: the real FFHQ layout, the fixture checkpoints, and every refusal."""

import json
import pickle
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from jojogan_ext.checkpoints import load_jojogan_style, load_stylegan2, read_torch_checkpoint
from jojogan_ext.errors import CheckpointError
from jojogan_ext.nn.stylegan2 import Discriminator, Generator


def shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in module.state_dict().items()}


def test_ffhq_config_f_layout_matches(fixtures):
    layouts = json.loads((fixtures / "stylegan2" / "ffhq1024_config_f_layouts.json").read_text())
    with torch.device("meta"):
        generator, discriminator = Generator(1024), Discriminator(1024)
    expected_g = {key: v["shape"] for key, v in layouts["generator_1024"]["keys"].items()}
    expected_d = {key: v["shape"] for key, v in layouts["discriminator_1024_rosinality"]["keys"].items()}
    assert shapes(generator) == expected_g
    assert list(shapes(generator)) == list(expected_g)  # state_dict order too
    assert shapes(discriminator) == expected_d
    assert generator.n_latent == layouts["generator_1024"]["n_latent"] == 18
    feature_shapes = layouts["discriminator_1024_jojogan_feature_layers"]["feature_shapes_for_batch1"]
    features = discriminator.features(torch.empty(1, 3, 1024, 1024, device="meta"))
    assert [list(f.shape) for f in features] == feature_shapes


def test_from_state_dict_infers_configuration():
    generator = Generator(128, style_dim=32, n_mlp=3, channel_max=24)
    rebuilt = Generator.from_state_dict(generator.state_dict())
    assert (rebuilt.size, rebuilt.style_dim, rebuilt.n_mlp, rebuilt.channels) == (128, 32, 3, generator.channels)
    w = torch.randn(1, generator.n_latent, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.synthesis(w), generator.synthesis(w), rtol=0, atol=0)
    discriminator = Discriminator(128, channel_max=24)
    assert shapes(Discriminator.from_state_dict(discriminator.state_dict())) == shapes(discriminator)


def test_pt_and_safetensors_checkpoints_agree(fixtures):
    folder = fixtures / "stylegan2"
    from_pt, from_st = load_stylegan2(folder / "tiny64_ckpt.pt"), load_stylegan2(folder / "tiny64_ckpt.safetensors")
    assert from_pt.latent_avg.shape == (64,)
    torch.testing.assert_close(from_pt.latent_avg, from_st.latent_avg)
    for a, b in ((from_pt.generator, from_st.generator), (from_pt.discriminator, from_st.discriminator)):
        for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), key
    assert not any(p.requires_grad for p in from_pt.generator.parameters())


@pytest.mark.parametrize("name", ["tiny64_jojo_style_after1step.pt", "tiny64_jojo_style_after1step.safetensors"])
def test_jojogan_style_renders_golden(fixtures, name):
    folder = fixtures / "stylegan2"
    manifest = json.loads((folder / "tiny64_manifest.json").read_text())["golden_f64"]
    generator = load_stylegan2(folder / "tiny64_ckpt.pt").generator
    generator.load_state_dict(load_jojogan_style(folder / name), strict=False)
    wplus = load_file(folder / "tiny64_inputs.safetensors")["wplus"]
    expected = load_file(folder / "tiny64_golden_f64.safetensors")["style_pack_img_wplus"]
    with torch.no_grad():
        image = generator.synthesis(wplus)
    atol = manifest["style_pack_img_wplus"]["recommended_atol_float32_impl"]
    torch.testing.assert_close(image.double(), expected, rtol=0, atol=atol)


@pytest.fixture()
def tiny_sd():
    generator, discriminator = Generator(16, style_dim=8, n_mlp=1, channel_max=4), Discriminator(16, channel_max=4)
    return generator.state_dict(), discriminator.state_dict()


def test_missing_keys_are_named(tmp_path, tiny_sd):
    g_sd, d_sd = tiny_sd
    del g_sd["to_rgb1.bias"]
    torch.save({"g_ema": g_sd, "d": d_sd}, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"broken\.pt.*1 missing tensors \(e\.g\. to_rgb1\.bias\)"):
        load_stylegan2(tmp_path / "broken.pt")


def test_wrong_shapes_are_named(tmp_path, tiny_sd):
    g_sd, d_sd = tiny_sd
    d_sd["final_linear.1.weight"] = torch.zeros(2, 4)
    torch.save({"g_ema": g_sd, "d": d_sd}, tmp_path / "shapes.pt")
    with pytest.raises(CheckpointError, match=r"final_linear\.1\.weight \(2, 4\) \(expected \(1, 4\)\)"):
        load_stylegan2(tmp_path / "shapes.pt")


def test_truncated_files_are_refused(tmp_path, fixtures):
    for name in ("tiny64_ckpt.pt", "tiny64_ckpt.safetensors"):
        data = (fixtures / "stylegan2" / name).read_bytes()
        truncated = tmp_path / name
        truncated.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
            load_stylegan2(truncated)


def test_foreign_files_are_refused(tmp_path):
    (tmp_path / "notes.pt").write_text("just some text")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_stylegan2(tmp_path / "notes.pt")
    save_file({"lora_unet_down.weight": torch.zeros(2)}, tmp_path / "lora.safetensors")
    with pytest.raises(CheckpointError, match="no generator tensors"):
        load_stylegan2(tmp_path / "lora.safetensors")
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no 'g_ema'"):
        load_stylegan2(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="neither 'g' nor 'g_ema'"):
        load_jojogan_style(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_torch_checkpoint(tmp_path / "absent.pt")


class Payload:
    """Unpickling this object would create a marker file: it must never happen."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"g_ema": Payload(str(marker))}, tmp_path / "evil.pt")
    with zipfile.ZipFile(tmp_path / "evil.pt") as archive:  # it really is a pickle with a code reference
        assert any(name.endswith("data.pkl") for name in archive.namelist())
    with pytest.raises(CheckpointError, match="Python objects other than tensors"):
        load_stylegan2(tmp_path / "evil.pt")
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps({"g": Payload(str(marker))}))
    with pytest.raises(CheckpointError):
        load_jojogan_style(tmp_path / "legacy.pt")
    assert not marker.exists()
