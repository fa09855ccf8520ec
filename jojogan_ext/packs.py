"""Style packs: a finetuned generator's synthesis weights in one `.safetensors` file with metadata.

Save, load, validate, list, import (the one gate for pack files and JoJoGAN styles from any front),
rename and delete — safetensors only (no pickles), names sanitized to stay inside the packs folder,
every write atomic and never over another pack unless asked.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import io
import json
import re
import shutil
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor

from . import delta
from .args import PackDetails, parse
from .checkpoints import (
    StyleGAN2Checkpoint,
    check_safetensors_header,
    load_jojogan_style,
    read_safetensors,
    sniff_weights_file,
)
from .errors import (
    CancelledError,
    CheckpointError,
    ImageError,
    JojoganError,
    MissingPackError,
    PackError,
    PackExistsError,
)
from .files import atomic_path, commit, temp_sibling
from .images import open_image
from .nn.stylegan2 import Generator

FORMAT_VERSION = "1"  # every synthesis tensor in full
COMPACT_FORMAT_VERSION = "2"  # only the difference from one base model (see delta.py)
FORMAT_VERSIONS = (FORMAT_VERSION, COMPACT_FORMAT_VERSION)
PACK_SUFFIX = ".safetensors"
PREVIEW_SUFFIX = ".preview.png"
DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}
MAX_NAME_LENGTH = 100
# bytes of the UTF-8 name: with ".preview.png" and a temp file's ".<name>.<12 hex>.tmp" it stays under
# the 255-byte file name limit of common file systems
MAX_NAME_BYTES = 200
WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}
THUMBNAIL_KEY = "modelspec.thumbnail"
THUMBNAIL_PREFIX = "data:image/png;base64,"
# a pack's embedded thumbnail is at most 256 px by our writer; anything far larger is refused unread
MAX_THUMBNAIL_PIXELS = 1024 * 1024
MAX_THUMBNAIL_BYTES = 4 * 2**20
# What a pack's header may carry (the listing serves metadata to browsers; our own packs use a few KB plus
# the thumbnail): entries, bytes of one entry and of all together (key + value, UTF-8), the thumbnail's
# data: URI on its own (a 256-px PNG is ~100-300 KB), and so the header as a whole.
MAX_METADATA_ENTRIES = 64
MAX_METADATA_VALUE_BYTES = 32 * 1024
MAX_METADATA_BYTES = 256 * 1024
MAX_THUMBNAIL_URI_BYTES = 1024 * 1024
MAX_PACK_HEADER_BYTES = 4 * 2**20  # the tensor entries of a 1024 pack take ~40 KB
# the editable details (PackDetails fields) and the ModelSpec metadata keys that hold them
DETAIL_KEYS = {
    "title": "modelspec.title",
    "author": "modelspec.author",
    "description": "modelspec.description",
    "license": "modelspec.license",
}
LICENSE = "NVIDIA Source Code License-NC (inherits the StyleGAN2-FFHQ weights' non-commercial terms)"


def generator_fingerprint(generator: Generator) -> str:
    """sha256 over the generator's tensors (float32, key order): identifies the base a pack was made from."""
    digest = hashlib.sha256()
    for key, value in generator.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def tensors_fingerprint(tensors: dict[str, Tensor]) -> str:
    """sha256 over a pack's tensors as stored (sorted keys; name, dtype, shape, bytes): provenance that survives renames."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        value = tensors[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{str(value.dtype).removeprefix('torch.')}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def generator_config(generator: Generator) -> dict:
    """The architecture facts a pack must share with its base."""
    return {
        "size": generator.size,
        "style_dim": generator.style_dim,
        "n_mlp": generator.n_mlp,
        "channels": {str(res): ch for res, ch in generator.channels.items()},
    }


def plain_file_name(name: str) -> str:
    """`name` in NFKC with every character but letters, digits, '-', '_', '.', ' ', '(' and ')' made '_',
    and leading/trailing dots and spaces removed (may be empty)."""
    cleaned = unicodedata.normalize("NFKC", str(name)).strip()
    return re.sub(r"[^\w\-. ()]+", "_", cleaned).strip(" ._")


def safe_pack_name(name: str) -> str:
    """A file-system-safe pack name (NFKC, no paths, no control or reserved names) or a PackError.

    Unicode look-alikes of '/' or '.' become those characters first (NFKC), then every character that is
    not a letter, digit, '-', '_', '.', ' ', '(' or ')' becomes '_'; leading/trailing dots and spaces go.
    """
    cleaned = plain_file_name(name)
    if cleaned.lower().endswith(PACK_SUFFIX):
        cleaned = cleaned[: -len(PACK_SUFFIX)].strip(" ._")
    shown = repr(str(name)[:40])
    if not cleaned or cleaned.split(".")[0].strip().lower() in WINDOWS_RESERVED:
        raise PackError(f"{shown} cannot be used as a style pack name; use letters, digits, '-' or '_'.")
    if len(cleaned) > MAX_NAME_LENGTH or len(cleaned.encode("utf-8")) > MAX_NAME_BYTES:
        raise PackError(f"Style pack names are limited to {MAX_NAME_LENGTH} characters; {shown}… is longer.")
    return cleaned


def png_bytes(image: Image.Image) -> bytes:
    """An image encoded as PNG (RGB)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail_data_uri(image: Image.Image, max_side: int = 256) -> str:
    """A small PNG of `image` as a data: URI (ModelSpec's thumbnail)."""
    thumb = image.convert("RGB")
    thumb.thumbnail((max_side, max_side))
    return THUMBNAIL_PREFIX + base64.b64encode(png_bytes(thumb)).decode()


