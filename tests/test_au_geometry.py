"""Geometric Action Units (`emo_llama.expert.au_geometry`): known landmark moves give the AU they should.

The base shape is a real one: the mean of the offline stack's (face-api's) 68 landmarks over mini v4's
62 neutral training images, in crop fractions. The neutral reference is that shape jittered, so a move
of a tenth of the inter-ocular distance D is many neutral spreads.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from emo_llama.data.aus import AU_NAMES as CAPTION_AU_NAMES
from emo_llama.data.mini.warp import AU_MOVES, au_displacements
from emo_llama.expert.au_geometry import (
    AU_PHRASES,
    GEOMETRIC_AUS,
    NeutralReference,
    au_phrase,
    au_summary,
    geometric_aus,
)

NEUTRAL_68 = np.array([
    (0.235, 0.425), (0.242, 0.494), (0.258, 0.559), (0.273, 0.617), (0.300, 0.679), (0.337, 0.728),
    (0.379, 0.760), (0.432, 0.790), (0.513, 0.808), (0.594, 0.784), (0.649, 0.750), (0.693, 0.714),
    (0.729, 0.661), (0.752, 0.597), (0.764, 0.537), (0.774, 0.471), (0.777, 0.399), (0.286, 0.366),
    (0.315, 0.346), (0.355, 0.339), (0.393, 0.342), (0.426, 0.351), (0.559, 0.345), (0.592, 0.332),
    (0.630, 0.326), (0.672, 0.329), (0.707, 0.347), (0.495, 0.424), (0.496, 0.472), (0.497, 0.517),
    (0.498, 0.558), (0.460, 0.584), (0.478, 0.589), (0.502, 0.594), (0.525, 0.587), (0.544, 0.580),
    (0.341, 0.419), (0.363, 0.410), (0.397, 0.407), (0.428, 0.421), (0.401, 0.433), (0.366, 0.434),
    (0.567, 0.415), (0.596, 0.398), (0.630, 0.397), (0.655, 0.405), (0.630, 0.422), (0.594, 0.424),
    (0.418, 0.671), (0.448, 0.656), (0.484, 0.641), (0.504, 0.645), (0.523, 0.640), (0.562, 0.651),
    (0.595, 0.664), (0.564, 0.687), (0.535, 0.699), (0.506, 0.704), (0.478, 0.702), (0.449, 0.692),
    (0.425, 0.671), (0.478, 0.664), (0.505, 0.663), (0.532, 0.662), (0.588, 0.664), (0.531, 0.670),
    (0.505, 0.673), (0.479, 0.672),
])
D = float(np.linalg.norm(NEUTRAL_68[[42, 45]].mean(0) - NEUTRAL_68[[36, 39]].mean(0)))  # face-frame unit
UP = np.array([0.0, -1.0])  # the base shape is upright: image "up" is the face's up


@pytest.fixture(scope="module")
def reference() -> NeutralReference:
    rng = np.random.default_rng(0)
    return NeutralReference.fit(NEUTRAL_68 + rng.normal(0.0, 0.01 * D, (200, 68, 2)))


def estimate(reference: NeutralReference, shape: np.ndarray) -> dict[str, float]:
    return geometric_aus(shape, reference).as_dict(0)


def moved(points: list[int], delta_in_d: tuple[float, float]) -> np.ndarray:
    shape = NEUTRAL_68.copy()
    shape[points] += np.asarray(delta_in_d) * D
    return shape


def test_neutral_base_shape_reads_near_zero(reference):
    values = estimate(reference, NEUTRAL_68)
    assert all(abs(v) < 0.5 for v in values.values()), values


def test_raising_lip_corners_raises_au12_not_au15(reference):
    values = estimate(reference, moved([48, 54, 60, 64], (0.0, -0.1)))
    assert values["AU12"] > 1.5
    assert values["AU15"] < -1.5


def test_lowering_lip_corners_raises_au15_not_au12(reference):
    values = estimate(reference, moved([48, 54, 60, 64], (0.0, 0.1)))
    assert values["AU15"] > 3.0
    assert values["AU12"] < -1.0


def test_lowering_the_inner_brows_raises_au4_and_lowers_au1(reference):
    values = estimate(reference, moved([20, 21, 22, 23], (0.0, 0.1)))
    assert values["AU4"] > 1.0
    assert values["AU1"] < -3.0


def test_drawing_the_brows_together_raises_au4(reference):
    shape = moved([21], (0.06, 0.0))
    shape[22] -= np.array([0.06, 0.0]) * D
    assert estimate(reference, shape)["AU4"] > 3.0


def test_opening_the_jaw_raises_au26_and_au25(reference):
    jaw_and_lower_lip = [5, 6, 7, 8, 9, 10, 11, 55, 56, 57, 58, 59, 65, 66, 67]
    values = estimate(reference, moved(jaw_and_lower_lip, (0.0, 0.3)))
    assert values["AU25"] > 3.0
    assert values["AU26"] > 3.0
    assert abs(values["AU12"]) < 1.0 and abs(values["AU15"]) < 1.0  # an open mouth is not a smile


def test_a_lowered_chin_raises_au26_not_au25(reference):
    values = estimate(reference, moved([6, 7, 8, 9, 10], (0.0, 0.2)))  # lips still closed
    assert values["AU26"] > 3.0
    assert abs(values["AU25"]) < 1.0


def test_parted_lips_without_a_jaw_drop_raise_au25_more_than_au26(reference):
    values = estimate(reference, moved([65, 66, 67], (0.0, 0.1)))
    assert values["AU25"] > 3.0
    assert values["AU25"] > values["AU26"]


@pytest.mark.parametrize("au", GEOMETRIC_AUS)
def test_minis_own_warp_of_each_au_raises_its_estimate(reference, au):
    """mini's AU tables (`data.mini.warp.AU_MOVES`) are the construction the benchmark validates against."""
    number = int(au[2:])
    assert number in AU_MOVES
    shape = NEUTRAL_68 + au_displacements(NEUTRAL_68, {number: 1.0})
    assert estimate(reference, shape)[au] > 1.0


