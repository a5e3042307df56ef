"""Does the default training configuration converge the same way every seed? (issue 23)

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/seed_spread.py --seeds 5 [--output-dir runs/seed_spread]
        [--set key=value ...]

Trains `make train`'s configuration (TrainConfig's defaults: mini, the offline stack, the cpu recipe) once per
training seed 0..N-1 and prints one line per seed: mini-test UAR and WAR, and how many of the real-face check
photos (`emo_llama.faces.samples.real_face_set`) the model reads right. The last line:

    uar_std=... uar_mean=... real_min=... real_median=... real_max=...

`uar_std` is the sample standard deviation over seeds. The frozen features are extracted once (the feature
store) and shared by every seed; each seed trains into its own folder (`<output-dir>/seed<N>`) and saves its final
checkpoint there, so a rerun of the same configuration reads it back instead of training again (and its saved
answers instead of generating them). A seed whose `metrics.json` already records exactly this configuration (up to
where it was saved and how it was shown) is read from that file. Delete a seed's folder to retrain it. `--set` changes one TrainConfig field for every seed (e.g. `--set align_steps=200`), as the command
line of `python -m emo_llama.train` would. About 6 minutes per seed on 2 cores once the features are stored.

The real-face photos are a development set: they informed choices (vision_input, FER's crop fraction, the
smile rule of mini v4; see README). A held-out set of real faces kept outside the repository judges the result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from emo_llama.config import parse_args
from emo_llama.train import run
from emo_llama.train.checkpoint import recorded_metrics

FINAL_ONLY = 10**9  # checkpoint_every for "save the last step only" (the loop always saves a due final step)


def seed_line(seed: int, metrics: dict, seconds: float) -> dict:
    """One seed's figures from its metrics.json content (`real` is None when the run skipped the check set)."""
    trained, real = metrics["trained"], metrics.get("real_faces") or {}
    return {"seed": seed, "uar": trained["uar"], "war": trained["war"], "real": real.get("correct"),
            "real_total": real.get("total"), "seconds": round(seconds)}


def summary(rows: list[dict]) -> str:
    uars = [r["uar"] for r in rows]
    reals = [r["real"] for r in rows if r.get("real") is not None]
    std = statistics.stdev(uars) if len(uars) > 1 else 0.0
    real = (f"real_min={min(reals)} real_median={statistics.median(reals):g} real_max={max(reals)}" if reals
            else "real_min=n/a real_median=n/a real_max=n/a")
    return f"uar_std={std:.3f} uar_mean={statistics.mean(uars):.3f} {real}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="train seeds 0 .. N-1")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--output-dir", default="runs/seed_spread")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="TrainConfig fields for every seed")
    args = ap.parse_args()
    argv = []
    for item in args.set:
        key, _, value = item.partition("=")
        argv += [f"--{key}", value]
    base = parse_args(argv)  # the same parsing and recipe merge as `python -m emo_llama.train`
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        start = time.perf_counter()
        cfg = replace(base, seed=seed, output_dir=str(Path(args.output_dir) / f"seed{seed}"),
                      checkpoint_every=FINAL_ONLY if base.checkpoint_every == -1 else base.checkpoint_every)
        metrics = recorded_metrics(cfg)
        if metrics is None:
            metrics = run(cfg, log=lambda _line: None).metrics
        rows.append(seed_line(seed, metrics, time.perf_counter() - start))
        r = rows[-1]
        print(f"seed {seed}: mini-test UAR {r['uar']:.3f}  WAR {r['war']:.3f}  real faces {r['real']}/{r['real_total']}"
              f"  ({r['seconds']} s)", flush=True)
    print(summary(rows))
    out = Path(args.output_dir) / "seed_spread.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"overrides": args.set, "seeds": rows, "summary": summary(rows)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
