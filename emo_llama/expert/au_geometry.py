"""Action-Unit intensities read from the 68 landmarks' geometry: the AUs a 2-D face shape can show.

A landmark shape shows an AU when the AU moves points: brows up or down, lids open or closed, lip
corners up, down or sideways, the lips or the jaw apart. Each measure below is one distance in the
face's own frame, so head size and in-plane roll drop out:

- frame: origin at the mean of the four eye corners (36, 39, 42, 45), x along the line from the
  image-left eye's corners (36, 39) to the image-right eye's (42, 45), y perpendicular to it, pointing
  down the face; unit = the distance between the two eyes' corner midpoints (the inter-ocular distance
  D). Eye corners, not the eye contours' centres (the kit's `face_frame`), because the lids move with
  AU5 and AU7 and would drag the origin with them; the corners stay put.
- a raw measure is a distance in D units (`MEASURES`); `NeutralReference` holds the mean and spread of
  each over neutral faces, and an AU's intensity is (raw - neutral mean) / neutral spread, signed so
  that the AU's movement is positive: "how many neutral spreads this face is from neutral, the AU's
  way". A per-identity neutral (`NeutralReference.for_identity`: that person's neutral frames for the
  mean, the population's spread) removes the face's own proportions; the population neutral is the
  fallback.

The geometric AUs (`GEOMETRIC_AUS`), each with the measures it reads and the sign that means "present"
(an AU reading two measures averages their signed z-scores):
- AU1 inner brow raiser: height of the inner brow ends (21, 22) above the eye-corner line, +.
- AU2 outer brow raiser: height of the outer brow ends (17, 26) above the eye-corner line, +.
- AU4 brow lowerer: gap between the inner brow ends (21 to 22, along x), -, and mean height of all ten
  brow points (17-26), -: the brows drawn together and down.
- AU5 upper lid raiser: height of the upper lids (37, 38 / 43, 44) above their eye's corners, +.
- AU7 lid tightener: depth of the lower lids (40, 41 / 46, 47) below their eye's corners, - (the lower
  lid rises; the eye aperture split into its two lids, because AU5 opens what AU7 closes).
- AU9 nose wrinkler: depth of the nostrils (31-35) below the eye-corner line, - (the nose shortens).
- AU12 lip corner puller: lip-corner rise (`_lip_corner_rise`), +, and mouth width (48 to 54), +: the
  corners pulled up and out.
- AU15 lip corner depressor: lip-corner rise, -.
- AU20 lip stretcher: mouth width, +, and lip-corner rise, -: stretched sideways, not lifted (a smile
  widens the mouth too).
- AU25 lips part: gap between the inner lips (61, 62, 63 to 67, 66, 65), +.
- AU26 jaw drop: depth of the chin (8) below the eye-corner line, +, and the inner-lip gap, +: the jaw
  lowered and the mouth open (the chin point alone also moves with head pitch and talking).

Not measured (`NOT_MEASURABLE`): AU6 cheek raiser, whose one landmark trace (the lower lid rises) is
AU7's; what tells them apart (the cheek bulge, crow's feet) is skin texture, and the jaw contour points
are not anchored on the cheeks. AU10 upper lip raiser lifts the upper lip as AU9 does (what tells
them apart, the nose wrinkle and the nasolabial furrow, is texture); AU14, AU16, AU17, AU23 and AU24 are
lip-shape changes of a few pixels that 68 points do not resolve reliably; AU27 reads as a strong AU26.

Validated on mini, whose AUs are known by construction (`benchmarks/au_geometry_on_mini.py`, landmarks of
face-api's 68-point net): the brows, AU9, AU12, AU25 and AU26 are found (test ROC AUC 0.75-0.92 with the
population neutral), AU4, AU5 and AU20 weakly (0.65-0.66), AU7 and AU15 not (0.57, 0.43): the net's lower
lids and lip corners do not follow mini's warps of a few pixels, so an estimate of those says little.

A frame without a face (`face_found` False), with non-finite landmarks or with the two eyes on top of
each other gives NaN intensities and `valid` False, never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# FACS names of the Action Units the kit speaks of: declared here, the lowest layer that uses them
# (`emo_llama.data.aus` re-exports it for mini's captions and the reasons).
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser", 12: "lip corner puller",
    14: "dimpler", 15: "lip corner depressor", 16: "lower lip depressor", 17: "chin raiser", 20: "lip stretcher",
    23: "lip tightener", 24: "lip pressor", 25: "lips part", 26: "jaw drop", 27: "mouth stretch",
    # AUs mini does not draw but that real codings and reasons name: OpenFace's 28 and 45 (MERR's AUs come from
    # OpenFace) and others of CASME II's codings, so that a reason naming them by their FACS name is read.
    11: "nasolabial deepener", 13: "sharp lip puller", 18: "lip pucker", 22: "lip funneler", 28: "lip suck",
    43: "eyes closed", 45: "blink",
}


def au_phrase(au: int | str) -> str:
    """'AU12 lip corner puller' for 12 or 'AU12'."""
    number = int(str(au).upper().removeprefix("AU"))
    return f"AU{number} {AU_NAMES[number]}"


# AU -> (raw measures it reads, with their signs). Each raw measure is z-scored against the neutral
# reference first, and an AU reading two measures averages them.
AU_MEASURES: dict[int, tuple[tuple[str, float], ...]] = {
    1: (("inner_brow_height", 1.0),),
    2: (("outer_brow_height", 1.0),),
    4: (("inner_brow_gap", -1.0), ("brow_height", -1.0)),
    5: (("upper_lid_height", 1.0),),
    7: (("lower_lid_depth", -1.0),),
    9: (("nostril_depth", -1.0),),
    12: (("lip_corner_rise", 1.0), ("mouth_width", 1.0)),
    15: (("lip_corner_rise", -1.0),),
    20: (("mouth_width", 1.0), ("lip_corner_rise", -1.0)),
    25: (("inner_lip_gap", 1.0),),
    26: (("chin_depth", 1.0), ("inner_lip_gap", 1.0)),
}
GEOMETRIC_AUS: tuple[str, ...] = tuple(f"AU{a}" for a in AU_MEASURES)
AU_PHRASES: dict[str, str] = {name: au_phrase(name) for name in GEOMETRIC_AUS}
NOT_MEASURABLE: dict[str, str] = {
    "AU6": "its landmark trace (the lower lid rises) is AU7's; the cheek bulge and crow's feet are texture",
    "AU10": "lifts the upper lip as AU9 does; what tells them apart (nose wrinkle, nasolabial furrow) is texture",
    "AU14": "a dimple is a shading change at a lip corner, not a landmark move",
    "AU16": "a lower-lip shape change of a few pixels, confounded with AU25/AU26 in 68 points",
    "AU17": "the chin boss pushing up is texture; its chin-point move is confounded with AU26",
    "AU23": "lip narrowing of a few pixels that 68 points do not resolve reliably",
    "AU24": "lips pressed together change their thickness by a few pixels only",
    "AU27": "read as a strong AU26 (the jaw point cannot tell a stretch from a drop)",
}

MEASURES: tuple[str, ...] = ("inner_brow_height", "outer_brow_height", "brow_height", "inner_brow_gap",
                             "upper_lid_height", "lower_lid_depth", "nostril_depth", "lip_corner_rise", "mouth_width",
                             "inner_lip_gap", "chin_depth")
MIN_EYE_DISTANCE = 1e-3  # below this (in the landmarks' units) the eyes coincide: no frame, no estimate
MIN_SPREAD = 0.01  # floor on a neutral spread (D units), so a tight reference cannot blow an estimate up


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, 68, 2) points -> (points in the face frame (B, 68, 2), inter-ocular distance (B,))."""
    left = points[:, [36, 39]].mean(1)  # image-left eye's corner midpoint
    right = points[:, [42, 45]].mean(1)
    axis = right - left
    dist = np.linalg.norm(axis, axis=-1)
    safe = np.where(dist > MIN_EYE_DISTANCE, dist, 1.0)
    x_axis = axis / safe[:, None]
    y_axis = np.stack([-x_axis[:, 1], x_axis[:, 0]], -1)  # x rotated +90 deg: down the face (image y down)
    rel = points - points[:, [36, 39, 42, 45]].mean(1, keepdims=True)
    frame = np.stack([(rel * x_axis[:, None]).sum(-1), (rel * y_axis[:, None]).sum(-1)], -1)
    return frame / safe[:, None, None], dist