def rotate_scale_shift(shape: np.ndarray, degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = math.radians(degrees)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return scale * shape @ rotation.T + np.asarray(shift)


def test_scale_and_in_plane_rotation_leave_estimates_unchanged(reference):
    expressive = NEUTRAL_68 + au_displacements(NEUTRAL_68, {1: 0.7, 12: 1.0, 25: 0.8})
    base = geometric_aus(expressive, reference).intensities
    for degrees, scale, shift in ((25.0, 1.0, (0.0, 0.0)), (-40.0, 224.0, (13.0, -7.0)), (170.0, 0.3, (0.5, 0.5))):
        turned = geometric_aus(rotate_scale_shift(expressive, degrees, scale, shift), reference).intensities
        np.testing.assert_allclose(turned, base, atol=1e-9)
    assert np.abs(base).max() > 1.0  # the shape is expressive, so equality is not 0 == 0


def test_a_frame_without_a_face_gives_nan_and_a_flag_never_a_guess(reference):
    batch = np.stack([NEUTRAL_68, moved([48, 54], (0.0, -0.1)), NEUTRAL_68])
    batch[2, 30] = np.nan  # the expert gave no usable point
    estimates = geometric_aus(batch, reference, face_found=[False, True, True])
    assert estimates.valid.tolist() == [False, True, False]
    assert np.isnan(estimates.intensities[[0, 2]]).all()
    assert np.isfinite(estimates.intensities[1]).all()
    assert estimates.top(0) == [] and estimates.top(2) == []
    assert au_summary(estimates, 0).startswith("no face")
    degenerate = geometric_aus(np.full((68, 2), 0.5), reference)  # every point in one place: no face frame
    assert not degenerate.valid[0] and np.isnan(degenerate.intensities).all()


def test_face_found_must_match_the_frames(reference):
    with pytest.raises(ValueError, match="face_found"):
        geometric_aus(np.stack([NEUTRAL_68, NEUTRAL_68]), reference, face_found=[True])


def test_a_per_identity_neutral_removes_the_faces_own_proportions(reference):
    long_chin = moved([7, 8, 9], (0.0, 0.25))  # this person's jaw at rest, not a jaw drop
    population = estimate(reference, long_chin)["AU26"]
    own = estimate(reference.for_identity(long_chin[None]), long_chin)["AU26"]
    assert population > 2.0
    assert abs(own) < 1e-9


def test_top_aus_and_phrases():
    assert AU_PHRASES["AU12"] == "AU12 lip corner puller" == au_phrase(12)
    assert au_phrase("AU26") == "AU26 jaw drop"
    assert CAPTION_AU_NAMES[15] == "lip corner depressor"  # one table, read by mini's captions too


def test_top_lists_the_strongest_aus_first(reference):
    smile = NEUTRAL_68 + au_displacements(NEUTRAL_68, {12: 1.0, 25: 1.0})
    estimates = geometric_aus(smile, reference)
    top = [name for name, _ in estimates.top(0, k=2)]
    assert set(top) == {"AU12", "AU25"}
    values = [v for _, v in estimates.top(0, k=5)]
    assert values == sorted(values, reverse=True)
    assert "AU12 lip corner puller" in au_summary(estimates, 0)
