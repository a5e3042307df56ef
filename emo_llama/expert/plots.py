"""Pictures of the facial priors (notebook 02): landmarks, AU regions, the face-token map."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from emo_llama.expert.au import AU_REGIONS, au_region_polygons
from emo_llama.expert.base import ExpertOutput
from emo_llama.expert.landmarks import CONTOURS, FIVE_POINT_NAMES, five_points
from emo_llama.utils import figure_with_controls

AU_COLOURS = plt.get_cmap("tab20")


def draw_landmarks(ax, landmarks_68: np.ndarray, size: int, colour: str = "lime") -> None:
    """68 points (in [0, 1] crop units) as dots joined along the face contours."""
    pts = np.asarray(landmarks_68) * size
    for idx, closed in CONTOURS:
        run = list(idx) + ([idx[0]] if closed else [])
        ax.plot(pts[run, 0], pts[run, 1], "-", color=colour, lw=0.8, alpha=0.8)
    ax.scatter(pts[:, 0], pts[:, 1], s=5, c=colour, zorder=3)


def draw_five_points(ax, landmarks_68: np.ndarray, landmarks_5: np.ndarray | None, size: int) -> None:
    """The 68-point model's five points (cyan x) next to MTCNN's (red o), to see them agree."""
    ours = five_points(np.asarray(landmarks_68)[None])[0] * size
    ax.scatter(ours[:, 0], ours[:, 1], marker="x", s=30, c="cyan", zorder=4, label="68-pt net: 5 points")
    if landmarks_5 is not None:
        ref = np.asarray(landmarks_5) * size
        ax.scatter(ref[:, 0], ref[:, 1], marker="o", s=30, facecolors="none", edgecolors="red", zorder=4,
                   label="MTCNN 5 points")


def draw_au_regions(ax, landmarks_68: np.ndarray, size: int, names: tuple[str, ...] = AU_REGIONS) -> None:
    """Each AU region's rectangles (face-aligned), labelled."""
    regions = au_region_polygons(torch.as_tensor(np.asarray(landmarks_68), dtype=torch.float32)[None])[0]
    for r, name in enumerate(AU_REGIONS):
        if name not in names:
            continue
        colour = AU_COLOURS(r % 20)
        for corners in regions[name]:
            poly = np.vstack([corners, corners[:1]]) * size
            ax.plot(poly[:, 0], poly[:, 1], "-", color=colour, lw=1.2)
        first = regions[name][0].mean(0) * size
        ax.text(first[0], first[1], name, color=colour, fontsize=6, ha="center", va="center",
                bbox=dict(facecolor="black", alpha=0.4, pad=0.5, lw=0))