def _lid_offset(y: np.ndarray, corners: list[int], lid: list[int]) -> np.ndarray:
    """Mean y of `lid` points minus the mean y of their eye's two `corners` (the corner line at the eye's middle)."""
    return y[:, lid].mean(1) - y[:, corners].mean(1)


def raw_measures(landmarks_68) -> tuple[np.ndarray, np.ndarray]:
    """(B, 68, 2) landmarks in any consistent unit (crop fractions, pixels) -> ((B, len(MEASURES)) raw
    measures in D units, (B,) bool: the landmarks give a face frame). Rows without one are NaN."""
    points = np.asarray(landmarks_68, dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (68, 2):
        raise ValueError(f"landmarks of shape {points.shape}: expected (B, 68, 2) or (68, 2) iBUG-68 points")
    frame, dist = _face_frame(points)
    x, y = frame[..., 0], frame[..., 1]
    inner_lip_gap = y[:, [65, 66, 67]].mean(1) - y[:, [61, 62, 63]].mean(1)
    eyes = [([36, 39], [37, 38], [40, 41]), ([42, 45], [43, 44], [46, 47])]
    columns = {
        "inner_brow_height": -y[:, [21, 22]].mean(1),
        "outer_brow_height": -y[:, [17, 26]].mean(1),
        "brow_height": -y[:, 17:27].mean(1),
        "inner_brow_gap": x[:, 22] - x[:, 21],
        "upper_lid_height": -np.mean([_lid_offset(y, c, up) for c, up, _ in eyes], 0),
        "lower_lid_depth": np.mean([_lid_offset(y, c, low) for c, _, low in eyes], 0),
        "nostril_depth": y[:, 31:36].mean(1),
        "lip_corner_rise": _lip_corner_rise(y, inner_lip_gap),
        "mouth_width": x[:, 54] - x[:, 48],
        "inner_lip_gap": inner_lip_gap,
        "chin_depth": y[:, 8],
    }
    raw = np.stack([columns[name] for name in MEASURES], -1)
    valid = np.isfinite(points).all((1, 2)) & (dist > MIN_EYE_DISTANCE)
    raw[~valid] = np.nan
    return raw, valid


def _lip_corner_rise(y: np.ndarray, inner_lip_gap: np.ndarray) -> np.ndarray:
    """Height of the lip corners (48, 54) above the middle of the lips as if closed, in D units (y down).

    The middle is halfway between the outer upper-lip centre (51) and the outer lower-lip centre (57)
    raised by the inner-lip gap: opening the mouth (AU25, AU26) lowers 57 but leaves the corners where
    they are, so without that correction every open mouth would read as raised corners (on mini's
    training split the uncorrected measure told AU15 from the rest at ROC AUC 0.83 only because sad
    mouths are closed). Against the lips, not the eye line: the corners' depth below the eyes differs
    from face to face and with head pitch far more than a smile moves them."""
    middle = (y[:, 51] + y[:, 57] - inner_lip_gap) / 2
    return middle - y[:, [48, 54]].mean(1)


@dataclass(frozen=True)
class NeutralReference:
    """Mean and spread of each raw measure (`MEASURES`) over neutral faces."""

    mean: np.ndarray  # (len(MEASURES),) D units
    spread: np.ndarray  # (len(MEASURES),) D units, at least MIN_SPREAD
    count: int  # neutral frames the mean was fitted on

    @classmethod
    def fit(cls, neutral_landmarks) -> NeutralReference:
        """From (N, 68, 2) landmarks of neutral faces (frames without a face frame are left out)."""
        raw, valid = raw_measures(neutral_landmarks)
        raw = raw[valid]
        if len(raw) < 2:
            raise ValueError(f"{len(raw)} usable neutral faces: a population reference needs at least 2")
        return cls(raw.mean(0), np.maximum(raw.std(0, ddof=1), MIN_SPREAD), len(raw))

    def for_identity(self, neutral_landmarks) -> NeutralReference:
        """This reference's spread around one person's own neutral mean (any number of their neutral
        frames, one is enough): their face's proportions no longer read as AUs."""
        raw, valid = raw_measures(neutral_landmarks)
        if not valid.any():
            raise ValueError("no usable neutral frame for this identity")
        return NeutralReference(raw[valid].mean(0), self.spread, int(valid.sum()))

    def measure_z(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.mean) / self.spread


@dataclass(frozen=True)
class AUEstimates:
    """Geometric AU intensities of B frames: (B, len(GEOMETRIC_AUS)), in neutral spreads (0 = neutral,
    positive = the AU's way); NaN where `valid` is False (no face, or landmarks that give no face frame)."""

    intensities: np.ndarray
    valid: np.ndarray  # (B,) bool
    names: tuple[str, ...] = GEOMETRIC_AUS

    def __len__(self) -> int:
        return len(self.valid)

    def as_dict(self, i: int) -> dict[str, float]:
        """{'AU1': ..., 'AU12': ...} for frame i (NaN values when it has no face)."""
        return {name: float(v) for name, v in zip(self.names, self.intensities[i])}

    def top(self, i: int, k: int = 3, threshold: float = 0.0) -> list[tuple[str, float]]:
        """Frame i's k strongest AUs above `threshold`, strongest first; [] for a frame without a face."""
        if not self.valid[i]:
            return []
        order = np.argsort(-self.intensities[i], kind="stable")
        return [(self.names[j], float(self.intensities[i, j])) for j in order[:k] if self.intensities[i, j] > threshold]


def geometric_aus(landmarks_68, reference: NeutralReference, face_found: Sequence[bool] | np.ndarray | None = None
                  ) -> AUEstimates:
    """AU intensities of (B, 68, 2) (or one (68, 2)) landmarks against a neutral reference.

    `face_found` (B,): the detector's flags (`MediaFeatures.face_found`); a frame without a face gets NaN
    even though the expert placed landmarks on the centre square (it always does)."""
    raw, valid = raw_measures(landmarks_68)
    if face_found is not None:
        found = np.asarray(face_found, dtype=bool).reshape(-1)
        if len(found) != len(valid):
            raise ValueError(f"{len(found)} face_found flags for {len(valid)} frames")
        valid = valid & found
    z = reference.measure_z(raw)
    column = {name: j for j, name in enumerate(MEASURES)}
    out = np.stack([np.mean([sign * z[:, column[m]] for m, sign in AU_MEASURES[int(name[2:])]], 0)
                    for name in GEOMETRIC_AUS], -1)
    out[~valid] = np.nan
    return AUEstimates(out, valid)


def au_summary(estimates: AUEstimates, i: int, k: int = 3, threshold: float = 1.0) -> str:
    """'AU12 lip corner puller 3.1, AU25 lips part 1.4' for frame i; 'no face' or 'none above T'."""
    if not estimates.valid[i]:
        return "no face (no AU estimate)"
    top = estimates.top(i, k, threshold)
    if not top:
        return f"none above {threshold:g}"
    return ", ".join(f"{AU_PHRASES[name]} {value:.1f}" for name, value in top)
