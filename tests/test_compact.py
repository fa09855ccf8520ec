"""Compact style packs (format 2): exact dense deltas, each method within its budget, recorded = measured at load,
the base fingerprint enforced, format 1 untouched."""

import json

import pytest
import torch
from safetensors.torch import load_file

from jojogan_ext import delta
from jojogan_ext.args import CompactArgs, parse, parse_recipe, schema
from jojogan_ext.compact import compact_pack, measure, measured_latents
from jojogan_ext.errors import JojoganError, PackError
from jojogan_ext.nn.stylegan2 import Generator
from jojogan_ext.packs import COMPACT_FORMAT_VERSION, StylePack, generator_fingerprint, load_pack, make_pack, save_pack

BUDGET = CompactArgs(latents=3)


def small_base(seed: int = 0) -> Generator:
    """Size 32 with 32 channels: conv weights are [32, 288] matrices, large enough for low rank and int8."""
    torch.manual_seed(seed)
    return Generator(32, style_dim=64, n_mlp=1, channel_max=32).eval()


def finetuned(base: Generator, rank: int = 2, noise: float = 0.002, seed: int = 5) -> Generator:
    """`base` plus, on every synthesis tensor, a low-rank change of its matrix view and a little noise."""
    styled = Generator.from_state_dict(base.state_dict())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in styled.synthesis_parameters().values():
            rows, cols = delta.matrix_shape(parameter.shape)
            low = torch.randn(rows, rank, generator=generator) @ torch.randn(rank, cols, generator=generator)
            change = 0.05 * low / rank**0.5 + noise * torch.randn(rows, cols, generator=generator)
            parameter.add_(change.reshape(parameter.shape))
    return styled


@pytest.fixture(scope="module")
def models():
    base = small_base()
    styled = finetuned(base)
    fingerprint = generator_fingerprint(base)
    return base, styled, fingerprint, make_pack(styled, base=base, title="ink", base_fingerprint=fingerprint)


def test_dense_delta_round_trip_is_exact(tmp_path, models):
    base, styled, fingerprint, pack = models
    encodings = {
        key: delta.encode_dense(value, base.synthesis_parameters()[key], torch.float32)
        for key, value in styled.synthesis_parameters().items()
    }
    metadata = pack.metadata | {"jojogan.format_version": COMPACT_FORMAT_VERSION}
    StylePack(delta.stored_tensors(encodings), metadata).save(tmp_path / "dense.safetensors")
    loaded = load_pack(tmp_path / "dense.safetensors")
    assert loaded.is_compact and set(loaded.tensors) == {f"{key}.delta" for key in encodings}
    expanded = loaded.expanded(base, fingerprint)
    for key, value in styled.synthesis_parameters().items():
        assert torch.equal(expanded.tensors[key], value.detach()), key  # bit for bit
    assert expanded.metadata["jojogan.format_version"] == "1"


@pytest.mark.parametrize(
    "methods, expected",
    [(("same", "lowrank"), "lowrank"), (("same", "int8"), "int8"), (delta.METHODS, "lowrank")],
)
def test_every_method_keeps_its_budget_and_the_record_is_what_loads(tmp_path, models, methods, expected):
    base, styled, fingerprint, pack = models
    compact, message = compact_pack(pack, base, fingerprint, BUDGET, methods=methods)
    assert compact.is_compact and message.startswith("Compact: ") and "budget ≥ 40 dB" in message
    record = json.loads(compact.metadata["jojogan.compression"])
    assert record["methods"][expected] > 0 and record["bytes"] < record["full_bytes"]
    assert set(record["methods"]) == set(delta.METHODS) and sum(record["methods"].values()) == len(pack.tensors)
    path = compact.save(tmp_path / "ink.safetensors")
    assert path.stat().st_size < record["full_bytes"]
    loaded = load_pack(path)
    generator = loaded.generator(base, base_fingerprint=fingerprint)
    quality = measure(styled, generator, measured_latents(base, BUDGET.latents, BUDGET.seed), BUDGET.off_levels)
    assert quality.meets(BUDGET)
    assert quality.record() == record["measured"]  # what was recorded at save is what the file gives at load


def test_a_tighter_budget_costs_more_and_still_holds(models):
    base, _, fingerprint, pack = models
    loose, _ = compact_pack(pack, base, fingerprint, CompactArgs(latents=3, min_psnr=30, max_off_percent=20))
    tight, _ = compact_pack(pack, base, fingerprint, CompactArgs(latents=3, min_psnr=55, max_off_percent=0))
    loose_record, tight_record = (json.loads(p.metadata["jojogan.compression"]) for p in (loose, tight))
    assert loose_record["bytes"] < tight_record["bytes"]
    assert loose_record["measured"]["psnr"] >= 30 and tight_record["measured"]["psnr"] >= 55
    assert tight_record["measured"]["off_percent"] == 0


