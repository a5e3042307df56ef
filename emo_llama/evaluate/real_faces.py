"""Does it work on real faces? The trained model and a classical classifier on the real-face check set.

`emo_llama.faces.samples` holds unwarped real photos, labelled by what a person sees (its docstring
has the labelling rule and the set's history: one item was dropped after models had answered it). A
model trained on mini's synthesised expressions only earns trust if it reads these too, so every
training run ends here (`train.run` writes the result into metrics.json) and notebook 05 shows
the answers next to the pictures. face-api's expression net, a classifier trained on real faces that
nobody here trained, answers the same items as the classical baseline. It is also the `offline` stack's
facial expert (its map is the face tokens, its reading the expression token), so the baseline column is the
expert's own reading: what the model adds to, or loses from, its expert.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from emo_llama.data import parse_answer
from emo_llama.data.labels import canonical_label
from emo_llama.expert import get_expression_net
from emo_llama.faces import FaceCropper
from emo_llama.faces.samples import RealFace, real_face_set


def _baseline_predictions(items: Sequence[RealFace], classes: Sequence[str]) -> list[str | None]:
    """face-api's expression net on the MTCNN crop (a video: its frames' mean probabilities), computed once
    per process for a given item set and class list (`make ablations` checks 21 models on the same set)."""
    return list(_baseline_cached(tuple(items), tuple(classes)))


@functools.cache
def _baseline_cached(items: tuple[RealFace, ...], classes: tuple[str, ...]) -> tuple[str | None, ...]:
    net = get_expression_net(device="cpu")
    names = [canonical_label(c) for c in net.classes]
    cropper = FaceCropper(device="cpu")
    out: list[str | None] = []
    for item in items:
        crops = [r.crop for r in cropper.crop(item.media) if r.found]
        if not crops:
            out.append(None)
            continue
        with torch.no_grad():
            probs = net(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255).mean(0)
        ranked = [names[i] for i in probs.argsort(descending=True).tolist()]
        out.append(next((n for n in ranked if n in classes), None))
    return tuple(out)


def real_face_check(model, extractor, classes: Sequence[str], question_for, max_new_tokens: int = 12,
                    items: Sequence[RealFace] | None = None) -> dict:
    """Answers of `model` on the check set, parsed to classes, plus the baseline's.

    question_for(kind) -> the question asked ("image"/"video"), the same one training evaluates with.
    Returns {"items": [...], "correct": n, "total": n, "baseline_correct": n}.
    """
    items = list(items) if items is not None else real_face_set()
    feats = [extractor(item.media) for item in items]
    questions = [question_for("video" if f.num_frames > 1 else "image") for f in feats]
    answers = []
    for f, q in zip(feats, questions):  # one at a time: a handful of items, and no padding effects
        answers += model.generate([f], [q], max_new_tokens=max_new_tokens)
    answers = [a.text if hasattr(a, "text") else a for a in answers]
    baseline = _baseline_predictions(items, classes)
    rows = []
    for item, answer, base in zip(items, answers, baseline):
        pred = parse_answer(answer, classes)
        rows.append({"name": item.name, "label": item.label, "source": item.source, "answer": answer,
                     "prediction": pred, "correct": pred == item.label, "baseline": base,
                     "baseline_correct": base == item.label})
    return {"items": rows, "correct": sum(r["correct"] for r in rows), "total": len(rows),
            "baseline_correct": sum(r["baseline_correct"] for r in rows)}
