"""Offline scores of free-text reasons (label, named AUs, clue precision / recall), AU codings, the LLM judge."""

from __future__ import annotations

import json

import pytest

from emo_llama.data.labels import BASIC7, MER2023_WORDS
from emo_llama.evaluate.reasons import (
    JUDGE_PROMPT,
    JudgeReplyError,
    JudgeScore,
    LLMJudge,
    clue_scores,
    parse_au_coding,
    parse_judge_reply,
    reason_aus,
    reason_label,
)

KIT_REASON = "the lip corners rise (AU12) and the cheeks lift (AU6); the voice is high and fast: happiness"
# Emotion-LLaMA's fine-grained example (MERR's sample_00000047), as its documentation shows it.
MERR_REASON = ("In the video, a woman is conversing with a man. Her facial expressions, with eyes widened and mouth "
               "wide open, clearly show surprise. She amplifies this visual cue with an excited tone as she exclaims, "
               '"Oh my." This combination of voice and expression indicates that she is experiencing surprise, '
               "likely in response to unexpected news shared during the conversation.")
# Emotion-LLaMA's training target for its reason task ends with this sentence.
INFERRED = ("The brows are drawn together (AU4) and the lip corners are pulled down (AU15). "
            "Therefore, it is inferred that his emotional state is: sad")


@pytest.mark.parametrize("reason, basic, mer2023", [
    (KIT_REASON, "happiness", "happy"),
    (MERR_REASON, "surprise", "surprise"),
    (INFERRED, "sadness", "sad"),
    # A colon before the last sentence is not the conclusion: the spoken words name another emotion.
    ("He says: 'I'm happy to help.' His brows are lowered (AU4) and his voice is sharp, which shows anger.",
     "anger", "angry"),
    # The smile is a clue, not the label; inside the concluding clause the first-named class wins (among
    # MER2023's classes, which have no fear, happiness is the only class named).
    ("The smile (AU6+12) looks forced and the eyes are wide (AU5), so fear rather than happiness.", "fear", "happy"),
    ("Raised inner brows (AU1) and a trembling voice: she is worried, not angry.", None, "worried"),
    # The text after the last sentence's colon is the conclusion, even when its clause named another class first.
    ("The voice sounds happy but the eyes are wide (AU5) and the lips stretch (AU20): fear", "fear", "happy"),
    ("She looks fearful, her smile is tense.", "fear", None),
    ("The face shows little movement and the voice is flat.", None, None),
    (None, None, None),
])
def test_reason_label_reads_the_conclusion(reason, basic, mer2023):
    assert reason_label(reason, BASIC7) == basic
    assert reason_label(reason, MER2023_WORDS) == mer2023


@pytest.mark.parametrize("reason, aus", [
    (KIT_REASON, {"AU6", "AU12"}),
    ("AU 12 and AU06, the classic Duchenne smile (AU6+12)", {"AU6", "AU12"}),
    ("AUs 1, 2 and 26: surprise", {"AU1", "AU2", "AU26"}),
    ("a lip corner puller with a cheek raiser and a lip-corner depressor", {"AU6", "AU12", "AU15"}),
    ("AU1 is raised but AU12 is not", {"AU1", "AU12"}),  # "not" after a code reads no negation
    ("the brows lower (AU4), 3 seconds later the jaw drops", {"AU4", "AU26"}),  # "3" is not an AU
    ("AU12 and AU120, AU0", {"AU12"}),
    # Negated mentions name nothing.
    ("no AU4; the lip corners rise (AU12)", {"AU12"}),
    ("there is no AU4, but AU12 shows", {"AU12"}),
    ("without a brow lowerer, the cheeks lift (AU6)", {"AU6"}),
    ("neither AU4 nor AU9 is seen", set()),
    ("no AU4, AU9 or AU15", set()),
    ("AU15 is absent and AU9 not present", set()),
    ("AU12 present, AU4 absent", {"AU12"}),
    ("he doesn't show AU4 and the lip corners rise (AU12)", {"AU12"}),
    ("", set()),
])
def test_reason_aus_reads_codes_and_facs_names_and_skips_negations(reason, aus):
    assert reason_aus(reason) == aus


def test_reason_aus_reads_extra_phrases_when_given():
    reason = "The lip corners rise and the cheeks lift: happiness."
    assert reason_aus(reason) == set()  # plain paraphrases are not FACS names
    assert reason_aus(reason, phrases={"the lip corners rise": 12, "the cheeks lift": 6}) == {"AU6", "AU12"}


@pytest.mark.parametrize("coding, aus, sides", [
    ("4+L10+R12", {"AU4", "AU10", "AU12"}, {"AU10": "L", "AU12": "R"}),
    ("1+2+4", {"AU1", "AU2", "AU4"}, {}),
    ("L12+R12+4", {"AU4", "AU12"}, {}),  # both sides: bilateral
    ("R12+12", {"AU12"}, {}),
    ("12C+AU25", {"AU12", "AU25"}, {}),  # intensity letter dropped, "AU" prefix read
    ("4 + 7 + 43", {"AU4", "AU7", "AU43"}, {}),
    ("14R", {"AU14"}, {"AU14": "R"}),
    (4.0, {"AU4"}, {}),  # a spreadsheet cell
    ("", set(), {}),
])
def test_parse_au_coding(coding, aus, sides):
    parsed = parse_au_coding(coding)
    assert parsed == aus and parsed.sides == sides


@pytest.mark.parametrize("coding", ["4++10", "4+", "?", "4+X", "L12R"])
def test_parse_au_coding_rejects_unreadable_tokens(coding):
    with pytest.raises(ValueError, match="AU coding"):
        parse_au_coding(coding)


