"""Labels, answer parsing and Acc/UAR/WAR (checked against scikit-learn on random cases)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

from emo_llama.data import BASIC7, UnknownLabelError, canonical_label, compute_metrics, parse_answer
from emo_llama.data.labels import CANONICAL, MAFW_CLASSES, canonical_compound
from emo_llama.data.metrics import format_report


@pytest.mark.parametrize("raw, want", [("Happy", "happiness"), ("happiness", "happiness"), ("ANGRY", "anger"),
                                       ("Sad", "sadness"), ("Surprised", "surprise"), ("contempt", "contempt"),
                                       (" Neutral ", "neutral"), ("helplessness", "helplessness")])
def test_canonical_label(raw, want):
    assert canonical_label(raw) == want


def test_unknown_label_is_named():
    with pytest.raises(UnknownLabelError, match="'bored'"):
        canonical_label("bored")
    assert canonical_compound("sadness_Surprised") == "sadness_surprise"


@pytest.mark.parametrize("answer, want", [
    ("My choice is: happiness", "happiness"),
    ("my choice is - Happy.", "happiness"),
    ("MY CHOICE IS: **Angry**", "anger"),
    ("The person looks joyful and relaxed.", "happiness"),
    ("I think this face is not happy; it is sad.", "sadness"),  # negated mention skipped
    ("She isn't angry, she is surprised", "surprise"),
    ("Fearful!", "fear"),
    ("disgusted", "disgust"),
    ("Sure. The expression could be neutral. My choice is: surprise", "surprise"),  # the choice wins
    ("My choice is: bored. Maybe sadness", "sadness"),  # unknown after the marker: fall back to the text
])
def test_parse_answer(answer, want):
    assert parse_answer(answer, BASIC7) == want


@pytest.mark.parametrize("answer", ["", "   ", None, "I cannot tell.", "My choice is: bored", "contempt"])
def test_unparseable_answers(answer):
    assert parse_answer(answer, BASIC7) is None  # contempt is not a class of BASIC7


def test_parse_answer_respects_class_list_and_dataset_spelling():
    assert parse_answer("contemptuous", CANONICAL) == "contempt"
    assert parse_answer("happy", ("Happy", "Sad")) == "Happy"  # returns the caller's spelling
    assert parse_answer("My choice is: anxious", MAFW_CLASSES) == "anxiety"


def test_metrics_match_sklearn_on_random_cases():
    rng = np.random.default_rng(0)
    classes = list(BASIC7)
    for _ in range(50):
        n = int(rng.integers(5, 60))
        k = int(rng.integers(2, 8))
        present = classes[:k]
        y_true = list(rng.choice(present, n))
        y_pred = [str(p) if rng.random() > 0.1 else None for p in rng.choice(present, n)]
        m = compute_metrics(y_true, y_pred, classes)
        pred_for_sk = [p if p is not None else "<unparseable>" for p in y_pred]
        assert m["acc"] == pytest.approx(accuracy_score(y_true, pred_for_sk))
        assert m["war"] == m["acc"]
        with warnings.catch_warnings():  # sklearn warns about the never-true "<unparseable>" class
            warnings.simplefilter("ignore")
            sk_uar = balanced_accuracy_score(y_true, pred_for_sk)
        assert m["uar"] == pytest.approx(sk_uar)
        sk_cm = confusion_matrix(y_true, pred_for_sk, labels=classes)
        assert (m["confusion"] == sk_cm).all()
        assert m["unparseable"] == sum(p is None for p in y_pred)


def test_unparseable_reported_with_examples():
    m = compute_metrics(["anger", "fear", "fear"], ["anger", None, "fear"], BASIC7,
                        raw_answers=["angry", "no idea", "fear"])
    assert m["unparseable"] == 1 and m["unparseable_examples"] == ["no idea"]
    assert m["per_class_recall"]["fear"] == 0.5 and m["uar"] == pytest.approx(0.75)
    assert "unparseable 1" in format_report(m)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="not in classes"):
        compute_metrics(["bored"], ["anger"], BASIC7)
    with pytest.raises(ValueError, match="1 labels but y_pred has 2"):
        compute_metrics(["anger"], ["anger", "fear"], BASIC7)


def test_a_capped_split_is_a_seeded_stratified_draw_not_the_first_files():
    from collections import Counter

    from emo_llama.data.sampling import stratified_subset

    # A list sorted by stratum, as loaders' lists often are (mini: by identity; AffectNet: the CSV's order).
    strata = [("happiness", "image")] * 60 + [("sadness", "image")] * 30 + [("sadness", "video")] * 10
    kept = stratified_subset(strata, 20, seed=0)
    assert len(kept) == 20 == len(set(kept)) and kept == sorted(kept)
    assert Counter(strata[i] for i in kept) == {("happiness", "image"): 12, ("sadness", "image"): 6,
                                                ("sadness", "video"): 2}
    assert kept != list(range(20))
    assert stratified_subset(strata, 20, seed=0) == kept and stratified_subset(strata, 20, seed=1) != kept
    labels = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    uneven = stratified_subset(labels, 5, seed=0)  # quotas 2.5 / 1.5 / 1.0: the half goes to "a", seen first
    assert Counter(labels[i] for i in uneven) == {"a": 3, "b": 1, "c": 1}
    assert stratified_subset(strata, 0, seed=0) == stratified_subset(strata, 500, seed=0) == list(range(100))


def test_run_limits_draw_by_label_and_kind_and_say_so():
    from emo_llama.data.splits import limit_notes, load_splits
    from emo_llama.train import TrainConfig

    cfg = TrainConfig(dataset="synthetic", stack="tiny", train_limit=9, eval_limit=6, limit_seed=2)
    splits = load_splits(cfg)
    classes, train, test = splits.classes, splits.train, splits.test
    assert len(train) == 9 and len(test) == 6
    assert sorted(s.label for s in test) == sorted(list(classes) * 2)  # 2 per class, whatever the list order
    notes = limit_notes(cfg, len(train), len(test))
    assert notes["test"] == {"samples": 6, "limit": 6,
                             "draw": "seeded stratified by label and media kind (limit_seed 2)"}
    assert limit_notes(TrainConfig(), 10, 5)["train"]["draw"] == "all"
