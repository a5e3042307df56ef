"""What a run reads: the training and test samples of one or several datasets, each sample tagged with its dataset.

`load_splits(cfg)` is the one place a run (and `python -m emo_llama.evaluate`) reads datasets:

- `cfg.datasets` (or `cfg.dataset` alone) are trained on together; each keeps its own class list, so a question
  names the classes of the sample's own dataset, and each test split is scored on its own (`Splits.test_sets`);
- `cfg.eval_datasets` are scored only (cross-dataset evaluation, the paper's Tab. 2-4);
- `cfg.train_kinds` keeps only images or only videos for training (the cross-modality tables on mini).

A dataset is named as `name`, `name=folder`, `name:split` or `name:split=folder` (`dataset_specs`). The folder of
a bare name: `cfg.data_root` when the run reads that one dataset, else `$EMO_LLAMA_DATA/<name>`
(`emo_llama.data.datasets.base.default_root`). The split is the one scored (default "test"); sets without a test
split say which they have (MER2023: `mer2023:test3`, `mer2023:train` for a zero-shot score on its labelled videos;
CASME II: `casme2:all`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from emo_llama.config import TrainConfig
from emo_llama.data import DatasetConfig, Sample
from emo_llama.data.sampling import stratified_subset
from emo_llama.features.synthetic import synthetic_features
from emo_llama.utils import repo_path

SYNTHETIC_CLASSES = ("happiness", "sadness", "surprise")
MEDIA_KINDS = ("image", "video")


@dataclass
class Splits:
    """The samples a run trains and scores on. `classes` is the union of the training datasets' classes (in
    order of first appearance); `classes_of` each dataset's own list; `test_sets` the test samples per
    scored dataset (training datasets first, then `eval_datasets`)."""

    classes: tuple[str, ...]
    train: list[Sample]
    test_sets: dict[str, list[Sample]]
    classes_of: dict[str, tuple[str, ...]]
    bank: dict | None = None                       # synthetic features (`dataset="synthetic"`); else the store
    primary: str = ""                              # the first training dataset: metrics.json's headline
    trained_on: tuple[str, ...] = ()               # the training datasets' names
    skipped_kinds: int = 0                         # training samples left out by train_kinds
    notes: dict = field(default_factory=dict)      # metrics.json's record of the limits

    @property
    def test(self) -> list[Sample]:
        return self.test_sets[self.primary]

    @property
    def all_test(self) -> list[Sample]:
        return [s for samples in self.test_sets.values() for s in samples]


def dataset_specs(names: Sequence[str], cfg: TrainConfig, single: bool) -> list[DatasetConfig]:
    """`name` or `name=folder` -> DatasetConfig. A bare name takes cfg.data_root when `single` (the run reads one
    dataset); otherwise its default folder. Relative folders are the repository's (as output_dir)."""
    specs = []
    for text in names:
        name, _, root = str(text).partition("=")
        name, _, split = name.partition(":")
        root = root.strip() or (cfg.data_root if single else None)
        name = name.strip().lower()
        specs.append(DatasetConfig(name, str(repo_path(root)) if root else None, cfg.fold, _options(cfg, name),
                                   test_split=split.strip() or "test"))
    return specs


def scored_name(spec: DatasetConfig) -> str:
    """A scored split's name in metrics and folders: the dataset's, with the split when it is not "test"."""
    return spec.name if spec.test_split == "test" else f"{spec.name}:{spec.test_split}"


def spec_name(text: str) -> str:
    """The dataset name of a spec (`name[:split][=folder]`)."""
    return str(text).partition("=")[0].partition(":")[0].strip().lower()


def training_names(cfg: TrainConfig) -> tuple[str, ...]:
    return tuple(cfg.datasets) or (cfg.dataset,)


def weights_by_dataset(cfg: TrainConfig) -> dict[str, float] | None:
    """`dataset_weights` by training dataset name (None: unset, category draws split by size)."""
    if not cfg.dataset_weights:
        return None
    names = [spec_name(spec) for spec in training_names(cfg)]
    if len(cfg.dataset_weights) != len(names) or min(cfg.dataset_weights) <= 0:
        raise ValueError(f"dataset_weights {list(cfg.dataset_weights)}: one positive weight per dataset of {names}")
    return dict(zip(names, cfg.dataset_weights))


