"""The TF.js -> safetensors conversion, re-run on a small synthetic manifest with known values."""

import json

import numpy as np
import pytest
import torch

from emo_llama.expert.faceapi.tfjs_weights import convert_manifest, load_state_dict, read_manifest, torch_key


def _write_model(folder, groups):
    """groups: list of (shard names, [(name, array as stored, dtype, quantization or None)])."""
    manifest = []
    for shard_names, weights in groups:
        blob = b"".join(stored.tobytes() for _, stored, _, _ in weights)
        cut = len(blob) // 2  # split each group's bytes over its shards: readers must concatenate them
        parts = [blob[:cut], blob[cut:]] if len(shard_names) == 2 else [blob]
        for name, part in zip(shard_names, parts):
            (folder / name).write_bytes(part)
        manifest.append({
            "paths": shard_names,
            "weights": [
                {"name": n, "shape": list(a.shape), "dtype": d, **({"quantization": q} if q else {})}
                for n, a, d, q in weights
            ],
        })
    path = folder / "toy-weights_manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture()
def toy(tmp_path):
    rng = np.random.default_rng(0)
    conv_codes = rng.integers(0, 256, (3, 3, 2, 4), dtype=np.uint8)  # HWIO, uint8-quantised
    dw_codes = rng.integers(0, 65536, (3, 3, 4, 1), dtype=np.uint16).astype("<u2")
    pw = rng.standard_normal((1, 1, 4, 5)).astype("<f2")  # float16-quantised
    bias = np.arange(5, dtype="<f4")
    fc = rng.standard_normal((5, 3)).astype("<f4")  # dense [in, out]
    q8 = {"dtype": "uint8", "scale": 0.01, "min": -1.25}
    q16 = {"dtype": "uint16", "scale": 1e-4, "min": -3.0}
    path = _write_model(tmp_path, [
        (["toy.bin", "toy.bin2"], [
            ("block/conv0/filters", conv_codes, "float32", q8),
            ("block/conv1/depthwise_filter", dw_codes, "float32", q16),
            ("block/conv1/pointwise_filter", pw, "float32", {"dtype": "float16"}),
            ("block/conv1/bias", bias, "float32", None),
        ]),
        (["fc.bin"], [("fc/weights", fc, "float32", None)]),
    ])
    return path, dict(conv=conv_codes, dw=dw_codes, pw=pw, bias=bias, fc=fc, q8=q8, q16=q16)


def test_manifest_decoding_follows_tfjs_semantics(toy):
    path, v = toy
    tensors = {t.name: t for t in read_manifest(path)}
    conv = tensors["block/conv0/filters"].decode()
    assert conv.dtype == np.float32 and conv.shape == (3, 3, 2, 4)
    expected = (v["conv"].astype(np.float64) * 0.01 - 1.25).astype(np.float32)
    np.testing.assert_array_equal(conv, expected)  # value = code * scale + min, bit-exact
    np.testing.assert_array_equal(tensors["block/conv1/depthwise_filter"].decode(),
                                  (v["dw"].astype(np.float64) * 1e-4 - 3.0).astype(np.float32))
    np.testing.assert_array_equal(tensors["block/conv1/pointwise_filter"].decode(), v["pw"].astype(np.float32))
    np.testing.assert_array_equal(tensors["block/conv1/bias"].decode(), v["bias"])
    np.testing.assert_array_equal(tensors["fc/weights"].decode(), v["fc"])


def test_conversion_writes_pytorch_layouts(toy, tmp_path):
    path, v = toy
    out = tmp_path / "toy.safetensors"
    convert_manifest(path, out, {"source": "synthetic"})
    state = load_state_dict(out)
    assert set(state) == {"block.conv0.weight", "block.conv1.depthwise.weight", "block.conv1.pointwise.weight",
                          "block.conv1.bias", "fc.weight"}
    conv = state["block.conv0.weight"]
    assert conv.shape == (4, 2, 3, 3) and conv.dtype == torch.float32  # HWIO -> OIHW
    # element [kh=1, kw=2, ci=0, co=3] of the TF tensor lands at [co=3, ci=0, kh=1, kw=2]
    assert conv[3, 0, 1, 2].item() == pytest.approx(float(np.float32(v["conv"][1, 2, 0, 3] * 0.01 - 1.25)), abs=0)
    assert state["block.conv1.depthwise.weight"].shape == (4, 1, 3, 3)
    assert state["block.conv1.pointwise.weight"].shape == (5, 4, 1, 1)
    np.testing.assert_array_equal(state["fc.weight"].numpy(), v["fc"].T)  # [in, out] -> [out, in]
    np.testing.assert_array_equal(state["block.conv1.bias"].numpy(), v["bias"])


def test_truncated_shards_and_unknown_names_raise(toy, tmp_path):
    path, _ = toy
    (tmp_path / "fc.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match="fc/weights"):
        read_manifest(path)
    with pytest.raises(ValueError, match="do not know"):
        torch_key("block/conv0/gamma")
