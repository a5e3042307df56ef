"""The facial-expert interface every stack shares: crops in, face tokens + landmarks + AGR out.

EMO-LLaMA reads three facial priors from its expert (paper Eq. 1 and Eq. 4): spatial face tokens X^F,
68 landmarks X^L and age/gender/race (AGR). Every backend (`tiny`, `offline`, `facexformer`)
subclasses `FacialExpert` and returns an `ExpertOutput`, so the model never knows which one it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emo_llama.expert.au import au_region_masks
from emo_llama.prompts import GENDERS, agr_from_expert
from emo_llama.utils import REPO_DATA

WEIGHTS_DIR = REPO_DATA / "weights"  # every converted net's safetensors ship here (data/weights/README.md)
LUMA_RGB = (0.299, 0.587, 0.114)  # ITU-R BT.601, what cv2.COLOR_BGR2GRAY uses (FER's and facex's gray input)

# The seven basic expressions in canonical class names (emo_llama.data.labels spells classes this way)
BASIC_EXPRESSIONS = ("neutral", "happiness", "sadness", "anger", "fear", "disgust", "surprise")


@dataclass
class ExpertOutput:
    """What a facial expert says about a batch of B face crops.

    Coordinates are fractions of the crop that was passed in: x (right) then y (down), 0..1.
    Token k of `face_tokens` is grid cell (k // grid[1], k % grid[1]) (row-major); its position in the
    crop is `token_centres[k]` (the receptive-field centre, which need not be the cell centre).
    """

    face_tokens: torch.Tensor  # (B, N_F, C_F) spatial features, N_F = grid[0] * grid[1]
    grid: tuple[int, int]  # (rows, cols) of the token map
    landmarks_68: torch.Tensor  # (B, 68, 2) iBUG-68 order, x,y in [0, 1] of the crop
    age_years: torch.Tensor  # (B,) see `age_scheme`
    gender_probs: torch.Tensor  # (B, 2) ordered GENDERS = ("female", "male")
    race_probs: torch.Tensor | None = None  # (B, K) or None when the backend predicts no race
    race_names: tuple[str, ...] | None = None
    token_centres: torch.Tensor | None = None  # (N_F, 2) x,y in [0, 1] of the crop
    age_scheme: str = "years (regression)"  # how to read `age_years`
    backend: str = ""
    extras: dict | None = None  # backend-specific outputs (FaceXFormer: head pose, attributes, visibility, ...)
    # The expert's own expression reading (an expert trained for expression, like the paper's FaceXFormer
    # role): (B, K) probabilities over `expression_names` (canonical class names), or None when it has none.
    expression_probs: torch.Tensor | None = None
    expression_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return self.face_tokens.shape[0]

    def to(self, device: str | torch.device) -> ExpertOutput:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[key] = value.to(device)
            elif isinstance(value, dict):
                moved[key] = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in value.items()}
        return ExpertOutput(**moved)

    def gender(self, i: int) -> tuple[str, float]:
        """The more likely gender of face i and its probability."""
        j = int(self.gender_probs[i].argmax())
        return GENDERS[j], float(self.gender_probs[i, j])

    def race(self, i: int) -> tuple[str, float] | None:
        if self.race_probs is None or self.race_names is None:
            return None
        j = int(self.race_probs[i].argmax())
        return self.race_names[j], float(self.race_probs[i, j])

    def agr_text(self, i: int) -> str:
        """The handcrafted AGR prompt for face i; race is left out when the backend has none."""
        race = None if self.race_probs is None else self.race_probs[i: i + 1]
        return agr_from_expert(self.age_years[i: i + 1], self.gender_probs[i: i + 1], race_probs=race,
                               race_names=self.race_names, confidence=True)

    def expression(self, i: int) -> tuple[str, float] | None:
        """The expert's most likely expression for face i and its probability (None: no expression head)."""
        if self.expression_probs is None or self.expression_names is None:
            return None
        j = int(self.expression_probs[i].argmax())
        return self.expression_names[j], float(self.expression_probs[i, j])

    def au_masks(self) -> torch.Tensor:
        """(B, R, N_F) bool: which face tokens each Action-Unit region covers (see `expert.au`)."""
        return au_region_masks(self.landmarks_68, self.grid, token_centres=self.token_centres)

    def landmarks_in_frame(self, crop_boxes) -> np.ndarray:
        """(B, 68, 2) landmarks in original-frame pixels, given each crop's xyxy box in that frame
        (`FaceResult.crop_box`)."""
        return crop_to_frame(self.landmarks_68.detach().cpu().numpy(), crop_boxes)


def crop_to_frame(points: np.ndarray, crop_boxes) -> np.ndarray:
    """Map (B, P, 2) points in [0, 1] crop coordinates to frame pixels using (B, 4) xyxy crop boxes."""
    boxes = np.asarray(crop_boxes, dtype=np.float64).reshape(-1, 4)
    points = np.asarray(points, dtype=np.float64)
    if len(boxes) != len(points):
        raise ValueError(f"{len(points)} sets of points but {len(boxes)} crop boxes")
    origin = boxes[:, None, :2]
    size = boxes[:, None, 2:] - boxes[:, None, :2]
    return points * size + origin


def crops_to_tensor(crops) -> torch.Tensor:
    """uint8 crops (B, H, W, 3) or a list of (H, W, 3) arrays -> float (B, 3, H, W) in [0, 1]."""
    if isinstance(crops, (list, tuple)) and len(crops) == 0:
        return torch.zeros(0, 3, 0, 0)  # an empty batch stays empty (forward returns empty outputs)
    arr = np.stack([np.asarray(c) for c in crops]) if isinstance(crops, (list, tuple)) else np.asarray(crops)
    if arr.ndim == 3:  # grayscale batch (B, H, W)
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"crops of shape {arr.shape}: expected (B, H, W, 3) uint8 images")
    tensor = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return tensor / 255.0 if arr.dtype == np.uint8 else tensor


