"""Tiny but real model files for pipeline tests: the real architectures at small widths, seeded weights.

`write_tiny_models(folder)` fills a `base/` folder the way a user's models folder looks after first use
(converted safetensors caches), so `Runtime` loads them through its normal code path.
"""

import json
from pathlib import Path

import numpy as np
import torch
from facexlib.detection.retinaface import RetinaFace
from PIL import Image
from safetensors.torch import save_file

from jojogan_ext.checkpoints import save_e4e_cache
from jojogan_ext.nn.e4e import Encoder4Editing
from jojogan_ext.nn.stylegan2 import Discriminator, Generator
from jojogan_ext.packs import save_pack

SIZE = 64
E4E_WIDTH = 16  # IR-SE-50 stages 16/32/64/128 wide, styles of 8·16 = 128
STYLE_DIM = 8 * E4E_WIDTH
N_LATENT = 2 * int(np.log2(SIZE)) - 2


def tiny_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(SIZE, style_dim=STYLE_DIM, n_mlp=2, channel_max=16).eval()


def tiny_discriminator(seed: int = 1) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(SIZE, channel_max=16).eval()


def tiny_encoder(seed: int = 2) -> Encoder4Editing:
    """The real e4e architecture, narrow, with BatchNorm statistics that keep activations in range."""
    torch.manual_seed(seed)
    encoder = Encoder4Editing(n_styles=N_LATENT, width=E4E_WIDTH)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.fill_(1.0)
        for name, parameter in encoder.named_parameters():
            if name.endswith("linear.weight"):
                parameter.mul_(0.1)  # small deltas around latent_avg, like a trained encoder
    return encoder.eval()


def styled_generator(base: Generator, seed: int = 11) -> Generator:
    """A copy of `base` with clearly different synthesis weights (a stand-in for a trained style)."""
    styled = Generator.from_state_dict(base.state_dict())
    with torch.no_grad():
        torch.manual_seed(seed)
        for parameter in styled.synthesis_parameters().values():
            parameter.add_(torch.randn_like(parameter) * 0.5)
    return styled


def save_styled_pack(runtime, name: str = "bold", seed: int = 11) -> Path:
    """Save a float32 pack `name` of `styled_generator(runtime's base, seed)` into the runtime's packs folder."""
    base = runtime.base.generator
    return save_pack(
        runtime.packs.new_path(name), styled_generator(base, seed), base=base, title=name.title(), dtype="float32"
    )


def write_tiny_models(folder: Path) -> Path:
    """Write tiny StyleGAN2, e4e and RetinaFace(mobile0.25) files into `folder/base`; returns `folder`."""
    base = folder / "base"
    base.mkdir(parents=True, exist_ok=True)
    generator, discriminator = tiny_generator(), tiny_discriminator()
    with torch.no_grad():
        latent_avg = generator.mean_latent(512, torch.Generator().manual_seed(3))[0]
    tensors = {f"g_ema.{k}": v for k, v in generator.state_dict().items()}
    tensors |= {f"d.{k}": v for k, v in discriminator.state_dict().items()}
    tensors["latent_avg"] = latent_avg
    save_file(tensors, str(base / "stylegan2-ffhq-config-f.safetensors"))
    save_e4e_cache(
        tiny_encoder(), latent_avg.repeat(N_LATENT, 1), base / "e4e_ffhq_encode.safetensors", dtype="float32"
    )
    torch.manual_seed(4)
    detector = RetinaFace(network_name="mobile0.25", half=False, phase="test", device="cpu")
    torch.save(detector.state_dict(), base / "detection_mobilenet0.25_Final.pth")
    return folder


def astronaut_landmarks(fixtures: Path) -> np.ndarray:
    """The astronaut's 5 landmarks (eye_l, eye_r, nose, mouth_l, mouth_r) from the alignment fixture."""
    data = json.loads((fixtures / "align" / "landmarks.json").read_text())
    return np.asarray(data["reduction_5"]["points"], dtype=np.float64)  # [5, 2]


def astronaut(fixtures: Path) -> Image.Image:
    return Image.open(fixtures / "align" / "astronaut.png").convert("RGB")
