"""Closed-set FER scoring of a model's free-text answers: generate -> parse_answer -> compute_metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


def evaluate(model, media: Sequence, labels: Sequence[str], classes: Sequence[str], question: str | Sequence[str],
             batch_size: int = 8, max_new_tokens: int = 12, progress: bool = True, desc: str = "eval") -> dict:
    """Greedy answers to `question` for every media; returns the data issue's metrics plus the raw answers."""
    from emo_llama.data import compute_metrics, parse_answer

    model.eval()
    questions = [question] * len(media) if isinstance(question, str) else list(question)
    answers: list[str] = []
    for start in tqdm(range(0, len(media), batch_size), desc=desc, disable=not progress):
        chunk = list(media[start: start + batch_size])
        answers += model.generate(chunk, questions[start: start + batch_size], max_new_tokens=max_new_tokens)
    predictions = [parse_answer(a, classes) for a in answers]
    metrics = compute_metrics(list(labels), predictions, classes, raw_answers=answers)
    metrics["answers"], metrics["predictions"] = answers, predictions
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


def plot_confusion(metrics: dict, title: str = "", ax=None):
    import matplotlib.pyplot as plt

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
    """loss.png (training loss per step) and confusion.png (the trained model's test confusion matrix)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(1, len(losses) + 1), losses)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (answer tokens)")
    fig.tight_layout()
    fig.savefig(Path(out) / "loss.png", dpi=100)
    plt.close(fig)
    ax = plot_confusion(trained)
    ax.figure.tight_layout()
    ax.figure.savefig(Path(out) / "confusion.png", dpi=100)
    plt.close(ax.figure)
