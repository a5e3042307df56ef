"""Why `train.run` flushes subnormal floats to zero: label-word alignment step times with and without it.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_denormals.py --steps 60

Runs `make train`'s configuration (mini, `offline` stack; zero-shot eval and real-face check off) in a
fresh process per setting and stops it after `--steps` optimizer steps of label-word alignment. On x86,
arithmetic on subnormal values (|x| < 1.2e-38 in fp32) takes a slow path; they appear as the new modules
train, and the steps slow down. Prints seconds per step over the first and the last 10 steps of each
setting; the last line: `slowdown_without_flush=<last/first> slowdown_with_flush=<last/first>`.
Features come from the on-disk cache, so run `make train` (or this script) once before reading the figures.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time


class _Enough(Exception):
    pass


def _align_step_times(flush: bool, steps: int, out_dir: str, queue) -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook

    import emo_llama.train.stages as stages

    if not flush:  # the run as it was before: leave the CPU's subnormal handling as it is
        stages.flush_denormals = lambda: False
    stamps: list[float] = []

    def after_step(optimizer, args, kwargs) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) > steps:
            raise _Enough

    register_optimizer_step_post_hook(after_step)
    cfg = stages.TrainConfig(output_dir=out_dir, zero_shot=False, real_faces=False, align_steps=max(100, steps),
                            resume=False, progress=False)
    try:
        stages.run(cfg)
    except _Enough:
        pass
    queue.put([b - a for a, b in zip(stamps, stamps[1:])])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    ratios = {}
    for flush in (False, True):
        queue = ctx.Queue()
        with tempfile.TemporaryDirectory() as tmp:
            proc = ctx.Process(target=_align_step_times, args=(flush, args.steps, tmp, queue))
            proc.start()
            times = queue.get(timeout=1800)  # the child died if nothing comes: see its traceback above
            proc.join()
        first, last = sum(times[:10]) / 10, sum(times[-10:]) / 10
        ratios[flush] = last / first
        print(f"flush subnormals {'on ' if flush else 'off'}: {first:.2f} s/step (steps 1-10), "
              f"{last:.2f} s/step (last 10 of {len(times)})", flush=True)
    print(f"slowdown_without_flush={ratios[False]:.2f} slowdown_with_flush={ratios[True]:.2f}")


if __name__ == "__main__":
    main()
