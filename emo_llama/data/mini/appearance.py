"""What a warp cannot do: the appearance changes that Action Units create on a real face.

A landmark warp moves skin; it cannot show what is behind the lips or the folds that muscles push
up. Real classifiers (and people) read those cues, so mini paints them after the warp:
- the mouth interior when the lips part: an upper teeth band under the upper lip (lower teeth too
  when the lips are stretched or bared), a dark cavity shaded towards the corners, a tongue when
  the jaw drops far;
- wrinkles and folds: AU4 vertical furrows between the brows, AU9 nose-bridge wrinkles, AU6 crow's
  feet and the lower-lid bulge, AU6/12/10 deeper nasolabial folds, AU1+2 forehead lines.
Every painted line is soft (Gaussian-blurred) and scaled by the AU's intensity, and all geometry is
taken in the face's own frame (u across, v down), so head roll and pose jitter carry over.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage
from skimage.draw import line_aa

from emo_llama.expert.landmarks import face_frame

# AUs that can part the lips: the gap between the inner lips is then rendered as a mouth interior.
OPENING_AUS = (10, 16, 20, 25, 26, 27)
UPPER_INNER = [60, 61, 62, 63, 64]
LOWER_INNER = [60, 67, 66, 65, 64]
INNER_MOUTH = list(range(60, 68))


def _skin_level(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Mean colour of the cheeks (between eye and mouth corner on both sides): the face's lighting."""
    h, w = image.shape[:2]
    pts = np.concatenate([(landmarks[[31, 48, 41]].mean(0))[None], (landmarks[[35, 54, 46]].mean(0))[None]])
    pts = np.clip(pts.round().astype(int), 1, [w - 2, h - 2])
    return np.mean([image[y - 1:y + 2, x - 1:x + 2].reshape(-1, image.shape[2]).mean(0) for x, y in pts], axis=0)


def paint_mouth(image: np.ndarray, landmarks: np.ndarray, aus: Mapping[int, float]) -> np.ndarray:
    """Render the opening between the inner lips (float image in, float image out)."""
    if not any(aus.get(a, 0) > 0 for a in OPENING_AUS):
        return image
    u, v, dist, _ = face_frame(landmarks)
    centre = landmarks[INNER_MOUTH].mean(0)
    rel_up = (landmarks[UPPER_INNER] - centre) @ np.stack([u, v], 1)
    rel_lo = (landmarks[LOWER_INNER] - centre) @ np.stack([u, v], 1)
    lo_a, hi_a = rel_up[:, 0].min(), rel_up[:, 0].max()
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    a = (xs - centre[0]) * u[0] + (ys - centre[1]) * u[1]
    b = (xs - centre[0]) * v[0] + (ys - centre[1]) * v[1]
    b_up = np.interp(a, *_sorted(rel_up))
    b_lo = np.interp(a, *_sorted(rel_lo))
    gap = b_lo - b_up
    inside = (a > lo_a) & (a < hi_a) & (b > b_up) & (b < b_lo) & (gap > 0.6)
    if not inside.any():
        return image
    half = max((hi_a - lo_a) / 2, 1.0)
    side = np.clip(np.abs(a) / half, 0, 1)  # 0 at the centre, 1 at a corner
    depth = b - b_up
    skin = _skin_level(image, landmarks)
    grey = image.ndim == 3 and np.allclose(image[..., 0], image[..., 1], atol=2) and np.allclose(image[..., 1], image[..., 2], atol=2)
    teeth = np.array([236.0, 230.0, 214.0]) if not grey else np.full(3, 228.0)
    teeth = teeth * np.clip(skin.mean() / 170.0, 0.55, 1.15)
    cavity = skin * np.array([0.28, 0.14, 0.13]) if not grey else np.full(3, skin.mean() * 0.17)
    tongue = skin * np.array([0.75, 0.38, 0.36]) if not grey else np.full(3, skin.mean() * 0.5)
    # Smiles and sneers show the upper teeth; a fearful lip stretch shows the lower ones more.
    stretched = aus.get(20, 0) > 0
    upper_h = (0.06 if stretched else 0.11) * dist
    lower_h = (0.10 if stretched else 0.075 if aus.get(10, 0) > 0 else 0.0) * dist
    colour = np.broadcast_to(cavity, (h, w, 3)).copy()
    # The cavity is darkest deep inside and at the corners.
    colour *= (1.0 - 0.35 * side[..., None])
    wide = gap > 0.28 * dist
    tongue_zone = wide & (b_lo - b < 0.35 * gap)
    colour[tongue_zone] = tongue * (1.0 - 0.4 * side[tongue_zone, None])
    upper = depth < upper_h
    lower = (b_lo - b) < lower_h
    tooth_shade = (1.0 - 0.55 * side ** 2)[..., None]
    # Faint gaps between incisors every ~0.085 D from the midline.
    seams = 1.0 - 0.12 * (np.abs(((a / (0.085 * dist)) % 1.0) - 0.5) > 0.44)
    edge = np.clip(depth / max(upper_h, 1e-6), 0, 1)  # teeth shade a little towards their tips
    colour[upper] = (teeth * tooth_shade[upper] * seams[upper, None] * (1.0 - 0.12 * edge[upper, None]))
    colour[lower & ~upper] = teeth * 0.9 * tooth_shade[lower & ~upper] * seams[lower & ~upper, None]
    mask = ndimage.gaussian_filter(inside.astype(np.float64), 0.6 * max(dist / 40.0, 0.6))
    mask = np.clip(mask * 1.15, 0, 1)[..., None]
    out = image.copy()
    out[..., :3] = image[..., :3] * (1 - mask) + colour * mask
    return out


