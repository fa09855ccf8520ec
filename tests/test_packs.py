"""Style packs: round trips, metadata, import of JoJoGAN styles, refusals and the pack library."""

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from jojogan_ext.checkpoints import load_stylegan2
from jojogan_ext.errors import PackError
from jojogan_ext.nn.stylegan2 import Generator
from jojogan_ext.packs import (
    PackLibrary,
    generator_fingerprint,
    import_jojogan_style,
    load_pack,
    read_pack_metadata,
    safe_pack_name,
    save_pack,
)


def small_generator(seed: int = 0, **overrides) -> Generator:
    torch.manual_seed(seed)
    config = {"size": 32, "style_dim": 16, "n_mlp": 2, "channel_max": 8} | overrides
    return Generator(**config).eval()


@pytest.fixture()
def base_and_styled():
    base = small_generator()
    styled = small_generator()
    with torch.no_grad():
        for parameter in styled.synthesis_parameters().values():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return base, styled


def same_weights(a: Generator, b: Generator) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_float32_round_trip_is_exact_and_metadata_survives(tmp_path, base_and_styled):
    base, styled = base_and_styled
    preview = Image.new("RGB", (600, 300), (200, 30, 40))
    path = save_pack(
        tmp_path / "ink.safetensors",
        styled,
        base=base,
        title="Ink",
        metadata={"jojogan.training": json.dumps({"iterations": 5})},
        dtype="float32",
        preview=preview,
    )
    pack = load_pack(path)
    assert same_weights(pack.generator(base), styled)
    assert pack.metadata["modelspec.title"] == "Ink"
    assert pack.metadata["modelspec.architecture"] == "stylegan2-ffhq-32/jojogan"
    assert pack.json_field("jojogan.training") == {"iterations": 5}
    assert pack.json_field("jojogan.base")["sha256"] == generator_fingerprint(base)
    assert pack.json_field("jojogan.config")["style_dim"] == 16
    assert pack.metadata["modelspec.thumbnail"].startswith("data:image/png;base64,")
    assert all(isinstance(v, str) for v in pack.metadata.values())
    assert (tmp_path / "ink.preview.png").is_file()
    stored = load_file(path)
    assert set(stored) == set(base.synthesis_parameters())  # no mapping network, no buffers
    assert not any(key.startswith(("style.", "noises.")) for key in stored)


def test_float16_round_trip_is_close(tmp_path, base_and_styled):
    base, styled = base_and_styled
    pack = load_pack(save_pack(tmp_path / "half.safetensors", styled, base=base, title="half"))
    assert next(iter(pack.tensors.values())).dtype == torch.float16
    restored = pack.generator(base)
    for key, value in styled.synthesis_parameters().items():
        torch.testing.assert_close(restored.synthesis_parameters()[key], value, rtol=1e-3, atol=1e-3)
    assert torch.equal(restored.style[1].weight, base.style[1].weight)  # mapping comes from the base


def test_strength_blends_weights(tmp_path, base_and_styled):
    base, styled = base_and_styled
    pack = load_pack(save_pack(tmp_path / "p.safetensors", styled, base=base, title="p", dtype="float32"))
    half = pack.generator(base, strength=0.5).synthesis_parameters()
    for key, value in styled.synthesis_parameters().items():
        torch.testing.assert_close(half[key], (base.synthesis_parameters()[key] + value) / 2)
    assert same_weights(pack.generator(base, strength=0.0), base)


def test_import_jojogan_style_renders_golden(tmp_path, fixtures):
    folder = fixtures / "stylegan2"
    base = load_stylegan2(folder / "tiny64_ckpt.pt").generator
    path = import_jojogan_style(
        folder / "tiny64_jojo_style_after1step.pt", tmp_path / "jojo.safetensors", base=base, dtype="float32"
    )
    pack = load_pack(path)
    assert pack.metadata["jojogan.source"] == "converted from tiny64_jojo_style_after1step.pt"
    assert pack.title == "tiny64_jojo_style_after1step"
    wplus = load_file(folder / "tiny64_inputs.safetensors")["wplus"]
    expected = load_file(folder / "tiny64_golden_f64.safetensors")["style_pack_img_wplus"]
    with torch.no_grad():
        image = pack.generator(base).synthesis(wplus)
    torch.testing.assert_close(image.double(), expected, rtol=0, atol=9.2e-5)


def test_import_refuses_a_style_for_another_base(tmp_path, fixtures):
    other_base = small_generator(size=64, style_dim=64, n_mlp=2, channel_max=8)
    with pytest.raises(PackError, match=r"after1step\.pt does not fit the base model: input\.input is \(1, 16, 4, 4\)"):
        import_jojogan_style(
            fixtures / "stylegan2" / "tiny64_jojo_style_after1step.pt", tmp_path / "x.safetensors", base=other_base
        )
    assert not (tmp_path / "x.safetensors").exists()


