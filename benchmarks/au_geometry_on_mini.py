"""Do the geometric AU estimates (`emo_llama.expert.au_geometry`) find mini's AUs, and what do they say on real faces?

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/au_geometry_on_mini.py [--stack offline] [--store-root DIR]

mini's AUs are known by construction: each sample's AUs are in its split's `mini_meta.tsv` (written by
`emo_llama.data.mini.build`). The landmarks are the stack's expert's (the offline stack: face-api's
68-point net on the MTCNN crops), read from the feature store that training uses (what is missing is
extracted first, as `benchmarks/probe_frozen_features.py` does).

- One frame per sample: an image's only frame, a clip's middle frame (mini's clips go neutral -> apex ->
  neutral, so the middle one is at or next to the apex). A frame without a face is left out and counted.
- Population neutral: `NeutralReference.fit` on every frame with a face of the TRAIN split's neutral samples.
- Per-identity neutral: the test identity's other neutral samples (its own frames left out, so a neutral
  sample is not compared with itself) for the mean, the population's spread; identities without another
  neutral sample keep the population mean.
- Per AU, on the TEST split (identities never seen in training): ROC AUC of the estimate for "AU present by
  construction" vs "absent" (Hanley & McNeil's standard error), the mean estimate of each group, and the
  same AUC on the training split (where the measures were chosen) next to it.

Then the 14 real check photos (`emo_llama.faces.samples.real_face_set`) through the stack's extractor: each
photo's strongest AUs next to its label, and how well AU12 tells the 12 smiles from the 2 neutral faces.
Uncertainty: the test split has 17 identities and 19 to 87 samples with each AU; the SE column is for the
samples, not the identities, and 12 + 2 real photos show a direction, not a rate.
The last line sums up. Runs in about 20 s with the features stored (it prints its wall time).
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from emo_llama.config import TrainConfig
from emo_llama.data import get_dataset
from emo_llama.expert.au_geometry import (
    AU_PHRASES,
    GEOMETRIC_AUS,
    NOT_MEASURABLE,
    AUEstimates,
    NeutralReference,
    au_summary,
    geometric_aus,
)
from emo_llama.faces.samples import real_face_set
from emo_llama.features import MediaFeatures, extract_to_store
from emo_llama.model import get_stack

TOP_THRESHOLD = 1.0  # an AU is listed for a real photo when it is at least one neutral spread out


@dataclass
class Item:
    """One mini sample: all its frames' landmarks, the frame read, and the AUs it was built with."""

    identity: str
    label: str
    aus: frozenset[int]
    landmarks: np.ndarray  # (T, 68, 2) all frames
    found: np.ndarray  # (T,) bool
    frame: int  # the frame whose AUs are scored


def read_meta(root: Path) -> dict[tuple[str, str], dict[str, str]]:
    """(kind, sample id) -> its row of mini_meta.tsv, for the images and the videos."""
    meta = {}
    for kind, folder in (("image", "images"), ("video", "videos")):
        with open(root / folder / "mini_meta.tsv", encoding="utf-8") as f:
            meta.update({(kind, row["id"]): row for row in csv.DictReader(f, delimiter="\t")})
    return meta


def parse_aus(text: str) -> frozenset[int]:
    return frozenset() if text == "none" else frozenset(int(a) for a in text.split("+"))


def mini_items(store, samples, meta) -> list[Item]:
    items = []
    for s in samples:
        if str(s.media) not in store:  # unreadable media (store.errors): counted by the caller
            continue
        feats: MediaFeatures = store[s.media]
        landmarks, found = feats.landmarks_68.double().numpy(), feats.face_found.numpy().astype(bool)
        items.append(Item(s.identity, s.label, parse_aus(meta[(s.kind, s.id)]["aus"]), landmarks, found,
                          len(landmarks) // 2))
    return items


def neutral_frames(items: list[Item]) -> np.ndarray:
    return np.concatenate([it.landmarks[it.found] for it in items if it.label == "neutral"])


def estimate_items(items: list[Item], population: NeutralReference, per_identity: bool) -> AUEstimates:
    """Each item's scored frame against the population neutral or its identity's own (leave-one-out)."""
    rows, valid = [], []
    for i, it in enumerate(items):
        reference = population
        if per_identity:
            own = [o for j, o in enumerate(items) if j != i and o.identity == it.identity and o.label == "neutral"]
            if own and any(o.found.any() for o in own):
                reference = population.for_identity(neutral_frames(own))
        est = geometric_aus(it.landmarks[it.frame], reference, face_found=it.found[it.frame: it.frame + 1])
        rows.append(est.intensities[0])
        valid.append(est.valid[0])
    return AUEstimates(np.stack(rows), np.array(valid))


def auc_with_se(present: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """ROC AUC and its standard error (Hanley & McNeil 1982); NaN when one group is empty."""
    n1, n0 = int(present.sum()), int((~present).sum())
    if n1 == 0 or n0 == 0:
        return float("nan"), float("nan")
    auc = float(roc_auc_score(present, values))
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    se = np.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc ** 2) + (n0 - 1) * (q2 - auc ** 2)) / (n1 * n0))
    return auc, float(se)


