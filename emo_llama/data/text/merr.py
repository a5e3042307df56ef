"""Emotion-LLaMA's MERR annotations: read them into `MerrRecord`s, and write MERR-like records for any dataset.

The format, as far as public sources show it (checked 2026-12-06):
- A file (MERR_coarse_grained.json, MERR_fine_grained.json) is one JSON object keyed by the clip's video name
  (MER2023's "sample_00000047"); each value is an object of one sample. Emotion-LLaMA's dataset class looks a
  sample up by its video name and reads `caption` from the coarse file (its stage-1 "reason" task) and
  `smp_reason_caption` from the fine file (stage 2, "reason_v2").
  Source: https://github.com/ZebangCheng/Emotion-LLaMA, files minigpt4/datasets/datasets/first_face.py and
  docs/dataset/configuration.md (table "Task-specific resources"); the download list in docs/dataset/index.md.
- The other keys of a sample: `AU_list` and `peak_AU_list` (Action Units as "AU05"-style codes; the second those
  of the emotional peak frame), `visual_prior_list` (the peak frame's AUs in words: "Eyes widened",
  "Wide-mouthed"), `audio_prior_list` (the audio tone description, a text), `peak_index` (the peak frame, written as
  text), `pseu_emotion` (the label, one of Emotion-LLaMA's words: neutral, angry, happy, sad, worried, surprise,
  fear, contempt, doubt) and `text` (the spoken words; written by the fine-grained export).
  Source: MER-Factory, the construction pipeline Emotion-LLaMA's MERR/README.md names for MERR
  (https://github.com/Lum1104/MER-Factory, file export.py, its Emotion-LLaMA export), and the annotation example
  in Emotion-LLaMA's docs/dataset/construction.md and docs/assets/images/example.jpg (subtitle, audio tone,
  visual expression, visual objective description, the LLaMA-3 reason).

Not verified, because the released files are on Google Drive behind a link this kit cannot open: the exact
spelling of the AU entries ("AU05", "AU05_r" as OpenFace's columns, or numbers: all are read), whether
`audio_prior_list` is a text or a list (both are read; a list is joined with "; "), whether the coarse file carries
`pseu_emotion` and `text` (Emotion-LLaMA's own loader takes the label from the companion MERR_*.txt instead:
`read_merr_txt` reads it, `read_merr_json(..., labels=...)` uses it), and whether a record holds keys beyond the
ones above (any other key is kept in `MerrRecord.extra`). Emotion-LLaMA documents no difference between `AU_list`
and `peak_AU_list`; the reading above follows MER-Factory's export.

Labels go through the kit's vocabulary (`emo_llama.data.labels`): "worried" is the canonical "anxiety", "happy"
"happiness". "doubt" has no class in the kit's vocabulary, so a record labelled "doubt" is a bad record (unknown
label), named like any other.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emo_llama.data.aus import AU_CLAUSES, AU_NAMES
from emo_llama.data.labels import canonical_label, try_canonical
from emo_llama.utils import atomic_path

# Emotion-LLaMA's nine label words (its emotion instruction lists them) and the word written back for each
# canonical class; a canonical class without a MERR word is written as its canonical name.
MERR_WORDS: tuple[str, ...] = ("neutral", "angry", "happy", "sad", "worried", "surprise", "fear", "contempt",
                               "doubt")
_CANONICAL_TO_MERR: dict[str, str] = {try_canonical(w): w for w in MERR_WORDS if try_canonical(w) is not None}

_KNOWN_KEYS = frozenset({"AU_list", "peak_AU_list", "visual_prior_list", "audio_prior_list", "peak_index",
                         "pseu_emotion", "text", "caption", "smp_reason_caption"})

# One AU entry: "AU12", "AU 12", "au05_r" (OpenFace's intensity column), "AU05_c" (its presence column), "12",
# optionally followed by the AU's FACS name ("AU12 lip corner puller", "AU12 (lip corner puller)").
_AU_TOKEN = re.compile(r"^\s*(?:AU\s*)?0*(\d{1,2})(?:_[rc])?(?![\d_])(.*)$", re.IGNORECASE)


def normalise_au_name(text: str) -> str:
    """Lower case, hyphens as spaces, single spaces: "Lip-corner  Puller" -> "lip corner puller"."""
    return " ".join(str(text).lower().replace("-", " ").split())


# FACS name -> AU number, from the kit's one AU name table (`emo_llama.data.aus.AU_NAMES`).
FACS_NAME_TO_AU: dict[str, int] = {normalise_au_name(name): number for number, name in AU_NAMES.items()}


def au_number(token: object) -> int:
    """The AU number of one AU entry: 12, "12", "AU12", "AU 12", "AU012", "AU12_r", "AU12 (lip corner puller)" or
    a FACS name ("lip corner puller"). Raises ValueError naming the entry when it is none of these."""
    if isinstance(token, bool):
        raise ValueError(f"not an Action Unit: {token!r}")
    if isinstance(token, int) or (isinstance(token, float) and token.is_integer()):
        number = int(token)
    elif isinstance(token, str):
        name = FACS_NAME_TO_AU.get(normalise_au_name(token))
        if name is not None:
            return name
        match = _AU_TOKEN.match(token)
        named = normalise_au_name(re.sub(r"[():,]", " ", match.group(2))) if match else ""
        # A name after the code must be that AU's FACS name: "12 apples" or "AU12 (brow lowerer)" is not read.
        if match is None or (named and FACS_NAME_TO_AU.get(named) != int(match.group(1))):
            raise ValueError(f"not an Action Unit: {token!r} (expected e.g. 'AU12', '12' or a FACS name such as "
                             "'lip corner puller')")
        number = int(match.group(1))
    else:
        raise ValueError(f"not an Action Unit: {token!r}")
    if not 1 <= number <= 99:
        raise ValueError(f"not an Action Unit: {token!r} (AU numbers run from 1 to 99)")
    return number


def au_code(token: object) -> str:
    """The kit's spelling of one AU: "AU12" (no zero padding), from anything `au_number` reads."""
    return f"AU{au_number(token)}"


