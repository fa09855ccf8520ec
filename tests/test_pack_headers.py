"""The safetensors header is recognised by its structure, never by a prefix: every header length a valid file
can have is accepted, including those whose first bytes look like a pickle (80 02, 80 04, 80 05).
"""

import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jojogan_ext.checkpoints import MAX_HEADER_BYTES, check_safetensors_header, safetensors_header_length
from jojogan_ext.errors import CheckpointError
from jojogan_ext.packs import FORMAT_VERSION, StylePack, load_pack, read_pack_metadata, sniff_weights_file

PICKLE_LIKE_LOW_WORDS = (0x0280, 0x0480, 0x0580)  # little-endian lengths starting 80 02 / 80 04 / 80 05


def header_length(path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def tiny_pack(metadata: dict[str, str] | None = None) -> StylePack:
    """A pack with one small tensor and our format's metadata (enough for every header check)."""
    values = {"jojogan.format_version": FORMAT_VERSION, "modelspec.title": "t"} | (metadata or {})
    return StylePack({"conv1.conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, values)


def save_with_header_length(path, target: int):
    """Save a real pack (StylePack.save, as training does) whose header is exactly `target` bytes long."""
    padding = 0
    for _ in range(8):
        chunks = {f"padding{n}": "x" * min(16_000, padding - n) for n in range(0, padding, 16_000)}  # within the caps
        tiny_pack(chunks).save(path, "float32")
        length = header_length(path)
        if length == target:
            return path
        padding += target - length  # the writer pads headers to 8 bytes: this converges in a few steps
    raise AssertionError(f"could not make a {target}-byte header (got {length})")


def test_every_low_word_of_the_length_is_a_valid_header():
    """All 65536 values of the first two bytes, with and without a higher byte set: structure decides."""
    for low in range(2, 1 << 16):
        for length in (low, low + (1 << 16)):
            head = length.to_bytes(8, "little") + b"{"
            assert safetensors_header_length(head, 8 + length) == length
            assert safetensors_header_length(head, 7 + length) is None  # past the end of the file
            assert safetensors_header_length(head[:8] + b"[", 8 + length) is None  # not a JSON object


def test_lengths_past_the_limit_or_without_a_brace_are_not_headers():
    assert safetensors_header_length((MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b"{", 2**40) is None
    assert safetensors_header_length((2**64 - 1).to_bytes(8, "little") + b"{", 2**70) is None
    assert safetensors_header_length(b"\x80\x02}q\x00(X\x01\x00", 2**40) is None  # a pickle's first bytes


@pytest.mark.parametrize("low_word", PICKLE_LIKE_LOW_WORDS)
@pytest.mark.parametrize("high", [0, 1])
def test_saved_packs_with_pickle_like_header_lengths_are_read(tmp_path, low_word, high):
    path = save_with_header_length(tmp_path / "odd.safetensors", low_word + high * (1 << 16))
    assert path.read_bytes()[:2] == low_word.to_bytes(2, "little")  # starts like a pickle: 80 0x
    assert sniff_weights_file(path) == "safetensors"
    assert read_pack_metadata(path)["modelspec.title"] == "t"
    assert torch.equal(load_pack(path).tensors["conv1.conv.weight"], tiny_pack().tensors["conv1.conv.weight"])


def test_real_pickles_renamed_to_safetensors_are_still_refused(tmp_path):
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.safetensors"
        path.write_bytes(pickle.dumps({"g": list(range(100))}, protocol=protocol))
        assert path.read_bytes()[:2] == bytes([0x80, protocol])
        with pytest.raises(CheckpointError, match="pickle/PyTorch file renamed"):
            check_safetensors_header(path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    metadata=st.dictionaries(
        st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12).filter(
            lambda key: key != "__metadata__"
        ),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=300),
        max_size=6,
    ),
    padding=st.integers(0, 3000),
)
def test_any_saved_pack_is_read_back(tmp_path, metadata, padding):
    """Packs with random metadata (so random header lengths) all pass the header check and load unchanged."""
    pack = tiny_pack(metadata | {"padding": "p" * padding})
    path = pack.save(tmp_path / "random.safetensors", "float32")
    assert sniff_weights_file(path) == "safetensors"
    assert read_pack_metadata(path) == pack.metadata
    assert load_pack(path).metadata == pack.metadata
