"""Imbalanced-dataset sampling (the paper's Tab. 9): inverse-frequency weights for WeightedRandomSampler.

One sampler for the notebook and for training: notebook 04 draws with `make_weighted_sampler(labels)`;
`emo_llama.train.loop` draws each epoch's order with `epoch_order`, the same sampler over weights that mix
these class-balanced category weights with a fixed share of conversations (`emo_llama.train.items.item_weights`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler


def inverse_frequency_weights(labels: Sequence[str], total: float | None = None) -> np.ndarray:
    """Weight total / (K * count(label)) per sample (K classes), so every class carries the same total weight.

    The default total is K: weight 1 / count(label). Training passes total=1.0 (weights that sum to 1).
    """
    if len(labels) == 0:
        raise ValueError("cannot weight an empty label list")
    counts = Counter(labels)
    k = len(counts)
    numerator = float(k) if total is None else total
    return np.array([numerator / (k * counts[label]) for label in labels], dtype=np.float64)


def make_weighted_sampler(labels: Sequence[str] | None = None, num_samples: int | None = None,
                          replacement: bool = True, generator: torch.Generator | None = None,
                          weights: Sequence[float] | torch.Tensor | None = None) -> WeightedRandomSampler:
    """torch's WeightedRandomSampler with inverse-frequency weights: classes are drawn about equally often.

    As in ufoym/imbalanced-dataset-sampler (the paper's footnote 3): num_samples defaults to the
    dataset size, draws are with replacement, so tail-class samples repeat within an epoch.
    `weights` replaces the inverse-frequency weights of `labels` (training mixes in conversations).
    """
    if weights is None:
        weights = inverse_frequency_weights(labels)
    weights = torch.as_tensor(weights, dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=num_samples or len(weights), replacement=replacement,
                                 generator=generator)


def epoch_order(n: int, epoch: int, seed: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Training's sample order for one epoch, a pure function of (seed, epoch): a shuffle, or, with
    `weights`, one pass of `make_weighted_sampler` (so a resumed run and N processes draw the same)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if weights is None:
        return torch.randperm(n, generator=g)
    return torch.tensor(list(make_weighted_sampler(num_samples=n, weights=weights, generator=g)))


def resampled_counts(labels: Sequence[str], sampler: WeightedRandomSampler,
                     classes: Sequence[str] | None = None) -> dict[str, int]:
    """Class counts of one pass of `sampler` over `labels` (what the model sees in one epoch)."""
    drawn = Counter(labels[i] for i in sampler)
    classes = list(classes) if classes is not None else sorted(set(labels))
    return {c: drawn.get(c, 0) for c in classes}


def long_tailed(labels: Sequence[str], classes: Sequence[str], imbalance: float = 10.0, seed: int = 0) -> list[int]:
    """Indices of a long-tailed subset: class k (in `classes` order) keeps n_max * imbalance^(-k/(K-1)).

    Used to show what resampling does on a balanced set such as mini (the real benchmarks are
    long-tailed by themselves: AffectNet's largest class is about 20x its smallest).
    """
    rng = np.random.default_rng(seed)
    by_class = {c: [i for i, label in enumerate(labels) if label == c] for c in classes}
    n_max = max(len(v) for v in by_class.values())
    keep: list[int] = []
    for k, c in enumerate(classes):
        n = max(1, int(round(n_max * imbalance ** (-k / max(len(classes) - 1, 1)))))
        idx = by_class[c]
        keep += sorted(rng.choice(idx, size=min(n, len(idx)), replace=False).tolist()) if idx else []
    return sorted(keep)


def stratified_subset(strata: Sequence[Hashable], n: int, seed: int) -> list[int]:
    """Indices (in list order) of a seeded draw of `n` items in which every stratum keeps its share of the list.

    Quotas by largest remainder (each stratum floor(n * size / N), the rest to the largest fractions, ties to
    the stratum seen first); within a stratum the items are drawn at random. `n` <= 0 or >= N keeps everything.
    `emo_llama.train.items` draws train_limit / eval_limit this way, by label and media kind, so a capped test
    split is not the first N files of the list (one identity, images only).
    """
    total = len(strata)
    if n <= 0 or n >= total:
        return list(range(total))
    groups: dict[Hashable, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    exact = {s: n * len(idx) / total for s, idx in groups.items()}
    quota = {s: int(q) for s, q in exact.items()}
    by_remainder = sorted(groups, key=lambda s: -(exact[s] - quota[s]))  # stable: first-seen wins ties
    for s in by_remainder[: n - sum(quota.values())]:
        quota[s] += 1
    rng = np.random.default_rng(seed)
    chosen = [int(i) for s, idx in groups.items() for i in rng.choice(idx, size=quota[s], replace=False)]
    return sorted(chosen)
