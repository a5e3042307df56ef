"""benchmarks/probe_frozen_features.py on synthetic frozen features: no media, no encoders, seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.scripts import load_script

from emo_llama.features.synthetic import synthetic_features

CLASSES = ("happiness", "sadness", "surprise")


@pytest.fixture(scope="module")
def probe():
    return load_script("benchmarks/probe_frozen_features.py")


def labelled(probe, n: int, offset: int, frames: int = 1):
    """{feature name: [(rows, label)]} of n synthetic media: their vision tokens and landmarks carry the
    class, their face tokens are noise."""
    return probe.feature_rows([(synthetic_features(i % 3, offset + i, frames=frames), CLASSES[i % 3])
                               for i in range(n)])


def test_every_feature_gives_one_row_per_frame(probe):
    media = synthetic_features(0, 0, frames=3)
    for name, fn in probe.FEATURES.items():
        rows = fn(media)
        assert rows.ndim == 2 and rows.shape[0] == 3 and rows.shape[1] > 0, name
        assert bool(torch.isfinite(rows).all()), name
    assert probe.FEATURES[probe.FER](media).shape[1] == 7


def test_fer_answer_is_the_top_class_among_the_probed_ones(probe):
    fer_classes = probe.fer_net().classes  # anger, disgust, fear, happiness, sadness, surprise, neutral
    log_probs = torch.tensor([[0.0, -9, -9, -1, -9, -9, -3], [0.0, -9, -9, -4, -9, -9, -1]]).log_softmax(-1)
    assert fer_classes[0] == "anger"
    assert probe.fer_answer(log_probs, fer_classes) == "anger"
    assert probe.fer_answer(log_probs, ("happiness", "neutral")) == "neutral"  # frame means -2.5 vs -2; frame 0 alone: happiness


def test_probes_read_what_the_features_carry_and_score_the_real_set(probe):
    train, test = labelled(probe, 60, 0, frames=2), labelled(probe, 30, 1000)
    real = labelled(probe, 9, 2000)  # the "real photos": unseen media, one frame each
    results = {r["name"]: r for r in probe.probe_table(train, test, real, CLASSES, C=0.1, vision_dims=32)}
    vision = results["vision tokens of the face crop (mean-pooled)"]
    assert vision["uar"] == 1.0 and vision["real_right"] == 9
    assert results["face tokens (mean-pooled)"]["uar"] < 0.7  # noise: near chance (1/3)
    zeroed = [r for name, r in results.items() if "zeroed" in name]
    assert len(zeroed) == len(probe.VISION_ZEROED)
    assert all(r["uar"] > 0.8 for r in zeroed)  # the landmarks still carry the class


def test_probe_is_deterministic(probe):
    train = labelled(probe, 30, 0)["landmarks (normalised 68 points)"]
    x, y = probe.frame_rows(train, CLASSES)
    a, b = probe.Probe(x, y, C=0.1), probe.Probe(x, y, C=0.1)
    assert np.array_equal(a.model.coef_, b.model.coef_)


def test_zero_rows_zeroes_the_share_of_rows_in_the_columns_only(probe):
    x = np.ones((10, 6))
    out = probe.zero_rows(x, slice(-2, None), 0.8, seed=0)
    assert (out[:, :4] == 1).all()
    assert int((out[:, 4:] == 0).all(1).sum()) == 8 and int((out[:, 4:] == 1).all(1).sum()) == 2
    assert (x == 1).all()  # a copy
    assert not np.array_equal(out, probe.zero_rows(x, slice(-2, None), 0.8, seed=1))
