"""e4e: parity with the golden data, the real checkpoint layout, the safetensors cache, and every refusal."""

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from jojogan_ext.checkpoints import load_e4e, save_e4e_cache
from jojogan_ext.errors import CheckpointError
from jojogan_ext.nn.e4e import Encoder4Editing

from e4e_golden import golden_latent_avg, golden_state_dict, read_manifest

SMALL_STYLEGAN_SIZE = 8  # opts["stylegan_size"] of the small checkpoints → 2·log2(8) − 2 = 4 styles
FEATURES = ("c1", "c2", "c3", "p2", "p1")


@pytest.fixture(scope="module")
def manifest(fixtures) -> dict:
    return read_manifest(fixtures)


@pytest.fixture(scope="module")
def tolerance(manifest) -> dict:
    # the manifest recommends assert_close(rtol=1e-4, atol=5e-4) for float32 runs; read it so both stay in step
    recommended = manifest["tolerance"]["recommended"]
    assert "rtol=1e-4, atol=5e-4" in recommended
    return {"rtol": 1e-4, "atol": 5e-4}


@pytest.fixture(scope="module")
def expected(fixtures) -> dict[str, torch.Tensor]:
    return load_file(fixtures / "e4e" / "expected.safetensors")


@pytest.fixture(scope="class")
def golden_checkpoint(manifest, tmp_path_factory) -> Iterator[Path]:
    """The golden weights written once in the real layout: {state_dict: encoder.* + decoder.*, latent_avg, opts}."""
    state_dict = golden_state_dict(manifest)
    state_dict["decoder.style.1.weight"] = torch.randn(512, 512)  # a few stand-ins for the 30 M decoder tensors
    state_dict["decoder.input.input"] = torch.randn(1, 512, 4, 4)
    path = tmp_path_factory.mktemp("e4e") / "e4e_ffhq_encode.pt"
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": 1024, "start_from_latent_avg": True}
    torch.save({"state_dict": state_dict, "latent_avg": golden_latent_avg(manifest), "opts": opts}, path)
    del state_dict
    yield path
    path.unlink(missing_ok=True)  # 1 GB: do not leave it in pytest's kept temp folders


@pytest.fixture(scope="class")
def golden(golden_checkpoint) -> tuple[Encoder4Editing, torch.Tensor]:
    return load_e4e(golden_checkpoint)


