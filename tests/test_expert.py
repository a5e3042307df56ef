"""Facial-expert interface, registry, the port's equivalence with face-api's TF.js nets, and bad input."""

import json

import numpy as np
import pytest
import torch

from emo_llama.expert import GENDERS, ExpertOutput, crop_to_frame, get_expert, get_expression_net
from emo_llama.expert.faceapi.convert import DEFAULT_WEIGHTS_DIR, REFERENCE_FILE, reference_inputs


@pytest.fixture(scope="module")
def offline():
    return get_expert("offline", device="cpu")


@pytest.fixture(scope="module")
def tiny():
    return get_expert("tiny", device="cpu")


@pytest.fixture(scope="module")
def astronaut_crop():
    ref = reference_inputs()["astronaut"]  # tight 112 x 112 face window, float 0..255
    return torch.from_numpy(ref).permute(2, 0, 1)[None] / 255.0


# -- registry and interface --------------------------------------------------------------------------

def test_registry_names_and_errors():
    with pytest.raises(ValueError, match="unknown facial expert"):
        get_expert("nope")
    with pytest.raises(FileNotFoundError, match="kartiknarayan/facexformer"):
        get_expert("facexformer", device="cpu")


@pytest.mark.parametrize("name", ["tiny", "offline"])
def test_output_shapes_and_frozen(name, offline, tiny):
    expert = offline if name == "offline" else tiny
    assert not expert.training and not any(p.requires_grad for p in expert.parameters())
    crops = torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    out = expert(crops)
    n_f = expert.grid[0] * expert.grid[1]
    assert out.face_tokens.shape == (3, n_f, expert.token_dim) and out.grid == expert.grid
    assert out.landmarks_68.shape == (3, 68, 2)
    assert out.age_years.shape == (3,) and out.gender_probs.shape == (3, 2)
    torch.testing.assert_close(out.gender_probs.sum(-1), torch.ones(3))
    assert out.token_centres.shape == (n_f, 2)
    assert out.au_masks().shape[::2] == (3, n_f)
    # every expert here reads expressions (7 basic classes); only the offline one has a race model (GEAR)
    assert out.expression_probs.shape == (3, 7) and out.expression_names == expert.expression_names
    torch.testing.assert_close(out.expression_probs.sum(-1), torch.ones(3))
    if name == "offline":
        assert out.race_probs.shape == (3, 5) and out.race_names == ("white", "black", "asian", "indian", "others")
        assert "race: " in out.agr_text(0)
    else:
        assert out.race_probs is None


def test_tiny_is_deterministic_and_says_so():
    from emo_llama.expert.tiny import TinyExpert

    assert "random weights, unit tests only" in TinyExpert.__doc__.lower()
    crops = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(123)
    a = get_expert("tiny", device="cpu")(crops)
    torch.manual_seed(456)
    b = get_expert("tiny", device="cpu")(crops)
    torch.testing.assert_close(a.face_tokens, b.face_tokens)
    c = get_expert("tiny", device="cpu", seed=1)(crops)
    assert not torch.allclose(a.face_tokens, c.face_tokens)
    assert a.grid == (4, 4) and a.face_tokens.shape[-1] == 32


def test_agr_text_leaves_race_out_without_a_race_model():
    out = ExpertOutput(face_tokens=torch.zeros(1, 4, 2), grid=(2, 2), landmarks_68=torch.zeros(1, 68, 2),
                       age_years=torch.tensor([41.6]), gender_probs=torch.tensor([[0.8, 0.2]]))
    text = out.agr_text(0)
    assert "age: about 42 years" in text and "gender: female (80% confidence)" in text
    assert "race" not in text
    out.race_probs, out.race_names = torch.tensor([[0.1, 0.9]]), ("a", "b")
    assert "race: b" in out.agr_text(0)


def test_landmarks_map_back_to_frame_pixels():
    pts = np.array([[[0.0, 0.0], [0.5, 0.25], [1.0, 1.0]]])
    frame = crop_to_frame(pts, [[10, 20, 110, 220]])
    np.testing.assert_allclose(frame[0], [[10, 20], [60, 70], [110, 220]])


# -- the port computes what face-api's TF.js nets compute ----------------------------------------------

def test_port_matches_tfjs_reference_outputs():
    """data/weights/faceapi_tfjs_reference.json holds the original TF.js nets' outputs on fixed real faces
    (written by `scripts/convert_faceapi.py --reference`, which runs face-api itself under node)."""
    reference = json.loads((DEFAULT_WEIGHTS_DIR / REFERENCE_FILE).read_text())["cases"]
    raw_expert = get_expert("offline-landmark", device="cpu", face_fraction=1.0, flip_average=False)
    raw_fer = get_expression_net("cpu", face_fraction=1.0, flip_average=False)
    for name, image in reference_inputs().items():
        crops = torch.from_numpy(image).permute(2, 0, 1)[None] / 255.0
        out, probs = raw_expert(crops), raw_fer(crops)
        ref = reference[name]
        np.testing.assert_allclose(out.expression_probs[0].numpy(), ref["expression"], atol=1e-5)
        np.testing.assert_allclose(out.landmarks_68[0].numpy().ravel(), ref["landmarks"], atol=2e-5, err_msg=name)
        np.testing.assert_allclose(out.face_tokens[0].mean(0).numpy(), ref["landmark_pooled_features"], atol=2e-5)
        assert out.age_years[0].item() == pytest.approx(ref["age"], abs=1e-3)
        np.testing.assert_allclose(out.gender_probs[0].numpy(), ref["gender_male_female"][::-1], atol=1e-5)
        np.testing.assert_allclose(probs[0].numpy(), ref["expression"], atol=1e-5)


