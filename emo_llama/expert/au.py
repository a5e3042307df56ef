"""Action-Unit regions from 68 landmarks, and which face tokens each region covers.

EMO-LLaMA's Local Face Attention attends to face features pooled in Action-Unit (AU) regions found
from the landmarks. The paper does not list its regions, so this table is ours, in the spirit of
landmark-anchored AU ROIs (EAC-Net, JAA-Net): each region is one or two rectangles (bilateral AUs
get one per side), each defined by

- anchors: iBUG-68 landmark indices (0-based) whose mean is the rectangle's anchor point;
- offset: (along, down) shift from the anchor in units of the face scale `s`, in the face's own
  frame ("along" follows the line from the image-left eye to the image-right eye, "down" is
  perpendicular to it), so a tilted head tilts its regions too. For a second (mirrored) rectangle
  the "along" component flips sign;
- size: (width, height) in units of `s`, also in the face frame.

`s` is the inter-ocular distance (between the two eye centres): it does not change with expression,
unlike mouth or brow points.

iBUG-68 indices: jaw 0-16, brows 17-21 (image left) and 22-26, nose bridge 27-30, nostrils 31-35,
eyes 36-41 (image left) and 42-47, outer lips 48-59, inner lips 60-67.

Mapping to tokens: a token belongs to a region when its cell (a token-spacing square around its
centre) overlaps one of the region's rectangles (tested by enlarging the rectangle by half a cell);
a region that covers no token centre (too small, or outside the crop) takes the single token nearest
to its anchor point clipped into the crop, so every region always has at least one token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class AURegion:
    name: str  # e.g. "AU12"
    description: str  # FACS name
    anchors: tuple[tuple[int, ...], ...]  # one tuple of landmark indices per rectangle (1 or 2)
    offset: tuple[float, float]  # (along, down) in face-scale units, for the first rectangle
    size: tuple[float, float]  # (width, height) in face-scale units


# Anchor pairs are listed image-left side first; the second rectangle mirrors the "along" offset.
AU_TABLE: tuple[AURegion, ...] = (
    AURegion("AU1", "inner brow raiser", ((21,), (22,)), (0.0, -0.12), (0.35, 0.35)),
    AURegion("AU2", "outer brow raiser", ((17, 18), (25, 26)), (0.0, -0.12), (0.4, 0.35)),
    AURegion("AU4", "brow lowerer", ((21, 22, 27),), (0.0, -0.05), (0.6, 0.4)),
    AURegion("AU6", "cheek raiser", ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)), (-0.1, 0.38),
             (0.45, 0.35)),
    AURegion("AU7", "lid tightener", ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)), (0.0, 0.0),
             (0.45, 0.3)),
    AURegion("AU9", "nose wrinkler", ((27, 28),), (0.0, 0.0), (0.45, 0.35)),
    AURegion("AU10", "upper lip raiser", ((33, 51),), (0.0, 0.0), (0.6, 0.3)),
    AURegion("AU12", "lip corner puller", ((48,), (54,)), (-0.05, -0.05), (0.35, 0.35)),
    AURegion("AU15", "lip corner depressor", ((48,), (54,)), (0.0, 0.25), (0.35, 0.35)),
    AURegion("AU17", "chin raiser", ((57, 8),), (0.0, 0.0), (0.6, 0.4)),
    AURegion("AU20", "lip stretcher", ((48,), (54,)), (-0.22, 0.05), (0.3, 0.35)),
    AURegion("AU25", "lips part", ((61, 62, 63, 65, 66, 67),), (0.0, 0.0), (0.8, 0.35)),
    AURegion("AU26", "jaw drop", ((62, 66, 8),), (0.0, 0.0), (0.9, 0.8)),
)
AU_REGIONS: tuple[str, ...] = tuple(r.name for r in AU_TABLE)

LEFT_EYE, RIGHT_EYE = tuple(range(36, 42)), tuple(range(42, 48))  # image left / image right
MIN_SCALE = 0.02  # floor on the face scale (crop units) so degenerate landmarks give tiny, not empty, regions


def face_frame(landmarks_68: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Face scale s (B,), unit 'along' axis (B, 2) and unit 'down' axis (B, 2) from the eye centres."""
    left = landmarks_68[:, LEFT_EYE].mean(1)
    right = landmarks_68[:, RIGHT_EYE].mean(1)
    delta = right - left
    scale = delta.norm(dim=-1)
    along = torch.where(scale[:, None] > 1e-6, delta / scale.clamp(min=1e-6)[:, None],
                        torch.tensor([1.0, 0.0], dtype=delta.dtype, device=delta.device))
    down = torch.stack([-along[:, 1], along[:, 0]], dim=-1)  # along rotated +90 deg (y points down)
    return scale.clamp(min=MIN_SCALE), along, down


