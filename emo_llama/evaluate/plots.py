"""What a run's evaluation looks like: the loss curve and confusion matrix it saves, and the real-face check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from emo_llama.data.plots import plot_confusion
from emo_llama.faces import FaceCropper
from emo_llama.faces.samples import RealFace, real_face_set
from emo_llama.faces.video import load_frames


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


def show_real_faces(result: dict, items: Sequence[RealFace] | None = None, cols: int = 5):
    """A figure: each check-set face with its label, the model's answer and the baseline's."""
    items = list(items) if items is not None else real_face_set()
    rows = (len(items) + cols - 1) // cols
    # Constrained layout gives each row's four-line titles their own space; tight_layout let them run over the
    # photos of the row above.
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 3.0 * rows), squeeze=False, layout="constrained")
    cropper = FaceCropper(device="cpu", size=160)
    for ax, item, row in zip(axes.flat, items, result["items"]):
        frames = load_frames(item.media)
        face = cropper.crop(frames[len(frames) // 2])[0]
        ax.imshow(face.crop if face.found else frames[len(frames) // 2])
        mark = "✓" if row["correct"] else "✗"
        ax.set_title(f"{item.name}\nperson: {item.label}\nmodel: {row['prediction']} {mark}\n"
                     f"face-api: {row['baseline']}", fontsize=8, color="black" if row["correct"] else "red")
    for ax in axes.flat:
        ax.axis("off")
    return fig


def samples_to_show(samples: Sequence, features: Mapping, n: int = 6,
                    unreadable: dict | None = None) -> tuple[list, list[str]]:
    """Up to `n` samples spread evenly over those whose features were read (notebook 05 shows their answers),
    and a line for each sample left out because its media could not be read: its path and why (from
    metrics.json's `unreadable` report, when given). An unreadable clip has no features to show.
    """
    readable = [s for s in samples if str(s.media) in features]
    why = {item["path"]: item["error"] for item in (unreadable or {}).get("items", [])}
    left_out = [f"{s.media}: {why.get(str(s.media), 'could not be read')}" for s in samples
                if str(s.media) not in features]
    return readable[:: max(1, len(readable) // n)][:n], left_out