def test_clue_scores_on_a_hand_computed_example():
    reasons = [KIT_REASON,
               "The brows are drawn down (AU4) and the upper lids rise (AU5), no AU23; the voice is loud: anger",
               "The inner brows rise (AU1) and the lip corners rise (AU12): fear",
               "The face is still."]
    labels = ["happiness", "angry", "sadness", "neutral"]
    present = [(6, 12, 25), "4+5+7+23", ["AU1", "AU4", "AU15"], ()]
    scores = clue_scores(reasons, labels, present)
    # Named {6,12}, {4,5}, {1,12}, {}: 6 mentions, 5 of them present; 10 AUs present in all.
    assert scores["n"] == 4
    assert scores["label_accuracy"] == pytest.approx(2 / 4)  # fear is wrong, the last reason names no emotion
    assert scores["unreadable_labels"] == 1
    assert scores["predicted"] == ["happiness", "anger", "fear", None]
    assert scores["named"] == [["AU6", "AU12"], ["AU4", "AU5"], ["AU1", "AU12"], []]
    assert scores["clue_precision_micro"] == pytest.approx(5 / 6)
    assert scores["clue_recall_micro"] == pytest.approx(5 / 10)
    assert scores["clue_f1_micro"] == pytest.approx(0.625)
    # Per AU precision: AU1, 4, 5, 6 = 1, AU12 = 1/2 (named twice, there once) -> 4.5 / 5.
    assert scores["clue_precision_macro"] == pytest.approx(0.9)
    # Per AU recall: AU1, 5, 6, 12 = 1, AU4 = 1/2, AU7, 15, 23, 25 = 0 -> 4.5 / 9.
    assert scores["clue_recall_macro"] == pytest.approx(0.5)
    assert scores["per_au"]["AU12"] == {"named": 2, "present": 1, "hits": 1}
    assert scores["per_au"]["AU23"] == {"named": 0, "present": 1, "hits": 0}  # negated in the reason


def test_clue_scores_leave_undefined_ratios_undefined():
    scores = clue_scores(["a relaxed face: neutral"], ["neutral"], [()])
    assert scores["label_accuracy"] == 1.0
    assert scores["clue_precision_micro"] is None and scores["clue_recall_micro"] is None
    assert scores["clue_precision_macro"] is None and scores["clue_f1_micro"] is None
    with pytest.raises(ValueError, match="one entry per sample"):
        clue_scores(["x"], [], [()])


# --- the LLM judge, through a fake transport (tests never use the network) ----------------------------------------

def _chat_reply(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


class FakeTransport:
    def __init__(self, *replies: bytes):
        self.replies, self.calls = list(replies), []

    def __call__(self, url, headers, body, timeout_s):
        self.calls.append((url, dict(headers), json.loads(body), timeout_s))
        return self.replies.pop(0)


def test_judge_sends_the_prompt_and_reads_the_scores():
    transport = FakeTransport(_chat_reply("clue overlap: 7; label overlap: 6"))
    judge = LLMJudge("http://localhost:8000/v1/", "qwen2.5-7b-instruct", api_key="k-123", transport=transport)
    assert judge.score(KIT_REASON, MERR_REASON) == JudgeScore(7.0, 6.0)
    (url, headers, body, _), = transport.calls
    assert url == "http://localhost:8000/v1/chat/completions"
    assert headers["Authorization"] == "Bearer k-123"
    assert body["model"] == "qwen2.5-7b-instruct" and body["temperature"] == 0
    prompt = body["messages"][0]["content"]
    assert prompt == JUDGE_PROMPT.format(candidate=KIT_REASON, reference=MERR_REASON)
    assert KIT_REASON in prompt and MERR_REASON in prompt and "Clue overlap" in prompt


def test_judge_without_a_key_sends_no_authorization_and_averages_pairs():
    transport = FakeTransport(_chat_reply('{"clue_overlap": 8, "label_overlap": 10}'),
                              _chat_reply("Clue overlap: 4/10\nLabel overlap: 2 out of 10"))
    judge = LLMJudge("http://judge.local/v1/chat/completions", "m", transport=transport)
    result = judge.score_many(["a", "b"], ["ref a", "ref b"])
    assert result["clue_overlap"] == pytest.approx(6.0) and result["label_overlap"] == pytest.approx(6.0)
    assert result["scores"] == [JudgeScore(8.0, 10.0), JudgeScore(4.0, 2.0)]
    assert all("Authorization" not in headers for _, headers, _, _ in transport.calls)
    assert transport.calls[0][0] == "http://judge.local/v1/chat/completions"


@pytest.mark.parametrize("reply", ["I cannot compare these explanations.", "clue overlap: 12; label overlap: 3",
                                   "On a 0-10 scale: 7", "clue overlap: high; label overlap: low", ""])
def test_unreadable_judge_replies_raise(reply):
    judge = LLMJudge("http://judge.local/v1", "m", transport=FakeTransport(_chat_reply(reply)))
    with pytest.raises(JudgeReplyError):
        judge.score("a", "b")


def test_a_response_that_is_not_a_chat_completion_raises():
    judge = LLMJudge("http://judge.local/v1", "m", transport=FakeTransport(b'{"error": "model not found"}'))
    with pytest.raises(JudgeReplyError, match="not a chat completion"):
        judge.score("a", "b")


def test_parse_judge_reply_reads_two_bare_numbers_in_order():
    assert parse_judge_reply("7, 4") == JudgeScore(7.0, 4.0)
    assert parse_judge_reply("Label overlap: 5. Clue overlap: 9.") == JudgeScore(9.0, 5.0)
