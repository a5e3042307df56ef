"""What storing frozen tokens in fp16 costs (issue 16): the same mini test features through an fp32 and an fp16
store, and a trained model's answers on each. Prints one run's figures.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_fp16_store.py --model runs/05_train/model   # ~2 min

The feature store keeps vision and face tokens in fp16 (`emo_llama.features.store`, half the disk of fp32);
landmarks, age/gender, masks and crops keep their dtype. Per token field: the largest relative error over
values with |x| >= 1e-3 (fp16 rounds to 11 significant bits, so 2**-11 = 4.9e-4 is the bound for normal values),
the largest absolute error and the share of values fp16 flushes to zero. Then the model (`--model`: a
`save_pretrained` folder trained on mini with the same stack) answers mini test from each store: the answers
that differ, and UAR with fp32 vs fp16 tokens. Last line: `answers_differ=<n> uar_fp32=<x> uar_fp16=<y>`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path


def main(argv=None) -> None:
    from emo_llama.data import get_dataset
    from emo_llama.evaluate import evaluate
    from emo_llama.features import FeatureExtractor
    from emo_llama.features.store import HALF_FIELDS, FeatureStore
    from emo_llama.model import EmoLlama
    from emo_llama.prompts import category_question

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/05_train/model")
    ap.add_argument("--limit", type=int, default=0, help="first N test samples (0: all)")
    ap.add_argument("--max_frames", type=int, default=8)
    args = ap.parse_args(argv)

    model = EmoLlama.from_pretrained(args.model, device="cpu")
    test = get_dataset("mini", split="test")
    samples = test.samples[: args.limit] if args.limit else test.samples
    media = [str(s.media) for s in samples]
    extractor = FeatureExtractor.from_stack(model.stack, max_frames=args.max_frames, device="cpu")
    root = Path(tempfile.mkdtemp(prefix="fp16_store_"))
    stores = {}
    for name, half in (("fp32", False), ("fp16", True)):
        store = FeatureStore.for_extractor(extractor, root=root / name, half=half)
        store.fill(extractor, media, progress=False)
        stores[name] = store.open(media)
        print(f"{name} store: {store.disk_bytes() / len(media) / 1024:.1f} KiB per sample", flush=True)
    for field in HALF_FIELDS:
        rel, absolute, flushed, n = 0.0, 0.0, 0, 0
        for m in media:
            a = getattr(stores["fp32"][m], field).float()
            b = getattr(stores["fp16"][m], field).float()
            big = a.abs() >= 1e-3
            if big.any():
                rel = max(rel, float(((a - b).abs()[big] / a.abs()[big]).max()))
            absolute = max(absolute, float((a - b).abs().max()))
            flushed += int(((a != 0) & (b == 0)).sum())
            n += a.numel()
        print(f"{field}: max relative error {rel:.2e} (|x| >= 1e-3), max absolute error {absolute:.2e}, "
              f"{flushed / max(1, n):.2e} of values flushed to 0", flush=True)
    question = [category_question(test.classes, "video" if s.kind == "video" else "image") for s in samples]
    labels = [s.label for s in samples]
    scored = {name: evaluate(model, [store[m] for m in media], labels, test.classes, question, batch_size=16,
                             max_new_tokens=12, progress=False) for name, store in stores.items()}
    differ = sum(a != b for a, b in zip(scored["fp32"]["answers"], scored["fp16"]["answers"]))
    shutil.rmtree(root, ignore_errors=True)
    print(f"answers_differ={differ} of {len(media)} uar_fp32={scored['fp32']['uar']:.4f} "
          f"uar_fp16={scored['fp16']['uar']:.4f}")


if __name__ == "__main__":
    main()
