"""Loaders for the sets the paper evaluates zero-shot (Tab. 4): MELD, MER2023, CASME II and CMMA.

Each reads an unchanged official copy and behaves like the other loaders: a missing folder raises a named
DatasetNotFoundError that says how to obtain the set, a malformed line raises DatasetFormatError naming
file:line (strict) or is counted in `skipped` (strict=False). Labels become canonical names through
`labels.DATASET_WORDS`, the one table that maps every dataset's own class words.
"""

from __future__ import annotations

import csv
import io
import warnings
from functools import cache
from pathlib import Path

from emo_llama.data.datasets.base import (
    HOW_TO_GET,
    DatasetFormatError,
    DatasetNotFoundError,
    FERDataset,
    LineIssues,
    Sample,
    check_split,
    first_existing,
    not_found,
    read_text,
    register,
    require,
)
from emo_llama.data.labels import CASME2_CLASSES, CMMA_CLASSES, DATASET_WORDS, MELD_CLASSES, MER2023_CLASSES

# ---------------------------------------------------------------- shared CSV reading


def _records(path: Path, encodings: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """(first line number, fields) of every CSV record; quoted fields may hold commas and line breaks."""
    reader = csv.reader(io.StringIO(read_text(path, encodings), newline=""))
    records, last_line = [], 0
    for row in reader:
        records.append((last_line + 1, row))
        last_line = reader.line_num
    return records


def _key(name: str) -> str:
    return " ".join(str(name).split()).lower()


def _columns(path: Path, header: list[str], required: tuple[str, ...],
             aliases: dict[str, str] | None = None) -> dict[str, int]:
    """Column name -> index, found by name (case and spacing ignored); unnamed columns are ignored."""
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        key = _key(name)
        key = (aliases or {}).get(key, key)
        if key and key not in index:
            index[key] = i
    missing = [c for c in required if _key(c) not in index]
    if missing:
        raise DatasetFormatError(f"{path}:1: expected the columns {', '.join(required)}; missing "
                                 f"{', '.join(missing)} in the header {','.join(header)!r}")
    return {c: index[_key(c)] for c in required}


@cache
def _word_table(dataset: str) -> dict[str, str]:
    return {_key(w): c for w, c in DATASET_WORDS[dataset].items()}


def _own_label(dataset: str, word: str, issues, file: Path, line_no: int, shown: str | None = None) -> str | None:
    """A dataset's own class word (case and spacing ignored) as a canonical name; None for a word that is not one
    of its classes, after naming the line (`issues.bad`: raises when strict). `shown`: the word as the file
    spells it, when `word` is a corrected spelling."""
    label = _word_table(dataset).get(_key(word))
    if label is None:
        issues.bad(file, line_no, f"label {shown or word!r} is not a {dataset} class "
                                  f"({', '.join(DATASET_WORDS[dataset])})")
    return label


def _blank(row: list[str]) -> bool:
    return not "".join(row).strip()


# Some copies of MELD's CSVs are UTF-8 text that carries Windows-1252 punctuation as C1 control characters
# (U+0092 for the apostrophe); read back as Windows-1252 they are the characters the speakers' lines meant.
def _cp1252_char(code: int) -> str:
    try:
        return bytes([code]).decode("cp1252")
    except UnicodeDecodeError:  # the five bytes Windows-1252 leaves undefined stay as they are
        return chr(code)


_C1_AS_CP1252 = {code: _cp1252_char(code) for code in range(0x80, 0xA0)}
_WESTERN_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


# ---------------------------------------------------------------- MELD

MELD_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
MELD_CLIP_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
MELD_COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
                "Season", "Episode", "StartTime", "EndTime")


