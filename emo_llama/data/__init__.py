"""Data and protocol: loaders for ten FER benchmarks and the bundled `mini`, instructions, parsing, metrics.

`get_dataset(name, root, split, fold)` returns a `FERDataset` whose samples carry canonical labels
(labels.CANONICAL), so instructions, parsing and metrics work the same on every dataset.

Layout (notebook 04 reads this subpackage):
- `datasets/`: `Sample`, `FERDataset`, the clear errors, and the loaders of the benchmarks' official layouts
  (the six of Tab. 2/3 and the four zero-shot sets of Tab. 4);
- `mini/`: the bundled dataset built from real faces (sources, Action-Unit warps and paint, the build, its checks);
- `text/`: instruction records, conversations and LLaVA JSON;
- `labels`, `aus`, `parsing`, `metrics`, `sampling`, `plots`: the protocol every dataset shares;
- `splits`: what a run reads (one or several datasets, `eval_datasets`, media kinds), each sample tagged with
  its dataset (imported as `emo_llama.data.splits`: it builds on this package's `DatasetConfig`).
Loaders register themselves by name (`datasets.base.register`); importing this package imports them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from emo_llama.data.datasets import (  # noqa: F401  (they register their loaders)
    image_sets,
    video_sets,
    zero_shot_sets,
)
from emo_llama.data.datasets.base import (
    REGISTRY,
    DatasetFormatError,
    DatasetNotFoundError,
    FERDataset,
    Sample,
    default_root,
)
from emo_llama.data.labels import BASIC7, CANONICAL, UnknownLabelError, canonical_label
from emo_llama.data.metrics import compute_metrics, format_report
from emo_llama.data.mini import build  # noqa: F401  (registers `mini`)
from emo_llama.data.parsing import parse_answer, parse_answers
from emo_llama.data.sampling import make_weighted_sampler
from emo_llama.data.text.conversations import LLMConversationGenerator, OfflineConversationGenerator
from emo_llama.data.text.instructions import category_instruction, category_instructions
from emo_llama.data.text.llava_json import InstructionFormatError, read_llava_json, write_llava_json
from emo_llama.prompts import agr_prompt, zero_shot_question
from emo_llama.utils import default_cache_dir

__all__ = [
    "BASIC7", "CANONICAL", "REGISTRY", "DatasetConfig", "DatasetFormatError", "DatasetNotFoundError", "FERDataset",
    "InstructionFormatError", "LLMConversationGenerator", "OfflineConversationGenerator", "Sample",
    "UnknownLabelError", "agr_prompt", "canonical_label", "category_instruction", "category_instructions",
    "compute_metrics", "default_cache_dir", "format_report", "get_dataset", "make_weighted_sampler",
    "parse_answer", "parse_answers", "read_llava_json", "write_llava_json", "zero_shot_question",
]


def get_dataset(name: str, root: str | os.PathLike | None = None, split: str = "train", fold: int | None = 1,
                **options) -> FERDataset:
    """Load a split of a dataset by name (see `REGISTRY`); `mini` builds itself on first use.

    Options are loader-specific, e.g. `strict=False` (skip malformed lines and count them),
    `num_classes=8` (AffectNet), `media="clip_224x224"` (DFEW), `list_file=..., reroot=(old, new)`
    (DFER-CLIP / MAE-DFER list files for the video datasets).
    """
    key = name.lower().replace("-", "").replace("_", "")
    if root is not None and str(root).strip() == "":
        root = None  # notebooks and CLIs pass "" for "no folder given"
    if key not in REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(REGISTRY))}")
    if root is None and key != "mini" and options.get("list_file") is None:
        root = default_root(key)
    return REGISTRY[key](root=Path(root) if root is not None else None, split=split, fold=fold, **options)




@dataclass
class DatasetConfig:
    """What notebooks and scripts need to name a dataset: one value to pass around, `.load(split)`."""

    name: str = "mini"
    root: str | None = None  # folder of the official copy ("" or None: mini's cache / $EMO_LLAMA_DATA)
    fold: int = 1
    options: dict = field(default_factory=dict)  # loader options, e.g. {"num_classes": 8}
    test_split: str = "test"  # the split a run scores (MER2023: test1..3 or train; CASME II: all or LOSO test)

    def load(self, split: str) -> FERDataset:
        return get_dataset(self.name, self.root or None, split=split, fold=self.fold, **self.options)
