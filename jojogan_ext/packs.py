"""Style packs: a finetuned generator's synthesis weights in one `.safetensors` file with metadata.

Save, load, validate, list, import JoJoGAN `.pt` styles, rename and delete — safetensors only (no
pickles), names sanitized to stay inside the packs folder, every write atomic.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor

from .checkpoints import check_safetensors_header, load_jojogan_style, read_safetensors
from .errors import CheckpointError, PackError
from .files import atomic_write, atomic_write_bytes
from .nn.stylegan2 import Generator

FORMAT_VERSION = "1"
PACK_SUFFIX = ".safetensors"
PREVIEW_SUFFIX = ".preview.png"
DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}
MAX_NAME_LENGTH = 100
WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}
LICENSE = "NVIDIA Source Code License-NC (inherits the StyleGAN2-FFHQ weights' non-commercial terms)"


def generator_fingerprint(generator: Generator) -> str:
    """sha256 over the generator's tensors (float32, key order): identifies the base a pack was made from."""
    digest = hashlib.sha256()
    for key, value in generator.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def generator_config(generator: Generator) -> dict:
    """The architecture facts a pack must share with its base."""
    return {
        "size": generator.size,
        "style_dim": generator.style_dim,
        "n_mlp": generator.n_mlp,
        "channels": {str(res): ch for res, ch in generator.channels.items()},
    }


def safe_pack_name(name: str) -> str:
    """A file-system-safe pack name (NFKC, no paths, no control or reserved names) or a PackError."""
    cleaned = unicodedata.normalize("NFKC", str(name)).strip()
    cleaned = re.sub(r"[^\w\-. ()]+", "_", cleaned).strip(" ._")
    if cleaned.lower().endswith(PACK_SUFFIX):
        cleaned = cleaned[: -len(PACK_SUFFIX)].strip(" ._")
    if not cleaned or cleaned.split(".")[0].lower() in WINDOWS_RESERVED:
        raise PackError(f"'{name}' cannot be used as a style pack name; use letters, digits, '-' or '_'.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise PackError(f"Style pack names are limited to {MAX_NAME_LENGTH} characters; '{cleaned[:20]}…' is longer.")
    return cleaned


def thumbnail_data_uri(image: Image.Image, max_side: int = 256) -> str:
    """A small PNG of `image` as a data: URI (ModelSpec's thumbnail)."""
    thumb = image.convert("RGB")
    thumb.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    thumb.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclass
class StylePack:
    """A loaded style pack: synthesis tensors (as stored) plus string metadata."""

    tensors: dict[str, Tensor]
    metadata: dict[str, str]
    path: Path | None = None
    preview: Image.Image | None = None

    @property
    def name(self) -> str:
        return self.path.name[: -len(PACK_SUFFIX)] if self.path else self.metadata.get("modelspec.title", "")

    @property
    def title(self) -> str:
        return self.metadata.get("modelspec.title") or self.name

    def json_field(self, key: str) -> dict:
        """A JSON-valued metadata entry as a dict ({} when absent or unreadable)."""
        try:
            value = json.loads(self.metadata.get(key, "{}"))
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def save(self, path: str | Path, dtype: str = "float16") -> Path:
        """Write the pack atomically as `path` (+ `<name>.preview.png` when it has a preview)."""
        if dtype not in DTYPES:
            raise PackError(f"Unknown pack precision '{dtype}'; use one of {', '.join(DTYPES)}.")
        path = Path(path)
        tensors = {key: value.detach().to("cpu", DTYPES[dtype]).contiguous() for key, value in self.tensors.items()}
        atomic_write(path, lambda temp: save_file(tensors, str(temp), metadata=self.metadata))
        if self.preview is not None:
            buffer = io.BytesIO()
            self.preview.convert("RGB").save(buffer, format="PNG")
            atomic_write_bytes(preview_path(path), buffer.getvalue())
        self.path = path
        return path

    def check_fits(self, base: Generator, base_fingerprint: str | None = None) -> None:
        """Refuse (PackError) a pack whose tensors or base model do not match `base`."""
        where = self.path.name if self.path else "the style pack"
        expected = base.synthesis_parameters()
        missing = [key for key in expected if key not in self.tensors]
        extra = [key for key in self.tensors if key not in expected]
        if missing or extra:
            example = (missing or extra)[0]
            raise PackError(
                f"{where} does not fit the base model: {len(missing)} missing and {len(extra)} unexpected tensors "
                f"(e.g. {example}); it was made for another architecture."
            )
        for key, value in expected.items():
            if self.tensors[key].shape != value.shape:
                raise PackError(
                    f"{where} does not fit the base model: {key} is {tuple(self.tensors[key].shape)}, "
                    f"the base needs {tuple(value.shape)}."
                )
        recorded = self.json_field("jojogan.base").get("sha256")
        if base_fingerprint and recorded and recorded != base_fingerprint:
            raise PackError(
                f"{where} was trained on another base generator ({self.json_field('jojogan.base').get('name', '?')}, "
                f"sha256 {recorded[:12]}…); load that base model to use it."
            )

    def generator(self, base: Generator, strength: float = 1.0, base_fingerprint: str | None = None) -> Generator:
        """A copy of `base` with the pack's synthesis weights, blended by `strength` (0 = base, 1 = pack)."""
        self.check_fits(base, base_fingerprint)
        styled = copy.deepcopy(base)
        with torch.no_grad():
            for key, parameter in styled.synthesis_parameters().items():
                target = self.tensors[key].to(parameter.device, parameter.dtype)
                parameter.copy_(target if strength == 1.0 else torch.lerp(parameter, target, strength))
        return styled.eval().requires_grad_(False)


def build_metadata(
    generator: Generator,
    *,
    base: Generator,
    title: str,
    base_name: str = "stylegan2-ffhq-config-f",
    metadata: dict[str, str] | None = None,
    preview: Image.Image | None = None,
) -> dict[str, str]:
    """The pack's `__metadata__`: ModelSpec keys plus ours (every value a string)."""
    values = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": f"stylegan2-ffhq-{generator.size}/jojogan",
        "modelspec.implementation": "jojogan_ext",
        "modelspec.title": title,
        "modelspec.description": "",
        "modelspec.author": "",
        "modelspec.date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "modelspec.license": LICENSE,
        "jojogan.format_version": FORMAT_VERSION,
        "jojogan.base": json.dumps({"name": base_name, "sha256": generator_fingerprint(base)}),
        "jojogan.config": json.dumps(generator_config(generator)),
        "jojogan.training": "{}",
        "jojogan.source": "trained",
    }
    if preview is not None:
        values["modelspec.thumbnail"] = thumbnail_data_uri(preview)
    values.update({key: str(value) for key, value in (metadata or {}).items()})
    return values


