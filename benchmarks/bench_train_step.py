"""Training-step time of EMO-LLaMA (LoRA forward + backward + AdamW) on cached features.

    python benchmarks/bench_train_step.py [--stack offline] [--device auto] [--batch 8] [--steps 3]

On CUDA the step runs under bf16 autocast (as `emo_llama.train` does); on CPU in fp32.
Prints seconds per step and LLM tokens per second.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", default="offline")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lora-r", type=int, default=16)
    args = ap.parse_args()

    from emo_llama.data import get_dataset, zero_shot_question
    from emo_llama.features import FeatureExtractor
    from emo_llama.model import EmoLlama, EmoLlamaConfig
    from emo_llama.utils import resolve_device, seed_everything

    seed_everything(0)
    device = resolve_device(args.device)
    train = get_dataset("mini", split="train")
    model = EmoLlama(EmoLlamaConfig(stack=args.stack, lora_r=args.lora_r, lora_alpha=2 * args.lora_r)).to(device)
    extractor = FeatureExtractor.from_stack(model.stack, device=device)
    samples = train.samples[: args.batch]
    feats = [extractor(s.media) for s in samples]
    question = zero_shot_question(train.classes)
    batch = model.make_batch(feats, [[(question, f"My choice is: {s.label}")] for s in samples], device=device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    model.train()
    times = []
    for i in range(args.steps + 1):  # the first step warms up kernels and allocator
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            loss = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    tokens = int(batch["attention_mask"].sum())
    step = sum(times) / len(times)
    print(f"device {device} | stack {args.stack} | batch {args.batch} | {tokens} tokens/step | "
          f"{step:.3f} s/step | {tokens / step:.0f} tokens/s | threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
