"""Every prompt text in one place: the system lines and chat templates, the category questions the model is
tuned and evaluated with, the paper's zero-shot guard, the media placeholders, and the AGR prompt built from the
facial expert (Eq. 4).

The data layer turns these into instruction records (`emo_llama.data.text`) and the model wraps them in its chat
template (`emo_llama.model.parts.prompting`). The one exception: the offline conversation generator keeps its
question and answer templates next to the logic that fills them (`emo_llama.data.text.conversations`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Handcrafted prompt of facial evidence (paper, "Landmark Embedding and Handcrafted Prompt").
AGR_PREFIX = (
    "According to the specific question, you are allowed to use or partially use the following information: "
)

# Zero-shot guidance used to evaluate MLLMs on closed-set FER (paper, "Zero-shot Evaluation").
ZERO_SHOT_SUFFIX = (
    "PLEASE ENSURE that you start your answer with 'My choice is: ' FIRST "
    "and select ONLY ONE WORD from the provided list."
)

# LLaVA / LLaMA-VID placeholders in the first human turn; the model puts the frame tokens there.
IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"
MEDIA_PLACEHOLDERS = (IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER)

GENDERS = ("female", "male")  # column order of every facial expert's gender probabilities

# The system line of the offline and tiny stacks (the paper stack's recipe uses VICUNA_SYSTEM).
DEFAULT_SYSTEM_PROMPT = "You are an expert in facial expressions. Answer briefly."

# ChatML, the template SmolLM2 ships in its GGUF, without SmolLM's default system text.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# Vicuna v1, for LLaMA/Vicuna tokenizers that ship no chat template:
#   "{system} USER: {question} ASSISTANT: {answer}</s>USER: {question} ASSISTANT:"
# Source: LLaMA-VID (github dvlab-research/LLaMA-VID) `llamavid/conversation.py`: `conv_vicuna_v1` and the
# training default `conv_vicuna_imgsp_v1` are both SeparatorStyle.TWO with sep " ", sep2 "</s>", roles
# USER/ASSISTANT and this system line; a turn awaiting its answer ends "ASSISTANT:". `<s>` is not in the text:
# `llamavid/train/train.py` tokenises the prompt with the tokenizer's special tokens (LLaVA's
# `tokenizer_image_token`), which put `<s>` first; `model.parts.prompting.encode_messages` lets the tokenizer add
# it too, and tokenises the text around `<image>` in one piece. The system message's content is the system
# line (VICUNA_SYSTEM in the paper recipe); `</s>` (the eos token) closes every answer, so generation stops at
# the end of the turn.
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")
VICUNA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + ' ' }}"
    "{% elif message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% else %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


CATEGORY_QUESTIONS: tuple[str, ...] = (
    "Which facial expression does the person in the {media} show? Choose from: {classes}.",
    "What emotion is shown on this face? Options: {classes}.",
    "Classify the facial expression in the {media} as one of the following: {classes}.",
    "Looking at the person's face, which of these expressions fits best: {classes}?",
    "Identify the expression of the person in the {media}. Candidates: {classes}.",
    "From the list {classes}, which word describes this facial expression?",
)

ADJECTIVES: dict[str, str] = {
    "neutral": "neutral", "happiness": "happy", "sadness": "sad", "surprise": "surprised",
    "fear": "fearful", "disgust": "disgusted", "anger": "angry", "contempt": "contemptuous",
    "anxiety": "anxious", "helplessness": "helpless", "disappointment": "disappointed",
}


def class_list_text(classes: Sequence[str]) -> str:
    return ", ".join(classes)


def description_text(sample) -> str | None:
    """The sample's descriptive text as questions carry it (Tab. 8), or None when it has no caption."""
    if not sample.caption:
        return None
    return f"Description of the {'video' if sample.kind == 'video' else 'image'}: {sample.caption}"


def spoken_text(sample) -> str | None:
    """The words spoken in the clip as questions carry them (Emotion-LLaMA's text input: the subtitle), or None
    when the sample has no transcript (images; datasets that give none)."""
    if not sample.text:
        return None
    return f'The person says: "{sample.text.strip()}"'


def zero_shot_question(classes: Sequence[str], media: str = "image") -> str:
    """The paper's zero-shot evaluation prompt: the question, the class list, then the format guard."""
    return f"{CATEGORY_QUESTIONS[0].format(media=media, classes=class_list_text(classes))} {ZERO_SHOT_SUFFIX}"


def strip_placeholders(text: str) -> str:
    """LLaVA-style questions carry '<image>\\n'; the model places the media itself."""
    for placeholder in MEDIA_PLACEHOLDERS:
        text = text.replace(placeholder, "")
    return text.strip()


def agr_prompt(age: float | None, gender: str | None, race: str | None = None,
               gender_prob: float | None = None) -> str:
    """The handcrafted AGR prompt from the facial expert's age / gender (/ race) estimates.

    "According to the specific question, you are allowed to use or partially use the following
    information: age: about 31 years; gender: female." Only what the expert predicted appears (no
    invented race); empty when nothing was predicted.
    """
    facts = []
    if age is not None:
        facts.append(f"age: about {round(float(age))} years")
    if gender is not None:
        facts.append(f"gender: {gender}" + (f" ({gender_prob:.0%} confidence)" if gender_prob is not None else ""))
    if race is not None:
        facts.append(f"race: {race}")
    if not facts:
        return ""
    return AGR_PREFIX + "; ".join(facts) + "."


def agr_from_expert(age_years: torch.Tensor, gender_probs: torch.Tensor, face_found: torch.Tensor | None = None,
                    race_probs: torch.Tensor | None = None, race_names: Sequence[str] | None = None,
                    confidence: bool = False) -> str:
    """The AGR prompt of one face or one video: the expert's outputs averaged over the frames with a face.

    age_years (T,), gender_probs (T, 2) in GENDERS order, race_probs (T, K) or None (no race model: no race
    in the prompt). Empty when no frame has a face. `confidence` adds the gender probability (training
    leaves it out: ~6 more tokens per prompt on a CPU budget).
    """
    found = torch.ones(len(age_years), dtype=torch.bool) if face_found is None else face_found.bool()
    if not bool(found.any()):
        return ""
    probs = gender_probs[found].float().mean(0)
    g = int(probs.argmax())
    race = None
    if race_probs is not None and race_names is not None:
        race = race_names[int(race_probs[found].float().mean(0).argmax())]
    return agr_prompt(float(age_years[found].float().mean()), GENDERS[g], race,
                      gender_prob=float(probs[g]) if confidence else None)


def category_question(classes, media: str = "image") -> str:
    """After training: the category instruction the model was tuned on (phrasing 0), without the guard."""
    return CATEGORY_QUESTIONS[0].format(media=media, classes=class_list_text(classes))


def eval_questions(samples, classes, descriptive_text: bool = False, zero_shot: bool = False,
                   use_text: bool = False) -> list[str]:
    """The question each test sample is asked: the tuned category question (or the paper's zero-shot prompt),
    preceded by the sample's descriptive text when `descriptive_text` is on (Tab. 8: text at inference) and by
    the words spoken when `use_text` is on (Emotion-LLaMA), in the same place training questions carry them."""
    questions = []
    for s in samples:
        media = "video" if s.kind == "video" else "image"
        question = zero_shot_question(classes, media) if zero_shot else category_question(classes, media)
        texts = [description_text(s) if descriptive_text else None, spoken_text(s) if use_text else None]
        questions.append("\n".join([t for t in texts if t] + [question]))
    return questions
