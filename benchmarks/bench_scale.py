"""Memory and throughput of the feature store path at two dataset sizes (issue 16). Prints ratios from one run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py --small 2000 --large 20000

With the `tiny` stack on synthetic media (images as 64 px PNGs; videos as folders of 3 frames, 1 in 8 samples):
- extraction into the store with 1 and with 2 processes (each its share, `FeatureStore.fill`) on the small set:
  samples/s per process, peak RSS per process;
- extraction of the large set with 2 processes: peak RSS per process;
- one training epoch per set in a fresh process (store opened, streaming feature statistics, every batch read
  from the store, tiny EmoLlama forward/backward/AdamW): peak RSS;
- store bytes on disk per sample, and the extrapolation to the paper's 340k samples (295k images + 45k videos)
  with the `paper` stack's per-frame sizes (CLIP-L 257 x 1024 or EVA-G 257 x 1408 tokens, 49 x 256 face tokens,
  fp16) for videos of `--paper-video-frames` frames.
Face detection is replaced by the centre square of each frame (MTCNN would dominate and measure nothing about the
store). Last line: `ram_ratio=<peak RSS large / small> scaling=<2-process / 1-process throughput>`.
Goal: ram_ratio <= 1.2, scaling >= 1.6 (on a machine whose 2 cores are not shared with other work).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_media(folder: Path, n: int, video_every: int = 8) -> list[str]:
    rng = np.random.default_rng(n)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        if i % video_every == 0:
            clip = folder / f"v{i:06d}"
            clip.mkdir(exist_ok=True)
            for t in range(3):
                Image.fromarray(np.roll(img, 4 * t, axis=1)).save(clip / f"{t:03d}.png")
            paths.append(str(clip))
        else:
            Image.fromarray(img).save(folder / f"i{i:06d}.png")
            paths.append(str(folder / f"i{i:06d}.png"))
    return paths


def _extractor():
    import torch

    import emo_llama.expert.tiny  # noqa: F401
    from emo_llama.features.extractor import FeatureExtractor, _centre_square
    from emo_llama.model import get_stack

    torch.set_num_threads(1)
    ext = FeatureExtractor.from_stack(get_stack("tiny"), max_frames=3, device="cpu", use_cache=False)

    def centre_crops(frames):  # no MTCNN: see the module docstring
        crops = [torch.from_numpy(np.array(_centre_square(f, ext.crop_size))).permute(2, 0, 1).float() / 255
                 for f in frames]
        return torch.stack(crops), torch.ones(len(frames), dtype=torch.bool)

    ext.crops = centre_crops
    return ext


def _extract_worker(paths, root, rank, world, queue):
    from emo_llama.features.store import FeatureStore

    ext = _extractor()
    store = FeatureStore.for_extractor(ext, root=root, chunk_size=64)
    t0 = time.perf_counter()
    store.fill(ext, paths, rank, world, progress=False)
    seconds = time.perf_counter() - t0
    queue.put({"rank": rank, "samples": store.extracted, "seconds": seconds,
               "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def extract(paths, root, world) -> list[dict]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_extract_worker, args=(paths, root, r, world, queue)) for r in range(world)]
    for p in procs:
        p.start()
    out = [_get(queue, procs) for _ in procs]
    for p in procs:
        p.join()
    return sorted(out, key=lambda d: d["rank"])


def _epoch_worker(paths, root, batch, queue):
    import torch

    from emo_llama.features.store import FeatureStore
    from emo_llama.model import EmoLlama, EmoLlamaConfig

    ext = _extractor()
    store = FeatureStore.for_extractor(ext, root=root, chunk_size=64).open(paths)
    tiny = {"context_dim": 16, "fim_dim": 16, "fim_heads": 2, "landmark_hidden": 16, "num_queries": 4}
    model = EmoLlama(EmoLlamaConfig(stack="tiny", lora_r=4, **tiny))  # the tiny stack's expert sets face_dim
    model.fit_feature_statistics(store[p] for p in paths)  # one streaming pass
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    order = np.random.default_rng(0).permutation(len(paths))
    t0 = time.perf_counter()
    model.train()
    for start in range(0, len(order), batch):
        chosen = [paths[i] for i in order[start: start + batch]]
        b = model.make_batch([store[p] for p in chosen], [[("Which emotion?", "happiness")]] * len(chosen))
        model(b).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    queue.put({"seconds": time.perf_counter() - t0, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def _get(queue, procs) -> dict:
    """The next result; stops when a worker died instead of waiting for ever."""
    import queue as queue_lib

    while True:
        try:
            return queue.get(timeout=2)
        except queue_lib.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise SystemExit(f"a worker failed (exit codes {[p.exitcode for p in procs]})") from None


def epoch(paths, root, batch) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_epoch_worker, args=(paths, root, batch, queue))
    p.start()
    out = _get(queue, [p])
    p.join()
    return out


def rss(results: list[dict]) -> str:
    return " / ".join(f"{d['rss_mb']:.0f}" for d in results)


def paper_bytes_per_frame(vision: str) -> int:
    tokens, dim = (257, 1408) if vision == "eva_g" else (257, 1024)
    fp16, fp32 = 2, 4
    return (tokens * dim * fp16 + 49 * 256 * fp16 + 68 * 2 * fp32 + 10 * 49 + 1 + fp32 + 2 * fp32
            + 112 * 112 * 3 + 8 * 120)  # + masks, found, age, gender, crops, per-tensor header


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=64, help="training batch in the epoch pass")
    ap.add_argument("--paper-video-frames", type=int, default=8, help="frames per video at 1 FPS (max_frames)")
    ap.add_argument("--workdir", default=None, help="media and stores go here (default: a temporary folder)")
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_scale_"))
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} cpus={os.cpu_count()} work={work}", flush=True)
    t0 = time.perf_counter()
    small = make_media(work / "media_small", args.small)
    large = make_media(work / "media_large", args.large)
    print(f"media: {args.small} + {args.large} samples written in {time.perf_counter() - t0:.0f} s", flush=True)

    one = extract(small, work / "store_1", 1)
    two = extract(small, work / "store_2", 2)
    rate_one = one[0]["samples"] / one[0]["seconds"]
    rate_two = [d["samples"] / d["seconds"] for d in two]
    scaling = sum(d["samples"] for d in two) / max(d["seconds"] for d in two) / rate_one
    print(f"extraction, {args.small} samples: 1 process {rate_one:.1f} samples/s (RSS {one[0]['rss_mb']:.0f} MB); "
          f"2 processes {' + '.join(f'{r:.1f}' for r in rate_two)} samples/s "
          f"(RSS {rss(two)} MB)", flush=True)
    big = extract(large, work / "store_2", 2)
    print(f"extraction, {args.large} samples, 2 processes: {sum(d['samples'] for d in big)} extracted in "
          f"{max(d['seconds'] for d in big):.0f} s (RSS {rss(big)} MB)",
          flush=True)
    e_small = epoch(small, work / "store_2", args.batch)
    e_large = epoch(large, work / "store_2", args.batch)
    print(f"training epoch (batch {args.batch}): {args.small} samples RSS {e_small['rss_mb']:.0f} MB in "
          f"{e_small['seconds']:.0f} s; {args.large} samples RSS {e_large['rss_mb']:.0f} MB in "
          f"{e_large['seconds']:.0f} s", flush=True)

    from emo_llama.features.store import FeatureStore

    store = FeatureStore.for_extractor(_extractor(), root=work / "store_2", chunk_size=64)
    frames_small = sum(3 if Path(p).is_dir() else 1 for p in small)
    per_sample = sum(f.stat().st_size for f in store.dir.glob("chunk-*.safetensors")) / (args.small + args.large)
    print(f"store: {per_sample / 1024:.1f} KiB per sample on disk ({frames_small / args.small:.2f} frames/sample, "
          f"tiny stack)")
    frames = 295_000 + 45_000 * args.paper_video_frames
    for vision in ("clip_l", "eva_g"):
        gib = frames * paper_bytes_per_frame(vision) / 2**30
        print(f"paper stack ({vision}), 340k samples = {frames} frames: store ~{gib:.0f} GiB on disk "
              f"({paper_bytes_per_frame(vision) / 1024:.0f} KiB per frame, fp16 tokens); RAM per process does "
              f"not depend on it")
    ram_small = max(max(d["rss_mb"] for d in two), e_small["rss_mb"])
    ram_large = max(max(d["rss_mb"] for d in big), e_large["rss_mb"])
    print(json.dumps({"rss_mb_small": round(ram_small), "rss_mb_large": round(ram_large),
                      "seconds": round(time.perf_counter() - t0)}))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(f"ram_ratio={ram_large / ram_small:.2f} scaling={scaling:.2f}")


if __name__ == "__main__":
    sys.exit(main())
