"""Training data for a run: the splits, the instruction items and their sampling weights.

Data order is a pure function of (seed, epoch) (`emo_llama.data.sampling.epoch_order`), so the step
number is the whole sampler state of a run and N processes see the same samples as one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from emo_llama.config import TrainConfig
from emo_llama.data import OfflineConversationGenerator, Sample, category_instruction, get_dataset
from emo_llama.data.sampling import inverse_frequency_weights, stratified_subset
from emo_llama.features.synthetic import synthetic_features
from emo_llama.utils import repo_path


@dataclass
class TrainItem:
    media: str
    turns: list[tuple[str, str]]
    label: str
    task: str = "category"


def record_turns(record: dict) -> list[tuple[str, str]]:
    conv = record["conversations"]
    return [(conv[i]["value"], conv[i + 1]["value"]) for i in range(0, len(conv) - 1, 2)]


INSTRUCTION_TYPES = ("category", "conversation")  # Tab. 6; an empty choice means no instruction tuning


def build_items(samples, classes, cfg: TrainConfig, agr_of: Callable[[object], str]) -> list[TrainItem]:
    """Category records (half ending with the zero-shot guard and 'My choice is: ...') + conversations."""
    unknown = sorted(set(cfg.instruction_types) - set(INSTRUCTION_TYPES))
    if unknown:
        raise ValueError(f"instruction_types {unknown}: choose from {INSTRUCTION_TYPES} (none: zero-shot only)")
    rng = random.Random(cfg.seed)
    items = []
    if "category" in cfg.instruction_types:
        for s in samples:
            rec = category_instruction(s, classes, rng=rng, zero_shot=rng.random() < cfg.choice_share,
                                       use_caption=cfg.descriptive_text)
            items.append(TrainItem(str(s.media), record_turns(rec), s.label, "category"))
    if "conversation" in cfg.instruction_types:
        generator = OfflineConversationGenerator(seed=cfg.seed, turns=cfg.conversation_turns)
        for s in samples:
            rec = generator(s, agr=agr_of(s) if cfg.use_agr else None)
            items.append(TrainItem(str(s.media), record_turns(rec), s.label, "conversation"))
    return items


def item_weights(items: list[TrainItem], resample: bool, conversation_share: float) -> torch.Tensor | None:
    """Sampling weights: conversations get `conversation_share` of the draws; category items share the rest,
    inverse-frequency by label when `resample` (the paper resamples category data only, Tab. 9)."""
    category = [i.label for i in items if i.task == "category"]
    n_cat, n_conv = len(category), len(items) - len(category)
    if n_cat == 0 or (n_conv == 0 and not resample):
        return None  # one kind of item and nothing to resample: plain shuffling (Tab. 9's "off" row)
    if n_conv == 0:
        conversation_share = 0.0
    elif not resample and abs(conversation_share - n_conv / len(items)) < 1e-9:
        return None  # plain shuffling
    balanced = iter(inverse_frequency_weights(category, total=1.0).tolist() if resample and category else [])
    w = []
    for i in items:
        if i.task == "category":
            w.append((1.0 - conversation_share) * (next(balanced) if resample else 1.0 / n_cat))
        else:
            w.append(conversation_share / n_conv)
    return torch.tensor(w, dtype=torch.double)


SYNTHETIC_CLASSES = ("happiness", "sadness", "surprise")


def synthetic_splits(cfg: TrainConfig, n_train: int = 48, n_test: int = 12):
    """`--dataset synthetic`: random frozen features with learnable classes, for the tiny stack (tests, DDP)."""
    samples = {"train": [], "test": []}
    bank = {}
    for split, n, offset in (("train", n_train, 0), ("test", n_test, 10_000)):
        for i in range(n):
            label = i % len(SYNTHETIC_CLASSES)
            media = Path(f"synthetic/{split}-{i}")
            samples[split].append(Sample(id=f"{split}-{i}", media=media, label=SYNTHETIC_CLASSES[label], split=split))
            bank[str(media)] = synthetic_features(label, offset + i, num_classes=len(SYNTHETIC_CLASSES))
    return (SYNTHETIC_CLASSES, limit_samples(samples["train"], cfg.train_limit, cfg.limit_seed),
            limit_samples(samples["test"], cfg.eval_limit, cfg.limit_seed), bank)


def limit_samples(samples: list[Sample], limit: int | None, seed: int) -> list[Sample]:
    """`limit` samples drawn with `seed`, stratified by label and media kind (`stratified_subset`); all without one."""
    keep = stratified_subset([(s.label, s.kind) for s in samples], limit or 0, seed)
    return [samples[i] for i in keep]


def limit_notes(cfg: TrainConfig, n_train: int, n_test: int) -> dict:
    """metrics.json's record of which samples a capped run used."""
    draw = f"seeded stratified by label and media kind (limit_seed {cfg.limit_seed})"
    return {split: {"samples": n, "limit": limit or None, "draw": draw if limit else "all"}
            for split, n, limit in (("train", n_train, cfg.train_limit), ("test", n_test, cfg.eval_limit))}


def load_splits(cfg: TrainConfig):
    """(classes, train samples, test samples, features or None): `dataset="synthetic"` brings its own features;
    a missing dataset raises the loader's clear error before anything is built."""
    if cfg.dataset == "synthetic":
        return synthetic_splits(cfg)
    # Tab. 8: MAFW's captions live in its with_caption lists, read only when asked (mini always has them)
    options = {"captions": True} if cfg.descriptive_text and cfg.dataset.lower() == "mafw" else {}
    root = repo_path(cfg.data_root) if cfg.data_root else None  # relative: as output_dir (emo_llama.utils.repo_path)
    train = get_dataset(cfg.dataset, root=root, split="train", fold=cfg.fold, **options)
    test = get_dataset(cfg.dataset, root=root, split="test", fold=cfg.fold, **options)
    return (train.classes, limit_samples(train.samples, cfg.train_limit, cfg.limit_seed),
            limit_samples(test.samples, cfg.eval_limit, cfg.limit_seed), None)
