"""Read the public checkpoint layouts safely: rosinality StyleGAN2 `.pt`, JoJoGAN styles, e4e, safetensors.

Never unpickles code: the catalog's model files go through `torch.load(weights_only=True)`; files a user
imports (JoJoGAN styles) through `read_untrusted_torch_checkpoint`, our own reader that accepts only
dicts, numbers, strings and tensors and never hands the bytes to torch.load (whose weights_only guard
has known bypasses in the torch versions the web UI pins). Every failure becomes one `CheckpointError`
that names the file and what was wrong.
"""

import collections
import json
import math
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from .errors import CheckpointError
from .files import atomic_write
from .nn.e4e import DEFAULT_WIDTH, Encoder4Editing
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
    OSError,  # a truncated zip archive can fail inside the memory map
)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file.")
    return path


def unreadable(path: Path, why: str, error: BaseException) -> CheckpointError:
    """The refusal for a `.pt` file that could not be read, with the first line of the low-level error."""
    detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({why}): {detail}.")


def weights_dict(path: Path, checkpoint: object) -> dict:
    """The checkpoint's top level, refused unless it is a dict (of weights and their companions)."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path.name} holds a {type(checkpoint).__name__}, not a dict of weights.")
    return checkpoint


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
        raise unreadable(path, "truncated or another kind of file", error) from None
    return weights_dict(path, checkpoint)


# --- user-supplied .pt files: a restricted reader for torch's zip format ---------------------------------
# torch.save's storage classes (pickled by name) and the dtype of their elements
STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}  # fmt: skip
# what reading a damaged or hostile zip archive or pickle stream raises
UNTRUSTED_READ_ERRORS = (
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    NotImplementedError,  # an unsupported zip compression
    RuntimeError,  # an encrypted zip member; torch refusing a storage view
    struct.error,
    OSError,
)


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a function or class that is not plain tensor data (calling it could run code)."""


@dataclass(frozen=True)
class _StorageKind:
    """Stands for `torch.<Type>Storage` while unpickling: only its element dtype matters."""

    dtype: torch.dtype


class _TensorUnpickler(pickle.Unpickler):
    """Unpickles a torch zip archive's `data.pkl` allowing containers, numbers, strings and tensors only.

    Every class lookup goes through `find_class`, which knows four names and no others, so no pickled
    reference to a function can be called; tensors are rebuilt here from bounds-checked byte records.
    """

    def __init__(self, stream: IO[bytes], archive: zipfile.ZipFile, root: str, max_bytes: int):
        super().__init__(stream)
        self.archive, self.root = archive, root
        self.bytes_left = max_bytes  # all storages together fit in the file (overlapping zip members do not)
        self.copies_left = 2 * max_bytes  # all tensors together: views may share a storage, but not a thousand times
        self.storages: dict[str, Tensor] = {}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageKind(STORAGE_DTYPES[name])
        raise _ForbiddenGlobal(f"{module}.{name}"[:120])

    def persistent_load(self, saved_id: object) -> Tensor:
        """A storage reference ('storage', kind, key, location, numel) → its bytes as a flat tensor."""
        if not (
            isinstance(saved_id, tuple)
            and len(saved_id) == 5
            and saved_id[0] == "storage"
            and isinstance(saved_id[1], _StorageKind)
            and isinstance(saved_id[2], str)
            and type(saved_id[4]) is int
        ):
            raise ValueError("a storage reference is malformed")
        kind, key, numel = saved_id[1], saved_id[2], saved_id[4]
        if key not in self.storages:
            record = self.archive.getinfo(f"{self.root}data/{key}")
            expected = numel * torch.empty((), dtype=kind.dtype).element_size()
            if record.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"storage {key[:20]} is compressed, which torch.save never does")
            if record.file_size != expected or expected > self.bytes_left:
                raise ValueError(f"storage {key[:20]} holds {record.file_size} bytes, its tensors need {expected}")
            self.bytes_left -= expected
            data = bytearray(self.archive.read(record))
            self.storages[key] = torch.frombuffer(data, dtype=kind.dtype) if data else torch.empty(0, dtype=kind.dtype)
        storage = self.storages[key]
        if storage.dtype != kind.dtype:
            raise ValueError(f"storage {key[:20]} is read as two different types")
        return storage

    def rebuild_tensor(
        self,
        storage: Tensor,
        offset: int,
        size: tuple,
        stride: tuple,
        requires_grad: bool,
        hooks: object,
        metadata: object = None,
    ) -> Tensor:
        """torch's `_rebuild_tensor_v2` for our flat storages: a contiguous copy of the view, after bounds checks."""
        if not (
            isinstance(storage, Tensor)
            and type(offset) is int
            and isinstance(size, tuple)
            and isinstance(stride, tuple)
            and len(size) == len(stride)
            and all(type(n) is int and n >= 0 for n in (offset, *size, *stride))
        ):
            raise ValueError("a tensor has a malformed size, stride or offset")
        if all(size) and offset + sum((n - 1) * step for n, step in zip(size, stride, strict=True)) >= storage.numel():
            raise ValueError("a tensor reaches past the end of its storage")
        self.copies_left -= math.prod(size) * storage.element_size()
        if self.copies_left < 0:
            raise ValueError("its tensors would take far more memory than the file holds")
        return torch.as_strided(storage, size, stride, offset).clone(memory_format=torch.contiguous_format)