def thumbnail_image(metadata: dict[str, str]) -> Image.Image | None:
    """The pack's embedded thumbnail through the image gate (tight limits), or None when absent or unusable."""
    uri = metadata.get(THUMBNAIL_KEY, "")
    if not uri.startswith(THUMBNAIL_PREFIX) or len(uri) > MAX_THUMBNAIL_BYTES * 4 // 3 + len(THUMBNAIL_PREFIX) + 4:
        return None
    try:
        data = base64.b64decode(uri[len(THUMBNAIL_PREFIX) :], validate=True)
        return open_image(data, max_pixels=MAX_THUMBNAIL_PIXELS, max_bytes=MAX_THUMBNAIL_BYTES)
    except (binascii.Error, ImageError):
        return None


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

    @property
    def is_compact(self) -> bool:
        """Whether the tensors are differences from the base (format 2) rather than the weights themselves."""
        return self.metadata.get("jojogan.format_version") == COMPACT_FORMAT_VERSION

    def json_field(self, key: str) -> dict:
        """A JSON-valued metadata entry as a dict ({} when absent or unreadable)."""
        try:
            value = json.loads(self.metadata.get(key, "{}"))
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def save(
        self,
        path: str | Path,
        dtype: str = "float16",
        *,
        overwrite: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> Path:
        """Write the pack as `path` (+ `<name>.preview.png` when it has a preview), both or neither.

        `overwrite=False` refuses (PackError) when `path` exists by then; `should_stop()` is asked once
        both files are written, just before they go in place, and True cancels the save (CancelledError).
        """
        if dtype not in DTYPES:
            raise PackError(f"Unknown pack precision '{dtype}'; use one of {', '.join(DTYPES)}.")
        path = Path(path)
        if self.is_compact:  # the encoder chose each part's dtype (int8 levels, float32 scales)
            tensors = {key: value.detach().to("cpu").contiguous() for key, value in self.tensors.items()}
        else:
            tensors = {key: value.detach().to("cpu", DTYPES[dtype]).contiguous() for key, value in self.tensors.items()}
        preview = png_bytes(self.preview) if self.preview is not None else None
        write_pack_files(
            path,
            lambda temp: save_file(tensors, str(temp), metadata=self.metadata),
            preview,
            overwrite=overwrite,
            should_stop=should_stop,
        )
        self.path = path
        return path

    def check_fits(self, base: Generator, base_fingerprint: str | None = None) -> None:
        """Refuse (PackError) a pack whose tensors or base model do not match `base`."""
        if self.is_compact:
            self.delta_parts(base, base_fingerprint)
            return
        where = self.where
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

    @property
    def where(self) -> str:
        """How refusals name the pack: its file name."""
        return self.path.name if self.path else "the style pack"

    def delta_parts(self, base: Generator, base_fingerprint: str | None = None) -> dict[str, dict[str, str]]:
        """A compact pack's parts by base key, once its base fingerprint and every part's shape fit `base`.

        Shapes only: nothing is decoded (so allocated) before the whole pack is known to fit.
        """
        recorded = self.json_field("jojogan.base")
        fingerprint = base_fingerprint or generator_fingerprint(base)
        if recorded.get("sha256") != fingerprint:
            raise PackError(
                f"{self.where} stores only its difference from the base generator {str(recorded.get('name', '?'))[:80]} "
                f"(sha256 {str(recorded.get('sha256', '?'))[:12]}…), not the one loaded (sha256 {fingerprint[:12]}…); "
                "load that base model to use it."
            )
        shapes = {key: list(value.shape) for key, value in self.tensors.items()}
        base_shapes = {key: value.shape for key, value in base.synthesis_parameters().items()}
        return delta.check_fits(shapes, base_shapes, self.where)

    def expanded(self, base: Generator, base_fingerprint: str | None = None) -> StylePack:
        """The pack with full synthesis weights (float32, format 1): a compact pack decoded on `base`, else itself.

        Refused (PackError) when it does not fit `base`; the compression record stays in the metadata.
        """
        if not self.is_compact:
            self.check_fits(base, base_fingerprint)
            return self
        encodings = delta.encodings_of(self.tensors, self.delta_parts(base, base_fingerprint))
        unchanged = delta.Encoding("same", {})
        tensors = {
            key: delta.decode(value, encodings.get(key, unchanged))
            for key, value in base.synthesis_parameters().items()
        }
        metadata = self.metadata | {"jojogan.format_version": FORMAT_VERSION}
        return StylePack(tensors, metadata, self.path, self.preview)

    def generator(self, base: Generator, strength: float = 1.0, base_fingerprint: str | None = None) -> Generator:
        """A copy of `base` with the pack's synthesis weights, blended by `strength` (0 = base, 1 = pack)."""
        full = self.expanded(base, base_fingerprint)
        styled = copy.deepcopy(base)
        with torch.no_grad():
            for key, parameter in styled.synthesis_parameters().items():
                target = full.tensors[key].to(parameter.device, parameter.dtype)
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
    base_fingerprint: str | None = None,
) -> dict[str, str]:
    """The pack's `__metadata__`: ModelSpec keys plus ours (every value a string).

    Pass `base_fingerprint` when it is known (Runtime caches it) to skip hashing the base again.
    """
    base_fingerprint = base_fingerprint or generator_fingerprint(base)
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
        "jojogan.base": json.dumps({"name": base_name, "sha256": base_fingerprint}),
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
    base_fingerprint: str | None = None,
) -> StylePack:
    """An in-memory pack of `generator`'s synthesis weights (float32 on CPU) with full metadata."""
    tensors = {key: value.detach().to("cpu", torch.float32) for key, value in generator.synthesis_parameters().items()}
    values = build_metadata(
        generator, base=base, title=title, metadata=metadata, preview=preview, base_fingerprint=base_fingerprint
    )
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


