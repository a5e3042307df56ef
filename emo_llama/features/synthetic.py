"""Synthetic frozen features for tests and smoke runs: no media, no encoders, deterministic.

Each class gets its own landmark displacement and visual-token offset, so a model can learn the task
(used by the `tiny` training tests); region masks come from a fixed grid split.
"""

from __future__ import annotations

import torch

from emo_llama.features.extractor import DISPLAY_SIZE, MediaFeatures


def synthetic_features(label_index: int, seed: int, frames: int = 1, vision_tokens: int = 16,
                       vision_dim: int = 32, face_grid: tuple[int, int] = (4, 4), face_dim: int = 16,
                       regions: int = 5, num_classes: int = 3) -> MediaFeatures:
    g = torch.Generator().manual_seed(seed)
    n_face = face_grid[0] * face_grid[1]
    base = torch.rand(68, 2, generator=g) * 0.6 + 0.2
    landmarks = base.expand(frames, 68, 2).clone()
    landmarks[:, label_index::num_classes, 1] += 0.1  # a class-specific "expression"
    vision = torch.randn(frames, vision_tokens, vision_dim, generator=g)
    vision[..., label_index] += 2.0
    masks = torch.zeros(frames, regions, n_face, dtype=torch.bool)
    for r in range(regions):
        masks[:, r, r * 2: r * 2 + 3] = True
    return MediaFeatures(
        vision_tokens=vision, face_tokens=torch.randn(frames, n_face, face_dim, generator=g),
        landmarks_68=landmarks, au_masks=masks, face_found=torch.ones(frames, dtype=torch.bool),
        age_years=torch.full((frames,), 30.0), gender_probs=torch.tensor([[0.3, 0.7]]).expand(frames, 2).clone(),
        crops=torch.zeros(frames, DISPLAY_SIZE, DISPLAY_SIZE, 3, dtype=torch.uint8),
        expression_probs=torch.full((frames, 7), 0.1).index_fill_(1, torch.tensor([label_index % 7]), 0.4),
        agr="According to the specific question, you are allowed to use or partially use the following "
            "information: age: about 30 years; gender: male.",
    )