@register("meld")
def load_meld(root: Path, split: str = "train", fold: int | None = None, strict: bool = True,
              check_media: bool = True) -> FERDataset:
    """MELD (Poria et al., ACL 2019) as released in MELD.Raw: `{train,dev,test}_sent_emo.csv` and the clips
    `dia{Dialogue_ID}_utt{Utterance_ID}.mp4` in `train_splits/`, `dev_splits_complete/`,
    `output_repeated_splits_test/` (format: https://github.com/declare-lab/MELD README).

    `root` is the MELD.Raw folder or the folder holding it; clip folders may sit beside the CSVs or in
    `train/`, `dev/`, `test/`. split "val" reads dev. No folds. The utterance is the sample's `text`, the
    speaker its `identity`; Emotion's "joy" becomes happiness. CSVs are read as UTF-8, else Windows-1252,
    else Latin-1, and Windows-1252 punctuation stored as control characters is restored. The release itself
    lacks dev's dia110_utt7.mp4 (declare-lab/MELD issues #22, #27): strict=False skips and counts it.
    """
    check_split("meld", split, ("train", "dev", "val", "test"))
    part = "dev" if split == "val" else split
    csv_name = MELD_FILES[part]
    label_csv = first_existing("meld", [root / csv_name, root / "MELD.Raw" / csv_name], f"the label file {csv_name}")
    base = label_csv.parent
    clip_dir_name = MELD_CLIP_DIRS[part]
    clip_dir = base / clip_dir_name
    if check_media:
        clip_dir = first_existing("meld", [base / clip_dir_name, base / part / clip_dir_name],
                                  f"the clip folder {clip_dir_name}/")
    records = _records(label_csv, _WESTERN_ENCODINGS)
    if not records:
        raise DatasetFormatError(f"{label_csv}:1: the file is empty; expected the header {','.join(MELD_COLUMNS)}")
    header = records[0][1]
    col = _columns(label_csv, header, MELD_COLUMNS)
    issues = LineIssues(strict)
    samples = []
    for line_no, row in records[1:]:
        if _blank(row):
            continue
        if len(row) != len(header):
            issues.bad(label_csv, line_no, f"expected {len(header)} fields ({','.join(MELD_COLUMNS)}), "
                                           f"got {len(row)}")
            continue
        dialogue, utterance_no = row[col["Dialogue_ID"]].strip(), row[col["Utterance_ID"]].strip()
        if not (dialogue.isdigit() and utterance_no.isdigit()):
            issues.bad(label_csv, line_no, f"Dialogue_ID and Utterance_ID must be numbers, got "
                                           f"{dialogue!r}, {utterance_no!r}")
            continue
        label = _own_label("meld", row[col["Emotion"]], issues, label_csv, line_no)
        if label is None:
            continue
        clip_id = f"dia{int(dialogue)}_utt{int(utterance_no)}"
        path = clip_dir / f"{clip_id}.mp4"
        if check_media and not path.exists():
            issues.bad(label_csv, line_no, f"clip {path} is missing")
            continue
        samples.append(Sample(id=clip_id, media=path, label=label, split=split, kind="video",
                              identity=row[col["Speaker"]].strip(),
                              text=row[col["Utterance"]].translate(_C1_AS_CP1252)))
    issues.report("meld")
    return FERDataset("meld", MELD_CLASSES, samples, split, None, root, issues.skipped)


# ---------------------------------------------------------------- MER2023

MER2023_SPLITS = ("train", "test1", "test2", "test3")
_MER2023_VIDEO_SUFFIXES = (".mp4", ".avi")


