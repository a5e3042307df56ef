"""iBUG-68 landmark conventions and the check that two independent models agree on real faces.

iBUG-68 (0-based): jaw 0-16, brows 17-21 / 22-26, nose bridge 27-30, nostrils 31-35, eyes 36-41 / 42-47,
outer lips 48-59, inner lips 60-67. The first group of each pair is on the image's left (the subject's
right). MTCNN's 5 points use the same image-left-first order: eye, eye, nose tip, mouth corner, mouth corner.
"""

from __future__ import annotations

import numpy as np

JAW, BROW_LEFT, BROW_RIGHT = range(0, 17), range(17, 22), range(22, 27)
NOSE_BRIDGE, NOSTRILS = range(27, 31), range(31, 36)
EYE_LEFT, EYE_RIGHT = range(36, 42), range(42, 48)  # image left / image right
OUTER_LIPS, INNER_LIPS = range(48, 60), range(60, 68)
NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = 30, 48, 54
FIVE_POINT_NAMES = ("left eye", "right eye", "nose tip", "left mouth corner", "right mouth corner")

# Lines to draw a 68-point face (each a run of consecutive indices; eyes and lips closed).
CONTOURS: tuple[tuple[range, bool], ...] = (
    (JAW, False), (BROW_LEFT, False), (BROW_RIGHT, False), (NOSE_BRIDGE, False), (NOSTRILS, False),
    (EYE_LEFT, True), (EYE_RIGHT, True), (OUTER_LIPS, True), (INNER_LIPS, True),
)


def _ibug_mirror() -> list[int]:
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]  # lips
    mirror = list(range(68))
    for a, b in pairs:
        mirror[a], mirror[b] = b, a
    return mirror


IBUG_MIRROR: list[int] = _ibug_mirror()  # index of each point's left/right counterpart


def five_points(landmarks_68) -> np.ndarray:
    """(B, 68, 2) -> (B, 5, 2) in MTCNN's order: eye centres (mean of the 6 contour points), nose tip,
    mouth corners (outer lip corners)."""
    p = np.asarray(landmarks_68, dtype=np.float64)
    return np.stack([p[:, EYE_LEFT].mean(1), p[:, EYE_RIGHT].mean(1), p[:, NOSE_TIP], p[:, MOUTH_LEFT],
                     p[:, MOUTH_RIGHT]], axis=1)


def agreement_with_5_points(landmarks_68, landmarks_5) -> np.ndarray:
    """(B, 5) distance between the 68-point model's five points and another model's five points,
    in units of the latter's inter-ocular distance (both sets in the same coordinates)."""
    ref = np.asarray(landmarks_5, dtype=np.float64)
    iod = np.linalg.norm(ref[:, 1] - ref[:, 0], axis=-1)
    return np.linalg.norm(five_points(landmarks_68) - ref, axis=-1) / iod[:, None]


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(u, v, D, midline_u): unit axes of the face and its inter-ocular distance, from 68 points (x, y)."""
    eye_r, eye_l = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    axis = eye_l - eye_r
    dist = float(np.linalg.norm(axis))
    u = axis / dist
    v = np.array([-u[1], u[0]])  # +90 degrees in image coordinates (y down): points down the face
    mid = (eye_r + eye_l) / 2
    return u, v, dist, float(mid @ u)
