"""Hostile inputs made at test time (nothing large is committed): images, style packs, checkpoints, names.

Every generator writes real files of the kind a stranger could hand us and returns `Case`s: the file, and a
fragment the refusal sentence must contain. Code-carrying pickles point at a marker file that must never appear.
"""

import io
import json
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from jojogan_ext import delta
from jojogan_ext.nn.stylegan2 import Generator
from jojogan_ext.packs import COMPACT_FORMAT_VERSION, save_pack


@dataclass(frozen=True)
class Case:
    """One hostile file and a fragment of the sentence that must refuse it."""

    label: str
    path: Path
    reason: str


# --- images ---------------------------------------------------------------------------------------


def encode(image: Image.Image, format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, with almost no pixel data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(bytes(64)))


@cache
def png_bomb(width: int, height: int) -> bytes:
    """A complete, valid greyscale PNG of zeros: a few dozen KB that decode to width x height bytes."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def tiff_declaring(width: int, height: int) -> bytes:
    """A little-endian greyscale TIFF whose tags declare width x height, with one strip of 16 bytes."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, 16)]  # fmt: skip
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    body = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        body += struct.pack("<HHI", tag, kind, 1) + packed
    return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", 0) + bytes(16)


def with_declared_size(data: bytes, marker: bytes, offset: int, fmt: str, width: int, height: int) -> bytes:
    """`data` with the size field after `marker` rewritten (for formats whose header states the size)."""
    patched = bytearray(data)
    at = patched.index(marker) + offset
    patched[at : at + struct.calcsize(fmt)] = struct.pack(fmt, *((height, width) if fmt == ">HH" else (width, height)))
    return bytes(patched)