def make_pack(
    generator: Generator,
    *,
    base: Generator,
    title: str,
    metadata: dict[str, str] | None = None,
    preview: Image.Image | None = None,
) -> StylePack:
    """An in-memory pack of `generator`'s synthesis weights (float32 on CPU) with full metadata."""
    tensors = {key: value.detach().to("cpu", torch.float32) for key, value in generator.synthesis_parameters().items()}
    values = build_metadata(generator, base=base, title=title, metadata=metadata, preview=preview)
    return StylePack(tensors, values, None, preview)


def save_pack(
    path: str | Path,
    generator: Generator,
    *,
    base: Generator,
    title: str,
    metadata: dict[str, str] | None = None,
    dtype: str = "float16",
    preview: Image.Image | None = None,
) -> Path:
    """Write `generator`'s synthesis weights as a style pack (atomically), plus `<name>.preview.png`."""
    pack = make_pack(generator, base=base, title=title, metadata=metadata, preview=preview)
    return pack.save(path, dtype)


def preview_path(pack_path: Path) -> Path:
    """The web UI's convention: `<name>.preview.png` beside `<name>.safetensors`."""
    return pack_path.with_name(pack_path.name[: -len(PACK_SUFFIX)] + PREVIEW_SUFFIX)


def read_pack_metadata(path: str | Path) -> dict[str, str]:
    """Only the header of a pack (fast, no tensors), validated as ours."""
    path = Path(path)
    try:
        header = check_safetensors_header(path)
    except CheckpointError as error:
        raise PackError(str(error)) from None
    except OSError as error:
        raise PackError(f"{path.name} cannot be read: {error.strerror or error}.") from None
    metadata = header.get("__metadata__", {})
    validate_metadata(path, metadata)
    return metadata


