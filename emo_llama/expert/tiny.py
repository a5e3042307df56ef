"""The `tiny` facial expert: RANDOM WEIGHTS, UNIT TESTS ONLY.

Same interface and output shapes as the real experts (4 x 4 grid of 32-d tokens, 68 landmarks,
age, gender, a 7-class expression reading) so the model's code path can be tested in milliseconds. Its numbers mean nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emo_llama.expert.base import BASIC_EXPRESSIONS, ExpertOutput, FacialExpert


class TinyExpert(FacialExpert):
    """Random weights, unit tests only: three strided convs (32 -> 4 x 4 x 32) and linear heads.

    Deterministic: the weights come from `seed` alone, whatever the global RNG state.
    """

    name = "tiny"
    expression_names = BASIC_EXPRESSIONS
    input_size = 32
    grid = (4, 4)

    def __init__(self, token_dim: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.token_dim = token_dim
        self.convs = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, token_dim, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.landmark_head = nn.Linear(token_dim, 136)
        self.age_head = nn.Linear(token_dim, 1)
        self.gender_head = nn.Linear(token_dim, 2)
        self.expression_head = nn.Linear(token_dim, len(BASIC_EXPRESSIONS))  # last: earlier draws stay as they were
        # Re-draw every parameter from a private generator: same seed -> same expert, always.
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(1, p.shape[-1]) ** 0.5))
        self.freeze()

    def _run(self, crops: torch.Tensor) -> ExpertOutput:
        x = F.interpolate(crops, size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False, antialias=True)
        fmap = self.convs(x * 2 - 1)  # (B, C, 4, 4)
        pooled = fmap.mean(dim=(2, 3))
        # Landmarks: a fixed mean face (so AU regions stay sensible) plus a small random offset.
        landmarks = mean_face_68().to(x) + 0.02 * torch.tanh(self.landmark_head(pooled)).view(-1, 68, 2)
        return ExpertOutput(
            face_tokens=fmap.flatten(2).transpose(1, 2),
            grid=self.grid,
            landmarks_68=landmarks.clamp(0, 1),
            age_years=20 + 40 * torch.sigmoid(self.age_head(pooled).squeeze(-1)),
            gender_probs=self.gender_head(pooled).softmax(-1),
            token_centres=self.default_token_centres().to(x.device),
            age_scheme="years (random, tiny expert)",
            backend=self.name,
            expression_probs=self.expression_head(pooled).softmax(-1),
            expression_names=self.expression_names,
        )


def mean_face_68() -> torch.Tensor:
    """A rough frontal iBUG-68 face in [0, 1] crop coordinates (face filling the central two thirds)."""
    jaw = [(0.19 + 0.62 * i / 16, 0.42 + 0.33 * (1 - ((i - 8) / 8) ** 2)) for i in range(17)]
    brow_r = [(0.26 + 0.045 * i, 0.37 - 0.02 * (1 - abs(i - 2) / 2)) for i in range(5)]
    brow_l = [(0.56 + 0.045 * i, 0.37 - 0.02 * (1 - abs(i - 2) / 2)) for i in range(5)]
    nose = [(0.5, 0.42 + 0.035 * i) for i in range(4)] + [(0.45 + 0.025 * i, 0.59) for i in range(5)]

    def eye(cx: float) -> list[tuple[float, float]]:
        return [(cx - 0.06, 0.45), (cx - 0.025, 0.43), (cx + 0.025, 0.43), (cx + 0.06, 0.45),
                (cx + 0.025, 0.465), (cx - 0.025, 0.465)]

    outer = [(0.40, 0.70), (0.43, 0.68), (0.47, 0.67), (0.5, 0.675), (0.53, 0.67), (0.57, 0.68), (0.60, 0.70),
             (0.57, 0.73), (0.53, 0.745), (0.5, 0.75), (0.47, 0.745), (0.43, 0.73)]
    inner = [(0.42, 0.70), (0.47, 0.695), (0.5, 0.697), (0.53, 0.695), (0.58, 0.70), (0.53, 0.71), (0.5, 0.712),
             (0.47, 0.71)]
    points = jaw + brow_r + brow_l + nose + eye(0.36) + eye(0.64) + outer + inner
    return torch.tensor(points, dtype=torch.float32)