def token_pca_rgb(face_tokens: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """(B, N_F, C) tokens -> (B, rows, cols, 3) colours: the first three principal components of all
    tokens of the batch together (so colours mean the same across faces), stretched to [0, 1]."""
    tokens = face_tokens.detach().cpu().double()
    b, n, c = tokens.shape
    flat = tokens.reshape(-1, c)
    # Standardise channels first: a few strongly active channels would otherwise paint one colour.
    flat = (flat - flat.mean(0)) / flat.std(0).clamp(min=1e-6)
    # SVD of a few hundred rows: exact and deterministic; fix each component's sign for stable colours.
    _, _, v = torch.linalg.svd(flat, full_matrices=False)
    comps = flat @ v[:3].T
    comps = comps * torch.sign(comps.sum(0) + 1e-12)
    lo, hi = torch.quantile(comps, 0.05, dim=0), torch.quantile(comps, 0.95, dim=0)
    rgb = ((comps - lo) / (hi - lo).clamp(min=1e-12)).clamp(0, 1)
    return rgb.reshape(b, grid[0], grid[1], 3).numpy()


def token_extent(token_centres: torch.Tensor, grid: tuple[int, int], size: int) -> list[float]:
    """imshow extent (left, right, bottom, top) in crop pixels covering the token cells."""
    c = token_centres.detach().cpu().numpy() * size
    rows, cols = grid
    dx = (c[:, 0].max() - c[:, 0].min()) / max(cols - 1, 1)
    dy = (c[:, 1].max() - c[:, 1].min()) / max(rows - 1, 1)
    return [c[:, 0].min() - dx / 2, c[:, 0].max() + dx / 2, c[:, 1].max() + dy / 2, c[:, 1].min() - dy / 2]


def plot_face_priors(crop: np.ndarray, out: ExpertOutput, i: int, pca_rgb: np.ndarray | None = None,
                     landmarks_5: np.ndarray | None = None, expression: str | None = None,
                     title: str = "", au_for_tokens: str = "AU12"):
    """One face, four panels: crop + landmarks, AU regions, face-token PCA map, one AU's tokens."""
    size = crop.shape[0]
    lm = out.landmarks_68[i].detach().cpu().numpy()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax in axes:
        ax.imshow(crop)
        ax.set_axis_off()
    draw_landmarks(axes[0], lm, size)
    draw_five_points(axes[0], lm, landmarks_5, size)
    axes[0].set_title("68 landmarks (+ MTCNN 5)", fontsize=9)
    draw_au_regions(axes[1], lm, size)
    axes[1].set_title("Action-Unit regions", fontsize=9)
    extent = token_extent(out.token_centres, out.grid, size)
    if pca_rgb is None:
        pca_rgb = token_pca_rgb(out.face_tokens[i:i + 1], out.grid)[0]
    axes[2].imshow(pca_rgb, extent=extent, alpha=0.65, interpolation="bilinear")
    axes[2].set_xlim(0, size)
    axes[2].set_ylim(size, 0)
    axes[2].set_title(f"face tokens {out.grid[0]}x{out.grid[1]}x{out.face_tokens.shape[-1]}: PCA->RGB", fontsize=9)
    r = AU_REGIONS.index(au_for_tokens)
    mask = out.au_masks()[i, r].float().cpu().numpy().reshape(out.grid)
    axes[3].imshow(np.dstack([np.ones_like(mask), np.zeros_like(mask), np.zeros_like(mask), 0.45 * mask]),
                   extent=extent, interpolation="nearest")
    draw_au_regions(axes[3], lm, size, names=(au_for_tokens,))
    centres = out.token_centres.detach().cpu().numpy() * size
    axes[3].scatter(centres[:, 0], centres[:, 1], s=4, c="white")
    axes[3].set_xlim(0, size)
    axes[3].set_ylim(size, 0)
    axes[3].set_title(f"tokens pooled for {au_for_tokens}", fontsize=9)
    gender, prob = out.gender(i)
    text = f"{title}  age ~{out.age_years[i]:.0f}, {gender} ({prob:.0%})"
    if expression:
        text += f", expression net: {expression}"
    fig.suptitle(text, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["FIVE_POINT_NAMES", "draw_au_regions", "draw_five_points", "draw_landmarks", "plot_face_priors",
           "token_extent", "token_pca_rgb"]


def face_explorer(crops: np.ndarray, out: ExpertOutput, names: list[str], pca_rgb: np.ndarray | None = None):
    """A face picker and an AU picker over `plot_face_priors`, for JupyterLab (`figure_with_controls`).

    The cell shows the first face's figure; picking a face or an AU region draws its figure under the
    controls (a live kernel only). Returns the widget box (already displayed).
    """
    import ipywidgets as widgets

    def draw(i: int, region: str):
        plot_face_priors(crops[i], out, i, pca_rgb=None if pca_rgb is None else pca_rgb[i], title=names[i],
                         au_for_tokens=region)

    return figure_with_controls(draw, {
        "i": widgets.Dropdown(options=[(n, i) for i, n in enumerate(names)], description="face"),
        "region": widgets.Dropdown(options=list(AU_REGIONS), value="AU12", description="AU")})


# Where each geometric AU's name is written on the face: the landmarks its measure moves (expert.au_geometry).
AU_ANCHORS = {"AU1": (21, 22), "AU2": (17, 26), "AU4": (21, 22), "AU5": (37, 44), "AU7": (40, 47), "AU9": (31, 35),
              "AU12": (48, 54), "AU15": (48, 54), "AU20": (48, 54), "AU25": (62, 66), "AU26": (8,)}


def plot_face_aus(ax, crop: np.ndarray, landmarks_68: np.ndarray, aus: list[tuple[str, float]], title: str = ""):
    """A face crop with its 68 landmarks and the estimated AUs (`AUEstimates.top`) written where they move the
    face, each with its intensity in neutral spreads."""
    size = crop.shape[0]
    ax.imshow(crop)
    draw_landmarks(ax, landmarks_68, size, colour="yellow")
    pts = np.asarray(landmarks_68) * size
    for k, (name, value) in enumerate(aus):
        anchor = pts[list(AU_ANCHORS.get(name, (30,)))].mean(0)
        ax.annotate(f"{name} {value:.1f}", anchor, xytext=(anchor[0], anchor[1] + (k - len(aus) / 2) * 0.09 * size),
                    color="white", fontsize=7, ha="center", arrowprops=dict(arrowstyle="-", color="white", lw=0.6),
                    bbox=dict(facecolor=f"C{k}", alpha=0.7, pad=0.6, lw=0))
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
