"""One shared emotion vocabulary, every dataset's own class list, and the synonym table behind both.

Datasets spell the same emotion differently ("Happy", "happiness", "Happiness") and number it
differently (RAF-DB's 4 is AffectNet's 1). Everything downstream (instructions, parsing, metrics)
speaks the canonical nouns below, so a model trained on one dataset is scored on another unchanged.
"""

from __future__ import annotations

import re

# Canonical names: MAFW's nouns (the richest official vocabulary), seven basic ones first.
BASIC7: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")
CANONICAL: tuple[str, ...] = BASIC7 + ("contempt", "anxiety", "helplessness", "disappointment")

# Every word form we accept for a canonical class: nouns, adjectives, common synonyms, inflections.
# Used both to read dataset label files and to parse free-form model answers.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral", "neutrality", "neutrally", "calm", "expressionless", "blank"),
    "happiness": ("happiness", "happy", "happier", "happiest", "happily", "joy", "joyful", "joyous",
                  "glad", "cheerful", "delighted", "smiling", "smile", "pleased"),
    "sadness": ("sadness", "sad", "sadder", "saddest", "sadly", "sorrow", "sorrowful", "unhappy",
                "unhappiness", "grief", "depressed", "melancholy"),
    "surprise": ("surprise", "surprised", "surprising", "surprisingly", "astonished", "astonishment",
                 "amazed", "amazement", "shocked", "startled"),
    "fear": ("fear", "fearful", "fearfully", "afraid", "scared", "frightened", "terrified", "terror",
             "fright"),
    "disgust": ("disgust", "disgusted", "disgusting", "disgustedly", "revulsion", "repulsed"),
    "anger": ("anger", "angry", "angrier", "angriest", "angrily", "mad", "furious", "fury", "rage",
              "annoyed", "irritated"),
    "contempt": ("contempt", "contemptuous", "contemptuously", "scorn", "disdain"),
    "anxiety": ("anxiety", "anxious", "anxiously", "nervous", "nervousness", "worried", "worry"),
    "helplessness": ("helplessness", "helpless", "helplessly", "powerless"),
    "disappointment": ("disappointment", "disappointed", "disappointing", "letdown"),
}

# Ambiguous words ("upset": sad or angry?) and "none" (AffectNet's "no emotion", not neutral) are left out.
_WORD_TO_CANONICAL: dict[str, str] = {w: c for c, words in SYNONYMS.items() for w in words}


class UnknownLabelError(ValueError):
    """A label string that is not an emotion we know (message lists the accepted names)."""


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z]+", " ", str(text).lower()).strip()


def try_canonical(text: str) -> str | None:
    """The canonical name for one label word or phrase, or None. Case and punctuation are ignored."""
    norm = _normalise(text)
    if norm in _WORD_TO_CANONICAL:
        return _WORD_TO_CANONICAL[norm]
    return None


def canonical_label(text: str) -> str:
    """Map a dataset's label name ('Happy', 'happiness', 'ANGRY') onto the shared vocabulary.

    Raises UnknownLabelError naming the bad label and the accepted canonical names.
    """
    found = try_canonical(text)
    if found is None:
        raise UnknownLabelError(
            f"unknown emotion label {text!r}; expected one of {', '.join(CANONICAL)} (or a synonym)"
        )
    return found


def canonical_compound(text: str, sep: str = "_") -> str:
    """MAFW compound labels ('sadness_surprise'): canonicalise each part, keep the official order."""
    return sep.join(canonical_label(part) for part in str(text).split(sep) if part)


# Each official dataset's classes in the dataset's own order, as canonical names.
# Index i of a tuple is what the dataset (or common list files) encode as i (0-based) or i+1 (1-based).
RAFDB_CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")  # 1..7
AFFECTNET_CLASSES = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger",
                     "contempt")  # 0..7; 8 None, 9 Uncertain, 10 No-Face are not emotions
FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                   "contempt")  # vote columns of fer2013new.csv (then unknown, NF)
DFEW_CLASSES = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")  # 1..7
FERV39K_CLASSES = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")
MAFW_CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
                "contempt", "anxiety", "helplessness", "disappointment")  # official order
# DFER-CLIP's MAFW list files number the classes in a different order than the official one.
MAFW_CLASSES_DFER_CLIP = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear",
                          "contempt", "anxiety", "helplessness", "disappointment")
MINI_CLASSES = BASIC7
