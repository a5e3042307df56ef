"""Frozen-feature cache: per-step time of a first run (encoders run) vs a second run (features from disk).

    python benchmarks/bench_feature_cache.py --samples 32 --batch 8 [--stack offline] [--train-step]

A "step" fetches the features of one batch (first run: frames -> MTCNN crop -> vision encoder + facial
expert, then written to the cache; second run: read from the cache). With --train-step each step also
runs one LoRA forward/backward, so the printed ratio is the end-to-end per-step speed-up.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", default="offline")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--train-step", action="store_true")
    args = ap.parse_args()

    from emo_llama.data import get_dataset, zero_shot_question
    from emo_llama.features import FeatureExtractor
    from emo_llama.model import EmoLlama, EmoLlamaConfig, get_stack
    from emo_llama.utils import seed_everything

    seed_everything(0)
    train = get_dataset("mini", split="train")
    step_samples = train.samples[:: max(1, len(train.samples) // args.samples)][: args.samples]
    stack = get_stack(args.stack)
    model = EmoLlama(EmoLlamaConfig(stack=args.stack), stack) if args.train_step else None
    question = zero_shot_question(train.classes)
    with tempfile.TemporaryDirectory() as cache:
        extractor = FeatureExtractor.from_stack(stack, cache_dir=cache)
        times = {}
        for run in ("first run (encoders)", "second run (cache)"):
            per_step = []
            for start in range(0, len(step_samples), args.batch):
                chunk = step_samples[start: start + args.batch]
                t0 = time.perf_counter()
                feats = [extractor(s.media) for s in chunk]
                if model is not None:
                    batch = model.make_batch(feats, [[(question, f"My choice is: {s.label}")] for s in chunk])
                    model(batch).backward()
                    model.zero_grad(set_to_none=True)
                per_step.append(time.perf_counter() - t0)
            times[run] = sum(per_step) / len(per_step)
            print(f"{run:<22} {times[run]:.3f} s/step  ({len(per_step)} steps of {args.batch})")
    first, second = times.values()
    what = "end-to-end step (features + LoRA fwd/bwd)" if args.train_step else "feature part of a step"
    print(f"speed-up of the {what}: {first / second:.1f}x   (threads: {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
