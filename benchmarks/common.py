"""Shared pieces of the benchmark scripts: full-size random models, timers, peak memory, one JSON line."""

import json
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from jojogan_ext.checkpoints import StyleGAN2Checkpoint
from jojogan_ext.invert import Inverter
from jojogan_ext.nn.e4e import Encoder4Editing
from jojogan_ext.nn.stylegan2 import Discriminator, Generator

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO.parent / "shared" / "fixtures" / "align"
FIXTURE_FACE = FIXTURE_DIR / "A_full_1024.png"


def random_base(size: int, device: torch.device, seed: int = 0) -> StyleGAN2Checkpoint:
    """Config-f generator and discriminator with random weights (speed does not depend on the values)."""
    torch.manual_seed(seed)
    generator = Generator(size).to(device).eval().requires_grad_(False)
    discriminator = Discriminator(size).to(device).eval().requires_grad_(False)
    with torch.no_grad():
        latent_avg = generator.mean_latent(1024)[0]
    return StyleGAN2Checkpoint(generator, discriminator, latent_avg)


def random_inverter(device: torch.device, dtype: torch.dtype = torch.float32) -> Inverter:
    """The full e4e encoder with random weights, initialised in place (no second copy)."""
    with torch.device("meta"):
        encoder = Encoder4Editing()
    encoder = encoder.to_empty(device=device)
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if parameter.ndim > 1:
                parameter.normal_(0, parameter[0].numel() ** -0.5)
            else:
                parameter.fill_(1.0 if name.endswith("weight") else 0.0)
        for name, buffer in encoder.named_buffers():
            buffer.fill_(1 if name.endswith("running_var") else 0)
    return Inverter(encoder, torch.zeros(18, 512, device=device), device=device, dtype=dtype)


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process (and peak CUDA memory when on a GPU), in MB."""
    result = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        result["peak_vram_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


def timed(function, device: torch.device) -> float:
    """Wall seconds of one call (synchronised on CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def report(name: str, values: dict) -> None:
    """Print the one JSON line of a benchmark, with the machine it ran on."""
    values = {
        "benchmark": name,
        **values,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    print(json.dumps(values))


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)