@register("mer2023")
def load_mer2023(root: Path, split: str = "train", fold: int | None = None, strict: bool = True,
                 check_media: bool = True) -> FERDataset:
    """MER2023 (Lian et al., ACM MM 2023): `<split>-label.csv` (`name,discrete,valence`; test3's has no
    valence) and the videos `<split>/<name>.mp4` or `.avi`, found by name (format: the organisers' code,
    https://github.com/zeroQiaoba/MERTools, MER2023/main-baseline.py and MER2024/toolkit/preprocess/mer2023.py).

    Splits: train, test1 (MER-MULTI), test2 (MER-NOISE), test3 (MER-SEMI). The test videos were released
    without labels; a test split loads once its `test<k>-label.csv` sits beside the folder. Six classes;
    "worried" becomes the canonical "anxiety" (see labels.DATASET_WORDS). No folds.
    """
    check_split("mer2023", split, MER2023_SPLITS)
    video_dir = require("mer2023", root / split, f"the video folder {split}/")
    label_csv = root / f"{split}-label.csv"
    if not label_csv.exists():
        if split == "train":
            raise not_found("mer2023", "the label file train-label.csv", label_csv)
        raise DatasetNotFoundError(
            f"mer2023: no labels for {split}: expected {label_csv}. The {split} videos were released without "
            f"their labels; if you have them, put them in {label_csv.name} beside {split}/ with the header "
            f"name,discrete,valence. To obtain MER2023, {HOW_TO_GET['mer2023']}.")
    videos = {p.stem: p for p in sorted(video_dir.iterdir()) if p.suffix.lower() in _MER2023_VIDEO_SUFFIXES}
    records = _records(label_csv, ("utf-8-sig", "gb18030"))
    if not records:
        raise DatasetFormatError(f"{label_csv}:1: the file is empty; expected the header name,discrete,valence")
    col = _columns(label_csv, records[0][1], ("name", "discrete"))
    issues = LineIssues(strict)
    samples = []
    for line_no, row in records[1:]:
        if _blank(row):
            continue
        if len(row) <= max(col.values()) or not row[col["name"]].strip():
            issues.bad(label_csv, line_no, f"expected 'name,discrete[,valence]', got {','.join(row)!r}")
            continue
        name = row[col["name"]].strip()
        label = _own_label("mer2023", row[col["discrete"]], issues, label_csv, line_no)
        if label is None:
            continue
        path = videos.get(name, video_dir / f"{name}.mp4")
        if check_media and name not in videos:
            issues.bad(label_csv, line_no, f"video {video_dir / name}.mp4 (or .avi) is missing")
            continue
        samples.append(Sample(id=name, media=path, label=label, split=split, kind="video"))
    issues.report("mer2023")
    return FERDataset("mer2023", MER2023_CLASSES, samples, split, None, root, issues.skipped)


# ---------------------------------------------------------------- CASME II

CASME2_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                  "Estimated Emotion")
# (folder, frame-name prefix): the raw release and the cropped, registered one.
CASME2_FRAMES = {"raw": ("CASME2_RAW_selected", "img"), "cropped": ("Cropped", "reg_img")}


