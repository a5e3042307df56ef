"""GEAR's race/gender/age net: the port computes what the original TF.js model computes, labels, bad input."""

import json

import numpy as np
import pytest
import torch
from fixtures.scripts import load_script

from emo_llama.expert.base import GENDERS, WEIGHTS_DIR
from emo_llama.expert.gear import (
    AGE_GROUPS,
    INPUT_SIZE,
    RACE_NAMES,
    REFERENCE_FILE,
    GearClassifier,
    load_gear_net,
    tf_crop_and_resize,
)


def _convert_script():
    """scripts/convert_gear.py, whose reference_inputs() the recorded TF.js outputs were computed on."""
    return load_script("scripts/convert_gear.py")


@pytest.fixture(scope="module")
def gear_raw():
    """face_fraction=1: the crop is taken as human's face tensor itself, as the 'face_tensor' references are."""
    return GearClassifier(face_fraction=1.0)


@pytest.fixture(scope="module")
def gear():
    return GearClassifier()


def as_crops(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def centred_log(probs) -> np.ndarray:
    """Softmax probabilities -> the logits up to their (lost) common shift."""
    log = np.log(np.asarray(probs, dtype=np.float64))
    return log - log.mean()


# -- the port computes what GEAR's TF.js graph computes ----------------------------------------------------

def test_port_matches_tfjs_reference_outputs(gear_raw):
    """data/weights/gear_tfjs_reference.json: the original model run by @tensorflow/tfjs under node
    (`scripts/convert_gear.py --reference`). Compared as logits: log-probabilities minus their mean (softmax
    forgets a constant shift), so small probabilities count as much as large ones. Tolerance 3e-5: both sides
    compute in float32 from the same float16 weights and only summation order differs (measured max 6.9e-6;
    2.1e-6 on the probabilities themselves); adding 0.01 to one weight typically moves them by 1e-4 to 1e-1
    (some weights feed units that stay at zero on these four faces and cannot be seen by any test on them)."""
    reference = json.loads((WEIGHTS_DIR / REFERENCE_FILE).read_text())["cases"]
    inputs = _convert_script().reference_inputs()
    assert set(inputs) == set(reference) and {kind for kind, _ in inputs.values()} == {"net_input", "face_tensor"}
    for name, (kind, image) in inputs.items():
        ref = reference[name]
        assert ref["kind"] == kind
        if kind == "net_input":  # the network alone, on a 198 x 198 input
            assert image.shape == (INPUT_SIZE, INPUT_SIZE, 3)
            with torch.no_grad():
                age, gender_male_female, race = (t.softmax(-1)[0].numpy() for t in gear_raw.net(as_crops(image)))
        else:  # human's crop_and_resize with its GEAR box, then the network: the classifier's whole path
            out = gear_raw(as_crops(image))
            age, race = out.age_probs[0].numpy(), out.race_probs[0].numpy()
            gender_male_female = out.gender_probs[0].numpy()[[GENDERS.index("male"), GENDERS.index("female")]]
        for output, probs in (("age", age), ("gender_male_female", gender_male_female), ("race", race)):
            np.testing.assert_allclose(centred_log(probs), centred_log(ref[output]), atol=3e-5, rtol=0,
                                       err_msg=f"{name} {output}")


def test_weights_are_the_shipped_float16_values_and_load_strictly():
    from safetensors import safe_open

    with safe_open(str(WEIGHTS_DIR / "gear.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
        info = json.loads(f.metadata()["info"])
    assert info["gear_bin_sha256"] in (WEIGHTS_DIR / "LICENSE-human-models.txt").read_text()
    assert "MIT License" in (WEIGHTS_DIR / "LICENSE-human-models.txt").read_text()
    load_gear_net()  # strict: raises on a missing or extra tensor or a wrong shape


def test_missing_weights_say_how_to_recreate_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="convert_gear.py"):
        load_gear_net(tmp_path)


# -- labels --------------------------------------------------------------------------------------------

def test_label_names_and_orders(gear):
    # GEAR-Predictor's dataPreparation.py: ID_RACE_MAP, ID_AGE_MAP (UTKFace codes), output order
    assert RACE_NAMES == ("white", "black", "asian", "indian", "others")
    assert AGE_GROUPS == ("0-20", "21-25", "26-30", "31-40", "41-50", "51-60", "61+")
    out = gear(torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0)))
    assert out.race_names == RACE_NAMES and out.age_groups == AGE_GROUPS
    assert out.race_probs.shape == (2, 5) and out.gender_probs.shape == (2, 2) and out.age_probs.shape == (2, 7)
    for probs in (out.race_probs, out.gender_probs, out.age_probs):
        torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    assert out.race(0)[0] in RACE_NAMES and out.gender(1)[0] in GENDERS and out.age_group(0)[0] in AGE_GROUPS
    assert ((15 <= out.expected_age_years()) & (out.expected_age_years() <= 65)).all()