class MerrFormatError(ValueError):
    """A MERR record that cannot be read (the message names the file and the sample id)."""


@dataclass(frozen=True)
class MerrRecord:
    """One MERR sample in the kit's terms.

    `label` is canonical (labels.CANONICAL), `label_word` the file's own word ("worried"); `aus` and `peak_aus` are
    codes ("AU5", "AU26") in the file's order without repeats; `visual_clues` MERR's visual expression phrases;
    `audio_clue` its audio tone description; `text` the spoken words; `reason` the fine-grained
    `smp_reason_caption`, else the coarse `caption` (`grain`: "fine", "coarse", or None without a reason); every
    other key is kept in `extra`.
    """

    sample_id: str
    label: str
    label_word: str
    aus: tuple[str, ...] = ()
    peak_aus: tuple[str, ...] = ()
    visual_clues: tuple[str, ...] = ()
    audio_clue: str | None = None
    text: str | None = None
    reason: str | None = None
    grain: str | None = None
    peak_index: int | None = None
    extra: dict = field(default_factory=dict)

    def to_merr(self) -> dict:
        """{sample_id: MERR object}: the record written back (`merr_record`), extra keys included."""
        out = merr_record(self.sample_id, self.label, self.aus, audio_clue=self.audio_clue, text=self.text,
                          reason=self.reason, visual_clues=self.visual_clues, peak_aus=self.peak_aus,
                          peak_index=self.peak_index, grain=self.grain or "fine")
        out[self.sample_id].update(self.extra)
        return out


