"""The `offline` facial expert: face-api's expression, landmark and age/gender nets with their real weights.

EMO-LLaMA's expert (FaceXFormer) is trained on real faces for expression among other tasks, and its face
embedding carries that knowledge into the model. Here the same role is played by face-api's expression
net: its 7 x 7 x 256 trunk map (the map its expression head reads, after a mean) is the face tokens, and
its 7-class reading is a prior of its own (`ExpertOutput.expression_probs`). Landmarks and age/gender
come from face-api's landmark and age/gender nets, race from GEAR (`emo_llama.expert.gear`; face-api's
gender stays: GEAR called 5 of the 14 women of the real check set male). `face_tokens="landmark"` keeps
the first design (the landmark net's map as the face tokens; that net was trained to place landmarks, not
to tell expressions apart): an ablation arm (`get_expert("offline-landmark")`).

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

from emo_llama.expert.base import (
    BASIC_EXPRESSIONS,
    ExpertOutput,
    ExpressionNet,
    FacialExpert,
    check_face_fraction,
    face_window,
    frozen,
    in_face_window,
    weights_path,
)
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
from emo_llama.expert.gear import GearClassifier
from emo_llama.expert.landmarks import IBUG_MIRROR

DEFAULT_FACE_FRACTION = 1 / 1.5  # FaceCropper's default margin 0.5
EXPRESSION_CLASSES = BASIC_EXPRESSIONS  # face-api's EXPRESSIONS order, in canonical class names
FACE_TOKEN_SOURCES = ("expression", "landmark")




def load_net(module: nn.Module, file_name: str, weights_dir: str | Path | None = None) -> nn.Module:
    path = weights_path(weights_dir, file_name, "face-api",
                        "python scripts/convert_faceapi.py <face-api npm tarball>")
    module.load_state_dict(load_state_dict(path), strict=True)
    return module.eval()


class FaceApiInput(nn.Module):
    """Shared crop -> 112 x 112 net input step, and the affine map from net-input to crop coordinates."""

    def __init__(self, face_fraction: float = DEFAULT_FACE_FRACTION) -> None:
        super().__init__()
        self.face_fraction = check_face_fraction(face_fraction)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (net input (B, 3, 112, 112) normalised, scale (2,), offset (2,)) with
        crop_xy = net_xy * scale + offset for net_xy in [0, 1]."""
        x, scale, offset = face_window(crops, self.face_fraction)
        if x.shape[-1] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > INPUT_SIZE)
        return preprocess(x), scale, offset


class OfflineExpert(FacialExpert):
    """face-api's nets, real weights: face tokens = the expression net's 7x7x256 trunk map (or, with
    `face_tokens="landmark"`, the landmark net's), its 7-class expression reading, 68 landmarks, age/gender.

    Age is a regression in years; gender comes as probabilities; race from GEAR (5 classes).
    """

    name = "offline"
    expression_names = EXPRESSION_CLASSES
    input_size = INPUT_SIZE
    token_dim = 256
    grid = (7, 7)

    def __init__(self, face_fraction: float = DEFAULT_FACE_FRACTION, flip_average: bool = True,
                 weights_dir: str | Path | None = None, face_tokens: str = "expression") -> None:
        super().__init__()
        if face_tokens not in FACE_TOKEN_SOURCES:
            raise ValueError(f"face_tokens={face_tokens!r}: choose one of {FACE_TOKEN_SOURCES}")
        self.face_token_source = face_tokens
        self.prepare = FaceApiInput(face_fraction)
        self.flip_average = flip_average
        self.landmark_net = load_net(FaceLandmark68Net(), "face_landmark_68.safetensors", weights_dir)
        self.age_gender_net = load_net(AgeGenderNet(), "age_gender.safetensors", weights_dir)
        self.expression_net = load_net(FaceExpressionNet(), "face_expression.safetensors", weights_dir)
        self.race_net = GearClassifier(weights_dir=weights_dir)
        self.freeze()

    def default_token_centres(self) -> torch.Tensor:
        """Token positions in a square crop (see faceapi.token_centres), inside the face window."""
        return in_face_window(token_centres(), self.prepare.face_fraction)

    def _run(self, crops: torch.Tensor) -> ExpertOutput:
        x, scale, offset = self.prepare(crops)
        b = x.shape[0]
        if self.flip_average:
            x = torch.cat([x, x.flip(-1)])
        race = self.race_net(crops)  # GEAR frames the crop its own way
        landmark_map, landmarks = self.landmark_net(x)
        age, gender_logits = self.age_gender_net(x)
        gender = gender_logits.softmax(-1)
        expression_map = self.expression_net.trunk_map(x)
        expression = self.expression_net.head(expression_map).softmax(-1)
        fmap = expression_map if self.face_token_source == "expression" else landmark_map
        if self.flip_average:
            mirrored = landmarks[b:, IBUG_MIRROR]
            mirrored = torch.stack([1 - mirrored[..., 0], mirrored[..., 1]], dim=-1)
            landmarks = (landmarks[:b] + mirrored) / 2
            age = (age[:b] + age[b:]) / 2
            gender = (gender[:b] + gender[b:]) / 2
            expression = (expression[:b] + expression[b:]) / 2
            fmap = fmap[:b]  # tokens from the unmirrored pass: they must keep their place in the crop
        return ExpertOutput(
            face_tokens=fmap.flatten(2).transpose(1, 2),  # (B, 49, 256), row-major over the 7x7 map
            grid=self.grid,
            landmarks_68=landmarks * scale + offset,
            age_years=age,
            gender_probs=gender.flip(-1),  # face-api orders (male, female); we use (female, male)
            race_probs=race.race_probs,
            race_names=race.race_names,
            token_centres=token_centres().to(x.device) * scale + offset,
            age_scheme="years (face-api regression)",
            backend=self.name,
            expression_probs=expression,
            expression_names=self.expression_names,
        )


class OfflineLandmarkExpert(OfflineExpert):
    """The first offline design: the landmark net's map as the face tokens (an ablation arm)."""

    name = "offline-landmark"

    def __init__(self, face_fraction: float = DEFAULT_FACE_FRACTION, flip_average: bool = True,
                 weights_dir: str | Path | None = None) -> None:
        super().__init__(face_fraction, flip_average, weights_dir, face_tokens="landmark")


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
        frozen(self)

    def net_input(self, crops: torch.Tensor) -> torch.Tensor:
        return self.prepare(crops)[0]