def test_offline_face_tokens_are_the_map_the_expression_reading_comes_from(astronaut_crop):
    """The `offline` expert's face tokens are face-api's expression trunk map: its head, applied to their mean,
    gives the expert's reading (the knowledge the tokens carry is the expression net's); `offline-landmark`
    keeps the landmark net's map, which gives another reading."""
    expression, landmark = (get_expert(n, device="cpu", face_fraction=1.0, flip_average=False)
                            for n in ("offline", "offline-landmark"))
    out, old = expression(astronaut_crop), landmark(astronaut_crop)
    head = expression.expression_net.fc
    from_tokens = head(out.face_tokens.mean(1)).softmax(-1)
    torch.testing.assert_close(from_tokens, out.expression_probs)
    assert not torch.allclose(head(old.face_tokens.mean(1)).softmax(-1), out.expression_probs, atol=1e-2)
    torch.testing.assert_close(out.landmarks_68, old.landmarks_68)  # the same landmark net either way
    assert out.expression(0)[0] == "happiness" and old.backend == "offline-landmark"


def test_weights_load_offline_without_npm(offline):
    # The expert above was built from data/weights only; its landmarks are a face, not noise.
    assert (DEFAULT_WEIGHTS_DIR / "LICENSE-face-api.txt").read_text().count("MIT") >= 2
    assert sum(p.numel() for p in offline.parameters()) > 700_000


def test_astronaut_age_gender_and_expression_are_plausible(offline, astronaut_crop):
    # A tight window: the whole face, so use face_fraction=1 (no margin to remove).
    expert = get_expert("offline", device="cpu", face_fraction=1.0)
    out = expert(astronaut_crop)
    assert out.gender(0)[0] == "female" and out.gender(0)[1] > 0.6
    assert 18 < out.age_years[0].item() < 65
    fer = get_expression_net("cpu", face_fraction=1.0)
    label, prob = fer.predict(astronaut_crop)[0]
    assert label == "happy" and prob > 0.5  # she is smiling


# -- bad input: clear errors or defined outputs --------------------------------------------------------

def test_empty_batch_gives_empty_outputs(offline, tiny):
    for expert in (offline, tiny):
        out = expert(torch.zeros(0, 3, 112, 112))
        assert out.face_tokens.shape == (0, expert.num_tokens, expert.token_dim)
        assert out.landmarks_68.shape == (0, 68, 2) and out.gender_probs.shape == (0, 2)
        assert out.au_masks().shape[0] == 0
    assert get_expression_net("cpu")([]).shape == (0, 7)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(1, 3, 0, 0), "degenerate"),
    (torch.zeros(1, 3, 4, 100), "degenerate"),
    (torch.zeros(2, 4, 64, 64), "channels"),
    (torch.zeros(3, 64, 64), r"\(B, 3, H, W\)"),
    (torch.full((1, 3, 64, 64), 200.0), r"\[0, 1\]"),
])
def test_bad_crops_raise_clear_errors(offline, bad, match):
    with pytest.raises(ValueError, match=match):
        offline(bad)


def test_nan_and_inf_are_reported_by_index(offline):
    crops = torch.rand(3, 3, 64, 64)
    crops[1, 0, 5, 5] = float("nan")
    crops[2, 2, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"\[1, 2\] contain NaN or inf"):
        offline(crops)
    with pytest.raises(ValueError, match="NaN"):
        get_expression_net("cpu")(crops)


def test_grayscale_uint8_and_numpy_crops_are_accepted(offline, astronaut_crop):
    gray = astronaut_crop.mean(1, keepdim=True)
    out_gray = offline(gray)
    out_rgb_gray = offline(gray.expand(-1, 3, -1, -1))
    torch.testing.assert_close(out_gray.landmarks_68, out_rgb_gray.landmarks_68)
    u8 = (astronaut_crop * 255).round().to(torch.uint8)
    out_u8 = offline(u8)
    out_np = offline(list(u8.permute(0, 2, 3, 1).numpy()))
    torch.testing.assert_close(out_u8.landmarks_68, out_np.landmarks_68)
    assert out_u8.gender_probs.shape == (1, 2) and GENDERS == ("female", "male")


def test_blank_crop_gives_finite_defined_output(offline):
    out = offline(torch.full((1, 3, 112, 112), 0.5))
    assert torch.isfinite(out.landmarks_68).all() and torch.isfinite(out.face_tokens).all()
    assert out.au_masks().any(-1).all()  # every AU region still has a token