@pytest.fixture(scope="class")
def golden_run(golden, fixtures) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Pyramid features and codes of the golden inputs [2,3,256,256], float32, eval, no grad."""
    encoder, _ = golden
    images = load_file(fixtures / "e4e" / "inputs.safetensors")["images"]
    with torch.no_grad():
        features = encoder.forward_features(images)
        codes = encoder.style_codes(features)
    return features, codes


def test_module_has_the_checkpoint_keys_and_shapes(manifest):
    with torch.device("meta"):
        encoder = Encoder4Editing()
    expected = {entry["key"].removeprefix("encoder."): entry["shape"] for entry in manifest["keys"]}
    actual = {key: list(value.shape) for key, value in encoder.state_dict().items()}
    assert actual == expected
    assert len(actual) == manifest["state_dict"]["num_keys"] == 621
    assert sum(p.numel() for p in encoder.state_dict().values()) == manifest["state_dict"]["num_elements"]
    assert all(t.is_meta for t in encoder.state_dict().values())  # built without allocating weights


class TestGoldenParity:
    """The golden weights through the real checkpoint layout; the 1 GB model lives only as long as this class."""

    def test_loaded_weights_follow_the_fill_rule(self, golden, manifest):
        encoder, _ = golden
        state_dict = encoder.state_dict()
        assert set(state_dict) == {entry["key"].removeprefix("encoder.") for entry in manifest["keys"]}  # no decoder
        for entry in manifest["keys"]:
            value = state_dict[entry["key"].removeprefix("encoder.")]
            assert str(value.dtype) == f"torch.{entry['dtype']}"
            assert math.isclose(value.double().sum().item(), entry["check_sum_f64"], rel_tol=1e-6, abs_tol=1e-9), entry
            first3 = torch.tensor(entry["check_first3"], dtype=torch.float64)
            torch.testing.assert_close(value.flatten()[:3].double(), first3, rtol=1e-6, atol=0)
        assert not encoder.training
        assert not any(p.requires_grad or p.is_meta for p in encoder.parameters())

    @pytest.mark.parametrize("name", FEATURES)
    def test_pyramid_features_match(self, golden_run, expected, tolerance, name):
        features, _ = golden_run
        spatial_mean = features[name].mean(dim=(2, 3))  # [2, C]
        torch.testing.assert_close(spatial_mean, expected[f"{name}_spatial_mean"], **tolerance)

    def test_codes_match(self, golden_run, expected, tolerance):
        _, codes = golden_run
        assert codes.shape == (2, 18, 512)
        torch.testing.assert_close(codes[:, 0], expected["w0"], **tolerance)
        torch.testing.assert_close(codes, expected["codes"], **tolerance)
        torch.testing.assert_close(codes.double(), expected["codes_fp64"], **tolerance)

    def test_codes_plus_latent_avg_match(self, golden, golden_run, expected, tolerance):
        _, latent_avg = golden
        _, codes = golden_run
        assert torch.equal(latent_avg, expected["latent_avg"])  # [18, 512] rows differ: kept as stored
        torch.testing.assert_close(codes + latent_avg, expected["codes_plus_latent_avg"], **tolerance)


# --- small checkpoints (4 styles, float16 on disk) for the layouts and refusals ---


@pytest.fixture(scope="module")
def small() -> tuple[Encoder4Editing, torch.Tensor]:
    torch.manual_seed(0)
    encoder = Encoder4Editing(n_styles=4).eval().requires_grad_(False)
    for module in encoder.modules():  # non-trivial BatchNorm statistics, so a dropped buffer would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.num_batches_tracked.fill_(7)
    return encoder, torch.randn(4, 512)


@pytest.fixture()
def folder(tmp_path) -> Iterator[Path]:
    """tmp_path, with the (~150 MB) checkpoints removed afterwards instead of kept by pytest."""
    yield tmp_path
    for path in tmp_path.iterdir():
        path.unlink()


def write_checkpoint(path: Path, encoder_tensors: dict, latent_avg: object, **opts) -> Path:
    """A `.pt` in the real e4e layout with float16 tensors and a stand-in decoder."""
    state_dict = {
        f"encoder.{key}": value.half() if value.is_floating_point() else value for key, value in encoder_tensors.items()
    }
    state_dict["decoder.conv1.conv.weight"] = torch.randn(1, 8, 8, 3, 3)
    options = {"encoder_type": "Encoder4Editing", "stylegan_size": SMALL_STYLEGAN_SIZE} | opts
    content = {"state_dict": state_dict, "opts": options}
    if latent_avg is not None:
        content["latent_avg"] = latent_avg
    torch.save(content, path)
    return path


def assert_same_weights(loaded: Encoder4Editing, original: Encoder4Editing, dtype: torch.dtype) -> None:
    """Every tensor of `loaded` equals `original`'s after a round trip through `dtype`."""
    loaded_state, original_state = loaded.state_dict(), original.state_dict()
    assert list(loaded_state) == list(original_state)
    for key, value in original_state.items():
        if value.is_floating_point():
            assert torch.equal(loaded_state[key], value.to(dtype).float()), key
        else:
            assert torch.equal(loaded_state[key], value), key


@pytest.mark.parametrize("latent_shape", [(512,), (4, 512)])
def test_load_e4e_reads_the_real_layout(folder, small, latent_shape):
    encoder, latent_avg = small
    stored = latent_avg[0] if latent_shape == (512,) else latent_avg
    path = write_checkpoint(folder / "e4e.pt", encoder.state_dict(), stored)
    loaded, loaded_latent = load_e4e(path)
    assert loaded.n_styles == 4
    assert_same_weights(loaded, encoder, torch.float16)
    assert loaded_latent.shape == (4, 512) and loaded_latent.dtype == torch.float32
    torch.testing.assert_close(loaded_latent, stored.expand(4, 512), rtol=0, atol=0)