def write_pack_files(
    path: Path,
    write_pack: Callable[[Path], None],
    preview_png: bytes | None,
    *,
    overwrite: bool,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Write a pack (via `write_pack(temp)`) and its preview to temp files, then put both in place.

    A failure or a cancel before the pack is in place leaves the folder as it was: no pack, no preview,
    no temp file. A pack put in place without a preview removes a stale preview of the same name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    preview = preview_path(path)
    pack_temp, preview_temp = temp_sibling(path), temp_sibling(preview)
    try:
        write_pack(pack_temp)
        if preview_png is not None:
            preview_temp.write_bytes(preview_png)
        if should_stop is not None and should_stop():
            raise CancelledError(f"Saving '{path.stem}' was cancelled; nothing was saved.")
        try:
            commit(pack_temp, path, overwrite=overwrite)
        except FileExistsError:
            raise PackExistsError(
                f"A style pack named '{path.stem}' already exists; choose another name or delete it first."
            ) from None
        if preview_png is not None:
            commit(preview_temp, preview)
        else:
            preview.unlink(missing_ok=True)
    finally:
        pack_temp.unlink(missing_ok=True)
        preview_temp.unlink(missing_ok=True)


def no_such_pack(path: Path) -> MissingPackError:
    """The refusal for a pack that is not there (or vanished while it was being read)."""
    return MissingPackError(f"There is no style pack named '{path.stem}' in {path.parent}.")


def read_pack_metadata(path: str | Path) -> dict[str, str]:
    """Only the header of a pack (fast, no tensors, at most MAX_PACK_HEADER_BYTES read), validated as ours."""
    path = Path(path)
    try:
        header = check_safetensors_header(path, MAX_PACK_HEADER_BYTES)
    except CheckpointError as error:
        raise PackError(str(error)) from None
    except FileNotFoundError:
        raise no_such_pack(path) from None
    except OSError as error:
        raise PackError(f"{path.name} cannot be read: {error.strerror or error}.") from None
    return validate_pack_header(path, header)


def validate_pack_header(path: Path, header: dict) -> dict[str, str]:
    """A pack's metadata, refused unless it is ours, within the limits and agrees with the tensor shapes."""
    metadata = header.get("__metadata__", {})
    validate_metadata(path, metadata)
    if metadata["jojogan.format_version"] == COMPACT_FORMAT_VERSION:
        check_compact_header(path, metadata, header)
        return metadata
    shapes = {key: entry["shape"] for key, entry in header.items() if key != "__metadata__"}
    check_declared_config(path, metadata, shapes)
    return metadata


def check_compact_header(path: Path, metadata: dict[str, str], header: dict) -> None:
    """A compact pack must name its base's fingerprint and hold only complete, consistent parts (header only)."""
    try:
        base = json.loads(metadata.get("jojogan.base", ""))
    except json.JSONDecodeError:
        base = None
    fingerprint = base.get("sha256") if isinstance(base, dict) else None
    if not (isinstance(fingerprint, str) and re.fullmatch(r"[0-9a-f]{64}", fingerprint)):
        raise PackError(
            f"{path.name} is a compact pack without the sha256 of its base generator in jojogan.base; "
            "it cannot be decoded: the pack is damaged."
        )
    delta.check_header(header, path.name)


def update_pack_details(path: str | Path, changes: Mapping[str, object]) -> dict[str, str]:
    """Write edited details (PackDetails fields: title, author, description, license) into a pack's metadata.

    Only the header is rewritten: the tensor entries, offsets and bytes are copied unchanged into a temp file
    that then replaces the pack (atomic). Returns the new metadata; a refused value leaves the file untouched.
    """
    path = Path(path)
    try:
        details = parse(PackDetails, dict(changes))
    except JojoganError as error:
        problems = str(error).removeprefix(f"Invalid {PackDetails.__name__}: ")
        raise PackError(f"The details of '{path.stem}' were not saved: {problems}") from None
    with path.open("rb") as source:
        metadata = read_pack_metadata(path)
        header = check_safetensors_header(path)
        metadata.update({DETAIL_KEYS[key]: getattr(details, key) for key in changes})
        validate_metadata(path, metadata)  # the same caps as every listing and import
        header["__metadata__"] = metadata  # safetensors writes it first; dicts keep that order
        raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        raw += b" " * (-len(raw) % 8)  # the data buffer stays 8-byte aligned, as safetensors writes it
        if len(raw) > MAX_PACK_HEADER_BYTES:
            raise PackError(f"The details of '{path.stem}' were not saved: the pack's header would be too large.")
        source.seek(8 + int.from_bytes(source.read(8), "little"))
        with atomic_path(path) as temp, temp.open("wb") as target:
            target.write(len(raw).to_bytes(8, "little") + raw)
            shutil.copyfileobj(source, target)
    return metadata


def validate_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Refuse files that are not our packs (a LoRA, say), come from a newer format, or carry too much metadata."""
    version = metadata.get("jojogan.format_version")
    if version is None:
        raise PackError(f"{path.name} is not a JoJoGAN style pack (no jojogan metadata); is it a LoRA or a checkpoint?")
    if version not in FORMAT_VERSIONS:
        raise PackError(
            f"{path.name} uses style pack format {version!r}; this version reads formats "
            f"{' and '.join(FORMAT_VERSIONS)}: update the extension."
        )
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise PackError(
            f"{path.name} carries {len(metadata)} metadata entries (limit {MAX_METADATA_ENTRIES}); it was not written "
            "by this extension or was edited: re-save it without the extra entries."
        )
    total = 0
    for key, value in metadata.items():
        size = len(key.encode("utf-8", "surrogatepass")) + len(value.encode("utf-8", "surrogatepass"))
        limit = MAX_THUMBNAIL_URI_BYTES if key == THUMBNAIL_KEY else MAX_METADATA_VALUE_BYTES
        if size > limit:
            raise PackError(
                f"{path.name}: its metadata entry {key[:60]!r} holds {size} bytes (limit {limit}); "
                "re-save the pack with a shorter one."
            )
        total += 0 if key == THUMBNAIL_KEY else size
    if total > MAX_METADATA_BYTES:
        raise PackError(
            f"{path.name} carries {total} bytes of metadata (limit {MAX_METADATA_BYTES}, the thumbnail aside); "
            "re-save the pack with less."
        )


def config_of_shapes(shapes: dict[str, list[int]]) -> dict | None:
    """size, style_dim and channels as the synthesis tensors' shapes imply them (None when keys are missing)."""
    try:
        blocks = sum(1 for key in shapes if re.fullmatch(r"to_rgbs\.\d+\.bias", key))
        channels = {"4": shapes["conv1.conv.weight"][1]}
        for block in range(blocks):
            channels[str(2 ** (block + 3))] = shapes[f"convs.{2 * block}.conv.weight"][1]
        return {"size": 2 ** (blocks + 2), "style_dim": shapes["conv1.conv.modulation.weight"][1], "channels": channels}
    except (KeyError, IndexError):
        return None  # the fit check against the base names what is missing


def check_declared_config(path: Path, metadata: dict[str, str], shapes: dict[str, list[int]]) -> None:
    """Refuse a pack whose `jojogan.config` (size, style_dim, channels) contradicts its tensors."""
    if "jojogan.config" not in metadata:
        return
    try:
        declared = json.loads(metadata["jojogan.config"])
    except json.JSONDecodeError:
        declared = None
    if not isinstance(declared, dict):
        raise PackError(f"{path.name}: its jojogan.config metadata is not a JSON object; the pack is damaged.")
    actual = config_of_shapes(shapes)
    if actual is None:
        return
    declared_channels = declared.get("channels", {})
    if isinstance(declared_channels, dict):  # the base's table reaches beyond the pack's size: compare the pack's
        declared = declared | {"channels": {res: declared_channels.get(res) for res in actual["channels"]}}
    for key, value in actual.items():
        if key in declared and declared[key] != value:
            raise PackError(
                f"{path.name} declares {key} {json.dumps(declared[key])[:80]} in its jojogan.config, but its tensors "
                f"have {json.dumps(value)[:80]}; the pack is damaged or was edited."
            )


def all_finite(value: Tensor) -> bool:
    """True when no element is NaN or infinite. A sum is finite only then, and summing is a vectorised
    reduction (40× faster than `isfinite` on CPU); a non-finite sum may also be an overflow, so check exactly."""
    return bool(torch.isfinite(value.sum())) or bool(torch.isfinite(value).all())


def load_pack(path: str | Path) -> StylePack:
    """Read and validate a style pack (header, metadata, tensor dtypes, finite values); never unpickles."""
    path = Path(path)
    read_pack_metadata(path)  # the pack's limits and checks, before any tensor is read
    try:
        tensors, metadata = read_safetensors(path)
    except CheckpointError as error:
        raise (PackError(str(error)) if path.exists() else no_such_pack(path)) from None
    if metadata.get("jojogan.format_version") == COMPACT_FORMAT_VERSION:
        delta.check_header(delta.header_of(tensors), path.name)  # again: the file may have changed since
        delta.check_values(tensors, path.name)
        return StylePack(tensors, metadata, path)
    for key, value in tensors.items():
        if value.dtype not in DTYPES.values():
            raise PackError(f"{path.name}: tensor {key} has dtype {value.dtype}; packs hold float16/32 weights.")
        if not all_finite(value):
            raise PackError(f"{path.name}: tensor {key} contains NaN or infinite values; the pack is damaged.")
    return StylePack(tensors, metadata, path)


def jojogan_style_generator(src: Path, base: Generator) -> Generator:
    """`base` with the synthesis weights of a JoJoGAN style file; refused (naming `src`) when they do not fit."""
    state_dict = load_jojogan_style(src)
    synthesis = {key: value for key, value in state_dict.items() if key in base.synthesis_parameters()}
    for key, value in synthesis.items():
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise PackError(f"{src.name}: tensor {key} is not finite floating-point weights.")
    return StylePack(synthesis, {}, src).generator(base)  # refusals name `src`


def import_jojogan_style(
    src: str | Path,
    dst: str | Path,
    *,
    base: Generator,
    title: str | None = None,
    dtype: str = "float16",
    render_preview: Callable[[Generator], Image.Image] | None = None,
    overwrite: bool = True,
    base_fingerprint: str | None = None,
    compact: Callable[[StylePack], StylePack] | None = None,
) -> Path:
    """Convert a JoJoGAN style `.pt` ({"g": ...}) into a pack; refused when it does not fit `base`.

    `render_preview(styled generator)` makes the pack's preview and thumbnail when given; `compact(pack)` the
    pack that is saved (e.g. its compact form) when given.
    """
    src = Path(src)
    generator = jojogan_style_generator(src, base)
    source = {"jojogan.source": f"converted from {src.name}"}
    preview = render_preview(generator) if render_preview is not None else None
    pack = make_pack(
        generator,
        base=base,
        title=title or src.stem,
        metadata=source,
        preview=preview,
        base_fingerprint=base_fingerprint,
    )
    if compact is not None:
        pack = compact(pack)
    return pack.save(dst, dtype, overwrite=overwrite)


def import_kind(source: Path) -> str:
    """The one import gate's first look: 'safetensors' or 'torch', judged by content; else a PackError sentence.

    A file named `.safetensors` must hold safetensors (the header check names what is wrong with it, a
    renamed pickle included); any other name is judged by its content alone.
    """
    if not source.is_file():
        raise PackError(f"{source.name} does not exist or is not a file.")
    if source.stat().st_size == 0:
        raise PackError(
            f"{source.name} is empty (0 bytes); choose the style pack (.safetensors) or JoJoGAN style (.pt) itself."
        )
    kind = sniff_weights_file(source)
    if source.suffix == PACK_SUFFIX or kind == "safetensors":
        return "safetensors"
    if kind in ("torch", "legacy"):
        return "torch"  # the untrusted reader refuses legacy pickles and anything but tensors
    raise PackError(
        f"{source.name} is neither a style pack (.safetensors) nor a JoJoGAN style (.pt); use one of those."
    )


@dataclass
class PackInfo:
    """A pack as listed in the library (header only)."""

    name: str
    path: Path
    metadata: dict[str, str] = field(default_factory=dict)
    preview: Path | None = None
    size_bytes: int = 0  # the file's size when it was listed (it may be gone by the time this is shown)

    @property
    def title(self) -> str:
        return self.metadata.get("modelspec.title") or self.name


class PackLibrary:
    """The packs folder: list, locate, import, rename, delete — names never leave the folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path_for(self, name: str) -> Path:
        """The pack file for `name` (sanitized), guaranteed inside the folder."""
        path = (self.folder / (safe_pack_name(name) + PACK_SUFFIX)).resolve()
        if path.parent != self.folder.resolve():
            raise PackError(
                f"{str(name)[:40]!r} would point outside the style pack folder (a link?); use another name."
            )
        return path

    def new_path(self, name: str, overwrite: bool = False) -> Path:
        """Where a new pack called `name` goes; refuses to replace another pack unless asked."""
        path = self.path_for(name)
        if path.exists() and not overwrite:
            raise PackExistsError(
                f"A style pack named '{path.stem}' already exists; choose another name or delete it first."
            )
        return path

    def existing(self, name: str) -> Path:
        """The file of an existing pack, or a MissingPackError saying it is not there."""
        path = self.path_for(name)
        if not path.is_file():
            raise no_such_pack(path)
        return path

    def info(self, name: str) -> PackInfo:
        """Header-only info of one existing pack; MissingPackError when it is absent or vanishes meanwhile."""
        path = self.existing(name)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise no_such_pack(path) from None
        preview = preview_path(path)
        return PackInfo(path.stem, path, read_pack_metadata(path), preview if preview.is_file() else None, size)

    def list(self) -> list[PackInfo]:
        """Every readable pack, sorted by name; unreadable files are skipped (see `problems`)."""
        return [info for info in self._scan() if isinstance(info, PackInfo)]

    def problems(self) -> list[str]:
        """One sentence per file in the folder that is not a usable pack."""
        return [info for info in self._scan() if isinstance(info, str)]

    def _scan(self) -> list[PackInfo | str]:
        """Packs and problem sentences; a file that vanishes while it is read is simply not listed."""
        if not self.folder.is_dir():
            return []
        found: list[PackInfo | str] = []
        for path in sorted(self.folder.glob("*" + PACK_SUFFIX)):
            if path.name.startswith("."):
                continue
            try:
                if safe_pack_name(path.stem) != path.stem:
                    raise PackError(
                        f"{path.name!r} is not a usable pack name; rename it to {safe_pack_name(path.stem)!r}."
                    )
                found.append(self.info(path.stem))
            except MissingPackError:
                continue
            except PackError as error:
                found.append(str(error))
        return found

    def load(self, name: str) -> StylePack:
        """A pack by name, fully validated; MissingPackError when it is absent or vanishes meanwhile."""
        return load_pack(self.existing(name))

    def rename(self, old: str, new: str) -> Path:
        """Rename a pack and its preview; refuses to overwrite another pack."""
        source, target = self.existing(old), self.new_path(new)
        try:
            commit(source, target, overwrite=False)
        except FileExistsError:
            raise PackExistsError(f"A style pack named '{target.stem}' already exists; choose another name.") from None
        except FileNotFoundError:
            raise no_such_pack(source) from None
        if preview_path(source).is_file():
            commit(preview_path(source), preview_path(target))
        return target

    def import_file(
        self,
        source: str | Path,
        name: str,
        *,
        base: Callable[[], StyleGAN2Checkpoint],
        fingerprint: Callable[[], str] | None = None,
        render_preview: Callable[[Generator], Image.Image] | None = None,
        overwrite: bool = False,
        dtype: str = "float16",
        compact: Callable[[StylePack], StylePack] | None = None,
    ) -> Path:
        """Add a style pack (.safetensors) or convert a JoJoGAN style (.pt, or `g.*` safetensors) as `name`.

        The one import gate of every front. Cheap checks (name, kind, header) come first, then `base()`
        (the base model, loaded on demand) and the full validation; nothing is written until the file is
        known to fit, and then pack and preview land together (the preview: the pack's thumbnail, else
        `render_preview(styled generator)`). A converted style is saved as `compact(pack)` when that is given (a
        pack file is added as it is). Refusals are PackError/CheckpointError sentences naming the file.
        """
        source = Path(source)
        target = self.new_path(name, overwrite=overwrite)
        # the header check names what is wrong with anything else; a safetensors without our metadata but
        # with `g.*` tensors is a JoJoGAN style, like a .pt
        is_pack = import_kind(source) == "safetensors" and self._is_pack_file(source)
        checkpoint = base()  # after the cheap checks: a foreign file is refused even without the base model
        base_fingerprint = fingerprint() if fingerprint is not None else None
        if not is_pack:  # a JoJoGAN style: .pt, or safetensors with `g.*` tensors
            return import_jojogan_style(
                source, target, base=checkpoint.generator, title=target.stem, dtype=dtype,
                render_preview=render_preview, overwrite=overwrite, base_fingerprint=base_fingerprint, compact=compact,
            )  # fmt: skip
        pack = load_pack(source)
        pack.check_fits(checkpoint.generator, base_fingerprint)
        preview = thumbnail_image(pack.metadata)
        if preview is None and render_preview is not None:
            preview = render_preview(pack.generator(checkpoint.generator))
        write_pack_files(
            target,
            lambda temp: shutil.copyfile(source, temp),
            png_bytes(preview) if preview is not None else None,
            overwrite=overwrite,
        )
        return target

    @staticmethod
    def _is_pack_file(source: Path) -> bool:
        """True for our packs, False for a JoJoGAN style saved as safetensors (`g.*` tensors); else a PackError."""
        try:
            header = check_safetensors_header(source)
        except CheckpointError as error:
            raise PackError(str(error)) from None
        metadata = header.get("__metadata__", {})
        if "jojogan.format_version" not in metadata and any(key.startswith(("g.", "g_ema.")) for key in header):
            return False
        validate_pack_header(source, header)
        return True

    def delete(self, name: str) -> None:
        """Delete a pack and its preview."""
        path = self.existing(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise no_such_pack(path) from None
        preview_path(path).unlink(missing_ok=True)
