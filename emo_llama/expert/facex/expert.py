"""The `facex` expert: facex's real-trained expression net reads the face; face-api gives landmarks and AGR.

A candidate for the offline stack's expert (`get_expert("facex")`): its 6 x 6 x 1280 map is the face
tokens and its 7-class softmax the expression reading. Measured against face-api's expression net (the
`offline` expert) in data/weights/README.md and the README's expert table: it reads fewer of the real
check photos and reads mini's renders mostly as sadness, so it is an option, not the default.

Weights: `data/weights/facex_expression.safetensors`, converted from the MIT PyPI package facex 1.1.0 by
`scripts/convert_facex.py` (8-bit kernels dequantised here, exactly as the TFLite file stores them).

How a crop is read (`FacexInput`):
1. a non-square crop is zero-padded to a square, centred;
2. the central `face_fraction` of it is cut out: facex was trained on OpenCV Haar-cascade boxes, which
   are about as tight as the MTCNN box (the central 1 / 1.5 of FaceCropper's crop with margin 0.5);
3. gray (ITU-R BT.601 luma, what facex's cv2.COLOR_BGR2GRAY gives) copied to three channels, resized to
   200 x 200 (bilinear, antialiased when shrinking, like scikit-image's `resize`), values in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from emo_llama.expert.base import (
    LUMA_RGB,
    ExpertOutput,
    ExpressionNet,
    FacialExpert,
    check_face_fraction,
    face_window,
    frozen,
    in_face_window,
    weights_path,
)
from emo_llama.expert.faceapi.expert import OfflineExpert
from emo_llama.expert.facex.net import FACEX_CLASSES, FEATURE_DIM, GRID, INPUT_SIZE, FacexNet, token_centres

WEIGHTS_FILE = "facex_expression.safetensors"
LICENSE_FILE = "LICENSE-facex.txt"
REFERENCE_FILE = "facex_reference.json"
DEFAULT_FACEX_FACE_FRACTION = 1 / 1.5


def dequantised(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn `<name>.q8` + `.scale` + `.zero_point` triples into float32 `<name>` (value = (q - zp) * scale)."""
    out = {k: v for k, v in state.items() if not k.endswith((".q8", ".scale", ".zero_point"))}
    for key in [k for k in state if k.endswith(".q8")]:
        name = key[: -len(".q8")]
        q = state[key].to(torch.int32)
        out[name] = ((q - state[name + ".zero_point"]).float() * state[name + ".scale"]).contiguous()
    return out


def load_facex_net(weights_dir: str | Path | None = None) -> FacexNet:
    path = weights_path(weights_dir, WEIGHTS_FILE, "facex", "python scripts/convert_facex.py <facex wheel>")
    net = FacexNet()
    net.load_state_dict(dequantised(load_file(str(path))), strict=True)
    return net.eval()


class FacexInput(nn.Module):
    """crop (B, 3, H, W) RGB in [0, 1] -> facex's input (B, 3, 200, 200), and the affine map back to the crop."""

    def __init__(self, face_fraction: float = DEFAULT_FACEX_FACE_FRACTION) -> None:
        super().__init__()
        self.face_fraction = check_face_fraction(face_fraction)
        self.register_buffer("luma", torch.tensor(LUMA_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(net input, scale (2,), offset (2,)) with crop_xy = net_xy * scale + offset for net_xy in [0, 1]."""
        x, scale, offset = face_window(crops, self.face_fraction)
        gray = (x * self.luma).sum(1, keepdim=True)
        if gray.shape[-1] != INPUT_SIZE:
            gray = F.interpolate(gray, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                                 antialias=gray.shape[-1] > INPUT_SIZE)
        return gray.clamp(0, 1).expand(-1, 3, -1, -1), scale, offset


class FacexExpressionClassifier(ExpressionNet):
    """facex's 7-class expression net alone: forward(crops) -> (B, 7) probabilities over `classes`."""

    classes = FACEX_CLASSES

    def __init__(self, face_fraction: float = DEFAULT_FACEX_FACE_FRACTION, flip_average: bool = True,
                 weights_dir: str | Path | None = None) -> None:
        super().__init__()
        self.prepare = FacexInput(face_fraction)
        self.flip_average = flip_average
        self.net = _LogitsOnly(load_facex_net(weights_dir))
        frozen(self)

    def net_input(self, crops: torch.Tensor) -> torch.Tensor:
        return self.prepare(crops)[0]


class _LogitsOnly(nn.Module):
    """ExpressionNet wants `net(x) -> logits`; FacexNet also returns its map."""

    def __init__(self, net: FacexNet) -> None:
        super().__init__()
        self.facex = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.facex(x)[1]


class FacexExpert(FacialExpert):
    """facex's map (36 tokens of 1280) and reading; landmarks and age/gender from face-api's nets."""

    name = "facex"
    expression_names = FACEX_CLASSES
    input_size = INPUT_SIZE
    token_dim = FEATURE_DIM
    grid = GRID

    def __init__(self, face_fraction: float = DEFAULT_FACEX_FACE_FRACTION, flip_average: bool = True,
                 weights_dir: str | Path | None = None) -> None:
        super().__init__()
        self.prepare = FacexInput(face_fraction)
        self.flip_average = flip_average
        self.net = load_facex_net(weights_dir)
        self.geometry = OfflineExpert(flip_average=flip_average, weights_dir=weights_dir, face_tokens="landmark")
        self.freeze()

    def default_token_centres(self) -> torch.Tensor:
        return in_face_window(token_centres(), self.prepare.face_fraction)

    def _run(self, crops: torch.Tensor) -> ExpertOutput:
        x, scale, offset = self.prepare(crops)
        fmap, logits = self.net(x)
        probs = logits.softmax(-1)
        if self.flip_average:
            probs = (probs + self.net(x.flip(-1))[1].softmax(-1)) / 2
        face = self.geometry._run(crops)
        face.face_tokens = fmap.flatten(2).transpose(1, 2)  # (B, 36, 1280), row-major over the 6x6 map
        face.grid = self.grid
        face.token_centres = token_centres().to(x.device) * scale + offset
        face.expression_probs, face.expression_names = probs, self.expression_names
        face.backend = self.name
        return face