def au_rectangles(landmarks_68: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All rectangles of all regions: centres (B, K, 2), half sizes (B, K, 2) in crop units, and
    `owner` (K,) = region index of each rectangle. Axes are the face frame of `face_frame`."""
    landmarks_68 = torch.as_tensor(landmarks_68, dtype=torch.float32)
    if landmarks_68.ndim != 3 or landmarks_68.shape[1:] != (68, 2):
        raise ValueError(f"landmarks of shape {tuple(landmarks_68.shape)}: expected (B, 68, 2)")
    scale, along, down = face_frame(landmarks_68)
    centres, halves, owner = [], [], []
    for r, region in enumerate(AU_TABLE):
        for side, anchor in enumerate(region.anchors):
            point = landmarks_68[:, list(anchor)].mean(1)
            da = region.offset[0] * (-1 if side == 1 else 1)
            centre = point + scale[:, None] * (da * along + region.offset[1] * down)
            centres.append(centre)
            halves.append(scale[:, None] * torch.tensor(region.size, device=centre.device) / 2)
            owner.append(r)
    return torch.stack(centres, 1), torch.stack(halves, 1), torch.tensor(owner)


def au_region_polygons(landmarks_68: torch.Tensor) -> list[dict[str, list[np.ndarray]]]:
    """For drawing: per face, {region name: [(4, 2) corner arrays in crop units, one per rectangle]}."""
    centres, halves, owner = au_rectangles(landmarks_68)
    _, along, down = face_frame(torch.as_tensor(landmarks_68, dtype=torch.float32))
    signs = torch.tensor([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=torch.float32)
    out = []
    for b in range(centres.shape[0]):
        regions: dict[str, list[np.ndarray]] = {name: [] for name in AU_REGIONS}
        for k in range(centres.shape[1]):
            corners = (centres[b, k] + (signs[:, :1] * halves[b, k, 0]) * along[b]
                       + (signs[:, 1:] * halves[b, k, 1]) * down[b])
            regions[AU_REGIONS[int(owner[k])]].append(corners.numpy())
        out.append(regions)
    return out


def au_region_boxes(landmarks_68: torch.Tensor) -> torch.Tensor:
    """(B, R, 4) axis-aligned xyxy box around each region (all its rectangles), clipped to the crop."""
    corners = au_region_polygons(landmarks_68)
    boxes = torch.zeros(len(corners), len(AU_REGIONS), 4)
    for b, regions in enumerate(corners):
        for r, name in enumerate(AU_REGIONS):
            pts = np.concatenate(regions[name])
            boxes[b, r] = torch.tensor([*pts.min(0), *pts.max(0)], dtype=torch.float32)
    return boxes.clamp(0.0, 1.0)


def _grid_centres(grid: tuple[int, int]) -> torch.Tensor:
    rows, cols = grid
    ys = (torch.arange(rows, dtype=torch.float32) + 0.5) / rows
    xs = (torch.arange(cols, dtype=torch.float32) + 0.5) / cols
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def au_region_masks(landmarks_68: torch.Tensor, grid: tuple[int, int],
                    token_centres: torch.Tensor | None = None) -> torch.Tensor:
    """(B, R, N_F) bool: token k is in region r. R = len(AU_REGIONS), N_F = grid rows * cols.

    `token_centres` (N_F, 2): where each token sits in the crop (ExpertOutput.token_centres); by default
    the centres of an evenly divided grid. Every region gets at least one token, even when its
    rectangles lie partly or wholly outside the crop.
    """
    landmarks_68 = torch.as_tensor(landmarks_68, dtype=torch.float32).detach()
    device = landmarks_68.device
    rows, cols = grid
    centres_tok = (_grid_centres(grid) if token_centres is None else token_centres.detach().float()).to(device)
    if centres_tok.shape != (rows * cols, 2):
        raise ValueError(f"token_centres of shape {tuple(centres_tok.shape)} do not match grid {grid}")
    batch = landmarks_68.shape[0]
    if batch == 0:
        return torch.zeros(0, len(AU_REGIONS), rows * cols, dtype=torch.bool, device=device)
    rect_c, rect_h, owner = au_rectangles(landmarks_68)
    _, along, down = face_frame(landmarks_68)
    # Token spacing (crop units) from the centres themselves, so shifted/scaled token maps work too.
    span = centres_tok.max(0).values - centres_tok.min(0).values
    cell = span / torch.tensor([max(cols - 1, 1), max(rows - 1, 1)], device=device)
    cell = torch.where(span > 0, cell, torch.tensor([1.0 / cols, 1.0 / rows], device=device))
    # Token centres in each rectangle's face frame: (B, K, N_F).
    rel = centres_tok[None, None] - rect_c[:, :, None]
    u = (rel * along[:, None, None]).sum(-1).abs()
    v = (rel * down[:, None, None]).sum(-1).abs()
    # Half a cell, measured along each face axis (exact when the face is upright).
    half_u = 0.5 * (along.abs() * cell).sum(-1)[:, None, None]
    half_v = 0.5 * (down.abs() * cell).sum(-1)[:, None, None]
    inside = (u <= rect_h[..., :1] + half_u) & (v <= rect_h[..., 1:] + half_v)  # (B, K, N_F)
    masks = torch.zeros(batch, len(AU_REGIONS), rows * cols, dtype=torch.bool, device=device)
    for k in range(rect_c.shape[1]):
        masks[:, int(owner[k])] |= inside[:, k]
    # Guarantee one token per region: the token nearest the (clipped) centre of its first rectangle.
    first = [owner.tolist().index(r) for r in range(len(AU_REGIONS))]
    anchor = rect_c[:, first].clamp(0.0, 1.0)  # (B, R, 2)
    nearest = torch.cdist(anchor, centres_tok[None].expand(batch, -1, -1)).argmin(-1)  # (B, R)
    empty = ~masks.any(-1)
    masks.scatter_(2, nearest[..., None], masks.gather(2, nearest[..., None]) | empty[..., None])
    return masks


def au_pool(face_tokens: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean face feature per region: (B, N_F, C) tokens and (B, R, N_F) masks -> (B, R, C).

    This is the region-pooled input of Local Face Attention.
    """
    weights = masks.to(face_tokens.dtype)
    return weights @ face_tokens / weights.sum(-1, keepdim=True).clamp(min=1.0)
