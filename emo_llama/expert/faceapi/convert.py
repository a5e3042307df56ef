"""Convert face-api's TF.js weights (npm tarball or its extracted folder) into `data/weights/*.safetensors`.

Run once by a maintainer (`python scripts/convert_faceapi.py vladmandic-face-api-1.7.15.tgz`); users get
the committed files and need neither npm nor a network.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from emo_llama.expert.base import WEIGHTS_DIR
from emo_llama.expert.faceapi.nets import AgeGenderNet, FaceExpressionNet, FaceLandmark68Net
from emo_llama.expert.faceapi.tfjs_weights import convert_manifest, load_state_dict
from emo_llama.faces.samples import astronaut, grace_hopper

# TF.js model name in the npm package -> (our file name, the module that must load it strictly).
MODELS = {
    "face_landmark_68_model": ("face_landmark_68.safetensors", FaceLandmark68Net),
    "age_gender_model": ("age_gender.safetensors", AgeGenderNet),
    "face_expression_model": ("face_expression.safetensors", FaceExpressionNet),
}

DEFAULT_WEIGHTS_DIR = WEIGHTS_DIR

LICENSE_TEXT = """\
The files face_landmark_68.safetensors, age_gender.safetensors and face_expression.safetensors in
this folder are the weights of face-api's networks, converted to PyTorch layout (values unchanged;
uint8-quantised tensors keep their codes, scale and min). They come from the npm package
{package}@{version} (folder model/), which is distributed under the MIT License below. The weights
were originally trained and published by face-api.js (https://github.com/justadudewhohacks/face-api.js),
also MIT: Copyright (c) 2018 Vincent Mühler.

--- LICENSE of {package} ---
{license}"""


def _find_model_dir(root: Path) -> Path:
    hits = sorted(root.rglob("face_landmark_68_model-weights_manifest.json"))
    if not hits:
        raise FileNotFoundError(
            f"no face_landmark_68_model-weights_manifest.json under {root}: pass the face-api npm tarball "
            "(npm pack @vladmandic/face-api@1.7.15) or the folder it extracts to"
        )
    return hits[0].parent


def convert_faceapi(source: str | Path, out_dir: str | Path = DEFAULT_WEIGHTS_DIR,
                    reference: bool = False) -> dict[str, dict]:
    """Convert the three nets; return {file name: {key: shape}}. `source`: .tgz tarball or a folder.

    reference=True also runs the original TF.js nets with node and writes their outputs
    (REFERENCE_FILE) for the port's equivalence test.
    """
    source, out_dir = Path(source), Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file():
            with tarfile.open(source) as tar:
                tar.extractall(tmp, filter="data")
            root = Path(tmp)
        elif source.is_dir():
            root = source
        else:
            raise FileNotFoundError(f"{source} is neither a tarball nor a folder")
        model_dir = _find_model_dir(root)
        package_dir = model_dir.parent
        package_json = package_dir / "package.json"
        pkg = json.loads(package_json.read_text()) if package_json.exists() else {}
        name, version = pkg.get("name", "face-api"), pkg.get("version", "unknown")
        summary = {}
        for model, (file_name, module_cls) in MODELS.items():
            manifest = model_dir / f"{model}-weights_manifest.json"
            shards = [model_dir / p for g in json.loads(manifest.read_text()) for p in g["paths"]]
            digest = hashlib.sha256(b"".join(p.read_bytes() for p in shards)).hexdigest()
            metadata = {
                "source": f"{name}@{version} model/{model}",
                "license": "MIT (see LICENSE-face-api.txt)",
                "shards_sha256": digest,
                "format": "PyTorch layout; keys with .qscale/.qmin are uint8 codes: value = code * qscale + qmin",
            }
            summary[file_name] = convert_manifest(manifest, out_dir / file_name, metadata)
            # A strict load proves every tensor found its module and no module weight is missing.
            module_cls().load_state_dict(load_state_dict(out_dir / file_name), strict=True)
        license_file = package_dir / "LICENSE"
        license_body = license_file.read_text() if license_file.exists() else "MIT License (file missing in source)\n"
        (out_dir / "LICENSE-face-api.txt").write_text(
            LICENSE_TEXT.format(package=name, version=version, license=license_body)
        )
        if reference:
            write_tfjs_reference(package_dir, out_dir / REFERENCE_FILE)
    return summary


# ---------------------------------------------------------------------------------------------------
# Reference outputs of the original TF.js networks, so a test can prove the port computes the same.

REFERENCE_FILE = "faceapi_tfjs_reference.json"


def reference_inputs() -> dict[str, np.ndarray]:
    """Fixed real-face inputs, float32 (H, W, 3) on the 0..255 scale, rebuilt identically anywhere.

    Only slicing and a 2x2 block mean (exact in float32), so no resampler can make them differ:
    - astronaut: a 112 x 112 window around Eileen Collins' face (scikit-image);
    - astronaut_tall: a 112 x 84 window (non-square: tests face-api's centred padding and un-padding);
    - grace_hopper: a 224 x 224 window around the face (matplotlib sample), 2x2-averaged to 112.
    """
    astro = astronaut().astype(np.float32)
    grace = grace_hopper().astype(np.float32)[118:342, 154:378]
    return {
        "astronaut": np.ascontiguousarray(astro[61:173, 168:280]),
        "astronaut_tall": np.ascontiguousarray(astro[61:173, 182:266]),
        "grace_hopper": np.ascontiguousarray(grace.reshape(112, 2, 112, 2, 3).mean(axis=(1, 3))),
    }


# Runs face-api's own TF.js nets (CPU backend, pure JS) on the inputs; needs only node and the package.
_NODE_SCRIPT = r"""
globalThis.require = require;
const fs = require('fs');
const [bundle, modelDir, inputsPath, outPath] = process.argv.slice(2);
(async () => {
  const faceapi = await import(bundle);
  const tf = faceapi.tf;
  await tf.setBackend('cpu'); await tf.ready();
  async function load(net, name) {
    const manifest = JSON.parse(fs.readFileSync(`${modelDir}/${name}-weights_manifest.json`));
    const specs = [], buffers = [];
    for (const g of manifest) { specs.push(...g.weights); for (const p of g.paths) buffers.push(fs.readFileSync(`${modelDir}/${p}`)); }
    const buf = Buffer.concat(buffers);
    net.loadFromWeightMap(tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length), specs));
    return net;
  }
  const lm = await load(new faceapi.FaceLandmark68Net(), 'face_landmark_68_model');
  const ag = await load(new faceapi.AgeGenderNet(), 'age_gender_model');
  const ex = await load(new faceapi.FaceExpressionNet(), 'face_expression_model');
  const out = { tfjs_core: String(tf.version_core), backend: tf.getBackend(), cases: {} };
  for (const inp of JSON.parse(fs.readFileSync(inputsPath))) {
    const raw = fs.readFileSync(inp.file);
    const x = tf.tensor3d(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4), [inp.height, inp.width, 3]);
    const netInput = await faceapi.toNetInput(x);
    const ageGender = ag.forwardInput(netInput);
    out.cases[inp.name] = {
      landmarks: Array.from(lm.forwardInput(netInput).dataSync()),
      landmark_pooled_features: Array.from(lm.faceFeatureExtractor.forwardInput(netInput).dataSync()),
      age: ageGender.age.dataSync()[0],
      gender_male_female: Array.from(ageGender.gender.dataSync()),
      expression: Array.from(ex.forwardInput(netInput).dataSync()),
    };
  }
  fs.writeFileSync(outPath, JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def write_tfjs_reference(package_dir: str | Path, out_path: str | Path) -> dict:
    """Run face-api's TF.js nets with node on `reference_inputs()` and save their outputs as JSON.

    The browser ESM bundle works in node once `require` is global and its stubbed-out `util` import is
    replaced by node's own (a one-token patch of a temporary copy; the package itself is untouched).
    """
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed to run the original TF.js nets")
    package_dir = Path(package_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle = (package_dir / "dist" / "face-api.esm.js").read_text()
        if bundle.count("this.util=AR()") != 1:
            raise RuntimeError("face-api.esm.js is not the 1.7.15 bundle this patch was written for")
        (tmp / "face-api.mjs").write_text(bundle.replace("this.util=AR()", 'this.util=require("util")'))
        (tmp / "run.cjs").write_text(_NODE_SCRIPT)
        specs = []
        for name, arr in reference_inputs().items():
            arr.astype("<f4").tofile(tmp / f"{name}.bin")
            specs.append({"name": name, "file": str(tmp / f"{name}.bin"), "height": arr.shape[0], "width": arr.shape[1]})
        (tmp / "inputs.json").write_text(json.dumps(specs))
        subprocess.run([node, str(tmp / "run.cjs"), str(tmp / "face-api.mjs"), str(package_dir / "model"),
                        str(tmp / "inputs.json"), str(tmp / "out.json")], check=True, capture_output=True)
        result = json.loads((tmp / "out.json").read_text())
    result["about"] = (
        "Outputs of face-api's original TF.js networks (npm @vladmandic/face-api 1.7.15, tfjs CPU backend) on "
        "emo_llama.expert.faceapi.convert.reference_inputs(); landmarks are x0,y0,x1,y1,... relative to each input's "
        "width/height; gender is softmax (male, female); expression is softmax over neutral, happy, sad, angry, "
        "fearful, disgusted, surprised."
    )
    # Rounded to 7 significant digits: float32 precision, and a small diff-friendly file.
    text = json.dumps(result, indent=1, default=float)
    rounded = json.loads(text, parse_float=lambda v: float(f"{float(v):.7g}"))
    Path(out_path).write_text(json.dumps(rounded, indent=1) + "\n")
    return rounded