def noise_image(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def image_cases(folder: Path) -> list[Case]:
    """Images every front must refuse, before anything large is decoded."""
    folder.mkdir(parents=True, exist_ok=True)
    small = Image.new("RGB", (8, 8), (10, 20, 30))
    png, jpeg = encode(noise_image(), "PNG"), encode(noise_image(), "JPEG", quality=90)
    files = {
        "bomb_header.png": (png_declaring(100_000, 100_000), "megapixel limit"),
        "bomb_zeros.png": (png_bomb(7000, 7000), "megapixel limit"),
        "bomb.jpg": (with_declared_size(encode(small, "JPEG"), b"\xff\xc0", 5, ">HH", 60000, 60000), "megapixel limit"),
        "bomb.gif": (with_declared_size(encode(small, "GIF"), b"GIF8", 6, "<HH", 65535, 65535), "megapixel limit"),
        "bomb.bmp": (with_declared_size(encode(small, "BMP"), b"BM", 18, "<ii", 100_000, 100_000), "megapixel limit"),
        "bomb.tif": (tiff_declaring(90_000, 90_000), "megapixel limit"),
        "truncated.png": (png[: len(png) // 2], "truncated or corrupt"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated or corrupt"),
        "notes.png": (b"these are my notes, not a picture\n", "not an image"),
        "noise.jpg": (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "not an image"),
        "empty.png": (b"", "not an image"),
        "zero_width.png": (png_declaring(0, 10), "not an image"),
        "vector.eps": (encode(small, "EPS"), "not an image"),  # a format we never decode (Ghostscript)
    }
    cases = []
    for name, (data, reason) in files.items():
        (folder / name).write_bytes(data)
        cases.append(Case(name, folder / name, reason))
    return cases


def odd_valid_images() -> list[tuple[str, bytes, np.ndarray]]:
    """Valid but unusual images and the upright 8-bit RGB each must become (computed independently)."""
    grey = np.array([[0, 100, 255]], dtype=np.uint8)
    rgb_of_grey = np.repeat(grey[..., None], 3, axis=2)
    sixteen = np.array([[0, 257 * 100, 65535]], dtype="<u2")
    floats = np.array([[0.0, 100 / 255, 1.0]], dtype=np.float32)
    rgba = np.array([[[10, 20, 30, 255], [200, 0, 0, 0]]], dtype=np.uint8)  # opaque, then fully transparent
    palette = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), "P")
    palette.putpalette([250, 0, 0, 0, 0, 250] + [0] * 762)
    steps = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40  # a 3 x 2 picture to turn
    rotated = Image.fromarray(steps).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: show it rotated 90° clockwise
    frames = [Image.new("RGB", (2, 2), colour) for colour in ((0, 255, 0), (255, 0, 0))]
    animation = io.BytesIO()
    frames[0].save(animation, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    turned = np.repeat(np.rot90(steps, k=-1)[..., None], 3, axis=2)
    return [
        ("L", encode(Image.fromarray(grey), "PNG"), rgb_of_grey),
        ("I;16", encode(Image.frombytes("I;16", (3, 1), sixteen.tobytes()), "PNG"), rgb_of_grey),
        ("F", encode(Image.fromarray(floats, "F"), "TIFF"), rgb_of_grey),
        ("LA", encode(Image.fromarray(np.array([[[0, 255], [0, 0]]], dtype=np.uint8), "LA"), "PNG"),
         np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)),
        ("RGBA", encode(Image.fromarray(rgba, "RGBA"), "PNG"), np.array([[[10, 20, 30], [255, 255, 255]]], np.uint8)),
        ("P", encode(palette, "PNG"), np.array([[[250, 0, 0], [0, 0, 250]]], dtype=np.uint8)),
        ("CMYK", encode(Image.frombytes("CMYK", (1, 1), bytes([0, 255, 255, 0])), "TIFF"),
         np.array([[[255, 0, 0]]], dtype=np.uint8)),
        ("EXIF-rotated PNG", encode(rotated, "PNG", exif=exif.tobytes()), turned),
        ("EXIF-rotated TIFF", encode(rotated, "TIFF", tiffinfo={0x0112: 6}), turned),
        ("animated GIF", animation.getvalue(), np.full((2, 2, 3), (0, 255, 0), dtype=np.uint8)),
    ]  # fmt: skip


# --- style packs and checkpoints ------------------------------------------------------------------


class Payload:
    """Unpickling this object would create `marker`: it must never happen."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    """A safetensors file's header (as a dict) and its data section."""
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def join_safetensors(header: dict | bytes, body: bytes) -> bytes:
    """Bytes of a safetensors file from a header (a dict, or raw header bytes) and a data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def styled(base: Generator, seed: int = 7, scale: float = 0.3) -> Generator:
    """The base generator with clearly changed synthesis weights (a stand-in for a trained style)."""
    generator = Generator.from_state_dict(base.state_dict())
    with torch.no_grad():
        torch.manual_seed(seed)
        for parameter in generator.synthesis_parameters().values():
            parameter.add_(torch.randn_like(parameter) * scale)
    return generator


def other_architecture(style_dim: int) -> Generator:
    torch.manual_seed(3)
    return Generator(32, style_dim=style_dim, n_mlp=1, channel_max=8)


def zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def valid_pack(folder: Path, base: Generator) -> Path:
    """A float32 style pack that fits `base` (not in any library)."""
    return save_pack(folder / "valid.safetensors", styled(base), base=base, title="Valid", dtype="float32")


def valid_style(folder: Path, base: Generator) -> Path:
    """A JoJoGAN style `.pt` ({"g": state dict}) that fits `base`."""
    path = folder / "valid_style.pt"
    torch.save({"g": styled(base, seed=8).state_dict()}, path)
    return path


def compact_parts(base: Generator) -> dict[str, torch.Tensor]:
    """Valid compact-pack tensors for `base`: conv1 low-rank, convs.0 int8, conv1's bias dense, the rest unchanged."""
    weights = {key: value.detach() for key, value in base.synthesis_parameters().items()}
    torch.manual_seed(4)
    changes = {key: 0.05 * torch.randn_like(weights[key]) for key in ("conv1.conv.weight", "convs.0.conv.weight")}
    left, right, _ = delta.svd_factors(changes["conv1.conv.weight"])
    encodings = {
        "conv1.conv.weight": delta.encode_lowrank(left, right, 4),
        "convs.0.conv.weight": delta.encode_int8(changes["convs.0.conv.weight"]),
        "conv1.activate.bias": delta.encode_dense(weights["conv1.activate.bias"] + 0.1, weights["conv1.activate.bias"], torch.float16),
    }  # fmt: skip
    return delta.stored_tensors(encodings)


def valid_compact_pack(folder: Path, base: Generator) -> Path:
    """A compact (format 2) style pack that fits `base` (not in any library)."""
    metadata = split_safetensors(valid_pack(folder / "compact_metadata", base).read_bytes())[0]["__metadata__"]
    metadata["jojogan.format_version"] = COMPACT_FORMAT_VERSION
    path = folder / "valid_compact.safetensors"
    save_file(compact_parts(base), str(path), metadata)
    return path


def compact_cases(folder: Path, base: Generator) -> dict[str, tuple[bytes, str]]:
    """Compact packs with parts that must be refused: by their header, their values, or their fit to the base."""
    metadata = split_safetensors(valid_compact_pack(folder, base).read_bytes())[0]["__metadata__"]
    valid = compact_parts(base)
    key = "conv1.conv.weight"
    u, v = valid[f"{key}.u"], valid[f"{key}.v"]
    scale = valid["convs.0.conv.weight.scale"]
    other_base = dict(metadata, **{"jojogan.base": json.dumps({"name": "another-base", "sha256": "ab" * 32})})
    no_sha = dict(metadata, **{"jojogan.base": json.dumps({"name": "base"})})
    changes: dict[str, tuple[dict, dict, str]] = {
        "compact_scale_shape": ({"convs.0.conv.weight.scale": scale[:-1]}, metadata, "int8 scales of convs.0.conv.weight have shape"),
        "compact_nan_scale": ({"convs.0.conv.weight.scale": scale * float("nan")}, metadata, "contains NaN or infinite"),
        "compact_negative_scale": ({"convs.0.conv.weight.scale": -scale}, metadata, "negative int8 scales"),
        "compact_huge_rank": ({f"{key}.u": torch.zeros(u.shape[0], 999, dtype=torch.int8),
                               f"{key}.v": torch.zeros(999, v.shape[1], dtype=torch.int8)},
                              metadata, "claim rank 999, more than"),
        "compact_lowrank_scale_shape": ({f"{key}.v_scale": valid[f"{key}.v_scale"][:-1]}, metadata,
                                        "the low-rank scales of conv1.conv.weight have shapes"),
        "compact_float_factors": ({f"{key}.u": u.float()}, metadata, "has dtype F32; it must be I8"),
        "compact_factors_mismatch": ({f"{key}.v": v[:-1]}, metadata, "which do not multiply"),
        # rank 1 of a 10⁵ × 10⁵ matrix: 0.4 MB in the file, 40 GB decoded; refused by its shape, never decoded
        "compact_decodes_huge": ({f"{key}.u": torch.zeros(10**5, 1, dtype=torch.int8),
                                  f"{key}.u_scale": torch.zeros(10**5), f"{key}.v_scale": torch.zeros(1),
                                  f"{key}.v": torch.zeros(1, 10**5, dtype=torch.int8)},
                                 metadata, "the difference of conv1.conv.weight is [100000, 100000]"),
        "compact_delta_shape": ({"conv1.activate.bias.delta": torch.zeros(3)}, metadata, "does not fit the base model"),
        "compact_int_delta": ({"conv1.activate.bias.delta": torch.zeros(16, dtype=torch.int8)}, metadata, "must be F16/F32/BF16"),
        "compact_unknown_part": ({f"{key}.w": u}, metadata, "is not a part of a compact pack"),
        "compact_lone_part": ({"convs.1.conv.weight.u": u}, metadata, "not one complete method"),
        "compact_unknown_tensor": ({"style.1.weight.delta": torch.zeros(4)}, metadata, "which the base does not have"),
        "compact_no_base_sha": ({}, no_sha, "without the sha256 of its base generator"),
        "compact_other_base": ({}, other_base, "stores only its difference from the base generator another-base"),
    }  # fmt: skip
    files = {}
    for label, (change, label_metadata, reason) in changes.items():
        path = folder / "compact_source.safetensors"
        save_file({name: value.clone() for name, value in (valid | change).items()}, str(path), label_metadata)
        files[f"{label}.safetensors"] = (path.read_bytes(), reason)
    return files


def pack_cases(folder: Path, base: Generator, marker: Path) -> list[Case]:
    """Style packs and JoJoGAN styles the import gate must refuse, each naming the file and the problem."""
    folder.mkdir(parents=True, exist_ok=True)
    pack_bytes = valid_pack(folder, base).read_bytes()
    header, body = split_safetensors(pack_bytes)
    metadata, names = header["__metadata__"], [key for key in header if key != "__metadata__"]
    first = names[0]
    style_bytes = valid_style(folder, base).read_bytes()
    style_members = zip_members(style_bytes)
    record = next(name for name in style_members if "/data/" in name)
    generator_state = styled(base).state_dict()
    files: dict[str, tuple[bytes | None, str]] = {}

    def variant(name: str, data: bytes, reason: str) -> None:
        files[name] = (data, reason)

    def with_header(change) -> bytes:
        edited = json.loads(json.dumps(header))
        change(edited)
        return join_safetensors(edited, body)

    # safetensors structure
    variant("truncated_data.safetensors", pack_bytes[:-64], "points past the end of the file")
    header_length = int.from_bytes(pack_bytes[:8], "little")
    variant("truncated_header.safetensors", pack_bytes[: 8 + header_length // 2], "points past the end")
    variant("header_past_end.safetensors", (10**6).to_bytes(8, "little") + pack_bytes[8:200], "points past the end")
    variant("huge_header.safetensors", (2**40).to_bytes(8, "little") + b"{}", "header claims")
    variant("absurd_header.safetensors", (2**64 - 1).to_bytes(8, "little") + b"{}", "header claims")
    variant("large_header.pt", (99 * 2**20).to_bytes(8, "little") + b'{"a": 1}', "header claims")  # any name
    variant("empty.safetensors", b"", "is empty")
    variant("empty.pt", b"", "is empty")
    variant("not_json.safetensors", join_safetensors(b"{this is not json}", body), "not JSON")
    variant("json_array.safetensors", join_safetensors(b"[1, 2, 3]", body), "not a JSON object")
    variant("stub.safetensors", b"\x01\x02", "shorter than a header")
    variant("deep_json.safetensors", join_safetensors(b"[" * 50_000 + b"]" * 50_000, b""), "not JSON")
    duplicated = json.dumps(header)[:-1] + f', "{first}": ' + json.dumps(header[first]) + "}"
    variant("duplicate_names.safetensors", join_safetensors(duplicated.encode(), body), "appears twice")
    variant(
        "path_name.safetensors", with_header(lambda h: h.update({"../../" + first: h.pop(first)})), "not a plain name"
    )
    variant("size_mismatch.safetensors", with_header(lambda h: h[first].update(shape=[2**40])), "does not match")
    variant("bad_dtype_name.safetensors", with_header(lambda h: h[first].update(dtype="PICKLE")), "no known dtype")
    # foreign and future files
    variant("future.safetensors", with_header(lambda h: h["__metadata__"].update({"jojogan.format_version": "3"})),
            "format '3'")  # fmt: skip
    files.update(compact_cases(folder, base))
    lora = folder / "lora_source.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_up.weight": torch.zeros(4, 4)}, str(lora), {"ss_network_dim": "4"})
    variant("lora.safetensors", lora.read_bytes(), "not a JoJoGAN style pack")
    other = other_architecture(base.style_dim)
    variant("other_architecture.safetensors",
            save_pack(folder / "other_source.safetensors", other, base=other, title="other").read_bytes(),
            "does not fit the base model")  # fmt: skip
    another_base = styled(base, seed=99, scale=0.01)
    variant("another_base.safetensors",
            save_pack(folder / "another_source.safetensors", styled(base), base=another_base, title="x").read_bytes(),
            "another base generator")  # fmt: skip
    # values
    tensors = {key: value.detach().clone() for key, value in styled(base).synthesis_parameters().items()}
    for name, reason, change in [
        ("nan.safetensors", "NaN or infinite", lambda t: t.view(-1).__setitem__(0, float("nan"))),
        ("inf.safetensors", "NaN or infinite", lambda t: t.view(-1).__setitem__(-1, float("inf"))),
    ]:
        broken = dict(tensors)
        broken[first] = tensors[first].clone()
        change(broken[first])
        save_file(broken, str(folder / "source.safetensors"), metadata)
        variant(name, (folder / "source.safetensors").read_bytes(), reason)
    save_file(
        {key: value.to(torch.int32) for key, value in tensors.items()}, str(folder / "source.safetensors"), metadata
    )
    variant("int_weights.safetensors", (folder / "source.safetensors").read_bytes(), "float16/32")
    # pickles disguised as safetensors
    variant("pickle_in_disguise.safetensors", style_bytes, "pickle/PyTorch file renamed")
    variant("raw_pickle_in_disguise.safetensors", pickle.dumps({"g": Payload(marker)}), "pickle/PyTorch file renamed")
    # .pt files: code, legacy format, damaged archives, foreign content
    for name, protocol in [("code_global.pt", 2), ("code_stack_global.pt", 4)]:
        torch.save({"g": Payload(marker)}, folder / "source.pt", pickle_protocol=protocol)
        variant(name, (folder / "source.pt").read_bytes(), "could run code")
    inst = b"(S'" + str(marker).encode() + b"'\nS'w'\nibuiltins\nopen\n."  # protocol 0: the INST opcode
    variant("code_inst.pt", make_zip({"archive/data.pkl": inst, "archive/version": b"3\n"}), "could run code")
    nested = {"g": {first: torch.zeros(1)}, "extra": [1, {"deeper": Payload(marker)}]}
    torch.save(nested, folder / "source.pt")
    variant("code_nested.pt", (folder / "source.pt").read_bytes(), "could run code")
    torch.save({"g": generator_state}, folder / "source.pt", _use_new_zipfile_serialization=False)
    variant("legacy_format.pt", (folder / "source.pt").read_bytes(), "legacy (pre-1.6) format")
    variant("legacy_code.pt", pickle.dumps({"g": Payload(marker)}), "legacy (pre-1.6) format")
    short = dict(style_members, **{record: style_members[record][:-4]})
    variant("short_storage.pt", make_zip(short), "its tensors need")
    variant("compressed_storage.pt", make_zip(style_members, zipfile.ZIP_DEFLATED), "is compressed")
    torch.save({"g": {first: torch.zeros(1).expand(10**8)}}, folder / "source.pt")  # 4 bytes stored, 400 MB shown
    variant("memory_bomb.pt", (folder / "source.pt").read_bytes(), "far more memory than the file holds")
    variant("truncated.pt", style_bytes[: len(style_bytes) // 2], "not a readable PyTorch checkpoint")
    variant("no_data_pkl.pt", make_zip({"archive/readme.txt": b"hello"}), "no single data.pkl")
    torch.save({"g": {first: [1, 2, 3]}}, folder / "source.pt")
    variant("not_tensors.pt", (folder / "source.pt").read_bytes(), "not a dict of tensors")
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, folder / "source.pt")
    variant("no_generator.pt", (folder / "source.pt").read_bytes(), "neither 'g' nor 'g_ema'")
    torch.save({"g": other.state_dict()}, folder / "source.pt")
    variant("other_architecture.pt", (folder / "source.pt").read_bytes(), "does not fit the base model")
    nan_state = dict(generator_state)
    nan_state[first] = torch.full_like(nan_state[first], float("nan"))
    torch.save({"g": nan_state}, folder / "source.pt")
    variant("nan_style.pt", (folder / "source.pt").read_bytes(), "not finite floating-point weights")
    variant("text.pt", b"print('hello')\n", "neither a style pack")

    hostile = folder / "hostile"
    hostile.mkdir(exist_ok=True)
    cases = []
    for name, (data, reason) in files.items():
        (hostile / name).write_bytes(data)
        cases.append(Case(name, hostile / name, reason))
    return cases


# --- names ----------------------------------------------------------------------------------------

# names that must be refused outright (the second item: a fragment of the refusal)
REFUSED_NAMES = [
    ("", "cannot be used"),
    ("   ", "cannot be used"),
    (".", "cannot be used"),
    ("..", "cannot be used"),
    ("../..", "cannot be used"),
    ("CON", "cannot be used"),
    ("nul.txt", "cannot be used"),
    ("COM1 ", "cannot be used"),
    ("lpt9.safetensors", "cannot be used"),
    ("ｃｏｎ", "cannot be used"),  # fullwidth letters: NFKC makes them 'con'
    ("COM¹", "cannot be used"),  # superscript one: NFKC makes it 'COM1'
    ("\x00", "cannot be used"),
    ("a" * 101, "limited to 100 characters"),
    ("𠀀" * 60, "limited to 100 characters"),  # 60 characters, 240 bytes of UTF-8 (too long a file name)
    ("keep", "already exists"),
    ("keep.safetensors", "already exists"),
    (" keep ", "already exists"),
    ("ｋｅｅｐ", "already exists"),
]
# names that are made safe: (given, the pack name it becomes)
SANITIZED_NAMES = [
    ("../../escape", "escape"),
    ("..\\..\\escape", "escape"),
    ("/etc/passwd", "etc_passwd"),
    ("C:\\Windows\\System32\\evil", "C_Windows_System32_evil"),
    ("．．／．．／escape", "escape"),  # fullwidth dots and solidus
    ("a\x00b", "a_b"),
    ("line\nbreak", "line_break"),
    ("\x1b[31mred", "31mred"),
    ("abc\u202egnp.exe", "abc_gnp.exe"),  # right-to-left override
    ("ﬁne", "fine"),  # a ligature
]
