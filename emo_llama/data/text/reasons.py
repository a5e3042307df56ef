"""Reason instructions: "what is the emotion and why?" answered as clues, then the emotion (issue 25).

An answer names the facial Action Units that are there, each as a plain clause with its code, the voice when the
sample has a description of it, and ends in one fixed conclusion:
"The lip corners rise (AU12) and the cheeks lift (AU6); the speaker has a high, fast and loud voice. So the emotion
is happiness." `emo_llama.evaluate.reasons` reads such a text back (`reason_label`, `reason_aus`) and scores a
model's reasons against the AUs that are there.

Records are made only for samples whose AUs are known (`Sample.aus` set: mini by construction, CASME II's coding):
the kit never invents AUs for a sample. Also here: `parse_au_coding`, a dataset's AU coding string as AU codes,
which both the answers and the scores read.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from emo_llama.data.aus import AU_CLAUSES, AU_NAMES, reading_order
from emo_llama.data.datasets.base import Sample
from emo_llama.data.text.merr import MerrRecord, au_code, au_number
from emo_llama.prompts import IMAGE_PLACEHOLDER, class_list_text

# --- a dataset's AU coding ----------------------------------------------------------------------------------------


class AUCoding(frozenset):
    """The AUs of one coding string: a frozenset of codes ({"AU4", "AU10", "AU12"}) that also carries `sides`,
    code -> "L" or "R" for an AU coded on one side of the face only (absent for a bilateral AU)."""

    sides: dict[str, str]

    def __new__(cls, codes: Iterable[str] = (), sides: Mapping[str, str] | None = None) -> AUCoding:
        coding = super().__new__(cls, codes)
        coding.sides = dict(sides or {})
        return coding

    def __repr__(self) -> str:
        return f"AUCoding({sorted(self, key=lambda c: int(c[2:]))}, sides={self.sides})"


# One FACS coding token: optional "AU", optional side letter before or after the number, optional intensity A-E.
_CODING_TOKEN = re.compile(r"^(?:AU)?([LR])?0*(\d{1,2})([A-E])?([LR])?$")


def parse_au_coding(coding: str | int | float | None) -> AUCoding:
    """A FACS coding string as AU codes: "4+L10+R12" -> {"AU4", "AU10", "AU12"} with sides {"AU10": "L",
    "AU12": "R"}.

    Tokens are joined by "+" (CASME II's "Action Units" column, mini's `aus`; commas are read too); each is a number
    with an optional "AU", an optional side L/R (before or after the number) and an optional FACS intensity letter
    A-E ("12C"), which is dropped. An AU coded on both sides ("L12+R12") or also without a side is bilateral and has
    no entry in `sides`. A spreadsheet number (4, 4.0) reads as one AU; an empty coding (mini's neutral faces) is
    the empty set. Any other token raises ValueError naming it and the coding.
    """
    if coding is None:
        return AUCoding()
    if isinstance(coding, float) and coding.is_integer():
        coding = int(coding)
    text = str(coding).strip()
    codes: list[str] = []
    seen_sides: dict[str, set[str]] = {}
    for raw in re.split(r"[+,]", text):
        token = re.sub(r"\s+", "", raw).upper()
        if not token:
            if text:
                raise ValueError(f"AU coding {coding!r}: an empty token (a doubled or trailing '+')")
            continue
        match = _CODING_TOKEN.match(token)
        if match is None or (match.group(1) and match.group(4)):
            raise ValueError(f"AU coding {coding!r}: {raw.strip()!r} is not an AU (expected e.g. '4', 'L10', 'R12', "
                             "'12C')")
        code = au_code(int(match.group(2)))
        if code not in codes:
            codes.append(code)
        seen_sides.setdefault(code, set()).add(match.group(1) or match.group(4) or "both")
    sides = {code: next(iter(s)) for code, s in seen_sides.items() if len(s) == 1 and "both" not in s}
    return AUCoding(codes, sides)


# --- questions and answers ----------------------------------------------------------------------------------------

# {voice} is VOICE_REQUEST when the answer describes the voice, else empty; {classes} lists the classes.
REASON_QUESTIONS: tuple[str, ...] = (
    "What emotion does the person in the {media} feel, and why? Name the facial Action Units you see{voice}. "
    "Choose from: {classes}.",
    "Which emotion does the person in the {media} show, and what tells you? List the facial Action Units{voice}, "
    "then name the emotion. Choose from: {classes}.",
    "Explain the emotion of the person in the {media}: name the Action Units of the face{voice} first, then the "
    "emotion, one of: {classes}.",
)
VOICE_REQUEST = " and describe the voice"
NO_AU_CLAUSE = "The face is relaxed, no Action Unit is active"  # the clues of a face without AUs (neutral)
CONCLUSION = "So the emotion is {label}."  # every answer ends so; `evaluate.reasons.reason_label` reads it back
_SIDES = {"L": "left", "R": "right"}


def reason_question(kind: str, classes: Sequence[str], phrasing: int = 0, ask_voice: bool = False) -> str:
    """The reason question for an image or video (`kind`), phrasing `phrasing` of REASON_QUESTIONS."""
    media = "video" if kind == "video" else "image"
    return REASON_QUESTIONS[phrasing % len(REASON_QUESTIONS)].format(
        media=media, classes=class_list_text(classes), voice=VOICE_REQUEST if ask_voice else "")


def _au_clause(number: int, side: str | None) -> str:
    if number in AU_CLAUSES:
        clause = AU_CLAUSES[number]
    elif number in AU_NAMES:
        clause = f"the face shows {AU_NAMES[number]}"
    else:
        clause = f"Action Unit {number} is active"
    where = f" on the {_SIDES[side]} side" if side else ""
    return f"{clause}{where} (AU{number})"


def reason_answer(aus: str | Iterable[object], label: str, voice: str | None = None) -> str:
    """Clues, then the emotion: "The lip corners rise (AU12) and the cheeks lift (AU6); the speaker has a high,
    fast and loud voice. So the emotion is happiness."

    `aus`: a coding string ("6+12", CASME II's "4+L10": a one-sided AU is said to be on that side) or AU numbers /
    codes; read in `describe_aus`'s order, each as its clause (`data.aus.AU_CLAUSES`) and its code. No AU: "The face
    is relaxed, no Action Unit is active". `voice`: a noun phrase for the voice ("a high, fast and loud voice"),
    added as "the speaker has ..." when given. The conclusion (CONCLUSION) is always the last sentence.
    """
    if isinstance(aus, str):
        coding = parse_au_coding(aus)
        numbers, sides = [au_number(c) for c in coding], {au_number(c): s for c, s in coding.sides.items()}
    else:
        numbers, sides = [au_number(a) for a in aus], {}
    clauses = [_au_clause(n, sides.get(n)) for n in reading_order(numbers)]
    if not clauses:
        clues = NO_AU_CLAUSE
    else:
        clues = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
        clues = clues[0].upper() + clues[1:]
    spoken = (voice or "").strip().rstrip(".").strip()
    if spoken:
        clues += f"; the speaker has {spoken[0].lower() + spoken[1:]}"
    return f"{clues}. {CONCLUSION.format(label=label)}"


def _record(record_id: str, media_kind: str, media: str | Path, question: str, answer: str, label: str) -> dict:
    return {
        "id": record_id,
        media_kind: str(media),
        "conversations": [
            {"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{question}"},
            {"from": "gpt", "value": answer},
        ],
        "label": label,
        "task": "reason",
    }


def reason_instruction(sample: Sample, classes: Sequence[str], rng: random.Random | None = None,
                       use_voice: bool = True, phrasing: int | None = None, record_id: str | None = None) -> dict:
    """One reason record (LLaVA / LLaMA-VID JSON, like `category_instruction`) for a sample whose AUs are known.

    The question (a REASON_QUESTIONS phrasing drawn from `rng` unless `phrasing` is given) lists `classes`; the
    answer is `reason_answer` of the sample's AU coding, with its voice when `use_voice` and the sample has one
    (the question then asks for the voice too). A sample without AU coding (`Sample.aus` None) raises ValueError:
    callers skip such samples, since a reason must not name AUs nobody coded.
    """
    if sample.aus is None:
        raise ValueError(f"sample {sample.id}: no AU coding (Sample.aus is None); reason records are made only for "
                         "samples whose AUs are known")
    if sample.label not in classes:
        raise ValueError(f"sample {sample.id}: label {sample.label!r} is not in the class list {list(classes)}")
    rng = rng or random.Random(0)
    k = rng.randrange(len(REASON_QUESTIONS)) if phrasing is None else phrasing % len(REASON_QUESTIONS)
    voice = sample.voice if use_voice else None
    media_kind = "video" if sample.kind == "video" else "image"
    return _record(record_id or f"{sample.id}-reason{k}", media_kind, sample.media,
                   reason_question(sample.kind, classes, k, ask_voice=voice is not None),
                   reason_answer(sample.aus, sample.label, voice), sample.label)


def merr_reason_instruction(record: MerrRecord, media: str | Path, classes: Sequence[str], kind: str = "video",
                            phrasing: int = 0) -> dict:
    """A reason record from a MERR annotation: its reason text (fine-grained `smp_reason_caption`, else the coarse
    `caption`) is the answer, verbatim; the question asks for the voice too when the record has an audio clue.
    `media` is the clip's file (MERR records name the sample only). A record without a reason, or whose label is
    not among `classes`, raises ValueError."""
    if record.reason is None:
        raise ValueError(f"MERR sample {record.sample_id}: no reason text (neither smp_reason_caption nor caption)")
    if record.label not in classes:
        raise ValueError(f"MERR sample {record.sample_id}: label {record.label!r} is not in the class list "
                         f"{list(classes)}")
    question = reason_question(kind, classes, phrasing, ask_voice=record.audio_clue is not None)
    media_kind = "video" if kind == "video" else "image"
    return _record(f"{record.sample_id}-reason-merr", media_kind, media, question, record.reason, record.label)
