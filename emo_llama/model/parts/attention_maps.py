"""Attention maps for plots (notebook 03): Global/Local Face Attention and the context token (Eq. 2)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from emo_llama.expert.au import AU_REGIONS, au_region_polygons


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


def show_face_attention(maps: dict, media: list, face: int, head: int, face_grid, vision_grid) -> None:
    """One figure for the notebook's widget: face `face`, attention head `head` (-1 = mean over heads)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    one = {k: v[face: face + 1] for k, v in maps.items()}
    draw_face_attention(axes, media[face].crops[0].numpy(), media[face].landmarks_68, one, 0,
                        None if head < 0 else head, face_grid, vision_grid)
    plt.show()