def _rebuild_parameter(data: Tensor, requires_grad: bool, hooks: object) -> Tensor:
    """torch's `_rebuild_parameter`: a saved nn.Parameter is read as its plain tensor."""
    if not isinstance(data, Tensor):
        raise ValueError("a parameter holds no tensor")
    return data


def read_untrusted_torch_checkpoint(path: str | Path) -> dict:
    """A user-supplied `.pt` file's top-level dict, read without torch.load and without running any code.

    Only torch's zip format (PyTorch >= 1.6) is read; legacy pickles and anything that is not plain tensor
    data are refused with a CheckpointError naming the file and the reason.
    """
    path = _existing_file(path)
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(4)
    if head[:1] == b"\x80":
        raise CheckpointError(
            f"{path.name} is in PyTorch's legacy (pre-1.6) format, which cannot be read safely; "
            "re-save it with torch.save in a current PyTorch, or convert it to .safetensors."
        )
    if head != ZIP_MAGIC:
        raise CheckpointError(
            f"{path.name} is not a PyTorch checkpoint (no zip archive); use a .pt saved by torch.save."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
            if len(pickles) != 1:
                raise CheckpointError(
                    f"{path.name} is a zip archive but not a PyTorch checkpoint (no single data.pkl)."
                )
            root = pickles[0][: -len("data.pkl")]
            if root + "byteorder" in archive.namelist() and archive.read(root + "byteorder") != b"little":
                raise CheckpointError(f"{path.name} was saved on a big-endian machine; re-save it on a PC or Mac.")
            with archive.open(f"{root}data.pkl") as stream:
                checkpoint = _TensorUnpickler(stream, archive, root, max_bytes=size).load()
    except CheckpointError:
        raise
    except _ForbiddenGlobal as error:
        raise CheckpointError(
            f"{path.name} holds Python objects other than tensors ({error}); it was not loaded because that "
            "could run code."
        ) from None
    except UNTRUSTED_READ_ERRORS as error:
        raise unreadable(path, "truncated or damaged", error) from None
    return weights_dict(path, checkpoint)


SAFETENSORS_DTYPES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip
MAX_HEADER_BYTES = 16 * 2**20  # our packs' headers are a few hundred KB (the thumbnail included)
TENSOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def safetensors_header_length(head: bytes, file_size: int, max_header_bytes: int = MAX_HEADER_BYTES) -> int | None:
    """The header length when a file's first 9 bytes have safetensors' structure, else None.

    The structure: an 8-byte little-endian length that fits the file and the limit, followed by `{`.
    Never judged by a prefix alone: a valid header length can start with bytes a pickle starts with.
    """
    if len(head) < 9 or head[8:9] != b"{":
        return None
    length = int.from_bytes(head[:8], "little")
    return length if 2 <= length <= max_header_bytes and 8 + length <= file_size else None


def looks_like_pickle(head: bytes) -> bool:
    """Whether bytes that are NOT a safetensors header start like torch.save's zip or a bare pickle."""
    return head.startswith(ZIP_MAGIC) or head.startswith(b"\x80")


def sniff_weights_file(path: Path) -> str | None:
    """'safetensors', 'torch' (zip), 'legacy' (a bare pickle) or None, judged from the content, never the name.

    'safetensors' means the file claims to be one (a `{` after the 8-byte length, or a valid structure);
    the header check then says what, if anything, is wrong with it.
    """
    with path.open("rb") as file:
        head = file.read(9)
    if head[8:9] == b"{" or safetensors_header_length(head, path.stat().st_size) is not None:
        return "safetensors"
    if head.startswith(ZIP_MAGIC):
        return "torch"
    if head.startswith(b"\x80"):
        return "legacy"
    return None


def check_safetensors_header(path: Path, max_header_bytes: int = MAX_HEADER_BYTES) -> dict:
    """Validate a safetensors header before any tensor is read: size, JSON, names, dtypes, offsets.

    Returns the parsed header; raises CheckpointError naming the file and the first problem found.
    """

    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(f"{path.name} is not a valid safetensors file: {problem}.")

    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(9)
        if size == 0:
            raise refuse("it is empty")
        if len(head) < 8:
            raise refuse("it is shorter than a header")
        if safetensors_header_length(head, size, max_header_bytes) is None and looks_like_pickle(head):
            raise refuse("it is a pickle/PyTorch file renamed to .safetensors; it was not opened")
        header_bytes = int.from_bytes(head[:8], "little")
        if header_bytes > max_header_bytes:
            raise refuse(f"its header claims {header_bytes} bytes (limit {max_header_bytes})")
        if 8 + header_bytes > size:
            raise refuse("its header points past the end of the file (truncated?)")
        file.seek(8)
        raw = file.read(header_bytes)

    def no_duplicates(pairs: list) -> dict:
        keys = [key for key, _ in pairs]
        if len(keys) != len(set(keys)):
            raise refuse("a tensor name appears twice")
        return dict(pairs)

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise refuse("its header is not JSON") from None
    if not isinstance(header, dict):
        raise refuse("its header is not a JSON object")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise refuse("its metadata is not a map of strings")
    data_bytes = size - 8 - header_bytes
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not TENSOR_NAME.fullmatch(name) or ".." in name:
            raise refuse(f"tensor name {name[:60]!r} is not a plain name")
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            raise refuse(f"tensor {name} has no known dtype")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise refuse(f"tensor {name} has an invalid shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise refuse(f"tensor {name} has invalid data offsets")
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes:
            raise refuse(f"tensor {name} points past the end of the file (truncated?)")
        if end - begin != math.prod(shape) * SAFETENSORS_DTYPES[entry["dtype"]]:
            raise refuse(f"tensor {name}'s data size does not match its shape")
    return header


def read_safetensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors (on CPU) and the string metadata of a `.safetensors` file (header validated first)."""
    path = _existing_file(path)
    check_safetensors_header(path)
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
    """The generator state dict of a JoJoGAN style file: `.pt` with {"g": ...} or {"g_ema": ...}, or `g.*`.

    Style files come from strangers, so `.pt` files go through `read_untrusted_torch_checkpoint`.
    """
    path = _existing_file(path)
    if path.suffix == ".safetensors" or sniff_weights_file(path) == "safetensors":
        content, _ = read_safetensors(path)
        state_dict = with_prefix(content, "g") or with_prefix(content, "g_ema")
        if not state_dict:
            raise CheckpointError(f"{path.name} has no 'g.*' tensors; it is not a JoJoGAN style file.")
        return state_dict
    content = read_untrusted_torch_checkpoint(path)
    for key in ("g", "g_ema"):
        if key in content:
            return _tensor_dict(content[key], path, key)
    raise CheckpointError(f"{path.name} has neither 'g' nor 'g_ema'; it is not a JoJoGAN style file.")


# --- e4e encoder ---
E4E_PREFIX = "encoder."
E4E_CACHE_KIND = "e4e-encoder"
E4E_CACHE_VERSION = "1"
E4E_CACHE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


def load_e4e(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[Encoder4Editing, Tensor]:
    """The e4e encoder (eval mode, frozen) and latent_avg [n_styles, 512] from `e4e_ffhq_encode.pt` or our cache.

    The `.pt` is memory-mapped and only its `encoder.*` tensors are used (the decoder is dropped); the
    model is built on the meta device and takes the tensors as they are, so memory holds one copy.
    """
    path = _existing_file(path)
    if path.suffix == ".safetensors":
        state_dict, latent_avg, n_styles = _read_e4e_cache(path)
    else:
        state_dict, latent_avg, n_styles = _read_e4e_checkpoint(path)
    first_conv = state_dict.get("input_layer.0.weight")
    width = first_conv.shape[0] if isinstance(first_conv, Tensor) and first_conv.ndim == 4 else DEFAULT_WIDTH
    with torch.device("meta"):
        encoder = Encoder4Editing(n_styles, width)
    latent_avg = _e4e_latent_avg(path, latent_avg, n_styles, encoder.style_dim).to(device=device, dtype=dtype)
    _check_e4e_tensors(path, encoder, state_dict)
    state_dict = {key: _to(value, device, dtype) for key, value in state_dict.items()}
    encoder.load_state_dict(state_dict, strict=True, assign=True)
    encoder.eval().requires_grad_(False)
    return encoder, latent_avg


def save_e4e_cache(
    encoder: Encoder4Editing, latent_avg: Tensor, path: str | Path, dtype: str = "float16", source: str = ""
) -> Path:
    """Write the encoder and latent_avg as one encoder-only `.safetensors` (atomically; float16 halves the size)."""
    if dtype not in E4E_CACHE_DTYPES:
        raise ValueError(f"cache dtype must be one of {sorted(E4E_CACHE_DTYPES)}, got {dtype!r}")
    target = E4E_CACHE_DTYPES[dtype]
    tensors = {key: _to(value, "cpu", target).contiguous() for key, value in encoder.state_dict().items()}
    tensors["latent_avg"] = latent_avg.detach().reshape(-1, encoder.style_dim).to("cpu", target).contiguous()
    metadata = {
        "jojogan.kind": E4E_CACHE_KIND,
        "jojogan.format_version": E4E_CACHE_VERSION,
        "e4e.architecture": "Encoder4Editing(50, ir_se)",
        "e4e.n_styles": str(encoder.n_styles),
        "e4e.dtype": dtype,
        "e4e.source": source,
    }
    path = Path(path)
    atomic_write(path, lambda temp: save_file(tensors, str(temp), metadata=metadata))
    return path


def _to(value: Tensor, device: str | torch.device, dtype: torch.dtype) -> Tensor:
    """Floating tensors to `dtype` on `device`; integer buffers (BatchNorm counters) keep their dtype."""
    if value.is_floating_point():
        return value.to(device=device, dtype=dtype)
    return value.to(device=device)


def _read_e4e_checkpoint(path: Path) -> tuple[dict[str, Tensor], object, int]:
    """The real layout {state_dict: encoder.* + decoder.*, latent_avg, opts} → encoder tensors, latent_avg, n_styles."""
    checkpoint = read_torch_checkpoint(path)
    state_dict = checkpoint.get("state_dict")
    encoder = {}
    if isinstance(state_dict, dict):
        encoder = {key[len(E4E_PREFIX) :]: value for key, value in state_dict.items() if key.startswith(E4E_PREFIX)}
    if not encoder:
        raise CheckpointError(
            f"{path.name} is not an e4e checkpoint: it has no 'state_dict' with 'encoder.*' tensors "
            "(expected e4e_ffhq_encode.pt)."
        )
    opts = checkpoint.get("opts") if isinstance(checkpoint.get("opts"), dict) else {}
    encoder_type = opts.get("encoder_type", "Encoder4Editing")
    if encoder_type != "Encoder4Editing":
        raise CheckpointError(
            f"{path.name} holds a {encoder_type} encoder, not Encoder4Editing; use the e4e checkpoint "
            "e4e_ffhq_encode.pt."
        )
    stylegan_size = opts.get("stylegan_size", 1024)
    if not isinstance(stylegan_size, int) or stylegan_size < 4 or stylegan_size & (stylegan_size - 1):
        raise CheckpointError(f"{path.name} has an invalid opts['stylegan_size'] ({stylegan_size!r}).")
    return encoder, checkpoint.get("latent_avg"), 2 * int(math.log2(stylegan_size)) - 2


def _read_e4e_cache(path: Path) -> tuple[dict[str, Tensor], object, int]:
    """Our encoder-only safetensors → encoder tensors, latent_avg, n_styles (from the metadata)."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("jojogan.kind") != E4E_CACHE_KIND:
        raise CheckpointError(
            f"{path.name} is not an e4e encoder cache (its metadata lacks jojogan.kind={E4E_CACHE_KIND}); "
            "delete it so it is converted again from e4e_ffhq_encode.pt."
        )
    n_styles = metadata.get("e4e.n_styles", "")
    if not n_styles.isdigit():
        raise CheckpointError(f"{path.name} has no valid e4e.n_styles in its metadata; delete it and convert again.")
    latent_avg = tensors.pop("latent_avg", None)
    return tensors, latent_avg, int(n_styles)


def _check_e4e_tensors(path: Path, encoder: Encoder4Editing, state_dict: dict[str, Tensor]) -> None:
    """Refuse, in one sentence, a tensor set that does not fit Encoder4Editing key for key and shape for shape."""
    expected = encoder.state_dict()
    missing = [key for key in expected if key not in state_dict]
    if missing:
        raise CheckpointError(
            f"{path.name} lacks {len(missing)} of the {len(expected)} e4e encoder tensors "
            f"(e.g. {E4E_PREFIX}{missing[0]}); the file is incomplete or not e4e_ffhq_encode.pt."
        )
    unexpected = [key for key in state_dict if key not in expected]
    if unexpected:
        raise CheckpointError(
            f"{path.name} has {len(unexpected)} encoder tensors that Encoder4Editing does not use "
            f"(e.g. {E4E_PREFIX}{unexpected[0]}); it is another encoder architecture."
        )
    for key, value in expected.items():
        if not isinstance(state_dict[key], Tensor):
            raise CheckpointError(
                f"{path.name}: {E4E_PREFIX}{key} is a {type(state_dict[key]).__name__}, not a tensor."
            )
        if state_dict[key].shape != value.shape:
            raise CheckpointError(
                f"{path.name}: {E4E_PREFIX}{key} has shape {tuple(state_dict[key].shape)} but Encoder4Editing "
                f"needs {tuple(value.shape)}; it is another encoder configuration."
            )


def _e4e_latent_avg(path: Path, latent_avg: object, n_styles: int, style_dim: int) -> Tensor:
    """latent_avg as [n_styles, style_dim]: a stored [style_dim] or [1, style_dim] is repeated, [n_styles, D] kept."""
    if not isinstance(latent_avg, Tensor) or not latent_avg.is_floating_point():
        raise CheckpointError(f"{path.name} has no latent_avg tensor; e4e codes need it to become w+.")
    if latent_avg.shape in ((style_dim,), (1, style_dim)):
        return latent_avg.reshape(1, style_dim).repeat(n_styles, 1)
    if latent_avg.shape != (n_styles, style_dim):
        raise CheckpointError(
            f"{path.name}: latent_avg has shape {tuple(latent_avg.shape)} but the encoder needs "
            f"({style_dim},) or ({n_styles}, {style_dim})."
        )
    return latent_avg
