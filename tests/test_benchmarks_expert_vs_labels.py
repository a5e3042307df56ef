"""benchmarks/expert_vs_mini_labels.py: the smile table counts what it says, and the degradation is seeded and real."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.scripts import load_script

NAMES = ["neutral", "happiness", "sadness", "anger", "fear", "disgust", "surprise"]


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/expert_vs_mini_labels.py")


def _reading(happy: float, other: str = "neutral") -> list[float]:
    p = [0.0] * len(NAMES)
    p[NAMES.index("happiness")] = happy
    p[NAMES.index(other)] = 1.0 - happy
    return p


def test_smile_table_counts_smiles_read_on_other_labels_and_the_ambiguous_band(bench):
    labels = ["neutral", "neutral", "happiness", "happiness", "disgust"]
    probs = np.array([_reading(0.6), _reading(0.1), _reading(0.95), _reading(0.55), _reading(0.3, "disgust")])
    table = bench.smile_table(labels, probs, NAMES)
    # neutral: one face read as a smile (0.6 happiness against 0.4 neutral), inside the band; the other neither
    assert table["neutral"] == {"faces": 2, "read_as_smile": 1, "in_band": 1}
    # happiness: both read as smiles, only the 0.55 one in the band (0.95 is above it)
    assert table["happiness"] == {"faces": 2, "read_as_smile": 2, "in_band": 1}
    # disgust at 0.3 happiness: read as disgust, below the band
    assert table["disgust"] == {"faces": 1, "read_as_smile": 0, "in_band": 0}
    assert table["sadness"] == {"faces": 0, "read_as_smile": 0, "in_band": 0}


def test_degrade_keeps_the_shape_changes_the_pixels_and_repeats_with_the_seed(bench):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    first = bench.degrade(image, np.random.default_rng(0))
    again = bench.degrade(image, np.random.default_rng(0))
    other = bench.degrade(image, np.random.default_rng(5))
    assert first.shape == image.shape and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, image) and not np.array_equal(first, other)
