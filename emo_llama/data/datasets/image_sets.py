"""Loaders for the three image benchmarks: RAF-DB, AffectNet and FERPlus, reading official copies unchanged."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

from emo_llama.data.datasets.base import (
    DatasetFormatError,
    FERDataset,
    LineIssues,
    Sample,
    check_split,
    first_existing,
    read_text,
    register,
    require,
)
from emo_llama.data.labels import AFFECTNET_CLASSES, FERPLUS_CLASSES, RAFDB_CLASSES
from emo_llama.utils import default_cache_dir

# ---------------------------------------------------------------- RAF-DB


@register("rafdb")
def load_rafdb(root: Path, split: str = "train", fold: int | None = None, media: str = "auto",
               strict: bool = True, check_media: bool = True) -> FERDataset:
    """RAF-DB basic: `EmoLabel/list_patition_label.txt` (sic) lines `train_00001.jpg 5`, labels 1..7.

    media: "aligned" (`Image/aligned/<stem>_aligned.jpg`, 100x100), "original" (`Image/original/<name>`)
    or "auto" (aligned when that folder exists). The split is the file-name prefix.
    """
    check_split("rafdb", split, ("train", "test"))
    label_file = first_existing("rafdb", [root / "EmoLabel" / "list_patition_label.txt",
                                          root / "EmoLabel" / "list_partition_label.txt"],
                                "the label list EmoLabel/list_patition_label.txt")
    if media == "auto":
        media = "aligned" if (root / "Image" / "aligned").is_dir() else "original"
    if media not in ("aligned", "original"):
        raise ValueError(f"rafdb: media must be 'aligned', 'original' or 'auto', got {media!r}")
    image_dir = require("rafdb", root / "Image" / media, f"the image folder Image/{media}/")
    issues = LineIssues(strict)
    samples = []
    for line_no, line in enumerate(read_text(label_file).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= 7:
            issues.bad(label_file, line_no, f"expected '<name>.jpg <label 1..7>', got {line.strip()!r}")
            continue
        name, label = parts[0], RAFDB_CLASSES[int(parts[1]) - 1]
        prefix = name.split("_", 1)[0]
        if prefix not in ("train", "test"):
            issues.bad(label_file, line_no, f"file name {name!r} starts with neither 'train_' nor 'test_'")
            continue
        if prefix != split:
            continue
        stem = Path(name).stem
        path = image_dir / (f"{stem}_aligned.jpg" if media == "aligned" else name)
        if check_media and not path.exists():
            issues.bad(label_file, line_no, f"image {path} is missing")
            continue
        samples.append(Sample(id=stem, media=path, label=label, split=split, kind="image"))
    issues.report("rafdb")
    return FERDataset("rafdb", RAFDB_CLASSES, samples, split, None, root, issues.skipped)


# ---------------------------------------------------------------- AffectNet

_AFFECTNET_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                      "facial_landmarks", "expression", "valence", "arousal")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".JPG", ".JPEG", ".PNG", ".TIF")


def _find_image(path: Path) -> Path | None:
    """AffectNet lists say .jpg where some copies hold .png/.tif: try the same stem with each."""
    if path.exists():
        return path
    for ext in _IMAGE_EXTS:
        alt = path.with_suffix(ext)
        if alt.exists():
            return alt
    return None


@register("affectnet")
def load_affectnet(root: Path, split: str = "train", fold: int | None = None, num_classes: int = 7,
                   strict: bool = True, check_media: bool = True) -> FERDataset:
    """AffectNet manually annotated part; `num_classes` 7 keeps expressions 0-6, 8 keeps 0-7 (contempt).

    The validation list is the test set (the official test labels are not public), so split
    "test" and "val" both read `validation.csv`. The face box columns become `Sample.box`.
    """
    check_split("affectnet", split, ("train", "val", "test"))
    if num_classes not in (7, 8):
        raise ValueError(f"affectnet: num_classes must be 7 or 8, got {num_classes}")
    lists = root / "Manually_Annotated_file_lists"
    csv_path = require("affectnet", lists / ("training.csv" if split == "train" else "validation.csv"),
                       "the annotation list")
    image_dir = require("affectnet", root / "Manually_Annotated_Images", "the image folder")
    rows = list(csv.reader(io.StringIO(read_text(csv_path))))
    # Copies differ: a header, a header whose first name starts with '#', or no header at all.
    start = 1 if rows and rows[0] and rows[0][0].lstrip("#").strip() == _AFFECTNET_COLUMNS[0] else 0
    issues = LineIssues(strict)
    classes = AFFECTNET_CLASSES[:num_classes]
    samples = []
    for line_no, row in enumerate(rows[start:], start=start + 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 7:
            issues.bad(csv_path, line_no, f"expected {len(_AFFECTNET_COLUMNS)} columns "
                                          f"({','.join(_AFFECTNET_COLUMNS)}), got {len(row)}")
            continue
        try:
            x, y, w, h = (float(v) for v in row[1:5])
            expression = int(row[6])
        except ValueError:
            issues.bad(csv_path, line_no, f"face box or expression is not a number: {row[1:5] + row[6:7]}")
            continue
        if not 0 <= expression <= 10:
            issues.bad(csv_path, line_no, f"expression must be 0..10, got {expression}")
            continue
        if expression >= num_classes:  # None/Uncertain/No-Face (and contempt in the 7-class protocol)
            continue
        path = image_dir / row[0].strip()
        found = _find_image(path) if check_media else path
        if found is None:
            issues.bad(csv_path, line_no, f"image {path} is missing (tried {', '.join(_IMAGE_EXTS[:5])})")
            continue
        samples.append(Sample(id=Path(row[0]).stem, media=found, label=classes[expression], split=split,
                              kind="image", box=(x, y, x + w, y + h)))
    issues.report("affectnet")
    return FERDataset("affectnet", classes, samples, split, None, root, issues.skipped)


# ---------------------------------------------------------------- FERPlus

_FERPLUS_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
_FERPLUS_FOLDER = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}


def ferplus_majority(votes: list[float]) -> int | None:
    """FERPlus majority protocol over 10 vote counts (8 emotions, unknown, NF).

    Counts of one vote are treated as noise and zeroed; the top class is kept only with more than
    half of the remaining votes; unknown / not-a-face winners (index 8, 9) and ties give None.
    """
    cleaned = [v if v > 1 else 0.0 for v in votes]
    total = sum(cleaned)
    if total <= 0:
        return None
    top = int(np.argmax(cleaned))
    if cleaned[top] <= 0.5 * total or top >= len(FERPLUS_CLASSES):
        return None
    return top


def _votes(issues: LineIssues, file: Path, line_no: int, fields: list[str]) -> list[float] | None:
    try:
        votes = [float(v) for v in fields]
    except ValueError:
        issues.bad(file, line_no, f"vote counts must be numbers, got {fields}")
        return None
    if len(votes) != 10:
        issues.bad(file, line_no, f"expected 10 vote counts (8 emotions, unknown, NF), got {len(votes)}")
        return None
    return votes


def _ferplus_from_folders(root: Path, split: str, issues: LineIssues) -> list[Sample]:
    """FERPlus's generate_training_data.py layout: FER2013Train/ with a header-less label.csv."""
    folder = root / _FERPLUS_FOLDER[split]
    label_csv = require("ferplus", folder / "label.csv", "label.csv in the generated folder")
    samples = []
    for line_no, row in enumerate(csv.reader(io.StringIO(read_text(label_csv))), start=1):
        if not row:
            continue
        # name, optional face box "(x, y, w, h)", then the 10 vote counts
        vote_fields = row[2:] if len(row) > 1 and row[1].strip().startswith("(") else row[1:]
        votes = _votes(issues, label_csv, line_no, vote_fields)
        if votes is None:
            continue
        top = ferplus_majority(votes)
        if top is None:
            continue
        path = folder / row[0].strip()
        if not path.exists():
            issues.bad(label_csv, line_no, f"image {path} is missing")
            continue
        samples.append(Sample(id=path.stem, media=path, label=FERPLUS_CLASSES[top], split=split, kind="image"))
    return samples