def test_load_e4e_converts_dtype(folder, small):
    encoder, latent_avg = small
    path = write_checkpoint(folder / "e4e.pt", encoder.state_dict(), latent_avg)
    loaded, loaded_latent = load_e4e(path, dtype=torch.float16)
    assert {p.dtype for p in loaded.parameters()} == {torch.float16}
    assert loaded.input_layer[1].num_batches_tracked.dtype == torch.int64
    assert loaded_latent.dtype == torch.float16


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_cache_round_trip(folder, small, dtype):
    encoder, latent_avg = small
    path = save_e4e_cache(encoder, latent_avg, folder / "e4e.safetensors", dtype=dtype, source="e4e.pt")
    assert [p.name for p in folder.iterdir()] == ["e4e.safetensors"]  # the temp file is gone
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
        assert handle.get_tensor("latent_avg").dtype == getattr(torch, dtype)
    assert metadata["jojogan.kind"] == "e4e-encoder"
    assert (metadata["e4e.n_styles"], metadata["e4e.dtype"], metadata["e4e.source"]) == ("4", dtype, "e4e.pt")
    loaded, loaded_latent = load_e4e(path)
    assert_same_weights(loaded, encoder, getattr(torch, dtype))
    assert torch.equal(loaded_latent, latent_avg.to(getattr(torch, dtype)).float())
    assert not loaded.training


def test_missing_encoder_keys_are_counted(folder, small):
    tensors = dict(small[0].state_dict())
    for key in ("styles.3.linear.weight", "styles.3.linear.bias", "latlayer2.bias"):
        del tensors[key]
    path = write_checkpoint(folder / "partial.pt", tensors, small[1])
    with pytest.raises(
        CheckpointError,
        match=r"partial\.pt lacks 3 of the 431 e4e encoder tensors \(e\.g\. encoder\.styles\.3\.linear\.weight\)",
    ):
        load_e4e(path)


def test_wrong_shapes_are_named(folder, small):
    tensors = dict(small[0].state_dict())
    tensors["latlayer1.weight"] = torch.zeros(512, 128, 1, 1)
    path = write_checkpoint(folder / "other.pt", tensors, small[1])
    with pytest.raises(
        CheckpointError,
        match=r"other\.pt: encoder\.latlayer1\.weight has shape \(512, 128, 1, 1\) but .* needs \(512, 256, 1, 1\)",
    ):
        load_e4e(path)


def test_wrong_style_count_is_refused(folder, small):
    path = write_checkpoint(folder / "e4e.pt", small[0].state_dict(), small[1][0], stylegan_size=1024)
    with pytest.raises(CheckpointError, match=r"e4e\.pt lacks \d+ of the 621 e4e encoder tensors"):
        load_e4e(path)


def test_truncated_file_is_refused(folder, small):
    path = write_checkpoint(folder / "e4e.pt", small[0].state_dict(), small[1])
    data = path.read_bytes()
    truncated = folder / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt .*truncated"):
        load_e4e(truncated)


def test_foreign_files_are_refused(folder, small, fixtures):
    png = folder / "face.pt"
    png.write_bytes((fixtures / "align" / "A_full_256.png").read_bytes())
    with pytest.raises(CheckpointError, match=r"face\.pt"):
        load_e4e(png)
    stylegan = folder / "stylegan2.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "latent_avg": torch.zeros(512)}, stylegan)
    with pytest.raises(CheckpointError, match=r"stylegan2\.pt is not an e4e checkpoint"):
        load_e4e(stylegan)
    psp = write_checkpoint(folder / "psp.pt", small[0].state_dict(), small[1], encoder_type="GradualStyleEncoder")
    with pytest.raises(CheckpointError, match=r"psp\.pt holds a GradualStyleEncoder encoder"):
        load_e4e(psp)
    image = folder / "image.safetensors"
    Image.new("RGB", (4, 4)).save(folder / "image.png")
    image.write_bytes((folder / "image.png").read_bytes())
    with pytest.raises(CheckpointError, match=r"image\.safetensors is not a valid safetensors file"):
        load_e4e(image)


def test_latent_avg_problems_are_refused(folder, small):
    no_latent = write_checkpoint(folder / "no_latent.pt", small[0].state_dict(), None)
    with pytest.raises(CheckpointError, match=r"no_latent\.pt has no latent_avg"):
        load_e4e(no_latent)
    odd_latent = write_checkpoint(folder / "odd.pt", small[0].state_dict(), torch.zeros(3, 512))
    with pytest.raises(CheckpointError, match=r"odd\.pt: latent_avg has shape \(3, 512\)"):
        load_e4e(odd_latent)
