import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from emo_llama.faces import CropConfig, FaceCropper, samples, square_crop, to_rgb_uint8
from emo_llama.faces._compat import batched_nms
from emo_llama.utils import resolve_device


def test_astronaut_face_is_found_with_landmarks_inside_the_box(cropper, astronaut):
    (result,) = cropper.crop(astronaut)
    assert result.found and result.reason is None and result.prob > 0.99
    x1, y1, x2, y2 = result.box
    # Her face is in the upper middle of the 512 x 512 photo.
    assert 150 < x1 < x2 < 300 and 30 < y1 < y2 < 200
    lm = result.landmarks_5
    assert ((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2)).all()
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]  # eyes above nose above mouth
    assert result.crop.shape == (224, 224, 3) and result.crop.dtype == np.uint8


@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0])
def test_margin_sets_the_square_side(astronaut, margin):
    box = np.array([200.0, 80.0, 260.0, 160.0])  # 60 wide, 80 tall
    crop, crop_box = square_crop(astronaut, box, margin, 64)
    side = crop_box[2] - crop_box[0]
    assert side == crop_box[3] - crop_box[1] == round(80 * (1 + margin))
    assert crop.shape == (64, 64, 3)
    centre = (crop_box[:2] + crop_box[2:]) / 2
    assert np.allclose(centre, [230, 120], atol=1)


def test_crop_at_the_border_pads_black_and_keeps_geometry():
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop, crop_box = square_crop(frame, np.array([0.0, 0.0, 40.0, 40.0]), 0.5, 60)  # side 60 around (20, 20)
    assert crop_box.tolist() == [-10, -10, 50, 50]
    assert crop.shape == (60, 60, 3)
    assert (crop[:10, :, :] == 0).all() and (crop[:, :10, :] == 0).all()  # outside the frame
    assert (crop[12:, 12:] == 200).all()  # inside the frame, pixels unchanged


def test_boxes_are_clipped_to_the_frame(cropper, astronaut):
    # Shift the photo so her face sticks out of the left edge.
    shifted = np.zeros_like(astronaut)
    shifted[:, :-200] = astronaut[:, 200:]
    (result,) = cropper.crop(shifted)
    assert result.found
    h, w = shifted.shape[:2]
    assert 0 <= result.box[0] and result.box[2] <= w and 0 <= result.box[1] and result.box[3] <= h


def test_no_face_is_reported_not_raised(cropper):
    (result,) = cropper.crop(samples.no_face_image())
    assert not result.found and result.crop is None and "no face" in result.reason


def test_batch_with_a_faceless_frame_matches_single_frames(cropper, astronaut):
    coffee = np.asarray(Image.fromarray(samples.no_face_image()).resize(astronaut.shape[1::-1]))
    batch = cropper.crop([astronaut, coffee, astronaut[:, ::-1]])
    assert [r.found for r in batch] == [True, False, True]
    single = cropper.crop(astronaut)[0]
    assert np.array_equal(batch[0].crop, single.crop)
    assert np.allclose(batch[0].box, single.box, atol=1e-3)


def test_crops_are_deterministic(cropper, astronaut):
    a, b = cropper.crop(astronaut)[0], FaceCropper(device="cpu").crop(astronaut.copy())[0]
    assert np.array_equal(a.crop, b.crop) and np.array_equal(a.box, b.box)


def test_grayscale_and_rgba_inputs(cropper, astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    for variant in (gray, gray[:, :, None], rgba, Image.fromarray(astronaut).convert("L"),
                    astronaut.astype(np.float32) / 255):
        (result,) = cropper.crop(variant)
        assert result.found and result.crop.shape == (224, 224, 3)
    assert np.array_equal(cropper.crop(rgba)[0].crop, cropper.crop(astronaut)[0].crop)


def test_tiny_grayscale_faces_are_found(cropper, astronaut):
    """FERPlus-size (48 px) and LFW-subset (25 px) gray faces: small frames are upscaled and padded."""
    face = cropper.crop(astronaut)[0].crop
    ferplus_like = np.asarray(Image.fromarray(face).convert("L").resize((48, 48)))
    assert cropper.crop(ferplus_like)[0].found
    faces = cropper.crop(list(samples.lfw_faces()))
    non_faces = cropper.crop(list(samples.lfw_non_faces()))
    assert sum(r.found for r in faces) >= 95
    assert sum(r.found for r in non_faces) <= 5


def test_whole_frame_fallback_is_flagged():
    cropper = FaceCropper(on_missing="whole_frame", size=48, device="cpu")
    (result,) = cropper.crop(np.full((48, 48), 128, np.uint8))
    assert not result.found and result.fallback and "whole frame" in result.reason
    assert result.crop.shape == (48, 48, 3)


def test_select_all_keeps_every_face(astronaut):
    collage = np.concatenate([astronaut, np.asarray(Image.fromarray(astronaut).resize((256, 256)).crop(
        (0, 0, 256, 256)).resize((512, 512)))], axis=1)
    (result,) = FaceCropper(select="all", device="cpu").crop(collage)
    assert result.found and len(result.others) == 1
    area = lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1])  # noqa: E731
    assert area(result) >= area(result.others[0])


def test_bad_inputs_get_clear_errors(cropper):
    with pytest.raises(ValueError, match="NaN"):
        to_rgb_uint8(np.full((10, 10, 3), np.nan))
    with pytest.raises(ValueError, match="expected"):
        to_rgb_uint8(np.zeros((10, 10, 5)))
    with pytest.raises(ValueError, match="select"):
        CropConfig(select="biggest")
    assert cropper.crop([]) == []


def test_batched_nms_standin_keeps_categories_apart():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 0]), 0.5).tolist() == [0]
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.5).tolist() == [0, 2]


def test_facenet_import_leaves_no_torchvision_trace():
    code = (
        "import sys, importlib.util\n"
        "from emo_llama.faces import FaceCropper\n"
        "FaceCropper(device='cpu')\n"
        "standins = [m for m, mod in sys.modules.items()\n"
        "            if m.startswith('torchvision') and getattr(mod, '__file__', None) is None]\n"
        "assert not standins, f'stand-ins left behind: {standins}'\n"
        "import transformers, peft\n"
        "from transformers.utils import is_torchvision_available\n"
        "real = importlib.util.find_spec('torchvision') is not None\n"
        "assert is_torchvision_available() == real\n"
        "print('clean', 'with real torchvision' if real else 'without torchvision')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("clean")


def test_standins_are_really_removed():
    """The check above must be able to fail: a stand-in module has no __file__ and is caught."""
    from emo_llama.faces import _compat

    with _compat._torchvision_standins():
        inside = sys.modules.get("torchvision.ops.boxes")
    if _compat.importlib.util.find_spec("torchvision") is None:
        assert inside is not None and getattr(inside, "__file__", None) is None
        assert "torchvision.ops.boxes" not in sys.modules


def test_auto_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto").type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cpu").type == "cpu"
