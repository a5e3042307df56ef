"""The `offline` facial expert: face-api's landmark and age/gender nets with their real weights.

Weights: `data/weights/*.safetensors`, converted from the MIT npm package @vladmandic/face-api 1.7.15
(`scripts/convert_faceapi.py`); they load with no network and no npm.

How a crop is read (all steps are undone when mapping results back to the crop):
1. a non-square crop is zero-padded to a square, centred (what face-api does);
2. the central `face_fraction` of the square is cut out: face-api's nets were trained on tight
   detector boxes, while our FaceCropper adds a margin (margin 0.5 -> the MTCNN box is the central
   1 / 1.5 of the crop). On the astronaut, feeding the whole loose crop flips the gender call to
   'male'; the tight window gives 'female' (notebook 02);
3. resize to 112 x 112 (bilinear, antialiased when shrinking), normalise like face-api;
4. optionally also run the horizontally mirrored face and average landmarks, age and gender
   (`flip_average`, on by default: it cuts the landmark error against MTCNN by about a fifth).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emo_llama.expert.base import ExpertOutput, ExpressionNet, FacialExpert
from emo_llama.expert.faceapi.nets import (
    EXPRESSIONS,
    INPUT_SIZE,
    AgeGenderNet,
    FaceExpressionNet,
    FaceLandmark68Net,
    preprocess,
    token_centres,
)
from emo_llama.expert.faceapi.tfjs_weights import load_state_dict
from emo_llama.expert.landmarks import IBUG_MIRROR
from emo_llama.utils import REPO_DATA

WEIGHTS_DIR = REPO_DATA / "weights"
DEFAULT_FACE_FRACTION = 1 / 1.5  # FaceCropper's default margin 0.5




def load_net(module: nn.Module, file_name: str, weights_dir: str | Path | None = None) -> nn.Module:
    path = Path(weights_dir or WEIGHTS_DIR) / file_name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the converted face-api weights ship with the repository under data/weights/ "
            "(re-create them with `python scripts/convert_faceapi.py <face-api npm tarball>`)"
        )
    module.load_state_dict(load_state_dict(path), strict=True)
    return module.eval()


class FaceApiInput(nn.Module):
    """Shared crop -> 112 x 112 net input step, and the affine map from net-input to crop coordinates."""

    def __init__(self, face_fraction: float = DEFAULT_FACE_FRACTION) -> None:
        super().__init__()
        if not 0.1 <= face_fraction <= 1.0:
            raise ValueError(f"face_fraction={face_fraction}: expected a share of the crop side in [0.1, 1]")
        self.face_fraction = face_fraction

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (net input (B, 3, 112, 112) normalised, scale (2,), offset (2,)) with
        crop_xy = net_xy * scale + offset for net_xy in [0, 1]."""
        h, w = crops.shape[-2:]
        side = max(h, w)
        pad_x, pad_y = (side - w) / 2, (side - h) / 2
        if h != w:
            left, top = int(pad_x), int(pad_y)  # face-api: equal padding both sides (extra pixel last)
            crops = F.pad(crops, (left, side - w - left, top, side - h - top))
            pad_x, pad_y = float(left), float(top)
        margin = int(round(side * (1 - self.face_fraction) / 2))
        window = side - 2 * margin
        x = crops[..., margin:margin + window, margin:margin + window]
        if window != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                              antialias=window > INPUT_SIZE)
        scale = torch.tensor([window / w, window / h], device=crops.device)
        offset = torch.tensor([(margin - pad_x) / w, (margin - pad_y) / h], device=crops.device)
        return preprocess(x), scale, offset


class OfflineExpert(FacialExpert):
    """face-api's 68-landmark net (its 7x7x256 map = face tokens) and age/gender net, real weights.

    Age is a regression in years; gender comes as probabilities; no race (race_probs=None).
    """

    name = "offline"
    input_size = INPUT_SIZE
    token_dim = 256
    grid = (7, 7)

    def __init__(self, face_fraction: float = DEFAULT_FACE_FRACTION, flip_average: bool = True,
                 weights_dir: str | Path | None = None) -> None:
        super().__init__()
        self.prepare = FaceApiInput(face_fraction)
        self.flip_average = flip_average
        self.landmark_net = load_net(FaceLandmark68Net(), "face_landmark_68.safetensors", weights_dir)
        self.age_gender_net = load_net(AgeGenderNet(), "age_gender.safetensors", weights_dir)
        self.freeze()

    def default_token_centres(self) -> torch.Tensor:
        """Token positions in a square crop (see faceapi.token_centres), inside the face window."""
        f = self.prepare.face_fraction
        return token_centres() * f + (1 - f) / 2

    def _run(self, crops: torch.Tensor) -> ExpertOutput:
        x, scale, offset = self.prepare(crops)
        b = x.shape[0]
        if self.flip_average:
            x = torch.cat([x, x.flip(-1)])
        fmap, landmarks = self.landmark_net(x)
        age, gender_logits = self.age_gender_net(x)
        gender = gender_logits.softmax(-1)
        if self.flip_average:
            mirrored = landmarks[b:, IBUG_MIRROR]
            mirrored = torch.stack([1 - mirrored[..., 0], mirrored[..., 1]], dim=-1)
            landmarks = (landmarks[:b] + mirrored) / 2
            age = (age[:b] + age[b:]) / 2
            gender = (gender[:b] + gender[b:]) / 2
            fmap = fmap[:b]  # tokens from the unmirrored pass: they must keep their place in the crop
        return ExpertOutput(
            face_tokens=fmap.flatten(2).transpose(1, 2),  # (B, 49, 256), row-major over the 7x7 map
            grid=self.grid,
            landmarks_68=landmarks * scale + offset,
            age_years=age,
            gender_probs=gender.flip(-1),  # face-api orders (male, female); we use (female, male)
            race_probs=None,
            race_names=None,
            token_centres=token_centres().to(x.device) * scale + offset,
            age_scheme="years (face-api regression)",
            backend=self.name,
        )


class ExpressionClassifier(ExpressionNet):
    """face-api's 7-class expression net: the classical FER baseline later notebooks compare against.

    forward(crops) -> probabilities (B, 7) over `classes`; `predict(crops)` -> [(label, prob), ...].
    """

    classes = EXPRESSIONS

    def __init__(self, face_fraction: float = DEFAULT_FACE_FRACTION, flip_average: bool = True,
                 weights_dir: str | Path | None = None) -> None:
        super().__init__()
        self.prepare = FaceApiInput(face_fraction)
        self.flip_average = flip_average
        self.net = load_net(FaceExpressionNet(), "face_expression.safetensors", weights_dir)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def net_input(self, crops: torch.Tensor) -> torch.Tensor:
        return self.prepare(crops)[0]
