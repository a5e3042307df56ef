"""Convert facex's TFLite expression model into data/weights/facex_expression.safetensors (maintainers only).

The output is committed; users never run this. It reads the TFLite flatbuffer with the `tflite` package
(a generated flatbuffer reader, no TensorFlow) and, when `ai-edge-litert` is installed, runs the original
model once to record reference outputs that `tests/test_facex.py` holds the port to. Neither package is a
project dependency: install them by hand for the conversion.

    pip download facex==1.1.0 --no-deps                  # facex-1.1.0-py3-none-any.whl
    pip install tflite==2.18.0 ai-edge-litert==2.3.0     # conversion time only
    python scripts/convert_facex.py facex-1.1.0-py3-none-any.whl

What it writes (under --out, default data/weights):
- facex_expression.safetensors: the weights in PyTorch layout under `emo_llama.expert.facex.net.FacexNet`'s
  names. The file is dynamic-range quantised (TFLite 'hybrid' ops): 8-bit kernels with one scale (and
  zero point) per tensor. They are kept 8-bit here too (`<name>.q8`, `<name>.scale`, `<name>.zero_point`;
  2.6 MB instead of 10 MB as float32) and dequantised exactly on load (`facex.expert.load_facex_net`).
  Kernels the converter left in float32 (the first three layers, all biases) stay float32.
- facex_reference.json: the TFLite interpreter's softmax outputs on a few deterministic inputs.
- LICENSE-facex.txt: the package's MIT licence with the source file's SHA-256.

How the 8-bit kernels read (checked against the interpreter, see the reference file): a kernel feeding a
DEQUANTIZE op is asymmetric uint8, value = (q - zero_point) * scale; a UINT8 kernel read directly by a hybrid
CONV_2D / FULLY_CONNECTED has zero point 0 and holds int8 bytes (TFLite's hybrid kernels reinterpret them as
signed), value = int8(q) * scale. The conversion is deterministic: re-running it reproduces the files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from emo_llama.expert.base import WEIGHTS_DIR
from emo_llama.expert.facex.expert import (
    LICENSE_FILE,
    REFERENCE_FILE,
    WEIGHTS_FILE,
    load_facex_net,
)
from emo_llama.expert.facex.net import INPUT_SIZE, FacexNet

TFLITE_IN_WHEEL = "facex/assets/model_optimized.tflite"
LICENSE_TEXT = """\
The file {weights} in this folder holds the weights of the facial-expression classifier shipped with the
PyPI package facex {version} (file {path}, SHA-256 {sha256}), converted to PyTorch layout by
scripts/convert_facex.py (8-bit values and their scales unchanged). The package, by Hasby Fahrudin
(https://github.com/hfahrudin/facex), is distributed under the MIT License below.

--- LICENSE of facex {version} ---
{license}"""


def read_wheel(source: Path) -> tuple[bytes, str, str]:
    """(tflite bytes, licence text, version) from the facex wheel."""
    with zipfile.ZipFile(source) as whl:
        names = whl.namelist()
        data = whl.read(TFLITE_IN_WHEEL)
        license_text = whl.read(next(n for n in names if n.endswith(".dist-info/LICENSE"))).decode()
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    version = next(line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Version:"))
    return data, license_text, version


class Graph:
    """The few parts of a TFLite flatbuffer the conversion needs: ops in order, tensors and their buffers."""

    def __init__(self, data: bytes) -> None:
        import tflite  # maintainers only; not a project dependency

        self.tflite = tflite
        self.model = tflite.Model.GetRootAsModel(data, 0)
        self.graph = self.model.Subgraphs(0)
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        codes = [self.model.OperatorCodes(i) for i in range(self.model.OperatorCodesLength())]
        self.ops = []
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = codes[op.OpcodeIndex()]
            self.ops.append((names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())],
                             [int(j) for j in op.InputsAsNumpy()], [int(j) for j in op.OutputsAsNumpy()], op))

    def name(self, index: int) -> str:
        return self.graph.Tensors(index).Name().decode()

    def raw(self, index: int) -> np.ndarray:
        tensor = self.graph.Tensors(index)
        dtype = {self.tflite.TensorType.FLOAT32: np.float32, self.tflite.TensorType.UINT8: np.uint8,
                 self.tflite.TensorType.INT32: np.int32}[tensor.Type()]
        data = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        return np.frombuffer(data.tobytes(), dtype=dtype).reshape(tensor.ShapeAsNumpy())

    def quantisation(self, index: int) -> tuple[float, int] | None:
        q = self.graph.Tensors(index).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        if q.ScaleLength() != 1:
            raise ValueError(f"{self.name(index)}: per-channel quantisation; the port expects one scale per tensor")
        return float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0])


def kernel_entry(graph: Graph, index: int, dequantized_by: dict[int, int], layout) -> dict[str, torch.Tensor]:
    """One kernel as safetensors entries under '' (float32) or '.q8'/'.scale'/'.zero_point' (8-bit)."""
    source = dequantized_by.get(index, index)  # a DEQUANTIZE op's output -> its uint8 input
    raw = graph.raw(source)
    quant = graph.quantisation(source)
    if raw.dtype == np.float32:
        return {"": torch.from_numpy(layout(raw).copy())}
    scale, zero_point = quant
    if source == index:  # read directly by a hybrid op: int8 bytes, symmetric
        if zero_point != 0:
            raise ValueError(f"{graph.name(source)}: hybrid kernel with zero point {zero_point}")
        q = torch.from_numpy(layout(raw.view(np.int8)).copy())
    else:  # through DEQUANTIZE: asymmetric uint8
        q = torch.from_numpy(layout(raw).copy())
    return {".q8": q, ".scale": torch.tensor(scale, dtype=torch.float32),
            ".zero_point": torch.tensor(zero_point, dtype=torch.int32)}


def convert_graph(graph: Graph) -> dict[str, torch.Tensor]:
    """Walk the ops in order and fill FacexNet's convolutions, then its classifier."""
    net = FacexNet()
    units = net.conv_units()
    dequantized_by = {out[0]: inp[0] for kind, inp, out, _ in graph.ops if kind == "DEQUANTIZE"}
    ohwi_to_oihw = lambda a: a.transpose(0, 3, 1, 2)  # noqa: E731  CONV_2D kernels
    ihwc_to_c1hw = lambda a: a.transpose(3, 0, 1, 2)  # noqa: E731  DEPTHWISE_CONV_2D kernels (1, kh, kw, C)
    state: dict[str, torch.Tensor] = {}
    convs = [(kind, inp) for kind, inp, _, _ in graph.ops if kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    if len(convs) != len(units):
        raise ValueError(f"the graph has {len(convs)} convolutions, FacexNet {len(units)}")
    names = {id(m): n for n, m in net.named_modules()}
    for (kind, inputs), unit in zip(convs, units):
        prefix = names[id(unit)] + ".conv."
        depthwise = unit.conv.groups > 1
        if depthwise != (kind == "DEPTHWISE_CONV_2D"):
            raise ValueError(f"{prefix}: the graph has {kind} here")
        for suffix, value in kernel_entry(graph, inputs[1], dequantized_by,
                                          ihwc_to_c1hw if depthwise else ohwi_to_oihw).items():
            state[prefix + "weight" + suffix] = value
        state[prefix + "bias"] = torch.from_numpy(graph.raw(inputs[2]).copy())
    (fc_inputs,) = [inp for kind, inp, _, _ in graph.ops if kind == "FULLY_CONNECTED"]
    for suffix, value in kernel_entry(graph, fc_inputs[1], dequantized_by, lambda a: a).items():
        state["classifier.weight" + suffix] = value
    state["classifier.bias"] = torch.from_numpy(graph.raw(fc_inputs[2]).copy())
    return state


def reference_inputs() -> np.ndarray:
    """Three deterministic 200 x 200 gray-in-RGB inputs in [0, 1]: a smooth ramp pattern, noise, and a blob."""
    yy, xx = np.mgrid[0:INPUT_SIZE, 0:INPUT_SIZE] / INPUT_SIZE
    ramp = 0.5 + 0.5 * np.sin(6 * xx) * np.cos(4 * yy)
    noise = np.random.default_rng(0).random((INPUT_SIZE, INPUT_SIZE))
    blob = np.exp(-((xx - 0.5) ** 2 + (yy - 0.6) ** 2) / 0.05)
    gray = np.stack([ramp, noise, blob]).astype(np.float32)
    return np.repeat(gray[..., None], 3, axis=-1)  # (3, 200, 200, 3) NHWC


def tflite_reference(data: bytes) -> list[list[float]] | None:
    try:
        from ai_edge_litert.interpreter import Interpreter  # maintainers only; optional
    except ImportError:
        return None
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    rows = []
    for x in reference_inputs():
        interpreter.set_tensor(inp["index"], x[None])
        interpreter.invoke()
        rows.append([float(v) for v in interpreter.get_tensor(out["index"])[0]])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the facex wheel (.whl)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="output folder (default: data/weights)")
    args = parser.parse_args()
    data, license_text, version = read_wheel(args.source)
    sha256 = hashlib.sha256(data).hexdigest()
    state = convert_graph(Graph(data))
    args.out.mkdir(parents=True, exist_ok=True)
    info = {"source": f"PyPI wheel {args.source.name}, {TFLITE_IN_WHEEL} (facex {version})", "source_sha256": sha256,
            "layout": "PyTorch OIHW; keys = emo_llama.expert.facex.net.FacexNet; 8-bit kernels as .q8/.scale/.zero_point",
            "classes": "anger,disgust,fear,happy,neutral,sadness,surprised", "license": "MIT (facex); see LICENSE-facex.txt"}
    save_file({k: state[k].contiguous() for k in sorted(state)}, str(args.out / WEIGHTS_FILE),
              metadata={"info": json.dumps(info, sort_keys=True)})
    load_facex_net(args.out)  # every tensor used, every shape right
    (args.out / LICENSE_FILE).write_text(LICENSE_TEXT.format(
        weights=WEIGHTS_FILE, version=version, path=TFLITE_IN_WHEEL, sha256=sha256, license=license_text.rstrip() + "\n"))
    reference = tflite_reference(data)
    if reference is not None:
        (args.out / REFERENCE_FILE).write_text(json.dumps(
            {"about": "softmax of the original TFLite model (ai-edge-litert) on convert_facex.reference_inputs()",
             "probabilities": reference}, indent=1) + "\n")
    size = (args.out / WEIGHTS_FILE).stat().st_size
    print(f"{WEIGHTS_FILE}: {len(state)} tensors, {size / 1024:.0f} KiB; reference "
          f"{'written' if reference else 'skipped (ai-edge-litert not installed)'}")


if __name__ == "__main__":
    main()