def test_refusals(tmp_path, base_and_styled):
    base, styled = base_and_styled
    save_file({"lora_unet.weight": torch.zeros(2)}, str(tmp_path / "lora.safetensors"), {"ss_network_dim": "4"})
    with pytest.raises(PackError, match="not a JoJoGAN style pack"):
        load_pack(tmp_path / "lora.safetensors")
    path = save_pack(tmp_path / "ok.safetensors", styled, base=base, title="ok", dtype="float32")
    tensors, metadata = load_file(path), read_pack_metadata(path)
    save_file(tensors, str(tmp_path / "future.safetensors"), metadata | {"jojogan.format_version": "3"})
    with pytest.raises(PackError, match="format '3'"):
        load_pack(tmp_path / "future.safetensors")
    broken = dict(tensors)
    broken["conv1.conv.weight"] = broken["conv1.conv.weight"].clone()
    broken["conv1.conv.weight"][0, 0, 0, 0, 0] = float("nan")
    save_file(broken, str(tmp_path / "nan.safetensors"), metadata)
    with pytest.raises(PackError, match="NaN"):
        load_pack(tmp_path / "nan.safetensors")
    with pytest.raises(PackError, match="does not fit the base model"):
        load_pack(path).generator(small_generator(channel_max=4))
    other = small_generator(seed=5)
    with pytest.raises(PackError, match="another base generator"):
        load_pack(path).generator(other, base_fingerprint=generator_fingerprint(other))
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(PackError, match=r"junk\.safetensors"):
        load_pack(tmp_path / "junk.safetensors")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("My Style", "My Style"), ("ｊｏｊｏ", "jojo"), ("a/b\\c", "a_b_c"), ("../../etc/passwd", "etc_passwd"),
     ("x.safetensors", "x"), ("tab\there", "tab_here")],
)  # fmt: skip
def test_safe_pack_name(name, expected):
    assert safe_pack_name(name) == expected


@pytest.mark.parametrize("name", ["", "..", "/", "CON", "nul.txt", "\x00", "a" * 101, "   "])
def test_unsafe_names_are_refused(name):
    with pytest.raises(PackError):
        safe_pack_name(name)


def test_library_lists_renames_and_deletes(tmp_path, base_and_styled):
    base, styled = base_and_styled
    library = PackLibrary(tmp_path)
    save_pack(library.new_path("one"), styled, base=base, title="One", preview=Image.new("RGB", (8, 8)))
    save_pack(library.new_path("two"), styled, base=base, title="Two")
    (tmp_path / "broken.safetensors").write_bytes(b"nope")
    assert [info.name for info in library.list()] == ["one", "two"]
    assert library.list()[0].preview == tmp_path / "one.preview.png"
    assert len(library.problems()) == 1 and "broken.safetensors" in library.problems()[0]
    with pytest.raises(PackError, match="already exists"):
        library.new_path("two")
    with pytest.raises(PackError, match="already exists"):
        library.rename("one", "two")
    library.rename("one", "three")
    assert (tmp_path / "three.preview.png").is_file() and not (tmp_path / "one.preview.png").exists()
    library.delete("three")
    assert [info.name for info in library.list()] == ["two"]
    with pytest.raises(PackError, match="no style pack named"):
        library.delete("three")
    assert library.path_for("../escape").parent == tmp_path.resolve()
    assert not list(tmp_path.glob(".*.tmp"))


def test_full_size_pack_fits_the_budget():
    with torch.device("meta"):
        generator = Generator(1024)
    values = sum(p.numel() for p in generator.synthesis_parameters().values())
    assert 28.0e6 < values < 28.5e6  # DESIGN §3: 28.27 M synthesis parameters
    assert values * 2 + 64_000 <= 57e6  # float16 + header (thumbnail included)


def test_large_finite_weights_load_and_non_finite_ones_are_refused(tmp_path, base_and_styled):
    """The finiteness check sums each tensor first: an overflowing sum of finite values must still load."""
    base, styled = base_and_styled
    path = save_pack(tmp_path / "huge.safetensors", styled, base=base, title="Huge", dtype="float32")
    tensors = load_file(str(path))
    metadata = read_pack_metadata(path)
    tensors["conv1.conv.weight"].fill_(3e38)  # every value finite, their float32 sum is inf
    save_file(tensors, str(path), metadata)
    assert torch.equal(load_pack(path).tensors["conv1.conv.weight"], tensors["conv1.conv.weight"])
    for bad in (float("inf"), float("-inf"), float("nan")):
        tensors["conv1.conv.weight"].view(-1)[7] = bad
        save_file(tensors, str(path), metadata)
        with pytest.raises(PackError, match="NaN or infinite"):
            load_pack(path)