def validate_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Refuse files that are not our packs (a LoRA, say) or come from a newer format."""
    version = metadata.get("jojogan.format_version")
    if version is None:
        raise PackError(f"{path.name} is not a JoJoGAN style pack (no jojogan metadata); is it a LoRA or a checkpoint?")
    if version != FORMAT_VERSION:
        raise PackError(
            f"{path.name} uses style pack format {version!r}; this version reads format {FORMAT_VERSION}: update the extension."
        )


def load_pack(path: str | Path) -> StylePack:
    """Read and validate a style pack (metadata, tensor dtypes, finite values); never unpickles."""
    path = Path(path)
    try:
        tensors, metadata = read_safetensors(path)
    except CheckpointError as error:
        raise PackError(str(error)) from None
    validate_metadata(path, metadata)
    for key, value in tensors.items():
        if value.dtype not in DTYPES.values():
            raise PackError(f"{path.name}: tensor {key} has dtype {value.dtype}; packs hold float16/32 weights.")
        if not torch.isfinite(value).all():
            raise PackError(f"{path.name}: tensor {key} contains NaN or infinite values; the pack is damaged.")
    return StylePack(tensors, metadata, path)


def import_jojogan_style(
    src: str | Path, dst: str | Path, *, base: Generator, title: str | None = None, dtype: str = "float16"
) -> Path:
    """Convert a JoJoGAN style `.pt` ({"g": ...}) into a pack; refused when it does not fit `base`."""
    src = Path(src)
    state_dict = load_jojogan_style(src)
    synthesis = {key: value for key, value in state_dict.items() if key in base.synthesis_parameters()}
    for key, value in synthesis.items():
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise PackError(f"{src.name}: tensor {key} is not finite floating-point weights.")
    generator = StylePack(synthesis, {}, src).generator(base)  # refusals name `src`
    source = {"jojogan.source": f"converted from {src.name}"}
    return save_pack(dst, generator, base=base, title=title or src.stem, metadata=source, dtype=dtype)


@dataclass
class PackInfo:
    """A pack as listed in the library (header only)."""

    name: str
    path: Path
    metadata: dict[str, str] = field(default_factory=dict)
    preview: Path | None = None

    @property
    def title(self) -> str:
        return self.metadata.get("modelspec.title") or self.name


class PackLibrary:
    """The packs folder: list, locate, rename, delete — names never leave the folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path_for(self, name: str) -> Path:
        """The pack file for `name` (sanitized), guaranteed inside the folder."""
        path = (self.folder / (safe_pack_name(name) + PACK_SUFFIX)).resolve()
        if path.parent != self.folder.resolve():
            raise PackError(f"'{name}' would point outside the style pack folder.")
        return path

    def new_path(self, name: str, overwrite: bool = False) -> Path:
        """Where a new pack called `name` goes; refuses to replace another pack unless asked."""
        path = self.path_for(name)
        if path.exists() and not overwrite:
            raise PackError(f"A style pack named '{path.stem}' already exists; choose another name or delete it first.")
        return path

    def existing(self, name: str) -> Path:
        """The file of an existing pack, or a PackError saying it is not there."""
        path = self.path_for(name)
        if not path.is_file():
            raise PackError(f"There is no style pack named '{name}' in {self.folder}.")
        return path

    def list(self) -> list[PackInfo]:
        """Every readable pack, sorted by name; unreadable files are skipped (see `problems`)."""
        return [info for info in self._scan() if isinstance(info, PackInfo)]

    def problems(self) -> list[str]:
        """One sentence per file in the folder that is not a usable pack."""
        return [info for info in self._scan() if isinstance(info, str)]

    def _scan(self) -> list[PackInfo | str]:
        if not self.folder.is_dir():
            return []
        found: list[PackInfo | str] = []
        for path in sorted(self.folder.glob("*" + PACK_SUFFIX)):
            if path.name.startswith("."):
                continue
            try:
                metadata = read_pack_metadata(path)
            except PackError as error:
                found.append(str(error))
                continue
            preview = preview_path(path)
            found.append(PackInfo(path.stem, path, metadata, preview if preview.is_file() else None))
        return found

    def load(self, name: str) -> StylePack:
        return load_pack(self.existing(name))

    def rename(self, old: str, new: str) -> Path:
        """Rename a pack and its preview; refuses to overwrite another pack."""
        source, target = self.existing(old), self.new_path(new)
        source.rename(target)
        if preview_path(source).is_file():
            preview_path(source).rename(preview_path(target))
        return target

    def delete(self, name: str) -> None:
        """Delete a pack and its preview."""
        path = self.existing(name)
        path.unlink()
        preview_path(path).unlink(missing_ok=True)
