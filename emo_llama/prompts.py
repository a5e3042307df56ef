"""The paper's fixed prompt texts and the AGR sentence built from the facial expert's output."""

from __future__ import annotations

# Handcrafted prompt of facial evidence (paper, "Landmark Embedding and Handcrafted Prompt").
AGR_PREFIX = (
    "According to the specific question, you are allowed to use or partially use the following information: "
)

# Zero-shot guidance used to evaluate MLLMs on closed-set FER (paper, "Zero-shot Evaluation").
ZERO_SHOT_SUFFIX = (
    "PLEASE ENSURE that you start your answer with 'My choice is: ' FIRST "
    "and select ONLY ONE WORD from the provided list."
)


def agr_sentence(age: float | None, gender: str | None, race: str | None = None,
                 gender_prob: float | None = None) -> str:
    """The AGR prompt: only the attributes the expert actually predicted appear (no invented race)."""
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
