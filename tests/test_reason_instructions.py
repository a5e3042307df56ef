"""Reason instructions ("what is the emotion and why?", issue 25): answers that the offline scores read back, training
items only for samples whose AUs are known, their sampling weights, the model's reasons scored, mini's AU coding."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fixtures.launch import TINY

from emo_llama.config import TrainConfig
from emo_llama.data import Sample
from emo_llama.data.aus import VARIANTS
from emo_llama.data.labels import CANONICAL, MINI_CLASSES
from emo_llama.data.mini.build import load_mini
from emo_llama.data.splits import SYNTHETIC_CLASSES, synthetic_splits
from emo_llama.data.text.merr import parse_merr_sample
from emo_llama.data.text.reasons import (
    REASON_QUESTIONS,
    VOICE_REQUEST,
    merr_reason_instruction,
    reason_answer,
    reason_instruction,
    reason_question,
)
from emo_llama.evaluate.reasons import parse_au_coding, reason_aus, reason_label, score_reasons
from emo_llama.model import EmoLlama, EmoLlamaConfig
from emo_llama.model.answers import Answer
from emo_llama.prompts import IMAGE_PLACEHOLDER, class_list_text
from emo_llama.train.items import INSTRUCTION_TYPES, build_items, item_weights

VOICE = "a high, fast and loud voice"


# ----- answers ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("label, aus", [(label, aus) for label, variants in VARIANTS.items() for aus in variants])
@pytest.mark.parametrize("voice", [None, VOICE, "An angry, shaking voice."])
def test_reason_answer_reads_back_as_its_label_and_aus(label, aus, voice):
    truth = {f"AU{a}" for a in aus}
    for given in (aus, "+".join(map(str, aus))):  # AU numbers, or the coding string Sample.aus holds
        answer = reason_answer(given, label, voice)
        # read among every class (VARIANTS has contempt, mini's classes do not); an emotion word in the voice is not
        # the conclusion
        assert reason_label(answer, CANONICAL) == label
        assert reason_aus(answer) == truth
        assert answer.endswith(f"So the emotion is {label}.")
        assert ("the speaker has" in answer) == (voice is not None)
    if not aus:
        assert answer.startswith("The face is relaxed, no Action Unit is active")


def test_reason_answer_reads_clues_in_caption_order_with_sides():
    assert reason_answer((6, 12), "happiness", VOICE) == (
        "The lip corners rise (AU12) and the cheeks lift (AU6); the speaker has a high, fast and loud voice. "
        "So the emotion is happiness.")
    casme = reason_answer("4+L10+R12+18", "disgust")  # CASME II's coding: sides, an AU without a clause
    assert "the upper lip rises on the left side (AU10)" in casme and "on the right side (AU12)" in casme
    assert reason_aus(casme) == {"AU4", "AU10", "AU12", "AU18"} and reason_label(casme, MINI_CLASSES) == "disgust"


# ----- records ---------------------------------------------------------------------------------------------------

CODED = Sample(id="c1", media=Path("/x/c1.mp4"), label="happiness", split="train", kind="video", aus="6+12",
               voice=VOICE, dataset="mini")
NEUTRAL = Sample(id="n1", media=Path("/x/n1.jpg"), label="neutral", split="train", aus="", dataset="mini")
UNCODED = Sample(id="u1", media=Path("/x/u1.jpg"), label="sadness", split="train", dataset="mini")


def test_reason_instruction_record():
    rec = reason_instruction(CODED, MINI_CLASSES, phrasing=0)
    question, answer = (turn["value"] for turn in rec["conversations"])
    assert question == f"{IMAGE_PLACEHOLDER}\n" + REASON_QUESTIONS[0].format(
        media="video", voice=VOICE_REQUEST, classes=class_list_text(MINI_CLASSES))
    assert answer == reason_answer("6+12", "happiness", VOICE)
    assert rec["video"] == "/x/c1.mp4" and rec["task"] == "reason" and rec["label"] == "happiness"
    silent = reason_instruction(CODED, MINI_CLASSES, phrasing=1, use_voice=False)["conversations"]
    assert VOICE_REQUEST not in silent[0]["value"] and "speaker" not in silent[1]["value"]
    neutral = reason_instruction(NEUTRAL, MINI_CLASSES, rng=random.Random(0))
    assert "no Action Unit is active" in neutral["conversations"][1]["value"] and "image" in neutral
    with pytest.raises(ValueError, match="no AU coding"):  # AUs are never invented
        reason_instruction(UNCODED, MINI_CLASSES)


def test_merr_reason_instruction_answers_with_the_annotated_reason():
    reason = "Her eyes are widened (AU5) and her voice is excited: surprise."
    record = parse_merr_sample("sample_1", {"pseu_emotion": "surprise", "AU_list": ["AU05"],
                                            "audio_prior_list": "an excited voice", "smp_reason_caption": reason})
    rec = merr_reason_instruction(record, "/clips/sample_1.mp4", MINI_CLASSES)
    assert rec["conversations"][1]["value"] == reason and rec["video"] == "/clips/sample_1.mp4"
    assert VOICE_REQUEST in rec["conversations"][0]["value"] and rec["label"] == "surprise"
    with pytest.raises(ValueError, match="no reason"):
        merr_reason_instruction(replace(record, reason=None), "/clips/sample_1.mp4", MINI_CLASSES)


# ----- training items and their weights -----------------------------------------------------------------------------

SAMPLES = [CODED, NEUTRAL, UNCODED, replace(CODED, id="c2", media=Path("/x/c2.jpg"), kind="image", voice=None,
                                                    label="sadness", aus="1+4+15")]


def test_build_items_adds_reasons_only_for_samples_with_au_coding():
    assert "reason" in INSTRUCTION_TYPES
    cfg = TrainConfig(instruction_types=("category", "reason"), use_audio=True)
    items = build_items(SAMPLES, MINI_CLASSES, cfg, agr_of=lambda s: "")
    reasons = [i for i in items if i.task == "reason"]
    assert [i.media for i in reasons] == ["/x/c1.mp4", "/x/n1.jpg", "/x/c2.jpg"]  # u1 has no AU coding: no reason
    assert [i.label for i in reasons] == ["happiness", "neutral", "sadness"]
    assert reasons[0].turns[0][1] == reason_answer("6+12", "happiness", VOICE)  # the voice of the sample that has one
    assert reasons[2].turns[0][1] == reason_answer("1+4+15", "sadness")
    # a model that hears no audio is not taught to describe the voice
    deaf = build_items(SAMPLES, MINI_CLASSES, replace(cfg, use_audio=False), agr_of=lambda s: "")
    question, answer = next(i.turns[0] for i in deaf if i.task == "reason")
    assert answer == reason_answer("6+12", "happiness") and VOICE_REQUEST not in question
    assert VOICE_REQUEST in reasons[0].turns[0][0]
    # reasons draw their phrasings apart: the category items are those of a run without reasons
    alone = build_items(SAMPLES, MINI_CLASSES, replace(cfg, instruction_types=("category",)), agr_of=lambda s: "")
    assert [i for i in items if i.task == "category"] == alone


def test_item_weights_give_reasons_the_non_category_share_with_conversations():
    cfg = TrainConfig(instruction_types=("category", "conversation", "reason"))
    items = build_items(SAMPLES, MINI_CLASSES, cfg, agr_of=lambda s: "")
    weights = item_weights(items, resample=True, conversation_share=0.3)
    tasks = [i.task for i in items]
    assert tasks.count("reason") == 3 and tasks.count("conversation") == 4 and tasks.count("category") == 4
    share = {t: float(sum(w for w, task in zip(weights, tasks) if task == t)) for t in set(tasks)}
    assert float(weights.sum()) == pytest.approx(1.0)
    assert share["category"] == pytest.approx(0.7)
    assert share["reason"] == pytest.approx(0.3 * 3 / 7) and share["conversation"] == pytest.approx(0.3 * 4 / 7)


# ----- scoring a model's reasons -----------------------------------------------------------------------------------

def _coded_test_samples():
    """Six synthetic test samples, four of them with AU coding (one with a voice), and their features."""
    splits = synthetic_splits(TrainConfig(), n_train=0, n_test=6)
    test = splits.test_sets["synthetic"]
    coded = [replace(s, aus="6+12" if s.label == "happiness" else "1+15") for s in test[:4]]
    coded[1] = replace(coded[1], voice=VOICE)
    return coded + test[4:], splits.bank


class EchoTruth:
    """Answers each question with the true reason of its sample (found by the features it is given)."""

    def __init__(self, truth_of: dict[int, str]):
        self.truth_of, self.questions = truth_of, []

    def eval(self):
        return self

    def generate(self, media, questions, **kwargs):
        self.questions += questions
        return [Answer(self.truth_of[id(m)]) for m in media]


def test_score_reasons_asks_the_coded_samples_and_scores_their_clues():
    samples, bank = _coded_test_samples()
    model = EchoTruth({id(bank[str(s.media)]): reason_answer(s.aus, s.label, s.voice) for s in samples[:4]})
    scores = score_reasons(model, bank, samples, SYNTHETIC_CLASSES, batch_size=3)
    assert scores["n"] == 4 and scores["skipped_without_aus"] == 2
    assert scores["label_accuracy"] == 1.0 and scores["clue_precision_micro"] == scores["clue_recall_micro"] == 1.0
    assert model.questions == [reason_question(s.kind, SYNTHETIC_CLASSES, 0, ask_voice=s.voice is not None)
                               for s in samples[:4]]
    assert VOICE_REQUEST in model.questions[1] and VOICE_REQUEST not in model.questions[0]
    model.questions = []
    score_reasons(model, bank, samples, SYNTHETIC_CLASSES, use_voice=False)  # a model without audio
    assert not any(VOICE_REQUEST in q for q in model.questions)
    assert scores["answers"][0] == {"id": samples[0].id, "label": samples[0].label,
                                    "aus": sorted(parse_au_coding(samples[0].aus), key=lambda c: int(c[2:])),
                                    "reason": reason_answer(samples[0].aus, samples[0].label)}
    with pytest.raises(ValueError, match="no reasons to score"):
        score_reasons(model, bank, samples[4:], SYNTHETIC_CLASSES)


def test_score_reasons_runs_the_tiny_stack():
    torch.manual_seed(0)
    model = EmoLlama(EmoLlamaConfig(stack="tiny", stack_options={"encoders": False}, lora_r=4, **TINY))
    samples, bank = _coded_test_samples()
    scores = score_reasons(model, bank, samples, SYNTHETIC_CLASSES, batch_size=3, max_new_tokens=6)
    assert scores["n"] == 4 and scores["skipped_without_aus"] == 2 and len(scores["predicted"]) == 4
    assert {"label_accuracy", "unreadable_labels", "clue_precision_micro", "clue_recall_micro", "per_au"} <= set(scores)
    assert [a["id"] for a in scores["answers"]] == [s.id for s in samples[:4]]
    assert all(isinstance(a["reason"], str) for a in scores["answers"])
    assert scores["per_au"]["AU12"]["present"] + scores["per_au"]["AU15"]["present"] == 4


# ----- mini's AU coding ---------------------------------------------------------------------------------------------

def test_load_mini_sets_each_samples_au_coding():
    samples = load_mini(split="test").samples  # the cached build (built on first use)
    assert {s.kind for s in samples} == {"image", "video"}
    for s in samples:
        assert s.aus is not None, s.id
        aus = tuple(sorted(int(c[2:]) for c in parse_au_coding(s.aus)))
        assert aus in VARIANTS[s.label], (s.id, s.label, s.aus)
    assert all(s.aus == "" for s in samples if s.label == "neutral")
    for s in samples:  # every test sample's reason, with its clip's voice, reads back as its label and AUs
        answer = reason_instruction(s, MINI_CLASSES, phrasing=0)["conversations"][1]["value"]
        assert reason_label(answer, MINI_CLASSES) == s.label and reason_aus(answer) == set(parse_au_coding(s.aus))
        assert ("the speaker has" in answer) == bool(s.voice)
