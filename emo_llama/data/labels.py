"""One shared emotion vocabulary, every dataset's own class list, and the synonym table behind both.

Datasets spell the same emotion differently ("Happy", "happiness", "Happiness") and number it
differently (RAF-DB's 4 is AffectNet's 1). Everything downstream (instructions, parsing, metrics)
speaks the canonical nouns below, so a model trained on one dataset is scored on another unchanged.
"""

from __future__ import annotations

import re

# Canonical names: MAFW's nouns (the richest official vocabulary), seven basic ones first, then CASME II's
# two micro-expression classes that no other dataset has.
BASIC7: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")
CANONICAL: tuple[str, ...] = BASIC7 + ("contempt", "anxiety", "helplessness", "disappointment", "repression",
                                       "others")

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
    "repression": ("repression", "repressed"),
    # The plural class word only: "other" is far too common in ordinary answers ("the other eye") to be
    # read as an emotion, and only a class list that names "others" (CASME II's) looks for it at all.
    "others": ("others",),
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


# Each dataset's own class words, in the dataset's own order: what its label files, folders or documentation
# write. Index i of a tuple is what the dataset (or common list files) encode as i (0-based) or i+1 (1-based).
RAFDB_WORDS = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")  # 1..7
AFFECTNET_WORDS = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger",
                   "Contempt")  # 0..7; 8 None, 9 Uncertain, 10 No-Face are not emotions
FERPLUS_WORDS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                 "contempt")  # vote columns of fer2013new.csv (then unknown, NF)
DFEW_WORDS = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")  # 1..7
FERV39K_WORDS = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")  # folder names
MAFW_WORDS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
              "contempt", "anxiety", "helplessness", "disappointment")  # official order
MELD_WORDS = ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust")  # Emotion column
MER2023_WORDS = ("neutral", "angry", "happy", "sad", "worried", "surprise")  # `discrete` column
CASME2_WORDS = ("happiness", "disgust", "repression", "surprise", "fear", "sadness",
                "others")  # `Estimated Emotion` column of the coding sheet
# CMMA's Emotion column uses MELD's seven words; its files give them no order, so MELD's is used.
CMMA_WORDS = MELD_WORDS


def _canonical(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(canonical_label(w) for w in words)


# The same classes as canonical names (what samples carry), in the dataset's own order.
RAFDB_CLASSES = _canonical(RAFDB_WORDS)
AFFECTNET_CLASSES = _canonical(AFFECTNET_WORDS)
FERPLUS_CLASSES = _canonical(FERPLUS_WORDS)
DFEW_CLASSES = _canonical(DFEW_WORDS)
FERV39K_CLASSES = _canonical(FERV39K_WORDS)
MAFW_CLASSES = _canonical(MAFW_WORDS)
# DFER-CLIP's MAFW list files number the classes in a different order than the official one.
MAFW_CLASSES_DFER_CLIP = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear",
                          "contempt", "anxiety", "helplessness", "disappointment")
MINI_CLASSES = BASIC7
MELD_CLASSES = _canonical(MELD_WORDS)  # joy -> happiness
MER2023_CLASSES = _canonical(MER2023_WORDS)  # worried -> anxiety
CASME2_CLASSES = _canonical(CASME2_WORDS)
CMMA_CLASSES = _canonical(CMMA_WORDS)

# Every registered dataset: its own class word -> canonical name. The one table that maps class sets
# between datasets (a model trained on MELD's "joy" is scored on RAF-DB's "Happiness" through it).
DATASET_WORDS: dict[str, dict[str, str]] = {
    name: {word: canonical_label(word) for word in words}
    for name, words in (("rafdb", RAFDB_WORDS), ("affectnet", AFFECTNET_WORDS), ("ferplus", FERPLUS_WORDS),
                        ("dfew", DFEW_WORDS), ("ferv39k", FERV39K_WORDS), ("mafw", MAFW_WORDS),
                        ("mini", MINI_CLASSES), ("meld", MELD_WORDS), ("mer2023", MER2023_WORDS),
                        ("casme2", CASME2_WORDS), ("cmma", CMMA_WORDS))
}


def class_table() -> list[tuple[str, str, str]]:
    """(dataset, the dataset's own word, canonical name) for every class of every dataset, for notebooks/docs."""
    return [(name, word, canonical) for name, table in DATASET_WORDS.items() for word, canonical in table.items()]
