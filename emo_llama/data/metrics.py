"""Acc / UAR / WAR, confusion matrix and per-class report, with unparseable answers counted as wrong."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

UNPARSEABLE = "<unparseable>"  # stands for None (an answer the parser could not read) inside sklearn


def compute_metrics(y_true: Sequence[str], y_pred: Sequence[str | None], classes: Sequence[str],
                    raw_answers: Sequence[str] | None = None, max_examples: int = 5) -> dict:
    """Scores for closed-set FER, the way the paper reports them.

    acc = war = correct / all samples (WAR is the video papers' name for the same number);
    uar = mean recall over the classes that occur in y_true (sklearn's balanced_accuracy_score);
    wf1 = F1 per class weighted by its support (MER2023's and MELD's metric).
    A prediction of None (an answer the parser could not read) is wrong for its true class, is
    kept out of `confusion` (which is over `classes` only) and is counted in `unparseable`
    (with a few raw answers in `unparseable_examples` when `raw_answers` is given).
    """
    classes = list(classes)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty set of predictions")
    index = set(classes)
    unknown_true = sorted({t for t in y_true if t not in index})
    if unknown_true:
        raise ValueError(f"y_true contains labels that are not in classes {classes}: {unknown_true}")
    unknown_pred = sorted({p for p in y_pred if p is not None and p not in index})
    if unknown_pred:
        raise ValueError(f"y_pred contains labels that are not in classes (use None for unparseable): "
                         f"{unknown_pred}")

    k = len(classes)
    predicted_or_not = [UNPARSEABLE if p is None else p for p in y_pred]
    # The extra last column counts the unparseable answers of each true class (sklearn sees them as a class).
    full = confusion_matrix(list(y_true), predicted_or_not, labels=[*classes, UNPARSEABLE])
    confusion, unparseable_per_class = full[:k, :k].astype(np.int64), full[:k, k].astype(np.int64)
    precision, recall, _, support = precision_recall_fscore_support(
        list(y_true), predicted_or_not, labels=classes, zero_division=np.nan)
    # MER2023's metric: F1 per class weighted by support (an unparseable answer is a miss of its class)
    _, _, weighted_f1, _ = precision_recall_fscore_support(
        list(y_true), predicted_or_not, labels=classes, average="weighted", zero_division=0.0)
    present = support > 0
    acc = float(accuracy_score(list(y_true), predicted_or_not))

    bad = [i for i, p in enumerate(y_pred) if p is None]
    examples = [raw_answers[i] for i in bad[:max_examples]] if raw_answers is not None else []
    return {
        "acc": acc,
        "war": acc,
        "uar": float(np.mean(recall[present])),
        "wf1": float(weighted_f1),
        "n": len(y_true),
        "unparseable": len(bad),
        "unparseable_examples": examples,
        "unparseable_per_class": unparseable_per_class,
        "classes": classes,
        "confusion": confusion,
        "per_class_recall": {c: float(r) for c, r in zip(classes, recall)},
        "per_class_precision": {c: float(p) for c, p in zip(classes, precision)},
        "support": {c: int(s) for c, s in zip(classes, support)},
    }


def format_report(metrics: dict, digits: int = 3) -> str:
    """A plain-text per-class table plus the headline numbers (for notebooks and logs)."""
    lines = [f"{'class':>15} {'recall':>8} {'precision':>9} {'support':>8}"]
    for c in metrics["classes"]:
        r, p = metrics["per_class_recall"][c], metrics["per_class_precision"][c]
        lines.append(f"{c:>15} {r:>8.{digits}f} {p:>9.{digits}f} {metrics['support'][c]:>8d}")
    lines.append(f"acc/WAR {metrics['acc']:.{digits}f}  UAR {metrics['uar']:.{digits}f}  "
                 f"weighted F1 {metrics['wf1']:.{digits}f}  "
                 f"n {metrics['n']}  unparseable {metrics['unparseable']}")
    return "\n".join(lines)
