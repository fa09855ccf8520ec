"""Read the public checkpoint layouts safely: rosinality StyleGAN2 `.pt`, JoJoGAN styles, e4e, safetensors.

Never unpickles code: `.pt` files go through `torch.load(weights_only=True)`. Every failure becomes
one `CheckpointError` that names the file and what was wrong.
"""

import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from .errors import CheckpointError
from .nn.stylegan2 import Discriminator, Generator

ZIP_MAGIC = b"PK\x03\x04"
# what torch.load raises on a truncated, foreign or code-carrying file
TORCH_LOAD_ERRORS = (
    RuntimeError,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    KeyError,
    AttributeError,
    TypeError,
    IndexError,
    zipfile.BadZipFile,
    UnicodeDecodeError,
)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file.")
    return path


def read_torch_checkpoint(path: str | Path) -> dict:
    """A `.pt`/`.pth` file's top-level dict, loaded with weights_only (memory-mapped when zip format)."""
    path = _existing_file(path)
    with path.open("rb") as file:
        is_zip = file.read(4) == ZIP_MAGIC
    try:
        with warnings.catch_warnings():  # torch 2.1 warns about TypedStorage when memory-mapping
            warnings.simplefilter("ignore", UserWarning)
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path.name} holds Python objects other than tensors; it was not loaded because that could run code "
            f"({str(error).splitlines()[0][:200]})."
        ) from None
    except TORCH_LOAD_ERRORS as error:
        raise CheckpointError(
            f"{path.name} is not a readable PyTorch checkpoint (truncated or another kind of file): "
            f"{str(error).splitlines()[0][:200] if str(error) else type(error).__name__}."
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path.name} holds a {type(checkpoint).__name__}, not a dict of weights.")
    return checkpoint


def read_safetensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors (on CPU) and the string metadata of a `.safetensors` file."""
    path = _existing_file(path)
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path.name} is not a readable safetensors file (truncated or another kind of file): "
            f"{str(error).splitlines()[0][:200]}."
        ) from None
    return tensors, metadata


def read_weights(path: str | Path) -> tuple[dict, dict[str, str]]:
    """A checkpoint's top-level content and metadata, whichever of the two formats it is in."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return read_torch_checkpoint(path), {}


def with_prefix(tensors: dict, prefix: str) -> dict[str, Tensor]:
    """The tensors under `prefix.` with the prefix removed (safetensors files are flat)."""
    return {key[len(prefix) + 1 :]: value for key, value in tensors.items() if key.startswith(prefix + ".")}


def _tensor_dict(value: object, path: Path, what: str) -> dict[str, Tensor]:
    if not isinstance(value, dict) or not value or not all(isinstance(v, Tensor) for v in value.values()):
        raise CheckpointError(f"{path.name}: '{what}' is not a dict of tensors.")
    return value


@dataclass
class StyleGAN2Checkpoint:
    """A loaded base model: the generator (g_ema), the discriminator if present, and the mean w."""

    generator: Generator
    discriminator: Discriminator | None
    latent_avg: Tensor  # [style_dim]


def load_stylegan2(path: str | Path) -> StyleGAN2Checkpoint:
    """Read a rosinality `.pt` ({g_ema, g?, d?, latent_avg?}) or our flat safetensors (`g_ema.`, `d.`)."""
    path = Path(path)
    content, _ = read_weights(path)
    if path.suffix == ".safetensors":
        generator_sd, discriminator_sd = with_prefix(content, "g_ema"), with_prefix(content, "d")
        latent_avg = content.get("latent_avg")
    else:
        if "g_ema" not in content:
            raise CheckpointError(
                f"{path.name} has no 'g_ema' generator (keys: {', '.join(map(str, list(content)[:6]))}); "
                "it is not a StyleGAN2 checkpoint."
            )
        generator_sd = _tensor_dict(content["g_ema"], path, "g_ema")
        discriminator_sd = _tensor_dict(content["d"], path, "d") if "d" in content else {}
        latent_avg = content.get("latent_avg")
    if not generator_sd:
        raise CheckpointError(f"{path.name} holds no generator tensors ('g_ema.*'); it is not a StyleGAN2 checkpoint.")
    try:
        generator = Generator.from_state_dict(generator_sd)
        discriminator = Discriminator.from_state_dict(discriminator_sd) if discriminator_sd else None
    except CheckpointError as error:
        raise CheckpointError(f"{path.name}: {error}") from None
    generator.eval().requires_grad_(False)
    if discriminator is not None:
        discriminator.eval().requires_grad_(False)
    if latent_avg is None:
        with torch.no_grad():
            latent_avg = generator.mean_latent(4096, torch.Generator().manual_seed(0))[0]
    latent_avg = latent_avg.reshape(-1, generator.style_dim)[0].float()
    return StyleGAN2Checkpoint(generator, discriminator, latent_avg)


def load_jojogan_style(path: str | Path) -> dict[str, Tensor]:
    """The generator state dict of a JoJoGAN style file: `.pt` with {"g": ...} or {"g_ema": ...}, or `g.*`."""
    path = Path(path)
    content, _ = read_weights(path)
    if path.suffix == ".safetensors":
        state_dict = with_prefix(content, "g") or with_prefix(content, "g_ema")
        if not state_dict:
            raise CheckpointError(f"{path.name} has no 'g.*' tensors; it is not a JoJoGAN style file.")
        return state_dict
    for key in ("g", "g_ema"):
        if key in content:
            return _tensor_dict(content[key], path, key)
    raise CheckpointError(f"{path.name} has neither 'g' nor 'g_ema'; it is not a JoJoGAN style file.")
