"""Closed-set FER scoring of a model's free-text answers: generate -> parse_answer -> compute_metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from emo_llama.data import compute_metrics, parse_answer
from emo_llama.model.answers import unreadable
from emo_llama.progress import progress as progress_bar


def evaluate(model, media: Sequence, labels: Sequence[str], classes: Sequence[str], question: str | Sequence[str],
             batch_size: int = 8, max_new_tokens: int = 12, progress: bool = True, desc: str = "eval",
             paths: Sequence | None = None, errors: dict[str, str] | None = None) -> dict:
    """Greedy answers to `question` for every media; returns the data issue's metrics plus the raw answers.

    A `None` in `media` is a sample whose file could not be read (`errors` maps its path to why): it
    gets no answer, is scored as wrong (unparseable) and is listed under `unreadable`. Samples where
    MTCNN found no face in any frame are answered (a dataset's samples are faces) and listed under `no_face`.
    """
    model.eval()
    questions = [question] * len(media) if isinstance(question, str) else list(question)
    paths = [None] * len(media) if paths is None else [None if p is None else str(p) for p in paths]
    errors = errors or {}
    answers: list = [unreadable(p, errors.get(str(p), "could not be read")) if m is None else None
                     for m, p in zip(media, paths)]
    readable = [i for i, m in enumerate(media) if m is not None]
    for start in progress_bar(range(0, len(readable), batch_size), desc=desc, disable=not progress):
        chunk = readable[start: start + batch_size]
        out = model.generate([media[i] for i in chunk], [questions[i] for i in chunk], max_new_tokens=max_new_tokens,
                             require_face=False, paths=[paths[i] for i in chunk])
        for i, a in zip(chunk, out):
            answers[i] = a
    predictions = [parse_answer(a, classes) if getattr(a, "answered", True) else None for a in answers]
    texts = [str(a) for a in answers]
    metrics = compute_metrics(list(labels), predictions, classes, raw_answers=texts)
    metrics["answers"], metrics["predictions"] = texts, predictions
    metrics["unreadable"] = [{"path": a.path, "error": a.error} for a in answers if a.error is not None]
    metrics["no_face"] = [{"path": a.path, "frames": a.frames} for a in answers
                          if a.error is None and not getattr(a, "face_found", True)]
    metrics["frames_without_face"] = sum(getattr(a, "frames_without_face", 0) for a in answers)
    return metrics


def headline(metrics: dict) -> dict:
    """The four numbers metrics.json keeps per evaluation."""
    return {k: (int(metrics[k]) if k == "unparseable" else round(float(metrics[k]), 4))
            for k in ("acc", "uar", "war", "unparseable")}


def to_jsonable(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, (np.integer, np.floating)):
            out[k] = v.item()
        else:
            out[k] = v
    return out


def unreadable_report(train_samples, test_samples, errors: dict[str, str]) -> dict:
    """metrics.json's record of media that could not be read: how many, and each one's path and error."""
    items = [{"path": str(s.media), "split": split, "error": errors[str(s.media)]}
             for split, samples in (("train", train_samples), ("test", test_samples)) for s in samples
             if str(s.media) in errors]
    return {"count": len(items), "items": items}


def no_face_report(bank: dict, train_samples, trained: dict, max_listed: int = 50) -> dict:
    """Samples in which MTCNN found no face in any frame (their frames' centres were used), per split."""
    train = sum(not bool(bank[str(s.media)].face_found.any()) for s in train_samples)
    test = [d["path"] for d in trained["no_face"]]
    return {"train": train, "test": len(test), "test_paths": test[:max_listed],
            "test_frames_without_face": trained["frames_without_face"]}


def plot_confusion(metrics: dict, title: str = "", ax=None):
    confusion = np.asarray(metrics["confusion"])
    classes = metrics["classes"]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
    rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                    color="white" if rows[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"UAR {metrics['uar']:.2f}  acc {metrics['acc']:.2f}")
    return ax


def save_plots(out: str | Path, losses: Sequence[float], trained: dict) -> None:
    """loss.png (training loss per step) and confusion.png (the trained model's test confusion matrix).

    The figures are `matplotlib.figure.Figure` objects outside pyplot: saving them neither switches the
    backend nor leaves figures behind, so a notebook that calls this keeps showing its own figures inline.
    """
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    ax.plot(range(1, len(losses) + 1), losses)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (answer tokens)")
    fig.tight_layout()
    fig.savefig(Path(out) / "loss.png", dpi=100)
    n = len(trained["classes"])
    fig = Figure(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    plot_confusion(trained, ax=fig.subplots())
    fig.tight_layout()
    fig.savefig(Path(out) / "confusion.png", dpi=100)
