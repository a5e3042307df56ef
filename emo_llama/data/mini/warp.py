"""Synthesise facial expressions by moving 68 landmarks per Action Unit and warping the photo to match.

Each AU is a set of landmark displacements in a face-aligned frame (u: from the subject's right eye
to the left eye, v: down the face), in units of the inter-ocular distance D, so one table works for
every face size and small head rolls. The image follows the landmarks through a thin-plate spline
fitted on (moved landmarks -> original landmarks) plus fixed anchors on the border, evaluated
backwards for every output pixel. A warp can only stretch skin, so what it cannot show (the mouth
interior when the lips part, wrinkles and folds) is painted afterwards by `appearance`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from emo_llama.data.mini.appearance import paint_mouth, paint_wrinkles
from emo_llama.expert.landmarks import face_frame

# iBUG-68 index groups (image-left = subject's right).
BROW_R, BROW_L = list(range(17, 22)), list(range(22, 27))  # outer -> inner, inner -> outer
UPPER_LID = [37, 38, 43, 44]
LOWER_LID = [40, 41, 46, 47]
NOSE = list(range(31, 36))

# (indices, du, dv, outward): du/dv in D units at intensity 1; outward=True means du points away
# from the face's midline (both sides symmetric). Negative dv is up.
AU_MOVES: dict[int, list[tuple[list[int], float, float, bool]]] = {
    1: [([21, 22], 0.0, -0.16, False), ([20, 23], 0.0, -0.11, False), ([19, 24], 0.0, -0.05, False)],
    2: [([17, 26], 0.0, -0.17, False), ([18, 25], 0.0, -0.14, False), ([19, 24], 0.0, -0.08, False)],
    4: [([21, 22], -0.09, 0.16, True), ([20, 23], -0.05, 0.13, True), ([17, 18, 19, 24, 25, 26], 0.0, 0.08, False),
        (UPPER_LID, 0.0, 0.025, False)],
    5: [(UPPER_LID, 0.0, -0.11, False), ([36, 39, 42, 45], 0.0, -0.02, False)],
    6: [(LOWER_LID, 0.0, -0.045, False), ([1, 2, 14, 15], 0.0, -0.06, False), ([36, 45], 0.0, -0.02, False)],
    7: [(LOWER_LID, 0.0, -0.045, False), (UPPER_LID, 0.0, 0.025, False)],
    # AU9 without the brow lowering some tables give it: with it, real classifiers read disgust as anger.
    9: [(NOSE, 0.0, -0.08, False), ([28, 29, 30], 0.0, -0.04, False), ([50, 51, 52, 61, 62, 63], 0.0, -0.10, False),
        ([49, 53], 0.0, -0.06, False)],
    10: [([50, 52], 0.0, -0.12, False), ([51, 61, 62, 63], 0.0, -0.10, False), ([49, 53], 0.0, -0.06, False),
         ([31, 35], 0.0, -0.03, False)],
    12: [([48, 54], 0.13, -0.16, True), ([60, 64], 0.11, -0.14, True), ([49, 53, 59, 55], 0.05, -0.07, True),
         ([2, 3, 13, 14], 0.0, -0.03, False)],
    14: [([48, 60], -0.03, -0.06, True)],  # unilateral (subject's right) for contempt
    15: [([48, 54], 0.02, 0.14, True), ([60, 64], 0.02, 0.12, True), ([59, 55, 49, 53], 0.0, 0.06, False)],
    16: [([56, 57, 58, 65, 66, 67], 0.0, 0.10, False), ([55, 59], 0.0, 0.05, False)],
    17: [([56, 57, 58], 0.0, -0.06, False), ([65, 66, 67, 55, 59], 0.0, -0.04, False), ([7, 8, 9], 0.0, -0.03, False)],
    # The lip stretcher pulls the corners out *and down*: without the downward part it reads as a grin.
    20: [([48, 54], 0.14, 0.13, True), ([60, 64], 0.12, 0.11, True), ([49, 53, 55, 59], 0.06, 0.05, True),
         ([56, 57, 58, 65, 66, 67], 0.0, 0.05, False)],
    23: [([49, 50, 51, 52, 53], 0.0, 0.035, False), ([55, 56, 57, 58, 59], 0.0, -0.035, False),
         ([48, 54, 60, 64], -0.04, 0.0, True)],
    24: [([61, 62, 63], 0.0, 0.03, False), ([65, 66, 67], 0.0, -0.03, False), ([50, 51, 52], 0.0, 0.02, False),
         ([56, 57, 58], 0.0, -0.02, False)],
    25: [([65, 66, 67], 0.0, 0.13, False), ([56, 57, 58], 0.0, 0.10, False), ([55, 59], 0.0, 0.06, False),
         ([61, 62, 63], 0.0, -0.02, False)],
    26: [([56, 57, 58], 0.0, 0.36, False), ([65, 66, 67], 0.0, 0.34, False), ([55, 59], 0.0, 0.26, False),
         ([7, 8, 9], 0.0, 0.30, False), ([6, 10], 0.0, 0.20, False), ([5, 11], 0.0, 0.10, False)],
    27: [([56, 57, 58], 0.0, 0.50, False), ([65, 66, 67], 0.0, 0.48, False), ([55, 59], 0.0, 0.36, False),
         ([7, 8, 9], 0.0, 0.42, False), ([6, 10], 0.0, 0.28, False), ([5, 11], 0.0, 0.14, False),
         ([48, 54, 60, 64], -0.04, 0.06, True)],
}
def au_displacements(landmarks: np.ndarray, aus: Mapping[int, float]) -> np.ndarray:
    """(68, 2) pixel displacements for AUs given as {au: intensity} (1.0 = a strong, clear movement)."""
    u, v, dist, mid_u = face_frame(landmarks)
    disp = np.zeros_like(landmarks, dtype=np.float64)
    for au, intensity in aus.items():
        for idx, du, dv, outward in AU_MOVES[au]:
            for i in idx:
                side = np.sign(landmarks[i] @ u - mid_u) if outward else 1.0
                if outward and au == 14:
                    side = -1.0  # the dimpler pulls its one corner toward the face's centre
                disp[i] += intensity * dist * (side * du * u + dv * v)
    return disp


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        k = 0.5 * r2 * np.log(r2)
    return np.nan_to_num(k)


def tps_fit(src: np.ndarray, dst: np.ndarray, smooth: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Thin-plate spline mapping src points onto dst: returns (weights (n, 2), affine (3, 2))."""
    n = len(src)
    k = _tps_kernel(((src[:, None] - src[None]) ** 2).sum(-1)) + smooth * np.eye(n)
    p = np.hstack([np.ones((n, 1)), src])
    a = np.zeros((n + 3, n + 3))
    a[:n, :n], a[:n, n:], a[n:, :n] = k, p, p.T
    b = np.zeros((n + 3, 2))
    b[:n] = dst
    sol = np.linalg.solve(a, b)
    return sol[:n], sol[n:]