MIN_SIDE = 8  # crops smaller than this are degenerate: no face can be read from them


def weights_path(weights_dir, file_name: str, what: str, recreate: str) -> Path:
    """`weights_dir` (default data/weights) / `file_name`, or FileNotFoundError saying how to re-create it
    (`recreate`: the conversion command)."""
    path = Path(weights_dir or WEIGHTS_DIR) / file_name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the converted {what} weights ship with the repository under "
                                f"data/weights/ (re-create them with `{recreate}`)")
    return path


def frozen(module: nn.Module) -> nn.Module:
    """No gradients, eval mode: every converted net here is used as it was trained."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def check_face_fraction(face_fraction: float) -> float:
    if not 0.1 <= face_fraction <= 1.0:
        raise ValueError(f"face_fraction={face_fraction}: expected a share of the crop side in [0.1, 1]")
    return face_fraction


def in_face_window(points: torch.Tensor, face_fraction: float) -> torch.Tensor:
    """Points given in [0, 1] of the face window (`face_window`) of a square crop, in [0, 1] of the crop."""
    return points * face_fraction + (1 - face_fraction) / 2


def face_window(crops: torch.Tensor, face_fraction: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The central `face_fraction` of each crop, the crop first zero-padded to a square (centred; the odd
    pixel last): (window (B, C, S, S), scale (2,), offset (2,)) with crop_xy = window_xy * scale + offset
    for window_xy in [0, 1]. The experts' nets were trained on tight detector boxes; FaceCropper adds a
    margin, which this cuts off again."""
    h, w = crops.shape[-2:]
    side = max(h, w)
    left, top = (side - w) // 2, (side - h) // 2
    if h != w:
        crops = F.pad(crops, (left, side - w - left, top, side - h - top))
    margin = int(round(side * (1 - face_fraction) / 2))
    window = side - 2 * margin
    scale = torch.tensor([window / w, window / h], device=crops.device)
    offset = torch.tensor([(margin - left) / w, (margin - top) / h], device=crops.device)
    return crops[..., margin:margin + window, margin:margin + window], scale, offset