def test_gender_columns_follow_the_repository_order(gear_raw):
    """GEAR's own gender output is (male, female); the reading must give (female, male) like GENDERS."""
    kind, image = _convert_script().reference_inputs()["astronaut_face"]
    out = gear_raw(as_crops(image))
    with torch.no_grad():
        _, gender_logits, _ = gear_raw.net(gear_raw.prepare(as_crops(image)))
    gear_male, gear_female = gender_logits.softmax(-1)[0].tolist()
    assert GENDERS == ("female", "male")
    assert out.gender_probs[0].tolist() == pytest.approx([gear_female, gear_male], abs=0)
    assert gear_male != pytest.approx(gear_female, abs=0.1)  # the check above can tell the columns apart


# -- the input path --------------------------------------------------------------------------------------

def test_crop_and_resize_samples_pixel_centres():
    images = torch.rand(2, 3, 11, 7, generator=torch.Generator().manual_seed(1))
    # The full box at the input's own height/width samples every pixel centre exactly.
    torch.testing.assert_close(tf_crop_and_resize(images[..., :7, :], (0.0, 0.0, 1.0, 1.0), 7), images[..., :7, :],
                               rtol=0, atol=0)
    # y = 0.5 * (H - 1) for one output row: the middle row of an odd-height image, x likewise.
    out = tf_crop_and_resize(images, (0.0, 0.0, 1.0, 1.0), 1)
    torch.testing.assert_close(out[..., 0, 0], images[..., 5, 3], rtol=0, atol=0)
    # Halfway between two pixels: their mean (box [0, 0.1] of 11 rows reaches y = 1 at the last of 3 rows).
    ramp = torch.arange(11.0).view(1, 1, 11, 1).expand(1, 1, 11, 3)
    torch.testing.assert_close(tf_crop_and_resize(ramp, (0.0, 0.0, 0.1, 1.0), 3)[0, 0, :, 0], torch.tensor([0, 0.5, 1]))
    with pytest.raises(ValueError, match="box"):
        tf_crop_and_resize(images, (0.0, -0.1, 1.0, 1.0), 4)


def test_face_fraction_is_the_central_window_of_the_crop(gear, gear_raw):
    crops = torch.rand(2, 3, 100, 100, generator=torch.Generator().manual_seed(2))
    f = gear.prepare.face_fraction
    margin = round(100 * (1 - f) / 2)
    window = crops[..., margin:100 - margin, margin:100 - margin]
    torch.testing.assert_close(gear.prepare(crops), gear_raw.prepare(window), rtol=0, atol=0)
    # A non-square crop is zero-padded to a centred square first.
    tall = crops[..., :, 20:80]
    padded = torch.nn.functional.pad(tall, (20, 20, 0, 0))
    torch.testing.assert_close(gear.prepare(tall), gear.prepare(padded), rtol=0, atol=0)
    for bad in (0.05, 1.2):
        with pytest.raises(ValueError, match="face_fraction"):
            GearClassifier(face_fraction=bad)


# -- bad input: clear errors or defined outputs ----------------------------------------------------------

def test_empty_batch_gives_empty_outputs(gear):
    out = gear(torch.zeros(0, 3, 224, 224))
    assert len(out) == 0
    assert out.race_probs.shape == (0, 5) and out.gender_probs.shape == (0, 2) and out.age_probs.shape == (0, 7)
    assert out.expected_age_years().shape == (0,)


@pytest.mark.parametrize("bad, match", [
    (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
    (torch.full((1, 3, 64, 64), 200.0), r"\[0, 1\]"),
    (torch.zeros(1, 4, 64, 64), "channels"),
    (torch.zeros(3, 64, 64), r"\(B, 3, H, W\)"),
    (torch.zeros(1, 3, 4, 100), "degenerate"),
])
def test_bad_crops_raise_clear_errors(gear, bad, match):
    with pytest.raises(ValueError, match=match):
        gear(bad)
