"""facex's expression net ported from its TFLite file (scripts/convert_facex.py) and the `facex` expert."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fixtures.scripts import load_script
from safetensors.torch import load_file

from emo_llama.expert import get_expert, get_expression_net
from emo_llama.expert.base import WEIGHTS_DIR
from emo_llama.expert.facex.expert import (
    REFERENCE_FILE,
    WEIGHTS_FILE,
    dequantised,
    load_facex_net,
)
from emo_llama.expert.facex.net import FACEX_CLASSES, INPUT_SIZE, token_centres


def _converter():
    return load_script("scripts/convert_facex.py")


def test_port_matches_the_tflite_interpreter():
    """The original TFLite model's softmax on three fixed inputs (recorded with ai-edge-litert at conversion).

    Tolerance 0.08 in probability, and the same top class: TFLite runs this file's 8-bit layers as 'hybrid'
    kernels that also quantise each layer's input activations to 8 bits at run time, while the port keeps
    activations in float32. The float layers agree to 4e-5; TFLite's own two kernel sets (XNNPACK and the
    reference kernels) differ from each other by up to 0.03 on these inputs, the port from them by up to 0.07.
    A wrong layout, padding or zero point moves the outputs by far more (checked by breaking each once)."""
    reference = json.loads((WEIGHTS_DIR / REFERENCE_FILE).read_text())["probabilities"]
    net = load_facex_net()
    x = torch.from_numpy(_converter().reference_inputs()).permute(0, 3, 1, 2)
    with torch.no_grad():
        fmap, logits = net(x)
    probs = logits.softmax(-1).numpy()
    assert fmap.shape == (3, 1280, 6, 6)
    np.testing.assert_allclose(probs, reference, atol=0.08)
    assert (probs.argmax(1) == np.asarray(reference).argmax(1)).all()


def test_8bit_kernels_dequantise_exactly_and_the_licence_ships():
    state = load_file(str(WEIGHTS_DIR / WEIGHTS_FILE))
    quantised = [k for k in state if k.endswith(".q8")]
    assert len(quantised) > 40  # most kernels stay 8-bit in the file
    name = quantised[0][: -len(".q8")]
    q, scale, zero = state[name + ".q8"], state[name + ".scale"], state[name + ".zero_point"]
    value = dequantised(state)[name]
    torch.testing.assert_close(value, (q.to(torch.int32) - zero).float() * scale, rtol=0, atol=0)
    assert "MIT License" in (WEIGHTS_DIR / "LICENSE-facex.txt").read_text()


def test_facex_expert_tokens_reading_and_token_centres():
    expert = get_expert("facex", device="cpu")
    crops = torch.rand(2, 3, 150, 150, generator=torch.Generator().manual_seed(0))
    out = expert(crops)
    assert out.face_tokens.shape == (2, 36, 1280) and out.grid == (6, 6)
    assert out.expression_probs.shape == (2, 7) and out.expression_names == FACEX_CLASSES
    assert out.landmarks_68.shape == (2, 68, 2) and out.race_probs is not None
    centres = token_centres()
    # the last position's receptive field is centred on pixel 5 * 32 + 31 of the 200-pixel input
    assert centres[-1].tolist() == pytest.approx([(5 * 32 + 31.5) / INPUT_SIZE] * 2)
    assert bool((centres > 0).all() and (centres < 1).all())


def test_facex_classifier_reads_a_real_smile():
    from emo_llama.faces import FaceCropper
    from emo_llama.faces.samples import real_face_set

    astronaut = next(item for item in real_face_set() if item.name == "astronaut")
    crop = FaceCropper(device="cpu").crop(astronaut.media)[0].crop
    label, prob = get_expression_net(name="facex", device="cpu").predict(
        torch.from_numpy(np.array(crop)).permute(2, 0, 1)[None].float() / 255)[0]
    assert label == "happiness" and prob > 0.5
