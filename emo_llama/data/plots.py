"""Figures for notebook 04: sample grids, video strips, class balance before/after resampling, confusion."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from emo_llama.data.datasets.base import Sample
from emo_llama.faces.video import load_frames


def sample_grid(samples: Sequence[Sample], cols: int = 7, caption_width: int = 26, size: float = 2.1):
    """Images (or a video's middle frame) with label and identity above, caption below each."""
    rows = max(1, int(np.ceil(len(samples) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * 1.75), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s in zip(axes.flat, samples):
        frames = load_frames(s.media)
        ax.imshow(frames[len(frames) // 2])
        ax.set_title(s.label + (f" · {s.identity}" if s.identity else ""), fontsize=8)
        if s.caption:
            ax.text(0.0, -0.03, textwrap.fill(s.caption, caption_width), fontsize=6.5, va="top",
                    transform=ax.transAxes)
    fig.tight_layout(h_pad=3.0)
    return fig


def video_strips(samples: Sequence[Sample], max_frames: int = 8, size: float = 1.6):
    """One row per video: its frames at 1 FPS, label and caption on the left."""
    clips = [load_frames(s.media, fps=1.0, max_frames=max_frames) for s in samples]
    cols = max(len(c) for c in clips)
    fig, axes = plt.subplots(len(clips), cols, figsize=(cols * size, len(clips) * size * 1.1), squeeze=False)
    for r, (s, frames) in enumerate(zip(samples, clips)):
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(frames):
                ax.imshow(frames[c])
                ax.set_title(f"t={c}s", fontsize=7)
        axes[r, 0].text(-0.08, 0.5, textwrap.fill(f"{s.label}: {s.caption or ''}", 28), fontsize=7,
                        transform=axes[r, 0].transAxes, ha="right", va="center")
    fig.tight_layout()
    return fig


def class_balance(before: Mapping[str, int], after: Mapping[str, int], title: str = ""):
    """Bar charts of class counts as stored and as drawn by the weighted sampler."""
    classes = list(before)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
    for ax, counts, name in ((axes[0], before, "as stored"), (axes[1], after, "drawn by WeightedRandomSampler")):
        ax.bar(classes, [counts[c] for c in classes], color="tab:blue" if counts is before else "tab:green")
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    axes[0].set_ylabel("samples per epoch")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_confusion(metrics: Mapping, title: str = "", ax=None):
    """Row-normalised confusion matrix (recall on the diagonal; a class's unparseable answers count in its row's
    total) with the counts in the cells. Draws on `ax` when given (e.g. a figure saved outside pyplot)."""
    cm = np.asarray(metrics["confusion"], dtype=float)
    unparseable = np.asarray(metrics.get("unparseable_per_class", np.zeros(len(cm))), dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True) + unparseable[:, None], 1)
    classes = metrics["classes"]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"UAR {metrics['uar']:.2f}  acc {metrics['acc']:.2f}")
    ax.figure.tight_layout()
    return ax