def validate_crops(crops, device: torch.device | str = "cpu", min_side: int = MIN_SIDE) -> torch.Tensor:
    """Turn what callers pass into float (B, 3, H, W) in [0, 1] on `device`, or raise a clear error.

    Accepted: float (B, 3, H, W) in [0, 1]; uint8 tensors (divided by 255); (B, 1, H, W) grayscale
    (copied to R = G = B, as the nets were trained on RGB); uint8 numpy (B, H, W, 3) or a list of
    (H, W, 3) arrays. Rejected with ValueError: other ranks or channel counts, sides below `min_side`,
    NaN/inf pixels, floats outside [0, 1].
    """
    if not isinstance(crops, torch.Tensor):
        crops = crops_to_tensor(crops)
    if crops.ndim != 4:
        raise ValueError(f"crops of shape {tuple(crops.shape)}: expected (B, 3, H, W) float RGB in [0, 1]")
    if crops.shape[1] == 1:
        crops = crops.expand(-1, 3, -1, -1)
    if crops.shape[1] != 3:
        raise ValueError(f"crops have {crops.shape[1]} channels: expected 3 (RGB) or 1 (grayscale)")
    if crops.shape[0] and min(crops.shape[2:]) < min_side:
        raise ValueError(
            f"crops of size {tuple(crops.shape[2:])} are degenerate: need at least {min_side} x {min_side} pixels"
        )
    if crops.dtype == torch.uint8:
        crops = crops.float() / 255.0
    crops = crops.to(device, torch.float32)
    if crops.numel():
        finite = torch.isfinite(crops).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            raise ValueError(f"crops {bad} contain NaN or inf pixels")
        if float(crops.max()) > 1.0 + 1e-3 or float(crops.min()) < -1e-3:
            raise ValueError(
                f"crop values span [{float(crops.min()):.3g}, {float(crops.max()):.3g}]: expected [0, 1] "
                "(divide uint8 pixels by 255)"
            )
    return crops.clamp(0.0, 1.0)


class ExpressionNet(nn.Module):
    """A frozen classical expression classifier (face-api's, FER's): forward(crops) -> (B, 7)
    probabilities over `classes`; `predict(crops)` -> [(label, prob), ...]. Subclasses set `net`,
    `classes`, `flip_average` and turn crops into the net's input in `net_input`."""

    classes: tuple[str, ...]
    flip_average: bool

    def net_input(self, crops: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device
        crops = validate_crops(crops, device)  # same checks as the expert
        if crops.shape[0] == 0:
            return torch.zeros(0, len(self.classes), device=device)
        with torch.no_grad():
            x = self.net_input(crops)
            probs = self.net(x).softmax(-1)
            if self.flip_average:
                probs = (probs + self.net(x.flip(-1)).softmax(-1)) / 2
        return probs

    def predict(self, crops: torch.Tensor) -> list[tuple[str, float]]:
        probs = self(crops)
        return [(self.classes[int(p.argmax())], float(p.max())) for p in probs]


class FacialExpert(nn.Module):
    """Base class: validates crops, then `_run` does the backend's work. Frozen and in eval mode.

    Attributes every backend sets: `name`, `input_size` (side the crops are resized to), `token_dim`
    (C_F), `grid` ((rows, cols) of the token map).
    """

    name: str = "base"
    expression_names: tuple[str, ...] | None = None  # canonical names of the expression reading, if any
    input_size: int
    token_dim: int
    grid: tuple[int, int]
    min_side: int = MIN_SIDE

    def freeze(self) -> FacialExpert:
        return frozen(self)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def check_crops(self, crops: torch.Tensor) -> torch.Tensor:
        return validate_crops(crops, self.device, self.min_side)

    def forward(self, crops: torch.Tensor) -> ExpertOutput:
        crops = self.check_crops(crops)
        with torch.no_grad():  # frozen expert; no_grad (not inference_mode) so outputs can feed trainable layers
            if crops.shape[0] == 0:
                return self._empty()
            return self._run(crops)

    def _run(self, crops: torch.Tensor) -> ExpertOutput:
        raise NotImplementedError

    def _empty(self) -> ExpertOutput:
        """A batch of size 0 gives correctly shaped empty tensors, so callers need no special case."""
        z = torch.zeros
        return ExpertOutput(
            face_tokens=z(0, self.num_tokens, self.token_dim, device=self.device),
            grid=self.grid,
            landmarks_68=z(0, 68, 2, device=self.device),
            age_years=z(0, device=self.device),
            gender_probs=z(0, 2, device=self.device),
            token_centres=self.default_token_centres().to(self.device),
            backend=self.name,
            expression_probs=(None if self.expression_names is None
                              else z(0, len(self.expression_names), device=self.device)),
            expression_names=self.expression_names,
        )

    def default_token_centres(self) -> torch.Tensor:
        """Cell centres of an evenly divided grid, (N_F, 2) x,y, row-major."""
        rows, cols = self.grid
        ys = (torch.arange(rows, dtype=torch.float32) + 0.5) / rows
        xs = (torch.arange(cols, dtype=torch.float32) + 0.5) / cols
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)
