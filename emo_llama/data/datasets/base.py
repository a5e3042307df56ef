"""The common sample record, the dataset container, the loader registry and shared error handling."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One labelled image or video, independent of the dataset it came from.

    `media` is an image file, a video file or a folder of frames (`emo_llama.faces.video.load_frames`
    reads all three). `label` is a canonical name (labels.CANONICAL, or a MAFW compound 'a_b').
    """

    id: str
    media: Path
    label: str
    split: str
    fold: int | None = None
    caption: str | None = None
    identity: str | None = None
    kind: str = "image"  # "image" | "video"
    box: tuple[float, float, float, float] | None = None  # face box x0, y0, x1, y1 in media pixels
    text: str | None = None  # the words spoken in the clip (MELD's and CMMA's utterance)
    voice: str | None = None  # a description of the speaker's voice/tone (mini: its synthesised prosody; MERR: audio clues)
    aus: str | None = None  # the dataset's own Action Unit coding, as written (CASME II: "4+L10")
    dataset: str | None = None  # the registered loader it came from (set by emo_llama.data.splits)


@dataclass
class FERDataset:
    """A loaded split: `classes` are canonical names in the dataset's own order."""

    name: str
    classes: tuple[str, ...]
    samples: list[Sample]
    split: str = "train"
    fold: int | None = None
    root: Path | None = None
    skipped: list[str] = field(default_factory=list)  # lenient mode: "file:line: reason"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.samples]

    def class_counts(self) -> dict[str, int]:
        """Samples per class, in class order (classes without samples show 0)."""
        counts = Counter(self.labels)
        return {c: counts.get(c, 0) for c in self.classes}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset (or one of its files) is not where the loader looked."""


class DatasetFormatError(ValueError):
    """A file of the dataset does not have the expected format (message names file and line)."""


# How to obtain each official dataset; quoted in every "not found" error.
HOW_TO_GET: dict[str, str] = {
    "rafdb": "request RAF-DB from its authors at http://www.whdeng.cn/RAF/model1.html (academic licence)",
    "affectnet": "request AffectNet from its authors at http://mohammadmahoor.com/affectnet/ (academic licence)",
    "ferplus": ("download fer2013.csv (Kaggle 'Challenges in Representation Learning: Facial Expression "
                "Recognition') and fer2013new.csv from https://github.com/microsoft/FERPlus"),
    "dfew": "request DFEW from its authors at https://dfew-dataset.github.io/ (academic licence)",
    "ferv39k": "request FERV39K from its authors at https://wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html",
    "mafw": "request MAFW from its authors at https://mafw-database.github.io/MAFW/ (academic licence)",
    "mini": "mini is built automatically from data shipped in installed packages (see data/README.md)",
    "meld": ("download MELD.Raw.tar.gz (linked from https://affective-meld.github.io/ and "
             "https://github.com/declare-lab/MELD) and unpack it and its train/dev/test archives"),
    "mer2023": ("sign the MER2023 EULA at https://huggingface.co/datasets/MERChallenge/MER2023 "
                "(see http://merchallenge.cn/); academic use only"),
    "casme2": ("request CASME II from the Institute of Psychology, Chinese Academy of Sciences at "
               "http://casme.psych.ac.cn/casme/e2 (licence agreement)"),
    "cmma": ("get the label CSVs (text/train.csv, dev.csv, test.csv) from https://github.com/annoymity2022/"
             "Chinese-Dataset and the audiovisual archive from the Google Drive link in that README "
             "(non-commercial licence)"),
}


def not_found(name: str, what: str, where: Path) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{name}: expected {what} at {where}, but it does not exist. "
        f"Point `root` at your unchanged official copy; to obtain it, {HOW_TO_GET.get(name, 'see data/README.md')}. "
        "Nothing is ever downloaded automatically."
    )


def require(name: str, path: Path, what: str) -> Path:
    if not path.exists():
        raise not_found(name, what, path)
    return path


def first_existing(name: str, candidates: list[Path], what: str) -> Path:
    """The first of several accepted spellings that exists; else an error listing all of them."""
    for c in candidates:
        if c.exists():
            return c
    tried = " or ".join(str(c) for c in candidates)
    raise not_found(name, what, Path(tried))


class LineIssues:
    """Collects malformed lines: raises at once in strict mode, counts and keeps going otherwise."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.skipped: list[str] = []

    def bad(self, file: Path, line_no: int | None, reason: str) -> None:
        where = f"{file}:{line_no}" if line_no is not None else str(file)
        if self.strict:
            raise DatasetFormatError(f"{where}: {reason} (pass strict=False to skip such lines and count them)")
        self.skipped.append(f"{where}: {reason}")

    def report(self, name: str) -> None:
        if self.skipped:
            warnings.warn(f"{name}: skipped {len(self.skipped)} malformed entries, first: {self.skipped[0]}",
                          stacklevel=3)


def read_text(path: Path, encodings: tuple[str, ...] = ("utf-8-sig",)) -> str:
    """Decode with the first encoding that works (UTF-8 is strict, so GBK bytes fall through to GBK)."""
    raw = path.read_bytes()
    for enc in encodings:
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise DatasetFormatError(f"{path}: cannot decode the file as any of {encodings}")


def check_split(name: str, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"{name}: split must be one of {allowed}, got {split!r}")


def check_fold(name: str, fold: int | None, n_folds: int) -> int:
    if fold is None or not 1 <= int(fold) <= n_folds:
        raise ValueError(f"{name}: fold must be 1..{n_folds}, got {fold!r}")
    return int(fold)


def default_root(name: str) -> Path:
    """Default folder of an official copy: $EMO_LLAMA_DATA/<name> (no guessing beyond that)."""
    base = os.environ.get("EMO_LLAMA_DATA")
    if not base:
        raise ValueError(f"{name}: pass root=<folder of your official copy> (or set EMO_LLAMA_DATA)")
    return Path(base).expanduser() / name


# name -> loader(root, split, fold, **options) -> FERDataset. Loader modules register themselves.
REGISTRY: dict[str, Callable[..., FERDataset]] = {}


def register(name: str) -> Callable[[Callable[..., FERDataset]], Callable[..., FERDataset]]:
    def deco(fn: Callable[..., FERDataset]) -> Callable[..., FERDataset]:
        REGISTRY[name] = fn
        return fn

    return deco