def load_splits(cfg: TrainConfig) -> Splits:
    """The run's samples; a missing dataset raises its loader's clear error before anything is built."""
    if cfg.dataset == "synthetic" and not cfg.datasets:
        return synthetic_splits(cfg)
    unknown = sorted(set(cfg.train_kinds) - set(MEDIA_KINDS))
    if unknown or not cfg.train_kinds:
        raise ValueError(f"train_kinds {list(cfg.train_kinds)}: choose one or both of {MEDIA_KINDS}")
    train_names, eval_names = training_names(cfg), tuple(cfg.eval_datasets)
    single = len({spec_name(n) for n in train_names + eval_names}) == 1
    train_specs = dataset_specs(train_names, cfg, single)
    eval_specs = dataset_specs(eval_names, cfg, single)
    names = [s.name for s in train_specs]
    if len(set(names)) != len(names):
        raise ValueError(f"datasets {names}: a dataset is named twice")
    classes_of, train, test_sets = {}, [], {}
    skipped = 0
    for spec in train_specs:
        train_split = spec.load("train")
        classes_of[spec.name] = tuple(train_split.classes)
        kept = [s for s in train_split.samples if s.kind in cfg.train_kinds]
        skipped += len(train_split.samples) - len(kept)
        train += [replace(s, dataset=spec.name) for s in limit_samples(kept, cfg.train_limit, cfg.limit_seed)]
        test_sets[spec.name] = _test_split(spec, cfg)[1]
    if not train:
        raise ValueError(f"no training sample of {list(names)} is of the kinds {list(cfg.train_kinds)}")
    for spec in eval_specs:
        if scored_name(spec) not in test_sets:  # a training dataset's test split is scored anyway
            classes_of[scored_name(spec)], test_sets[scored_name(spec)] = _test_split(spec, cfg)
    classes = tuple(dict.fromkeys(c for n in names for c in classes_of[n]))
    splits = Splits(classes, train, test_sets, classes_of, None, names[0], tuple(names), skipped)
    splits.notes = limit_notes(cfg, len(train), len(splits.test))
    return splits


def load_test_sets(cfg: TrainConfig, names: Sequence[str]) -> dict[str, tuple[tuple[str, ...], list[Sample]]]:
    """name -> (its classes, its test samples) for evaluation only (`python -m emo_llama.evaluate`)."""
    specs = dataset_specs(names, cfg, single=len(names) == 1)
    return {scored_name(spec): _test_split(spec, cfg) for spec in specs}


def _test_split(spec: DatasetConfig, cfg: TrainConfig) -> tuple[tuple[str, ...], list[Sample]]:
    test_split = spec.load(spec.test_split)
    samples = limit_samples(test_split.samples, cfg.eval_limit, cfg.limit_seed)
    return tuple(test_split.classes), [replace(s, dataset=spec.name) for s in samples]


def _options(cfg: TrainConfig, name: str) -> dict:
    # Tab. 8: MAFW's captions live in its with_caption lists, read only when asked (mini always has them)
    return {"captions": True} if cfg.descriptive_text and name == "mafw" else {}


def synthetic_splits(cfg: TrainConfig, n_train: int = 48, n_test: int = 12) -> Splits:
    """`--dataset synthetic`: random frozen features with learnable classes, for the tiny stack (tests, DDP)."""
    samples = {"train": [], "test": []}
    bank = {}
    for split, n, offset in (("train", n_train, 0), ("test", n_test, 10_000)):
        for i in range(n):
            label = i % len(SYNTHETIC_CLASSES)
            media = Path(f"synthetic/{split}-{i}")
            samples[split].append(Sample(id=f"{split}-{i}", media=media, label=SYNTHETIC_CLASSES[label], split=split,
                                         dataset="synthetic"))
            bank[str(media)] = synthetic_features(label, offset + i, num_classes=len(SYNTHETIC_CLASSES))
    train = limit_samples(samples["train"], cfg.train_limit, cfg.limit_seed)
    test = limit_samples(samples["test"], cfg.eval_limit, cfg.limit_seed)
    splits = Splits(SYNTHETIC_CLASSES, train, {"synthetic": test}, {"synthetic": SYNTHETIC_CLASSES}, bank,
                    "synthetic", ("synthetic",))
    splits.notes = limit_notes(cfg, len(train), len(test))
    return splits


def limit_samples(samples: list[Sample], limit: int | None, seed: int) -> list[Sample]:
    """`limit` samples drawn with `seed`, stratified by label and media kind (`stratified_subset`); all without one."""
    keep = stratified_subset([(s.label, s.kind) for s in samples], limit or 0, seed)
    return [samples[i] for i in keep]


def limit_notes(cfg: TrainConfig, n_train: int, n_test: int) -> dict:
    """metrics.json's record of which samples a capped run used."""
    draw = f"seeded stratified by label and media kind (limit_seed {cfg.limit_seed})"
    return {split: {"samples": n, "limit": limit or None, "draw": draw if limit else "all"}
            for split, n, limit in (("train", n_train, cfg.train_limit), ("test", n_test, cfg.eval_limit))}