def tps_apply(points: np.ndarray, src: np.ndarray, weights: np.ndarray, affine: np.ndarray) -> np.ndarray:
    r2 = (points ** 2).sum(1)[:, None] + (src ** 2).sum(1)[None] - 2 * points @ src.T  # no (n, m, 2) temporary
    k = _tps_kernel(np.maximum(r2, 0))
    return k @ weights + affine[0] + points @ affine[1:]


def border_anchors(size: int, per_side: int = 5) -> np.ndarray:
    t = np.linspace(0, size - 1, per_side)
    edge = [np.stack([t, np.zeros_like(t)], 1), np.stack([t, np.full_like(t, size - 1)], 1),
            np.stack([np.zeros_like(t), t], 1), np.stack([np.full_like(t, size - 1), t], 1)]
    return np.unique(np.concatenate(edge), axis=0)


def similarity(size: int, angle_deg: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0, 0)) -> np.ndarray:
    """2x3 matrix of a rotation / scale about the image centre plus a shift (pixels): out = M @ [x, y, 1]."""
    c = (size - 1) / 2
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, (np.array([c, c]) - rot @ [c, c] + np.asarray(shift))[:, None]])


_STEP = 4


def warp_face(image: np.ndarray, landmarks: np.ndarray, aus: Mapping[int, float], pose: np.ndarray | None = None,
              brightness: float = 1.0, rest: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply AUs (and an optional 2x3 similarity `pose`, output = pose(warped)) to a square RGB face image.

    landmarks: (68, 2) pixel coordinates in `image`. rest: an optional (68, 2) displacement applied
    before the AUs (mini uses it to lower lip corners that already smile in the source photo).
    Returns (uint8 image, moved landmarks in output pixels). Deterministic in its inputs.
    """
    size = image.shape[0]
    start = landmarks + (rest if rest is not None else 0.0)
    moved = start + au_displacements(start, aus)
    anchors = border_anchors(size)
    # Backward map: for an output pixel, where to read in the source. Fit moved -> original points.
    src = np.concatenate([moved, anchors])
    dst = np.concatenate([landmarks, anchors])
    weights, affine = tps_fit(src, dst)
    # The backward map is smooth: evaluate it every `_STEP` pixels and interpolate (16x less work).
    n = size // _STEP + 2
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float64) * _STEP
    grid = np.stack([xs.ravel(), ys.ravel()], 1)
    if pose is not None:  # undo the pose first: output pixel -> expression-warped pixel
        inv = np.linalg.inv(np.vstack([pose, [0, 0, 1]]))[:2]
        grid = grid @ inv[:, :2].T + inv[:, 2]
    coarse = tps_apply(grid, src, weights, affine).reshape(n, n, 2)
    fy, fx = np.mgrid[0:size, 0:size].astype(np.float64) / _STEP
    coords = [ndimage.map_coordinates(coarse[..., k], [fy, fx], order=1) for k in (1, 0)]
    out = np.stack([ndimage.map_coordinates(image[..., c].astype(np.float64), coords, order=1, mode="reflect")
                    for c in range(image.shape[2])], -1)
    out_landmarks = moved if pose is None else moved @ pose[:, :2].T + pose[:, 2]
    out = paint_wrinkles(paint_mouth(out, out_landmarks, aus), out_landmarks, aus)
    out = np.clip(out * brightness, 0, 255)
    return out.round().astype(np.uint8), out_landmarks
