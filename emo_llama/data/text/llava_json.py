"""Read, validate and write LLaVA / LLaMA-VID conversation JSON, so community instruction data drops in.

A record: {"id": ..., "image": path | "video": path, "conversations": [{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]}. Extra keys (our "label", "task") are kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from emo_llama.prompts import MEDIA_PLACEHOLDERS
from emo_llama.utils import atomic_path


class InstructionFormatError(ValueError):
    """A record that is not valid LLaVA conversation JSON (message names the record)."""


def validate_record(record: object, where: str = "record") -> None:
    """Raise InstructionFormatError naming `where` (file and index) and the record id on any problem."""
    if not isinstance(record, dict):
        raise InstructionFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    rid = record.get("id")
    label = f"{where} (id={rid!r})"
    if rid is None or not isinstance(rid, str | int):
        raise InstructionFormatError(f"{label}: missing 'id' (a string)")
    if "image" in record and "video" in record:
        raise InstructionFormatError(f"{label}: has both 'image' and 'video'; keep one")
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise InstructionFormatError(f"{label}: 'conversations' must be a non-empty list")
    for i, turn in enumerate(conv):
        expected = "human" if i % 2 == 0 else "gpt"
        if not isinstance(turn, dict) or turn.get("from") != expected or not isinstance(turn.get("value"), str):
            raise InstructionFormatError(
                f"{label}: turn {i} must be {{'from': '{expected}', 'value': <text>}}, got {turn!r}")
    if len(conv) % 2:
        raise InstructionFormatError(f"{label}: the last turn must be the assistant's ('gpt') answer")
    has_media = "image" in record or "video" in record
    has_token = any(t in conv[0]["value"] for t in MEDIA_PLACEHOLDERS)
    if has_media and not has_token:
        raise InstructionFormatError(f"{label}: the first human turn must contain <image> (or <video>)")
    if not has_media and has_token:
        raise InstructionFormatError(f"{label}: uses <image> but has no 'image' or 'video' path")


def format_record(record: dict, relative_to: str | os.PathLike | None = None) -> str:
    """Pretty JSON of one record for reading (notebooks); media paths shown relative to `relative_to`."""
    shown = dict(record)
    for key in ("image", "video"):
        if key in shown and relative_to is not None and Path(shown[key]).is_relative_to(relative_to):
            shown[key] = str(Path(shown[key]).relative_to(relative_to))
    return json.dumps(shown, indent=1, ensure_ascii=False)


def read_llava_json(path: str | os.PathLike) -> list[dict]:
    """Load a .json list (LLaVA) or .jsonl file and validate every record; the first bad one raises."""
    return [record for _, record in read_records(path, strict=True)[0]]


def read_records(path: str | os.PathLike, strict: bool = True) -> tuple[list[tuple[int, dict]], list[str]]:
    """((index in the file, record) of the valid records, the bad ones named): strict raises
    InstructionFormatError at the first bad record;
    lenient names and counts each one ("<file> record <i> (id=...): why") and keeps the rest.
    A file that is not JSON at all raises in both modes."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"instruction file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise InstructionFormatError(f"{path}:{n}: not valid JSON ({err.msg})") from None
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise InstructionFormatError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(records, list):
            raise InstructionFormatError(f"{path}: expected a JSON list of records")
    valid, bad = [], []
    for i, rec in enumerate(records):
        try:
            validate_record(rec, f"{path} record {i}")
        except InstructionFormatError as err:
            if strict:
                raise
            bad.append(str(err))
            continue
        valid.append((i, rec))
    return valid, bad


def write_llava_json(records: Iterable[dict], path: str | os.PathLike) -> Path:
    """Validate, then write atomically (a crash leaves no half-written file). .jsonl writes one per line."""
    records = list(records)
    path = Path(path)
    for i, rec in enumerate(records):
        validate_record(rec, f"record {i}")
    with atomic_path(path) as tmp:
        if path.suffix == ".jsonl":
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        else:
            tmp.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return path
