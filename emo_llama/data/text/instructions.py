"""Category instructions (closed-set "which expression?" with the answer) and the paper's fixed prompts.

Records use the LLaVA / LLaMA-VID conversation JSON (see llava_json.py). Both images and videos
use the `<image>` placeholder in the first human turn, as LLaMA-VID does; the model replaces it
with the frame tokens.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from emo_llama.data.datasets.base import Sample
from emo_llama.prompts import (
    AGR_PREFIX,
    CATEGORY_QUESTIONS,
    IMAGE_PLACEHOLDER,
    ZERO_SHOT_SUFFIX,
    class_list_text,
    description_text,
    spoken_text,
)


def category_instruction(sample: Sample, classes: Sequence[str], *, rng: random.Random | None = None,
                         phrasing: int | None = None, zero_shot: bool = False, agr: str | None = None,
                         use_caption: bool = False, answer_style: str | None = None,
                         record_id: str | None = None, use_text: bool = False) -> dict:
    """One closed-set recognition record for `sample`: the question lists `classes`, the answer is the label.

    phrasing: index into CATEGORY_QUESTIONS (drawn from `rng` when None, so data sets mix phrasings).
    zero_shot: append the paper's "PLEASE ENSURE ... 'My choice is: '" guard; the answer then starts
    with "My choice is: " too (answer_style "choice"), otherwise it is the bare class word ("word").
    agr: an AGR prompt (agr_prompt(...)) placed before the question. use_caption: add the sample's
    descriptive text (MAFW captions; the paper's Tab. 8 ablation). use_text: add the words spoken
    (`Sample.text`: a subtitle, MELD's utterance, mini's sentence), as Emotion-LLaMA reads them.
    """
    if sample.label not in classes:
        raise ValueError(f"sample {sample.id}: label {sample.label!r} is not in the class list {list(classes)}")
    rng = rng or random.Random(0)
    media = "video" if sample.kind == "video" else "image"
    k = rng.randrange(len(CATEGORY_QUESTIONS)) if phrasing is None else phrasing % len(CATEGORY_QUESTIONS)
    question = CATEGORY_QUESTIONS[k].format(media=media, classes=class_list_text(classes))
    if zero_shot:
        question = f"{question} {ZERO_SHOT_SUFFIX}"
    parts = [IMAGE_PLACEHOLDER]
    if agr:
        if not agr.startswith(AGR_PREFIX):
            raise ValueError(f"agr must be built with agr_prompt() and start with {AGR_PREFIX!r}")
        parts.append(agr)
    if use_caption and sample.caption:
        parts.append(description_text(sample))
    if use_text and sample.text:  # the words spoken (Emotion-LLaMA's text input), where the dataset gives them
        parts.append(spoken_text(sample))
    parts.append(question)
    style = answer_style or ("choice" if zero_shot else "word")
    answer = f"My choice is: {sample.label}" if style == "choice" else sample.label
    return {
        "id": record_id or f"{sample.id}-cat{k}" + ("-zs" if zero_shot else ""),
        media: str(sample.media),
        "conversations": [
            {"from": "human", "value": "\n".join(parts)},
            {"from": "gpt", "value": answer},
        ],
        "label": sample.label,
        "task": "category",
    }


def category_instructions(samples: Sequence[Sample], classes: Sequence[str], seed: int = 0,
                          **options) -> list[dict]:
    """Category records for many samples; phrasings are drawn from one seeded generator (reproducible)."""
    rng = random.Random(seed)
    return [category_instruction(s, classes, rng=rng, record_id=f"{s.id}-cat-{i}", **options)
            for i, s in enumerate(samples)]