def _text_or_none(value: object, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a text, got {type(value).__name__}")
    return value.strip() or None


def _aus(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # one code or a "+"/","-joined list in a single text
        value = [part for part in re.split(r"[+,;]", value) if part.strip()]
    if not isinstance(value, list):
        raise ValueError(f"'{key}' must be a list of Action Units, got {type(value).__name__}")
    codes: list[str] = []
    for entry in value:
        try:
            code = au_code(entry)
        except ValueError as err:
            raise ValueError(f"'{key}': {err}") from None
        if code not in codes:
            codes.append(code)
    return tuple(codes)


def parse_merr_sample(sample_id: object, value: object, label_word: str | None = None) -> MerrRecord:
    """One (key, value) pair of a MERR file as a MerrRecord; ValueError / UnknownLabelError saying what is wrong.
    `label_word` (from the companion .txt) is used when the object has no `pseu_emotion`."""
    if not isinstance(sample_id, str) or not sample_id.strip():
        raise ValueError("the sample id (the object's key) must be a non-empty text")
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    word = value.get("pseu_emotion", label_word)
    if word is None:
        raise ValueError("no label: 'pseu_emotion' is missing and the .txt labels do not name this sample")
    if not isinstance(word, str):
        raise ValueError(f"'pseu_emotion' must be a text, got {type(word).__name__}")
    label = canonical_label(word)
    visual = value.get("visual_prior_list")
    if isinstance(visual, str):
        visual = [visual]
    if visual is not None and not (isinstance(visual, list) and all(isinstance(v, str) for v in visual)):
        raise ValueError("'visual_prior_list' must be a list of texts")
    audio = value.get("audio_prior_list")
    if isinstance(audio, list) and all(isinstance(a, str) for a in audio):
        audio = "; ".join(a.strip() for a in audio if a.strip())
    peak = value.get("peak_index")
    if peak is not None:
        try:
            peak_index = int(str(peak).strip())
        except ValueError:
            raise ValueError(f"'peak_index' must be a frame number, got {peak!r}") from None
    else:
        peak_index = None
    fine = _text_or_none(value.get("smp_reason_caption"), "smp_reason_caption")
    coarse = _text_or_none(value.get("caption"), "caption")
    extra = {k: v for k, v in value.items() if k not in _KNOWN_KEYS}
    if fine is not None and coarse is not None:  # both: the reason is the fine one, the coarse caption is kept
        extra["caption"] = coarse
    return MerrRecord(
        sample_id=sample_id, label=label, label_word=word, aus=_aus(value.get("AU_list"), "AU_list"),
        peak_aus=_aus(value.get("peak_AU_list"), "peak_AU_list"),
        visual_clues=tuple(v.strip() for v in visual or () if v.strip()),
        audio_clue=_text_or_none(audio, "audio_prior_list"), text=_text_or_none(value.get("text"), "text"),
        reason=fine if fine is not None else coarse,
        grain="fine" if fine is not None else "coarse" if coarse is not None else None,
        peak_index=peak_index, extra=extra)


def read_merr_txt(path: str | os.PathLike) -> dict[str, str]:
    """MERR's companion label file (MERR_coarse_grained.txt / MERR_fine_grained.txt): video name -> label word.

    A line is "name emotion" or "name frame_count emotion [valence]" (Emotion-LLaMA's docs call them the N E and
    N C E V forms); empty lines are skipped; a line of one field raises MerrFormatError naming the line."""
    path = Path(path)
    labels: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise MerrFormatError(f"{path}:{n}: expected 'name emotion' or 'name frames emotion', got {line!r}")
        labels[fields[0]] = fields[1] if len(fields) == 2 else fields[2]
    return labels


def read_merr_json(path: str | os.PathLike, strict: bool = True,
                   labels: Mapping[str, str] | None = None) -> tuple[list[MerrRecord], list[str]]:
    """(the records, the bad ones named) of a MERR JSON file, in the file's order.

    strict raises MerrFormatError at the first bad record ("<file> record 'sample_x': why"); lenient names each
    bad record the same way in the second list and keeps the rest. A file that is not a JSON object of samples
    raises in both modes. `labels` (e.g. `read_merr_txt` of the companion .txt) gives the label of a sample
    whose object has no `pseu_emotion`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MERR file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise MerrFormatError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise MerrFormatError(f"{path}: expected a JSON object keyed by sample id (MERR's layout), "
                              f"got a {type(data).__name__}")
    records, bad = [], []
    for sample_id, value in data.items():
        try:
            records.append(parse_merr_sample(sample_id, value, (labels or {}).get(sample_id)))
        except ValueError as err:  # UnknownLabelError is a ValueError too
            message = f"{path} record {sample_id!r}: {err}"
            if strict:
                raise MerrFormatError(message) from None
            bad.append(message)
    return records, bad


def merr_record(sample_id: str, label: str, aus: Iterable[object], audio_clue: str | None = None,
                text: str | None = None, reason: str | None = None, *, visual_clues: Sequence[str] | None = None,
                peak_aus: Iterable[object] | None = None, peak_index: int | None = None,
                grain: str = "fine") -> dict:
    """One sample in MERR's layout: {sample_id: {...}}, ready for `write_merr_json`.

    `label` is any word the kit reads (written as Emotion-LLaMA's word: anxiety -> "worried"); `aus` anything
    `au_number` reads, written as MERR's zero-padded codes ("AU05"). `visual_clues` default to the kit's own
    clause of each AU (`emo_llama.data.aus.AU_CLAUSES`), `peak_aus` to `aus` (one frame: its AUs are the peak's).
    `reason` is written as `smp_reason_caption` (grain "fine") or `caption` ("coarse"). Unknown values (no audio,
    no text, no reason, no peak frame) are left out rather than written as empty texts."""
    if grain not in ("fine", "coarse"):
        raise ValueError(f"grain must be 'fine' or 'coarse', got {grain!r}")
    if not isinstance(sample_id, str) or not sample_id.strip():
        raise ValueError(f"sample_id must be a non-empty text, got {sample_id!r}")
    canonical = canonical_label(label)
    numbers = list(dict.fromkeys(au_number(a) for a in aus))
    peak_numbers = numbers if peak_aus is None else list(dict.fromkeys(au_number(a) for a in peak_aus))
    if visual_clues is None:
        visual_clues = [AU_CLAUSES[n] for n in numbers if n in AU_CLAUSES]
    value: dict = {
        "AU_list": [f"AU{n:02d}" for n in numbers],
        "visual_prior_list": list(visual_clues),
        "peak_AU_list": [f"AU{n:02d}" for n in peak_numbers],
        "pseu_emotion": _CANONICAL_TO_MERR.get(canonical, canonical),
    }
    if audio_clue is not None:
        value["audio_prior_list"] = audio_clue
    if peak_index is not None:
        value["peak_index"] = str(int(peak_index))
    if text is not None:
        value["text"] = text
    if reason is not None:
        value["smp_reason_caption" if grain == "fine" else "caption"] = reason
    return {sample_id: value}


def write_merr_json(records: Iterable[dict | MerrRecord], path: str | os.PathLike) -> Path:
    """Write MERR records (`merr_record` dicts or MerrRecords) as one MERR JSON object, atomically. Each record is
    checked by reading it back (`parse_merr_sample`); a bad one or a repeated sample id raises MerrFormatError."""
    path = Path(path)
    merged: dict[str, dict] = {}
    for i, record in enumerate(records):
        pairs = record.to_merr() if isinstance(record, MerrRecord) else record
        if not isinstance(pairs, dict):
            raise MerrFormatError(f"record {i}: expected {{sample_id: MERR object}} or a MerrRecord, "
                                  f"got {type(pairs).__name__}")
        for sample_id, value in pairs.items():
            if sample_id in merged:
                raise MerrFormatError(f"record {i}: sample id {sample_id!r} is written twice")
            try:
                parse_merr_sample(sample_id, value)
            except ValueError as err:
                raise MerrFormatError(f"record {i} ({sample_id!r}): {err}") from None
            merged[sample_id] = value
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(merged, ensure_ascii=False, indent=1), encoding="utf-8")
    return path