def _cell(value) -> str:
    """A sheet cell as the text it shows: 46.0 -> "46", None -> ""."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _xlsx_rows(path: Path) -> list[tuple[int, list[str]]]:
    import openpyxl  # a dependency; imported here because only CASME II's sheet needs it

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        return [(row_no, [_cell(v) for v in row])
                for row_no, row in enumerate(sheet.iter_rows(values_only=True), start=1)]
    finally:
        book.close()


def _casme2_sheet(root: Path) -> Path:
    """The coding sheet: the released .xlsx, else its CSV export."""
    xlsx = sorted(root.glob("CASME2-coding*.xlsx"))
    csvs = sorted(root.glob("CASME2-coding*.csv"))
    if xlsx:
        return xlsx[0]
    if csvs:
        return csvs[0]
    raise not_found("casme2", "the coding sheet CASME2-coding-<date>.xlsx (or its CSV export)",
                    root / "CASME2-coding-*.xlsx")


@register("casme2")
def load_casme2(root: Path, split: str = "all", fold: int | None = None, media: str = "apex",
                frames: str = "auto", strict: bool = True, check_media: bool = True) -> FERDataset:
    """CASME II (Yan et al., PLoS ONE 2014) micro-expressions from the coding sheet `CASME2-coding-*.xlsx`
    (read with openpyxl) or its CSV export, and the frames
    `CASME2_RAW_selected/sub{NN}/{Filename}/img{N}.jpg` or, in the cropped release,
    `Cropped/sub{NN}/{Filename}/reg_img{N}.jpg` (frames="raw", "cropped" or "auto": the first present).
    Columns are found by name (Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units,
    Estimated Emotion); the sheet's two unnamed columns are ignored.

    media "apex": the apex frame, an image. Some released rows write a non-number (e.g. "/") as the apex:
    they are skipped with the reason in `skipped` (strict or not: a property of the release) and a warning.
    media "clip": the clip's frame folder (the selected onset..offset frames), a video.
    The Action Unit string (e.g. "4+L10") is kept as `Sample.aus`; the subject as `identity`.

    CASME II has no official split. split "all" is every row; split "train"/"test" with fold=<subject number>
    is leave-one-subject-out: test is that subject, train every other one. (`get_dataset`'s defaults,
    split="train" and fold=1, therefore give the training side of the fold that tests subject 1.)
    """
    check_split("casme2", split, ("all", "train", "test"))
    if media not in ("apex", "clip"):
        raise ValueError(f"casme2: media must be 'apex' or 'clip', got {media!r}")
    if frames not in ("auto", *CASME2_FRAMES):
        raise ValueError(f"casme2: frames must be 'auto', 'raw' or 'cropped', got {frames!r}")
    require("casme2", root, "the CASME II folder")
    sheet = _casme2_sheet(root)
    layouts = [frames] if frames != "auto" else list(CASME2_FRAMES)
    layout = next((name for name in layouts if (root / CASME2_FRAMES[name][0]).is_dir()), None)
    if layout is None and check_media:  # raises, naming every accepted folder
        first_existing("casme2", [root / CASME2_FRAMES[name][0] for name in layouts], "the frame folder")
    folder_name, prefix = CASME2_FRAMES[layout or layouts[0]]
    frame_root = root / folder_name
    records = _xlsx_rows(sheet) if sheet.suffix.lower() == ".xlsx" else _records(sheet, _WESTERN_ENCODINGS)
    records = [(n, r) for n, r in records if not _blank(r)]
    if not records:
        raise DatasetFormatError(f"{sheet}:1: the sheet is empty; expected the columns {', '.join(CASME2_COLUMNS)}")
    col = _columns(sheet, records[0][1], CASME2_COLUMNS)
    issues = LineIssues(strict)
    rows = []  # (line, subject, clip, apex cell, AUs, label)
    for line_no, row in records[1:]:
        if len(row) <= max(col.values()):
            issues.bad(sheet, line_no, f"expected the columns {', '.join(CASME2_COLUMNS)}, got {len(row)} fields")
            continue
        subject = row[col["Subject"]].strip().lower().removeprefix("sub")
        clip = row[col["Filename"]].strip()
        if not subject.isdigit() or not clip:
            issues.bad(sheet, line_no, f"expected a subject number and a file name, got "
                                       f"{row[col['Subject']]!r}, {clip!r}")
            continue
        label = _own_label("casme2", row[col["Estimated Emotion"]], issues, sheet, line_no)
        if label is None:
            continue
        rows.append((line_no, int(subject), clip, row[col["ApexFrame"]].strip(),
                     row[col["Action Units"]].strip() or None, label))
    subjects = sorted({r[1] for r in rows})
    if split != "all":
        if fold is None or int(fold) not in subjects:
            raise ValueError(f"casme2: split {split!r} is leave-one-subject-out: fold must be the test subject's "
                             f"number, one of {subjects}; got {fold!r}")
        fold = int(fold)
        rows = [r for r in rows if (r[1] == fold) == (split == "test")]
    else:
        fold = None
    apex_skipped: list[str] = []
    samples = []
    for line_no, subject, clip, apex_cell, aus, label in rows:
        folder = frame_root / f"sub{subject:02d}" / clip
        if media == "apex":
            if not apex_cell.isdigit():
                apex_skipped.append(f"{sheet}:{line_no}: sub{subject:02d}/{clip}: the apex frame is {apex_cell!r}, "
                                    "not a frame number (as in the released sheet)")
                continue
            path = folder / f"{prefix}{int(apex_cell)}.jpg"
        else:
            path = folder
        if check_media and not path.exists():
            issues.bad(sheet, line_no, f"{'apex frame' if media == 'apex' else 'frame folder'} {path} is missing")
            continue
        samples.append(Sample(id=f"sub{subject:02d}/{clip}", media=path, label=label, split=split, fold=fold,
                              identity=f"sub{subject:02d}", kind="image" if media == "apex" else "video",
                              aus=aus))
    if apex_skipped:
        warnings.warn(f"casme2: skipped {len(apex_skipped)} rows whose apex frame is not a number, first: "
                      f"{apex_skipped[0]}", stacklevel=2)
    issues.report("casme2")
    return FERDataset("casme2", CASME2_CLASSES, samples, split, fold, root, apex_skipped + issues.skipped)


# ---------------------------------------------------------------- CMMA

CMMA_COLUMNS = ("UtteranceID", "Utterance", "Speaker", "Emotion")
# Spellings of the public files that differ from their own documentation: test.csv's header says
# "CoversationID" and six of its rows say "digust".
_CMMA_HEADER_ALIASES = {"coversationid": "conversationid"}
_CMMA_LABEL_TYPOS = {"digust": "disgust"}


@register("cmma")
def load_cmma(root: Path, split: str = "train", fold: int | None = None, clip_name: str | None = None,
              strict: bool = True, check_media: bool = True) -> FERDataset:
    """CMMA (Zhang et al., NeurIPS 2023 Datasets and Benchmarks): labels from the public CSVs
    `text/{train,dev,test}.csv` of https://github.com/annoymity2022/Chinese-Dataset (GBK; columns
    ConversationID, UtteranceID, Utterance, Speaker, StartTime, EndTime, Emotion, Sentiment, Sarcasm, Humor,
    ...; MELD's seven emotions). `root` holds `text/` (or the three CSVs directly). split "val" reads dev.

    The audiovisual archive (a Google Drive file linked from that README) has no public description of how
    its clips are named, so this loader does not guess: pass `clip_name`, a path relative to `root` with
    {conversation_id} and {utterance_id}, written after looking at your copy. Without it loading stops and
    says so. The utterance is the sample's `text`, the speaker its `identity`.
    """
    check_split("cmma", split, ("train", "dev", "val", "test"))
    part = "dev" if split == "val" else split
    label_csv = first_existing("cmma", [root / "text" / f"{part}.csv", root / f"{part}.csv"],
                               f"the label file text/{part}.csv")
    if clip_name is None:
        raise DatasetNotFoundError(
            f"cmma: the labels are at {label_csv}, but where each utterance's video is cannot be told: the CMMA "
            "audiovisual archive's file naming is not publicly documented. Unpack the archive (Google Drive link "
            "in https://github.com/annoymity2022/Chinese-Dataset README) under root, look at how its clips are "
            "named and pass clip_name='<path relative to root with {conversation_id} and {utterance_id}>'.")
    records = _records(label_csv, ("utf-8-sig", "gb18030"))
    if not records:
        raise DatasetFormatError(f"{label_csv}:1: the file is empty; expected the header "
                                 f"ConversationID,{','.join(CMMA_COLUMNS)},...")
    header = records[0][1]
    col = _columns(label_csv, header, ("ConversationID", *CMMA_COLUMNS), _CMMA_HEADER_ALIASES)
    issues = LineIssues(strict)
    samples = []
    for line_no, row in records[1:]:
        if _blank(row):  # train.csv ends in rows of empty fields
            continue
        if len(row) != len(header):
            issues.bad(label_csv, line_no, f"expected {len(header)} fields, got {len(row)}")
            continue
        utterance_id, conversation_id = row[col["UtteranceID"]].strip(), row[col["ConversationID"]].strip()
        if not utterance_id or not conversation_id:
            issues.bad(label_csv, line_no, "ConversationID and UtteranceID must not be empty")
            continue
        word = row[col["Emotion"]].strip()
        label = _own_label("cmma", _CMMA_LABEL_TYPOS.get(word.lower(), word), issues, label_csv, line_no, shown=word)
        if label is None:
            continue
        path = root / clip_name.format(conversation_id=conversation_id, utterance_id=utterance_id)
        if check_media and not path.exists():
            issues.bad(label_csv, line_no, f"clip {path} is missing (clip_name={clip_name!r})")
            continue
        samples.append(Sample(id=utterance_id, media=path, label=label, split=split, kind="video",
                              identity=row[col["Speaker"]].strip(), text=row[col["Utterance"]].strip()))
    issues.report("cmma")
    return FERDataset("cmma", CMMA_CLASSES, samples, split, None, root, issues.skipped)
