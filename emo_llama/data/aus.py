"""Action Units: the EMFACS expression prototypes and the words that describe each AU.

The mini dataset applies these AUs as landmark warps, so its labels and its MAFW-style captions
follow from construction; the offline conversation generator reuses the same sentences.
"""

from __future__ import annotations

from collections.abc import Sequence

# FACS names: declared in the expert layer (below this one), where the landmark AU estimates name their AUs
# too; edit the table there.
from emo_llama.expert.au_geometry import AU_NAMES  # noqa: F401

# EMFACS prototypes (Friesen & Ekman 1983), one common variant per emotion.
PROTOTYPES: dict[str, tuple[int, ...]] = {
    "neutral": (),
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 20, 26),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 15, 16),
    "contempt": (12, 14),  # unilateral
}

# The common variants people actually show (EMFACS lists several per emotion); mini draws one per
# sample so that an open mouth alone never gives the class away: smiles part the lips and show
# teeth, anger and disgust come open or closed, fear and surprise differ by brows and lip stretch.
VARIANTS: dict[str, tuple[tuple[int, ...], ...]] = {
    "neutral": ((),),
    "happiness": ((6, 12), (6, 12, 25), (6, 12, 25, 26)),
    "sadness": ((1, 4, 15), (1, 4, 15, 17), (1, 15)),
    "surprise": ((1, 2, 5, 26), (1, 2, 5, 27), (1, 2, 5, 25)),
    "fear": ((1, 2, 5, 16, 20, 25), (1, 2, 5, 20, 25), (1, 2, 4, 5, 16, 20, 25)),
    "anger": ((4, 5, 7, 23), (4, 5, 7, 24), (4, 5, 7, 10, 25), (4, 5, 7, 17, 23)),
    "disgust": ((9, 10, 17), (9, 10, 15, 17), (9, 10)),
    "contempt": ((12, 14),),
}


# Short clauses, MAFW-caption style ("The lip corners rise and the cheeks lift.").
AU_CLAUSES: dict[int, str] = {
    1: "the inner brows rise", 2: "the outer brows lift", 4: "the brows are drawn down and together",
    5: "the upper eyelids open wide", 6: "the cheeks lift", 7: "the eyelids tighten",
    9: "the nose wrinkles", 10: "the upper lip rises", 12: "the lip corners rise",
    14: "one lip corner tightens into a dimple",
    15: "the lip corners are pulled down", 16: "the lower lip is pushed down", 17: "the chin pushes up",
    20: "the lips stretch sideways", 23: "the lips tighten", 24: "the lips press together",
    25: "the lips part", 26: "the jaw drops and the mouth opens", 27: "the mouth stretches wide open",
}

# The same clauses in Chinese, for MAFW's with_caption files (which carry Chinese and English).
AU_CLAUSES_ZH: dict[int, str] = {
    1: "眉头内侧上扬", 2: "眉梢上挑", 4: "眉头紧皱下压", 5: "上眼睑睁大", 6: "脸颊上提", 7: "眼睑收紧",
    9: "鼻子皱起", 10: "上唇上提", 12: "嘴角上扬", 14: "一侧嘴角收紧出现酒窝", 15: "嘴角下拉", 16: "下唇下压",
    17: "下巴上抬",
    20: "嘴唇向两侧拉伸", 23: "嘴唇收紧", 24: "双唇紧压", 25: "嘴唇分开", 26: "下巴下垂，嘴巴张开",
    27: "嘴巴大张",
}

# Order in which clauses are read out: top of the face to the bottom, as people describe faces.
_READING_ORDER = (1, 2, 4, 5, 7, 6, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25, 26, 27)


def reading_order(aus: Sequence[int]) -> list[int]:
    """AUs in the order captions and reasons read them: top of the face to the bottom, the lip corner puller first
    in a smile (mouth first reads more naturally there); AUs outside the table (CASME II's 18, 43, ...) last, by
    number."""
    present = set(aus)
    ordered = [a for a in _READING_ORDER if a in present] + sorted(present - set(_READING_ORDER))
    return [12] + [a for a in ordered if a != 12] if 12 in present else ordered


def describe_aus(aus: Sequence[int]) -> str:
    """An English caption for a set of AUs, e.g. (6, 12) -> 'The lip corners rise and the cheeks lift.'"""
    ordered = [a for a in reading_order(aus) if a in AU_CLAUSES]
    if not ordered:
        return "The face is relaxed, with no visible muscle movement."
    clauses = [AU_CLAUSES[a] for a in ordered]
    text = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    return text[0].upper() + text[1:] + "."


def describe_aus_zh(aus: Sequence[int]) -> str:
    ordered = [a for a in reading_order(aus) if a in AU_CLAUSES_ZH]
    if not ordered:
        return "面部放松，没有明显的肌肉运动。"
    return "，".join(AU_CLAUSES_ZH[a] for a in ordered) + "。"


def label_cues(label: str) -> str:
    """The prototypical appearance of a class, for grounded answers when a sample has no caption."""
    aus = PROTOTYPES.get(label)
    if aus is None:
        return ""
    return describe_aus(aus)
