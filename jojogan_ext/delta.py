"""The tensors of a compact style pack (format 2): each synthesis tensor as its difference from the base model.

Per base tensor `K` a pack stores at most one of: nothing (unchanged), `K.delta` (dense difference),
`K.u` + `K.v` (a low-rank difference of the tensor seen as a [rows, cols] matrix; both factors int8, one scale
per row in `K.u_scale` / `K.v_scale`), or `K.q` + `K.scale` (int8 with one scale per row). Encoding, the checks a
stranger's file must pass (by header shapes first, so nothing is decoded before it is known to fit the base) and
decoding. No files, no models: plain tensors.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import PackError

METHODS = ("same", "lowrank", "int8", "dense")
# the stored parts of each method, by tensor-name suffix
PARTS = {"dense": ("delta",), "lowrank": ("u", "u_scale", "v", "v_scale"), "int8": ("q", "scale")}
SUFFIXES = {suffix: method for method, parts in PARTS.items() for suffix in parts}
FLOAT_DTYPES = ("F16", "F32", "BF16")
# the safetensors dtype each part may have
SCALE_DTYPES = ("F32", "F16")
PART_DTYPES = {"delta": FLOAT_DTYPES, "q": ("I8",), "scale": SCALE_DTYPES}
PART_DTYPES |= {"u": ("I8",), "v": ("I8",), "u_scale": SCALE_DTYPES, "v_scale": SCALE_DTYPES}
INT8_LEVELS = 127


def matrix_shape(shape: tuple[int, ...] | list[int]) -> tuple[int, int]:
    """A tensor's [rows, cols] view: leading size-1 dims dropped, rows = the next dim (output channels).

    A modulated conv weight [1, out, in, k, k] is [out, in·k·k]; a modulation weight [in, style] stays as it is.
    """
    dims = list(shape)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    rows = dims[0] if dims else 1
    return rows, math.prod(dims[1:]) if len(dims) > 1 else 1


def split_name(name: str) -> tuple[str, str]:
    """('conv1.conv.weight', 'u') from 'conv1.conv.weight.u'."""
    key, _, suffix = name.rpartition(".")
    return key, suffix


@dataclass(frozen=True)
class Encoding:
    """How one tensor is stored: its method, the rank of a low-rank difference, and the stored parts."""

    method: str
    parts: dict[str, Tensor]
    rank: int = 0

    @property
    def bytes(self) -> int:
        return sum(part.numel() * part.element_size() for part in self.parts.values())


def exact_difference(target: Tensor, base: Tensor) -> Tensor:
    """target − base (float32), nudged where float32 rounding would make base + difference miss target."""
    target, base = target.float(), base.float()
    difference = target - base
    for _ in range(4):  # each pass adds the (exactly computed) remainder where the sum still misses
        missed = (base + difference) != target
        if not bool(missed.any()):
            break
        difference = torch.where(missed, difference + (target - (base + difference)), difference)
    return difference


def encode_dense(target: Tensor, base: Tensor, dtype: torch.dtype) -> Encoding:
    """The whole difference in `dtype`; in float32, base + difference gives `target` back bit for bit."""
    difference = exact_difference(target, base) if dtype == torch.float32 else target.float() - base.float()
    return Encoding("dense", {"delta": difference.to(dtype).contiguous()})


def quantise_rows(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """int8 levels of a [rows, cols] matrix and one float32 scale per row (the row's largest |value| / 127)."""
    matrix = matrix.float()
    scale = matrix.abs().amax(dim=1) / INT8_LEVELS  # [rows]
    levels = torch.where(scale[:, None] > 0, matrix / scale.clamp_min(torch.finfo(torch.float32).tiny)[:, None], 0.0)
    return levels.round().clamp(-INT8_LEVELS, INT8_LEVELS).to(torch.int8).contiguous(), scale.contiguous()


def encode_lowrank(left: Tensor, right: Tensor, rank: int) -> Encoding:
    """The first `rank` factors of an SVD (left [rows, k], right [k, cols], balanced), each int8 per row."""
    u, u_scale = quantise_rows(left[:, :rank])
    v, v_scale = quantise_rows(right[:rank])
    return Encoding("lowrank", {"u": u, "u_scale": u_scale, "v": v, "v_scale": v_scale}, rank)


def encode_int8(delta: Tensor) -> Encoding:
    """int8 levels in the tensor's own shape and one float32 scale per row (the row's largest |value| / 127)."""
    levels, scale = quantise_rows(delta.reshape(matrix_shape(delta.shape)))
    return Encoding("int8", {"q": levels.reshape(delta.shape), "scale": scale})


def svd_factors(delta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(left [rows, k], right [k, cols], singular values [k], largest first) of a difference seen as its
    [rows, cols] matrix, k = min(rows, cols): left[:, :r] @ right[:r] is its best rank-r approximation.

    The singular values are split evenly between the factors (U·√S, √S·Vᵀ), so both quantise alike. From the
    eigenvectors of the smaller Gram matrix (float64): a fraction of a full SVD's time on wide matrices.
    """
    rows, cols = matrix_shape(delta.shape)
    matrix = delta.reshape(rows, cols).double()
    wide = rows <= cols
    values, vectors = torch.linalg.eigh(matrix @ matrix.T if wide else matrix.T @ matrix)
    values, vectors = values.flip(0).clamp_min(0), vectors.flip(1)  # largest first
    singular = values.sqrt()
    root = singular.sqrt()
    inverse = torch.where(root > 0, 1 / root.clamp_min(1e-150), 0.0)
    if wide:  # M ≈ U·S·Vᵀ with S·Vᵀ = Uᵀ M
        left, right = vectors * root, inverse[:, None] * (vectors.T @ matrix)
    else:  # M ≈ U·S·Vᵀ with U·S = M V
        left, right = (matrix @ vectors) * inverse, root[:, None] * vectors.T
    return left.float(), right.float(), singular.float()


def decoded_delta(encoding: Encoding, shape: torch.Size) -> Tensor:
    """The difference an encoding stands for, float32 in `shape` (zeros for an unchanged tensor)."""
    parts = encoding.parts
    if encoding.method == "dense":
        return parts["delta"].float().reshape(shape)
    if encoding.method == "lowrank":
        left = parts["u"].float() * parts["u_scale"].float()[:, None]
        return (left @ (parts["v"].float() * parts["v_scale"].float()[:, None])).reshape(shape)
    if encoding.method == "int8":
        rows, cols = matrix_shape(shape)
        return (parts["q"].float().reshape(rows, cols) * parts["scale"].float()[:, None]).reshape(shape)
    return torch.zeros(shape)


def decode(base: Tensor, encoding: Encoding) -> Tensor:
    """base + the encoded difference, in float32 on the CPU (the same arithmetic at save and at load)."""
    base32 = base.detach().to("cpu", torch.float32)
    if encoding.method == "same":
        return base32.clone()
    return base32 + decoded_delta(encoding, base32.shape)


def stored_tensors(encodings: Mapping[str, Encoding]) -> dict[str, Tensor]:
    """The file's tensors: `<key>.<part>` for every tensor that changed."""
    return {f"{key}.{part}": value for key, encoding in encodings.items() for part, value in encoding.parts.items()}


def group_parts(names: list[str], where: str) -> dict[str, dict[str, str]]:
    """{base key: {part: stored name}}, or a PackError sentence for an unknown part or a mixed or lone one."""
    grouped: dict[str, dict[str, str]] = {}
    for name in names:
        key, suffix = split_name(name)
        if suffix not in SUFFIXES or not key:
            raise PackError(
                f"{where}: tensor {name[:80]!r} is not a part of a compact pack (.delta, .u/.v/.u_scale/.v_scale, .q/.scale)."
            )
        grouped.setdefault(key, {})[suffix] = name
    for key, parts in grouped.items():
        methods = {SUFFIXES[suffix] for suffix in parts}
        if len(methods) != 1 or set(parts) != set(PARTS[methods.pop()]):
            found = ", ".join(sorted(parts))
            raise PackError(f"{where}: tensor {key[:80]} has the parts {found}, which are not one complete method.")
    return grouped


def check_header(header: Mapping[str, Mapping], where: str) -> None:
    """Refuse (PackError, one sentence) a compact pack's tensor entries whose names, dtypes or shapes cannot be
    one method each: from the header alone, before a single tensor is read."""
    entries = {name: entry for name, entry in header.items() if name != "__metadata__"}
    for key, parts in group_parts(list(entries), where).items():
        shapes = {part: list(entries[name]["shape"]) for part, name in parts.items()}
        for part, name in parts.items():
            if entries[name]["dtype"] not in PART_DTYPES[part]:
                allowed = "/".join(PART_DTYPES[part])
                raise PackError(f"{where}: tensor {name} has dtype {entries[name]['dtype']}; it must be {allowed}.")
        if "u" in shapes:
            u, v = shapes["u"], shapes["v"]
            if len(u) != 2 or len(v) != 2 or u[1] != v[0]:
                raise PackError(
                    f"{where}: the low-rank factors of {key} have shapes {u} and {v}, which do not multiply."
                )
            if not 1 <= u[1] <= min(u[0], v[1]):
                raise PackError(
                    f"{where}: the low-rank factors of {key} claim rank {u[1]}, more than a {u[0]}×{v[1]} matrix has."
                )
            if shapes["u_scale"] != [u[0]] or shapes["v_scale"] != [v[0]]:
                raise PackError(
                    f"{where}: the low-rank scales of {key} have shapes {shapes['u_scale']} and {shapes['v_scale']}; "
                    f"its factors need [{u[0]}] and [{v[0]}]."
                )
        if "q" in shapes and shapes["scale"] != [matrix_shape(shapes["q"])[0]]:
            raise PackError(
                f"{where}: the int8 scales of {key} have shape {shapes['scale']}; its {shapes['q']} levels need "
                f"[{matrix_shape(shapes['q'])[0]}]."
            )


def stored_shape(method: str, shapes: Mapping[str, list[int]]) -> tuple[tuple[int, ...], tuple[int, int]]:
    """(the full shape when the parts carry it, else (); the [rows, cols] they decode to)."""
    if method == "lowrank":
        return (), (shapes["u"][0], shapes["v"][1])
    full = tuple(shapes["delta" if method == "dense" else "q"])
    return full, matrix_shape(full)


def check_fits(
    header_shapes: Mapping[str, list[int]], base_shapes: Mapping[str, torch.Size], where: str
) -> dict[str, dict[str, str]]:
    """Refuse (PackError) parts that do not decode to the base's tensor of the same name; returns the grouping.

    Runs on shapes only, so a pack that would decode to more than the base holds is refused before any allocation.
    """
    grouped = group_parts(list(header_shapes), where)
    for key, parts in grouped.items():
        if key not in base_shapes:
            raise PackError(
                f"{where} does not fit the base model: it changes {key[:80]}, which the base does not have."
            )
        method = SUFFIXES[next(iter(parts))]
        full, matrix = stored_shape(method, {part: list(header_shapes[name]) for part, name in parts.items()})
        wanted = tuple(base_shapes[key])
        if (full and full != wanted) or matrix != matrix_shape(wanted):
            shown = list(full) if full else list(matrix)
            raise PackError(
                f"{where} does not fit the base model: the difference of {key} is {shown}, the base's tensor is "
                f"{list(wanted)}."
            )
    return grouped


def header_of(tensors: Mapping[str, Tensor]) -> dict[str, dict]:
    """Header-like entries (safetensors dtype name, shape) of tensors already read, for `check_header`."""
    names = {torch.float16: "F16", torch.float32: "F32", torch.bfloat16: "BF16", torch.int8: "I8"}
    return {
        name: {"dtype": names.get(value.dtype, str(value.dtype)), "shape": list(value.shape)}
        for name, value in tensors.items()
    }


def check_values(tensors: Mapping[str, Tensor], where: str) -> None:
    """Refuse (PackError) NaN/Inf in any part and negative int8 scales."""
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise PackError(f"{where}: tensor {name} contains NaN or infinite values; the pack is damaged.")
        if split_name(name)[1] in ("scale", "u_scale", "v_scale") and bool((value < 0).any()):
            raise PackError(f"{where}: tensor {name} holds negative int8 scales; the pack is damaged.")


def encodings_of(tensors: Mapping[str, Tensor], grouped: Mapping[str, Mapping[str, str]]) -> dict[str, Encoding]:
    """The encodings a (checked) file's tensors stand for, by base key."""
    encodings = {}
    for key, parts in grouped.items():
        method = SUFFIXES[next(iter(parts))]
        rank = int(tensors[parts["u"]].shape[1]) if method == "lowrank" else 0
        encodings[key] = Encoding(method, {part: tensors[name] for part, name in parts.items()}, rank)
    return encodings