def au_table(items: list[Item], est: AUEstimates) -> dict[str, dict]:
    """Per geometric AU: present/absent counts, AUC (+SE) and mean estimates, over items with a face."""
    ok = est.valid
    out = {}
    for j, name in enumerate(GEOMETRIC_AUS):
        present = np.array([int(name[2:]) in it.aus for it in items])[ok]
        values = est.intensities[ok, j]
        auc, se = auc_with_se(present, values)
        out[name] = {"n_present": int(present.sum()), "n_absent": int((~present).sum()), "auc": auc, "se": se,
                     "mean_present": float(values[present].mean()) if present.any() else float("nan"),
                     "mean_absent": float(values[~present].mean()) if (~present).any() else float("nan")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stack", default="offline")
    ap.add_argument("--store-root", default=None, help="feature store folder (unset: the one training uses)")
    args = ap.parse_args()
    start = time.perf_counter()

    splits = {split: get_dataset("mini", split=split) for split in ("train", "test")}
    meta = read_meta(splits["train"].root)
    samples = splits["train"].samples + splits["test"].samples
    extractor, store, errors = extract_to_store(get_stack(args.stack), samples, TrainConfig().max_frames, "cpu",
                                                root=args.store_root, progress=False)
    items = {split: mini_items(store, ds.samples, meta) for split, ds in splits.items()}
    population = NeutralReference.fit(neutral_frames(items["train"]))
    estimates = {"train": estimate_items(items["train"], population, per_identity=False),
                 "test": estimate_items(items["test"], population, per_identity=False),
                 "test_own": estimate_items(items["test"], population, per_identity=True)}
    tables = {name: au_table(items["test" if name.startswith("test") else "train"], est)
              for name, est in estimates.items()}
    print(f"mini ({args.stack} stack landmarks): population neutral from {population.count} frames of "
          f"{sum(it.label == 'neutral' for it in items['train'])} train neutral samples; test "
          f"{int(estimates['test'].valid.sum())} of {len(items['test'])} samples with a face "
          f"({len(errors)} unreadable); one frame per sample (a clip's middle one)")
    print(f"{'AU':<28} {'test n+/n-':>10}  {'AUC pop (SE)':>14}  {'AUC own':>7}  "
          f"{'mean present/absent':>19}  {'train AUC':>9}")
    for name in GEOMETRIC_AUS:
        t, own, train = tables["test"][name], tables["test_own"][name], tables["train"][name]
        print(f"{AU_PHRASES[name]:<28} {t['n_present']:>4}/{t['n_absent']:<5}  {t['auc']:>6.3f} ({t['se']:.3f})  "
              f"{own['auc']:>7.3f}  {t['mean_present']:>8.2f} / {t['mean_absent']:<8.2f}  {train['auc']:>9.3f}")
    print("not estimated from landmarks: " + "; ".join(f"{au} ({why})" for au, why in NOT_MEASURABLE.items()))

    real = real_face_set()
    real_feats = [extractor(item.media) for item in real]
    real_est = [geometric_aus(f.landmarks_68.double().numpy(), population, face_found=f.face_found.numpy())
                for f in real_feats]
    au12 = GEOMETRIC_AUS.index("AU12")
    print(f"\nreal check photos (population neutral; AUs at least {TOP_THRESHOLD:g} neutral spread out, top 3):")
    for item, est in zip(real, real_est):
        print(f"  {item.name:<13} {item.label:<10} AU12 {est.intensities[0, au12]:>5.1f}  "
              f"{au_summary(est, 0, k=3, threshold=TOP_THRESHOLD)}")
    smiles = np.array([item.label == "happiness" for item in real])
    real_au12 = np.array([est.intensities[0, au12] for est in real_est])
    real_ok = np.isfinite(real_au12)
    real_auc, _ = auc_with_se(smiles[real_ok], real_au12[real_ok])
    raised = real_au12 >= TOP_THRESHOLD  # NaN (no face) compares False

    test_aucs = [tables["test"][n]["auc"] for n in GEOMETRIC_AUS]
    own_aucs = [tables["test_own"][n]["auc"] for n in GEOMETRIC_AUS]
    print(f"\nsummary: mini test mean AUC over {len(GEOMETRIC_AUS)} geometric AUs {np.nanmean(test_aucs):.3f} "
          f"(per-identity neutral {np.nanmean(own_aucs):.3f}; AUs with AUC >= 0.75: "
          f"{', '.join(n for n, a in zip(GEOMETRIC_AUS, test_aucs) if a >= 0.75)}); real photos: AU12 "
          f"smiles vs neutral AUC {real_auc:.3f}, AU12 >= {TOP_THRESHOLD:g} on {int(raised[smiles].sum())} of "
          f"{int(smiles.sum())} smiles and {int(raised[~smiles].sum())} of {int((~smiles).sum())} neutral faces; "
          f"wall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
