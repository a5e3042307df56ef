"""Figures of notebook 01: detections (box, 5 landmarks, probability) and strips of images. Each subpackage keeps
its notebook's figures in its own `plots.py`; the confusion matrix is drawn once, in `emo_llama.data.plots`."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle


def draw_face(ax, result, color: str = "lime", label: bool = True) -> None:
    """Box, 5 MTCNN landmarks and probability of one FaceResult (and its `others`)."""
    for face in [result, *result.others]:
        if not face.found:
            continue
        x1, y1, x2, y2 = face.box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=color, lw=2))
        ax.scatter(face.landmarks_5[:, 0], face.landmarks_5[:, 1], s=12, c="red")
        if label:
            ax.text(x1, y1 - 4, f"p={face.prob:.3f}", color=color, fontsize=8, va="bottom")


def show_detections(frames: Sequence[np.ndarray], results: Sequence, titles: Sequence[str] | None = None,
                    width: float = 4.0):
    fig, axes = plt.subplots(1, len(frames), figsize=(width * len(frames), width), squeeze=False)
    for i, (ax, frame, result) in enumerate(zip(axes[0], frames, results)):
        ax.imshow(frame, cmap="gray")
        draw_face(ax, result)
        ax.set_title(titles[i] if titles else ("face" if result.found else "no face"), fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def image_strip(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, width: float = 2.0,
                cols: int | None = None):
    """A row (or grid, with `cols`) of images with optional titles."""
    cols = cols or len(images)
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, width * rows + 0.3 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
            if titles:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig
