"""Test helper: the e4e golden fill rule of `fixtures/e4e/manifest.json` (weights made from key names).

Shared by tests/test_e4e.py and tests/test_invert.py; not a test module itself.
"""

import json
import math
import zlib
from pathlib import Path

import torch
from torch import Tensor

from jojogan_ext.nn.e4e import Encoder4Editing


def read_manifest(fixtures: Path) -> dict:
    """The e4e golden manifest (keys, shapes, kinds, fill rule, tolerances)."""
    return json.loads((fixtures / "e4e" / "manifest.json").read_text())


def fill_tensor(key: str, shape: list[int], kind: str, seed_offset: int = 0) -> Tensor:
    """One tensor by the manifest's rule: randn seeded by crc32(full key), scaled by kind."""
    if kind == "bn_num_batches_tracked":
        return torch.zeros(shape, dtype=torch.int64)
    generator = torch.Generator(device="cpu").manual_seed(zlib.crc32(key.encode("utf-8")) + seed_offset)
    r = torch.randn(shape, generator=generator, dtype=torch.float32)
    # in-place float32 arithmetic: the same numbers as `scale * r + shift`, without a second buffer
    if kind == "conv_weight":
        gain = math.sqrt(2) if ".convs." in key else 1.0
        return r.mul_(gain / math.sqrt(math.prod(shape[1:])))
    if kind == "equallinear_weight":
        return r
    if kind in ("conv_bias", "equallinear_bias", "bn_bias", "bn_running_mean"):
        return r.mul_(0.1)
    if kind == "bn_weight":
        return r.mul_(0.1).add_(1.0)
    if kind == "bn_running_var":
        return r.abs_().mul_(0.1).add_(1.0)
    if kind == "prelu_weight":
        return r.mul_(0.05).add_(0.25)
    raise ValueError(f"unknown kind {kind}")


def golden_state_dict(manifest: dict) -> dict[str, Tensor]:
    """Every encoder tensor, keyed as in the real checkpoint (with the `encoder.` prefix)."""
    offset = manifest["fill_rule"]["seed_offset"]
    return {
        entry["key"]: fill_tensor(entry["key"], entry["shape"], entry["kind"], offset) for entry in manifest["keys"]
    }


def golden_latent_avg(manifest: dict) -> Tensor:
    """The synthetic latent_avg [18, 512] (rows differ, unlike the real one)."""
    seed = zlib.crc32(b"latent_avg") + manifest["fill_rule"]["seed_offset"]
    return torch.randn((18, 512), generator=torch.Generator(device="cpu").manual_seed(seed), dtype=torch.float32)


def strip_encoder_prefix(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoint keys `encoder.*` → Encoder4Editing keys."""
    return {key.removeprefix("encoder."): value for key, value in state_dict.items()}


def golden_encoder(manifest: dict, n_styles: int = 18) -> Encoder4Editing:
    """Encoder4Editing(n_styles) in eval mode holding the golden weights (its keys are a subset of the manifest's)."""
    with torch.device("meta"):
        encoder = Encoder4Editing(n_styles)
    wanted = set(encoder.state_dict())
    offset = manifest["fill_rule"]["seed_offset"]
    state_dict = {
        key: fill_tensor(entry["key"], entry["shape"], entry["kind"], offset)
        for entry in manifest["keys"]
        if (key := entry["key"].removeprefix("encoder.")) in wanted
    }
    encoder.load_state_dict(state_dict, strict=True, assign=True)
    return encoder.eval()
