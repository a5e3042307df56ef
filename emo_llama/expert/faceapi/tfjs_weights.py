"""Read TF.js weight manifests and turn them into PyTorch-layout tensors stored as safetensors.

face-api ships every network as `<model>-weights_manifest.json` plus binary shards. The manifest is a
list of groups; each group names its shard files (`paths`, concatenated in order) and its tensors
(`weights`: name, shape, dtype, optional `quantization`). Tensors are packed back to back,
little-endian, in manifest order. A quantised tensor takes `prod(shape)` values of the quantisation
dtype; TF.js decodes `uint8`/`uint16` as `q * scale + min` (computed in float64, stored as float32) and
`float16` as IEEE half floats.

Layouts: TF stores conv kernels as HWIO (`[kh, kw, c_in, c_out]`), depthwise kernels as
`[kh, kw, c, 1]` and dense weights as `[in, out]`; PyTorch wants OIHW, `[c, 1, kh, kw]` and `[out, in]`.

We keep the uint8 codes in the safetensors files (plus `<key>.qscale` / `<key>.qmin`): the files stay
about four times smaller than float32 and decode bit-exactly to what TF.js computes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file

# Bytes per element and the numpy dtype for each TF.js dtype (little-endian, as TF.js writes them).
_NP_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "float16": np.dtype("<f2"),
    "bool": np.dtype("u1"),
}

QSCALE, QMIN = ".qscale", ".qmin"


@dataclass
class TfjsTensor:
    """One manifest entry with its raw stored values (still in TF layout, still quantised)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # the logical dtype after decoding (float32 for every face-api weight)
    stored: np.ndarray  # values as stored in the shard (uint8/uint16 codes, float16 or float32)
    quantization: dict | None

    def decode(self) -> np.ndarray:
        """The float32 values TF.js would hand to the network."""
        q = self.quantization
        if q is None or q["dtype"] == "float16":
            return self.stored.astype(np.float32)
        # TF.js: Float32Array[i] = code * scale + min, evaluated in JS doubles.
        return (self.stored.astype(np.float64) * float(q["scale"]) + float(q["min"])).astype(np.float32)


def read_manifest(manifest_path: str | Path) -> list[TfjsTensor]:
    """Decode every tensor of one TF.js model from its manifest and the shard files next to it."""
    manifest_path = Path(manifest_path)
    groups = json.loads(manifest_path.read_text())
    tensors: list[TfjsTensor] = []
    for group in groups:
        buffer = b"".join((manifest_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for entry in group["weights"]:
            shape = tuple(int(s) for s in entry["shape"])
            quant = entry.get("quantization")
            stored_dtype = quant["dtype"] if quant else entry["dtype"]
            if stored_dtype not in _NP_DTYPES:
                raise ValueError(f"{manifest_path.name}: {entry['name']} has unsupported dtype {stored_dtype!r}")
            if quant and stored_dtype in ("uint8", "uint16") and not {"scale", "min"} <= quant.keys():
                raise ValueError(f"{manifest_path.name}: {entry['name']} is quantised without scale/min")
            np_dtype = _NP_DTYPES[stored_dtype]
            count = int(np.prod(shape, dtype=np.int64))
            nbytes = count * np_dtype.itemsize
            if offset + nbytes > len(buffer):
                raise ValueError(
                    f"{manifest_path.name}: shards end at byte {len(buffer)} but {entry['name']} "
                    f"needs bytes {offset}..{offset + nbytes}"
                )
            stored = np.frombuffer(buffer, dtype=np_dtype, count=count, offset=offset).reshape(shape)
            tensors.append(TfjsTensor(entry["name"], shape, entry["dtype"], stored.copy(), quant))
            offset += nbytes
        if offset != len(buffer):
            raise ValueError(f"{manifest_path.name}: {len(buffer) - offset} trailing bytes not described by the manifest")
    return tensors


def torch_key(tf_name: str) -> str:
    """'dense0/conv1/depthwise_filter' -> 'dense0.conv1.depthwise.weight' (our module names)."""
    *path, leaf = tf_name.split("/")
    leaf = {
        "filters": "weight",
        "weights": "weight",
        "depthwise_filter": "depthwise.weight",
        "pointwise_filter": "pointwise.weight",
        "bias": "bias",
    }.get(leaf)
    if leaf is None:
        raise ValueError(f"do not know where TF.js weight {tf_name!r} goes")
    return ".".join([*path, leaf])


def to_torch_layout(tf_name: str, array: np.ndarray) -> np.ndarray:
    """Transpose one TF-layout array into PyTorch layout (works on codes and on floats alike)."""
    leaf = tf_name.rsplit("/", 1)[-1]
    if leaf in ("filters", "pointwise_filter"):  # HWIO -> OIHW
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
    if leaf == "depthwise_filter":  # [kh, kw, C, 1] -> [C, 1, kh, kw]
        return np.ascontiguousarray(array.transpose(2, 3, 0, 1))
    if leaf == "weights":  # dense [in, out] -> nn.Linear [out, in]
        return np.ascontiguousarray(array.T)
    return np.ascontiguousarray(array)


def convert_manifest(manifest_path: str | Path, out_path: str | Path, metadata: dict[str, str] | None = None) -> dict:
    """Write one model's weights as safetensors in PyTorch layout; return {key: shape} for a summary.

    uint8/uint16 tensors keep their codes (plus float64 scale and min); everything else becomes float32.
    """
    arrays: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for t in read_manifest(manifest_path):
        key = torch_key(t.name)
        q = t.quantization
        if q is not None and q["dtype"] in ("uint8", "uint16"):
            arrays[key] = to_torch_layout(t.name, t.stored)
            arrays[key + QSCALE] = np.array([q["scale"]], dtype=np.float64)
            arrays[key + QMIN] = np.array([q["min"]], dtype=np.float64)
        else:
            arrays[key] = to_torch_layout(t.name, t.decode())
        shapes[key] = arrays[key].shape
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # One metadata key holding sorted JSON: safetensors writes a map in arbitrary order, and we want
    # re-running the conversion to reproduce the committed files byte for byte.
    save_file(arrays, str(out_path), metadata={"info": json.dumps(metadata or {}, sort_keys=True)})
    out_path.chmod(0o644)
    return shapes


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a converted file and dequantise it: a float32 state dict ready for `load_state_dict`."""
    raw = load_file(str(path), device="cpu")
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if key.endswith((QSCALE, QMIN)):
            continue
        if key + QSCALE in raw:
            # Same arithmetic as TF.js: float64 code * scale + min, then float32.
            value = (value.double() * raw[key + QSCALE].item() + raw[key + QMIN].item()).float()
        state[key] = value.float()
    return state