def _ferplus_from_csv(root: Path, split: str, issues: LineIssues, cache: Path) -> list[Sample]:
    """fer2013.csv pixels + fer2013new.csv votes, same row order; images are decoded once into `cache`."""
    fer = first_existing("ferplus", [root / "fer2013.csv", root / "fer2013" / "fer2013.csv"],
                         "the FER2013 pixel file fer2013.csv")
    new = require("ferplus", root / "fer2013new.csv", "the FERPlus vote file fer2013new.csv")
    fer_rows = list(csv.reader(io.StringIO(read_text(fer))))
    new_rows = list(csv.reader(io.StringIO(read_text(new))))
    if not fer_rows or fer_rows[0][:2] != ["emotion", "pixels"]:
        raise issues_error(fer, "header 'emotion,pixels,Usage'")
    if not new_rows or [c.strip() for c in new_rows[0][:2]] != ["Usage", "Image name"]:
        raise issues_error(new, "header 'Usage,Image name,neutral,happiness,...,unknown,NF'")
    if len(fer_rows) != len(new_rows):
        raise issues_error(new, f"as many rows as {fer.name} ({len(fer_rows)}), got {len(new_rows)}")
    out_dir = cache / "ferplus" / _FERPLUS_FOLDER[split]
    samples = []
    for line_no, (fer_row, new_row) in enumerate(zip(fer_rows[1:], new_rows[1:]), start=2):
        if len(new_row) < 2 or new_row[0].strip() != _FERPLUS_USAGE[split]:
            continue
        name = new_row[1].strip()
        if not name:  # FERPlus blanks the name of images that are not faces
            continue
        votes = _votes(issues, new, line_no, new_row[2:])
        if votes is None:
            continue
        top = ferplus_majority(votes)
        if top is None:
            continue
        path = out_dir / name
        if not path.exists():
            pixels = np.array(fer_row[1].split(), dtype=np.float32) if len(fer_row) > 1 else np.zeros(0)
            if pixels.size != 48 * 48:
                issues.bad(fer, line_no, f"expected 2304 pixel values (48x48), got {pixels.size}")
                continue
            out_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels.reshape(48, 48).astype(np.uint8), mode="L").save(path)
        samples.append(Sample(id=Path(name).stem, media=path, label=FERPLUS_CLASSES[top], split=split,
                              kind="image"))
    return samples


def issues_error(file: Path, expected: str) -> DatasetFormatError:
    return DatasetFormatError(f"{file}: expected {expected}")


@register("ferplus")
def load_ferplus(root: Path, split: str = "train", fold: int | None = None, strict: bool = True,
                 cache_dir: Path | None = None) -> FERDataset:
    """FERPlus, 8 classes, majority protocol. Reads the generated FER2013{Train,Valid,Test}/ folders
    when present, else fer2013.csv + fer2013new.csv (48x48 images decoded once into the cache)."""
    check_split("ferplus", split, ("train", "val", "test"))
    issues = LineIssues(strict)
    if (root / _FERPLUS_FOLDER[split]).is_dir():
        samples = _ferplus_from_folders(root, split, issues)
    else:
        samples = _ferplus_from_csv(root, split, issues, Path(cache_dir) if cache_dir else default_cache_dir())
    issues.report("ferplus")
    return FERDataset("ferplus", FERPLUS_CLASSES, samples, split, None, root, issues.skipped)
