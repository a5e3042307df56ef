"""The paper's fixed prompt texts, the media placeholders, and the AGR prompt built from the facial expert (Eq. 4)."""

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
