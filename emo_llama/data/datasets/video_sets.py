"""Loaders for the three video benchmarks: DFEW, FERV39K and MAFW (official layouts or DFER list files)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from emo_llama.data.datasets.base import (
    DatasetFormatError,
    FERDataset,
    LineIssues,
    Sample,
    check_fold,
    check_split,
    first_existing,
    read_text,
    register,
    require,
)
from emo_llama.data.labels import (
    DFEW_CLASSES,
    FERV39K_CLASSES,
    MAFW_CLASSES,
    MAFW_CLASSES_DFER_CLIP,
    UnknownLabelError,
    canonical_compound,
    canonical_label,
)

# Class order that public DFER list files use, per dataset and style (index = 0-based label).
LIST_CLASSES: dict[tuple[str, str], tuple[str, ...]] = {
    ("dfew", "dfer-clip"): DFEW_CLASSES, ("dfew", "mae-dfer"): DFEW_CLASSES,
    ("ferv39k", "dfer-clip"): FERV39K_CLASSES, ("ferv39k", "mae-dfer"): FERV39K_CLASSES,
    ("mafw", "dfer-clip"): MAFW_CLASSES_DFER_CLIP, ("mafw", "mae-dfer"): MAFW_CLASSES,
}


def load_list_file(name: str, list_file: Path, split: str, fold: int | None, root: Path | None = None,
                   list_style: str = "auto", reroot: tuple[str, str] | None = None,
                   strict: bool = True, check_media: bool = True) -> FERDataset:
    """Read a ready-made list file from public DFER code.

    DFER-CLIP style: `<clip dir> <num_frames> <0-based label>`; MAE-DFER style: `<clip dir> <0-based label>`.
    The two number MAFW's classes differently (see data/labels.py), so the style matters; "auto" decides
    from the first line. `reroot=(old_prefix, new_prefix)` moves absolute paths written on another
    machine; relative paths are taken relative to `root` (or the list file's folder).
    """
    list_file = require(name, Path(list_file), "the list file")
    issues = LineIssues(strict)
    lines = [(i, ln) for i, ln in enumerate(read_text(list_file).splitlines(), start=1) if ln.strip()]
    if list_style == "auto":
        first = lines[0][1].split() if lines else []
        list_style = "dfer-clip" if len(first) >= 3 and first[-2].isdigit() else "mae-dfer"
    if (name, list_style) not in LIST_CLASSES:
        raise ValueError(f"{name}: list_style must be 'auto', 'dfer-clip' or 'mae-dfer', got {list_style!r}")
    classes = LIST_CLASSES[(name, list_style)]
    n_fields = 3 if list_style == "dfer-clip" else 2
    base = Path(root) if root is not None else list_file.parent
    samples = []
    for line_no, line in lines:
        parts = line.strip().rsplit(maxsplit=n_fields - 1)  # paths may contain spaces, numbers do not
        if len(parts) != n_fields or not all(p.isdigit() for p in parts[1:]):
            shape = "<clip dir> <num_frames> <label>" if n_fields == 3 else "<clip dir> <label>"
            issues.bad(list_file, line_no, f"expected {list_style} line '{shape}', got {line.strip()!r}")
            continue
        label_index = int(parts[-1])
        if label_index >= len(classes):
            issues.bad(list_file, line_no, f"label {label_index} is out of range 0..{len(classes) - 1}")
            continue
        raw = parts[0]
        if reroot is not None and raw.startswith(reroot[0]):
            raw = reroot[1] + raw[len(reroot[0]):]
        path = Path(raw) if Path(raw).is_absolute() else base / raw
        if check_media and not path.exists():
            issues.bad(list_file, line_no, f"clip {path} is missing (use reroot=(old, new) to move paths)")
            continue
        samples.append(Sample(id=path.stem, media=path, label=classes[label_index], split=split, fold=fold,
                              kind="video"))
    issues.report(name)
    return FERDataset(name, classes, samples, split, fold, root, issues.skipped)


# ---------------------------------------------------------------- DFEW

_DFEW_MEDIA = ("clip_224x224_16f", "clip_224x224", "original")


@register("dfew")
def load_dfew(root: Path | None, split: str = "train", fold: int | None = 1, media: str = "auto",
              strict: bool = True, check_media: bool = True, list_file: Path | None = None,
              **list_options) -> FERDataset:
    """DFEW single-labelled 5-fold protocol: `EmoLabel_DataSplit/<split>(single-labeled)/set_<fold>.csv`.

    media: "clip_224x224_16f" / "clip_224x224" (frame folders `Clip/<media>/<00001>/`, frames `1.jpg`..
    in natural order), "original" (`Clip/original/<00001>.mp4`) or "auto" (first of these present).
    """
    check_split("dfew", split, ("train", "test"))
    fold = check_fold("dfew", fold, 5)
    if list_file is not None:
        return load_list_file("dfew", list_file, split, fold, root, strict=strict, check_media=check_media,
                              **list_options)
    split_dir = first_existing("dfew", [root / "EmoLabel_DataSplit" / f"{split}(single-labeled)",
                                        root / "EmoLabel_DataSplit" / f"{split}(single_labeled)"],
                               "the split folder")
    label_csv = require("dfew", split_dir / f"set_{fold}.csv", f"the fold-{fold} list")
    if media == "auto":
        media = next((m for m in _DFEW_MEDIA if (root / "Clip" / m).is_dir()), "")
        if not media:  # none present: raises an error that lists the three accepted folders
            first_existing("dfew", [root / "Clip" / m for m in _DFEW_MEDIA], "a clip folder")
    if media not in _DFEW_MEDIA:
        raise ValueError(f"dfew: media must be one of {_DFEW_MEDIA} or 'auto', got {media!r}")
    clip_dir = require("dfew", root / "Clip" / media, f"the clip folder Clip/{media}/")
    rows = list(csv.reader(io.StringIO(read_text(label_csv))))
    if not rows or [c.strip() for c in rows[0][:2]] != ["video_name", "label"]:
        raise DatasetFormatError(f"{label_csv}:1: expected the header 'video_name,label'")
    issues = LineIssues(strict)
    samples = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2 or not row[0].strip().isdigit() or not row[1].strip().isdigit() \
                or not 1 <= int(row[1]) <= 7:
            issues.bad(label_csv, line_no, f"expected '<video id>,<label 1..7>', got {','.join(row)!r}")
            continue
        clip_id = f"{int(row[0]):05d}"  # the lists write 1, the folders say 00001
        names = (clip_id, str(int(row[0])))  # padded as released; unpadded in some re-packed copies
        candidates = [clip_dir / (f"{n}.mp4" if media == "original" else n) for n in names]
        path = next((c for c in candidates if c.exists()), candidates[0])
        if check_media and not path.exists():
            issues.bad(label_csv, line_no, f"clip {path} is missing")
            continue
        samples.append(Sample(id=clip_id, media=path, label=DFEW_CLASSES[int(row[1]) - 1], split=split,
                              fold=fold, kind="video"))
    issues.report("dfew")
    return FERDataset("dfew", DFEW_CLASSES, samples, split, fold, root, issues.skipped)


# ---------------------------------------------------------------- FERV39K


@register("ferv39k")
def load_ferv39k(root: Path | None, split: str = "train", fold: int | None = None, strict: bool = True,
                 check_media: bool = True, list_file: Path | None = None, **list_options) -> FERDataset:
    """FERV39K all-scenes setup: `4_setups/All_scenes/{train,test}_All.csv`, lines `Action/Sad/0010 Sad`,
    frames in `2_ClipsforFaceCrop/<Scene>/<Emotion>/<id>/`. One fixed split, no folds."""
    check_split("ferv39k", split, ("train", "test"))
    if list_file is not None:
        return load_list_file("ferv39k", list_file, split, None, root, strict=strict,
                              check_media=check_media, **list_options)
    label_file = require("ferv39k", root / "4_setups" / "All_scenes" / f"{split}_All.csv", "the split list")
    frames_dir = require("ferv39k", root / "2_ClipsforFaceCrop", "the face-crop frame folder")
    issues = LineIssues(strict)
    samples = []
    for line_no, line in enumerate(read_text(label_file).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2 or parts[0].count("/") != 2:
                raise UnknownLabelError("")
            label = canonical_label(parts[1])
        except UnknownLabelError:
            issues.bad(label_file, line_no, f"expected '<Scene>/<Emotion>/<id> <Emotion>', got {line.strip()!r}")
            continue
        if label not in FERV39K_CLASSES:
            issues.bad(label_file, line_no, f"label {parts[1]!r} is not a FERV39K class")
            continue
        path = frames_dir / parts[0]
        if check_media and not path.is_dir():
            issues.bad(label_file, line_no, f"frame folder {path} is missing")
            continue
        samples.append(Sample(id=parts[0], media=path, label=label, split=split, kind="video"))
    issues.report("ferv39k")
    return FERDataset("ferv39k", FERV39K_CLASSES, samples, split, None, root, issues.skipped)


# ---------------------------------------------------------------- MAFW

MAFW_SPLIT_DIR = "Train & Test Set"


def read_mafw_list(path: Path, captions: bool, compound: bool, issues: LineIssues) -> list[tuple]:
    """(line_no, clip, canonical label, caption) from one MAFW split file.

    no_caption: UTF-8, `00025.mp4 anger`. with_caption: GBK, TAB-separated `clip, label, Chinese, English`.
    """
    text = read_text(path, ("utf-8-sig", "gbk") if not captions else ("utf-8-sig", "gb18030"))
    out = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in (line.split("\t") if captions else line.split())]
        if len(parts) < (4 if captions else 2):
            shape = "clip<TAB>label<TAB>Chinese<TAB>English" if captions else "'<clip>.mp4 <label>'"
            issues.bad(path, line_no, f"expected {shape}, got {line.strip()!r}")
            continue
        try:
            label = canonical_compound(parts[1]) if compound else canonical_label(parts[1])
        except UnknownLabelError as err:
            if line_no == 1 and captions:  # a title row in some copies
                continue
            issues.bad(path, line_no, str(err))
            continue
        if not compound and label not in MAFW_CLASSES:
            issues.bad(path, line_no, f"label {parts[1]!r} is not a MAFW class")
            continue
        out.append((line_no, parts[0], label, parts[3] if captions else None))
    return out


@register("mafw")
def load_mafw(root: Path | None, split: str = "train", fold: int | None = 1, labels: str = "single",
              captions: bool = False, strict: bool = True, check_media: bool = True,
              list_file: Path | None = None, classes: tuple[str, ...] | None = None,
              **list_options) -> FERDataset:
    """MAFW 5-fold protocol. labels "single" (11 classes) or "compound" (labels like 'sadness_surprise';
    classes = the compound labels present in the fold, sorted). captions=True reads the with_caption
    lists and fills `Sample.caption` with the English description. Media: `data/clips/<clip>.mp4` or
    `data/frames/<id>/`."""
    check_split("mafw", split, ("train", "test"))
    fold = check_fold("mafw", fold, 5)
    if list_file is not None:
        return load_list_file("mafw", list_file, split, fold, root, strict=strict, check_media=check_media,
                              **list_options)
    if labels not in ("single", "compound"):
        raise ValueError(f"mafw: labels must be 'single' or 'compound', got {labels!r}")
    compound = labels == "compound"
    set_dir = require("mafw", root / MAFW_SPLIT_DIR / labels / ("with_caption" if captions else "no_caption")
                      / f"set_{fold}", "the split folder")
    list_path = require("mafw", set_dir / f"{split}.txt", "the split list")
    issues = LineIssues(strict)
    entries = read_mafw_list(list_path, captions, compound, issues)
    if classes is None:
        if compound:
            other = set_dir / ("test.txt" if split == "train" else "train.txt")
            both = entries + (read_mafw_list(other, captions, True, LineIssues(False)) if other.exists() else [])
            classes = tuple(sorted({e[2] for e in both}))
        else:
            classes = MAFW_CLASSES
    clips, frames = root / "data" / "clips", root / "data" / "frames"
    if check_media and not clips.is_dir() and not frames.is_dir():
        first_existing("mafw", [clips, frames], "the media folder data/clips/ or data/frames/")
    samples = []
    for line_no, clip, label, caption in entries:
        stem = Path(clip).stem
        path = clips / (clip if clip.endswith(".mp4") else f"{clip}.mp4")
        if not path.exists() and (frames / stem).is_dir():
            path = frames / stem
        if check_media and not path.exists():
            issues.bad(list_path, line_no, f"clip {clips / clip} (or frames {frames / stem}/) is missing")
            continue
        samples.append(Sample(id=stem, media=path, label=label, split=split, fold=fold, caption=caption,
                              kind="video"))
    issues.report("mafw")
    return FERDataset("mafw", tuple(classes), samples, split, fold, root, issues.skipped)
