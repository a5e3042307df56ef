"""Attention maps for plots (notebook 03): Global/Local Face Attention and the context token (Eq. 2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from emo_llama.expert.au import AU_REGIONS, au_region_polygons
from emo_llama.utils import figure_with_controls


@torch.no_grad()
def record_attention(model, media: list, question: str) -> dict[str, torch.Tensor]:
    """One forward pass over the frames with recording on.

    Returns (per frame, heads kept where the layer has them):
      global (F, heads, N_F) Global Face Attention, averaged over the visual-token queries;
      local  (F, heads, R)   Local Face Attention per AU region (the null key dropped);
      context (F, N)         the context token's attention over the visual tokens (mean over queries).
    """
    fim, ctx = model.face_info_mining, model.clue_aggregator.context
    if not hasattr(fim, "global_attn"):
        raise ValueError("this model has no Face Info Mining attention (fim_mode='pool_concat' or no face embedding)")
    batch = model.make_batch(media, [[(question, None)]] * len(media), generation=True, device=model.device)
    fim.record = ctx.record = True
    try:
        model.frame_tokens(batch)
    finally:
        fim.record = ctx.record = False
    return {
        "global": fim.attention["global"].mean(2).cpu(),
        "local": fim.attention["local"].mean(2)[..., 1:].cpu(),
        "context": ctx.last_weights.mean(1).cpu(),
    }


def grid_overlay(weights: torch.Tensor, grid: tuple[int, int], size: int) -> np.ndarray:
    """A token-grid attention vector (N,) upsampled to a size x size heat map in [0, 1]."""
    w = weights.reshape(1, 1, *grid).float()
    up = F.interpolate(w, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    up = up - up.min()
    return (up / up.max().clamp(min=1e-12)).numpy()


def draw_face_attention(axes, crop: np.ndarray, landmarks_68: torch.Tensor, maps: dict, frame: int,
                        head: int | None, face_grid: tuple[int, int], vision_grid: tuple[int, int]) -> None:
    """Three panels: Global Face Attention on the crop, Local Face Attention per AU region, context token."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    size = crop.shape[0]
    pick = (lambda t: t[frame].mean(0)) if head is None else (lambda t: t[frame, head])
    label = "mean of heads" if head is None else f"head {head}"
    axes[0].imshow(crop)
    axes[0].imshow(grid_overlay(pick(maps["global"]), face_grid, size), cmap="jet", alpha=0.45)
    axes[0].set_title(f"Global Face Attention\n({label})", fontsize=9)
    local = pick(maps["local"])
    axes[1].imshow(crop)
    cmap = plt.get_cmap("viridis")
    top = float(local.max()) or 1.0
    for name, rects in au_region_polygons(landmarks_68[frame: frame + 1])[0].items():
        r = AU_REGIONS.index(name)
        for corners in rects:
            axes[1].add_patch(Polygon(corners * size, closed=True, alpha=0.55, color=cmap(float(local[r]) / top)))
    best = AU_REGIONS[int(local.argmax())]
    axes[1].set_title(f"Local Face Attention per AU region\n(strongest: {best})", fontsize=9)
    axes[2].imshow(crop)
    axes[2].imshow(grid_overlay(maps["context"][frame], vision_grid, size), cmap="jet", alpha=0.45)
    axes[2].set_title("context token (Eq. 2)\nover the image", fontsize=9)
    for ax in axes:
        ax.axis("off")


def plot_face_attention(maps: dict, media: list, face_grid: tuple[int, int], vision_grid: tuple[int, int],
                        faces: Sequence[int] | None = None, head: int | None = None,
                        titles: Sequence[str] | None = None):
    """One row per face (image media: one frame each; default all): `draw_face_attention`'s three panels.

    Each row is a subfigure with its own title above the panels' titles; constrained layout keeps every
    title in the space between rows, never over the photos above it. `head` None: the mean over heads.
    """
    import matplotlib.pyplot as plt

    faces = list(range(len(media)) if faces is None else faces)
    titles = list(titles) if titles is not None else [""] * len(faces)
    fig = plt.figure(figsize=(8, 3.2 * len(faces)), layout="constrained")
    for row, i, title in zip(fig.subfigures(len(faces), 1, squeeze=False)[:, 0], faces, titles):
        draw_face_attention(row.subplots(1, 3), media[i].crops[0].numpy(), media[i].landmarks_68,
                            {k: v[i: i + 1] for k, v in maps.items()}, 0, head, face_grid, vision_grid)
        row.suptitle(title, fontsize=9, fontweight="bold", parse_math=False)  # answers are raw text, not mathtext
    return fig


def face_attention_explorer(maps: dict, media: list, face_grid: tuple[int, int], vision_grid: tuple[int, int],
                            names: Sequence[str], titles: Sequence[str] | None = None):
    """A face picker (`names`) and a head picker over `plot_face_attention`, for JupyterLab (`figure_with_controls`).

    The cell shows the first face, mean of heads; other choices are drawn under the controls (a live kernel
    only). `titles`: each face's row title (default its name). Returns the widget box (already displayed).
    """
    import ipywidgets as widgets

    titles = list(titles) if titles is not None else list(names)

    def draw(face: int, head: int):
        plot_face_attention(maps, media, face_grid, vision_grid, faces=[face], head=None if head < 0 else head,
                            titles=[titles[face]])

    heads = maps["global"].shape[1]
    return figure_with_controls(draw, {
        "face": widgets.Dropdown(options=[(f"{i}: {n}", i) for i, n in enumerate(names)], description="face"),
        "head": widgets.Dropdown(options=[("mean", -1)] + [(str(h), h) for h in range(heads)], description="head")})