def test_a_budget_no_plan_meets_keeps_the_pack_in_full(models):
    base, _, fingerprint, pack = models
    kept, message = compact_pack(pack, base, fingerprint, BUDGET, methods=("same",))
    assert not kept.is_compact and message.startswith("Kept in full") and "PSNR ≥ 40 dB" in message
    assert all(torch.equal(kept.tensors[key], pack.tensors[key]) for key in pack.tensors)


def test_a_compact_pack_needs_its_own_base(tmp_path, models):
    base, _, fingerprint, pack = models
    compact, _ = compact_pack(pack, base, fingerprint, BUDGET)
    path = compact.save(tmp_path / "ink.safetensors")
    other = finetuned(base, seed=9)  # same architecture, other weights
    with pytest.raises(
        PackError, match=r"ink\.safetensors stores only its difference from the base generator"
    ) as error:
        load_pack(path).generator(other)
    assert f"sha256 {fingerprint[:12]}" in str(error.value) and "load that base model" in str(error.value)


def test_format_1_packs_are_untouched(tmp_path, models):
    base, styled, fingerprint, _ = models
    path = save_pack(tmp_path / "full.safetensors", styled, base=base, title="full", dtype="float32")
    before = path.read_bytes()
    pack = load_pack(path)
    assert pack.metadata["jojogan.format_version"] == "1" and not pack.is_compact
    assert set(load_file(path)) == set(base.synthesis_parameters())
    compact, _ = compact_pack(pack, base, fingerprint, BUDGET)
    assert compact.is_compact and path.read_bytes() == before  # compacting writes nothing by itself
    assert pack.expanded(base, fingerprint) is pack


def test_the_test_face_latent_is_measured_too(models):
    base, _, fingerprint, pack = models
    face = measured_latents(base, 1, 123)
    compact, _ = compact_pack(pack, base, fingerprint, BUDGET, extra_latents=face)
    assert json.loads(compact.metadata["jojogan.compression"])["latents"] == BUDGET.latents + 1


def test_library_compact_expand_and_import_keep_the_original(tiny_runtime, tmp_path):
    runtime = tiny_runtime
    base = runtime.base.generator
    styled = finetuned(base, seed=3)
    style = tmp_path / "ink_style.pt"
    torch.save({"g": styled.state_dict()}, style)
    full = runtime.import_pack(style, "ink")
    compact = runtime.import_pack(style, "ink small", compact=True)
    assert not load_pack(full).is_compact and load_pack(compact).is_compact
    assert compact.stat().st_size < full.stat().st_size
    before = full.read_bytes()
    path, message = runtime.save_compact("ink", "ink-compact", budget=CompactArgs(latents=2, min_psnr=45))
    assert message.startswith("Compact: ") and load_pack(path).is_compact and full.read_bytes() == before
    assert path.with_name("ink-compact.preview.png").is_file()  # the preview comes along
    expanded = runtime.save_expanded("ink-compact", "ink-full", dtype="float32")
    restored = load_pack(expanded)
    assert not restored.is_compact and "jojogan.compression" in restored.metadata  # it remembers what it went through
    decoded = load_pack(path).expanded(base, runtime.base_fingerprint)
    assert all(torch.equal(restored.tensors[key], decoded.tensors[key]) for key in decoded.tensors)
    with pytest.raises(PackError, match="already exists"):
        runtime.save_compact("ink", "ink-compact")
    # a compact pack is a source for compositions like any other: its decoded weights are mixed
    mixed = runtime.compose_pack("half", parse_recipe({"mode": "mix", "weights": {"ink-compact": 1, "base": 1}}))
    half = load_pack(mixed).tensors["conv1.conv.weight"].float()
    expected = (decoded.tensors["conv1.conv.weight"] + base.synthesis_parameters()["conv1.conv.weight"]) / 2
    torch.testing.assert_close(half, expected, atol=2e-3, rtol=2e-3)  # float16 storage


@pytest.mark.parametrize("end", ["low", "high"])
def test_every_bound_of_the_budget_is_usable(models, end):
    base, _, fingerprint, pack = models
    fields = schema(CompactArgs)["properties"]
    values = {name: prop["minimum" if end == "low" else "maximum"] for name, prop in fields.items()}
    assert set(values) == {"min_psnr", "max_off_percent", "off_levels", "latents", "seed"}
    budget = parse(CompactArgs, values)
    result, message = compact_pack(pack, base, fingerprint, budget)
    if result.is_compact:
        assert json.loads(result.metadata["jojogan.compression"])["latents"] == budget.latents
    else:  # 100 dB (high) or no pixel off by more than 0 levels (low) ask for identical renders: only full weights
        assert message.startswith("Kept in full")
    with pytest.raises(JojoganError, match="min_psnr"):
        parse(CompactArgs, values | {"min_psnr": 101})