def _sorted(rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(rel[:, 0])
    return rel[order, 0], rel[order, 1]


def _curve(p0, p1, p2, n: int = 12) -> np.ndarray:
    """A quadratic Bezier from p0 to p2 pulled towards p1."""
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _wrinkle_lines(landmarks: np.ndarray, aus: Mapping[int, float]) -> list[tuple[np.ndarray, float]]:
    """(polyline in pixels, darkness) for every fold the active AUs create."""
    u, v, dist, _ = face_frame(landmarks)
    lines: list[tuple[np.ndarray, float]] = []
    lm = landmarks
    brow_mid = (lm[21] + lm[22]) / 2
    if aus.get(4, 0) > 0:  # vertical furrows between the brows
        for s in (-1, 1):
            base = brow_mid + s * 0.07 * dist * u
            lines.append((_curve(base + 0.03 * dist * v, base - 0.05 * dist * v + s * 0.01 * dist * u,
                                 base - 0.15 * dist * v), 0.25 * aus[4]))
    if aus.get(9, 0) > 0:  # short wrinkles across the nose bridge, bunching towards the eyes
        for k, t in enumerate((0.3, 0.5, 0.7)):
            p = lm[27] + t * (lm[29] - lm[27])
            half = (0.06 + 0.02 * k) * dist
            lines.append((_curve(p - half * u + 0.02 * dist * v, p - 0.02 * dist * v, p + half * u + 0.02 * dist * v),
                          0.22 * aus[9]))
    fold = max(aus.get(6, 0) * 0.6, aus.get(12, 0), aus.get(10, 0) * 1.2, aus.get(9, 0))
    if fold > 0:  # nasolabial folds: from the nose wing down and out past the mouth corner
        for wing, corner, s in ((31, 48, -1), (35, 54, 1)):
            top = lm[wing] + s * 0.08 * dist * u - 0.02 * dist * v
            bottom = lm[corner] + s * 0.1 * dist * u + 0.12 * dist * v
            mid = (top + bottom) / 2 + s * 0.07 * dist * u
            lines.append((_curve(top, mid, bottom), 0.3 * fold))
    if aus.get(6, 0) > 0:  # crow's feet and the bulge under the lower lids
        for corner, s in ((36, -1), (45, 1)):
            for ang in (-0.35, 0.0, 0.35):
                d = s * np.cos(ang) * u + np.sin(ang) * v
                start = lm[corner] + 0.08 * dist * s * u
                lines.append((np.stack([start, start + 0.13 * dist * d]), 0.3 * aus[6]))
        for lid in ([41, 40], [47, 46]):
            a, b = lm[lid[0]] + 0.1 * dist * v, lm[lid[1]] + 0.1 * dist * v
            lines.append((_curve(a - 0.04 * dist * (b - a) / max(np.linalg.norm(b - a), 1e-6), (a + b) / 2 + 0.03 * dist * v, b),
                          0.25 * aus[6]))
    raise_ = min(aus.get(1, 0), max(aus.get(2, 0), aus.get(1, 0)))
    if raise_ > 0:  # forehead lines above raised brows
        top = (lm[19] + lm[24]) / 2
        for k in range(3):
            c = top - (0.22 + 0.11 * k) * dist * v
            lines.append((_curve(c - 0.4 * dist * u, c - 0.04 * dist * v, c + 0.4 * dist * u, 16), 0.12 * raise_))
    return lines


def paint_wrinkles(image: np.ndarray, landmarks: np.ndarray, aus: Mapping[int, float]) -> np.ndarray:
    """Darken soft lines where the active AUs fold the skin (float image in, float image out)."""
    lines = _wrinkle_lines(landmarks, aus)
    if not lines:
        return image
    h, w = image.shape[:2]
    _, _, dist, _ = face_frame(landmarks)
    shade = np.zeros((h, w))
    for pts, darkness in lines:
        pts = np.round(pts).astype(int)
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            rr, cc, val = line_aa(y0, x0, y1, x1)
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            np.maximum.at(shade, (rr[ok], cc[ok]), val[ok] * darkness)
    # Folds are soft shadows, not strokes: blur them to about a tenth of the eye distance.
    shade = ndimage.gaussian_filter(shade, max(dist / 30.0, 0.8))
    shade = np.clip(shade * 2.5, 0, 0.4)
    return image * (1 - shade[..., None])
