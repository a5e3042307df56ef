"""Frames/s of emo_llama's FaceCropper on 720p frames, batch 1 vs batched, against calling
facenet-pytorch's MTCNN.detect directly in the same run.

    .venv/bin/python benchmarks/bench_face_crop.py [--frames 32] [--batch 16] [--device auto]

The cropper does more than detect (selection, square crop with margin, resize), so a ratio a little
under 1.0 is its overhead; the batched/batch-1 ratio is what batching buys on this device.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from emo_llama.faces import CropConfig, FaceCropper, samples
from emo_llama.faces._compat import import_facenet_mtcnn
from emo_llama.utils import resolve_device


def frames_720p(n: int) -> list[np.ndarray]:
    """n different 1280x720 frames with two real faces at varying places."""
    faces = [samples.astronaut(), np.asarray(Image.fromarray(samples.grace_hopper()).resize((426, 500)))]
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        frame = np.full((720, 1280, 3), 90, np.uint8)
        x = int(rng.integers(0, 200))
        frame[100:612, x:x + 512] = faces[0]
        frame[110:610, 700 + x // 2:700 + x // 2 + 426] = faces[1]
        frames.append(frame)
    return frames


def rate(fn, frames, batch: int, device: torch.device) -> float:
    fn(frames[:batch])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(frames), batch):
        fn(frames[i:i + batch])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    frames = frames_720p(args.frames)
    cropper = FaceCropper(CropConfig(device=str(device), batch_size=args.batch))
    mtcnn = import_facenet_mtcnn()(device=device, keep_all=True)

    results = {}
    for batch in (1, args.batch):
        results[("emo_llama", batch)] = rate(cropper.crop, frames, batch, device)
        results[("facenet", batch)] = rate(lambda fr: mtcnn.detect(fr), frames, batch, device)
    print(f"device: {device} | {args.frames} frames of 1280x720 | torch threads: {torch.get_num_threads()}")
    for (who, batch), fps in results.items():
        print(f"  {who:9s} batch {batch:3d}: {fps:7.2f} frames/s")
    for batch in (1, args.batch):
        print(f"ratio emo_llama/facenet at batch {batch}: {results[('emo_llama', batch)] / results[('facenet', batch)]:.2f}")
    print(f"ratio batched/batch-1 (emo_llama): {results[('emo_llama', args.batch)] / results[('emo_llama', 1)]:.2f}")
    if device.type != "cpu":  # the accelerator must find the same faces as the CPU
        on_device = cropper.crop(frames[:4])
        on_cpu = FaceCropper(CropConfig(device="cpu")).crop(frames[:4])
        gap = max(float(np.abs(a.box - b.box).max()) for a, b in zip(on_device, on_cpu))
        print(f"largest box difference {device.type} vs cpu: {gap:.3f} px")


if __name__ == "__main__":
    main()
