"""The default `make train` run on `mini` (offline stack) with 1 process and with 2 (DDP over gloo): do they agree?

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mini_two_processes.py --workdir runs/two_processes   # ~20 min, 2 cores

Each run extracts its frozen features into its own store (so both extract: the 2-process one splits the chunks),
aligns, trains LoRA for the default 150 steps, evaluates (split over the processes in the 2-process run) and runs
the real-face check. Dropout (LoRA's and the Q-Former's) is off in both (`--dropout`), because with it each
process draws its own masks and the two runs are different random runs by design; and both runs use the same
number of torch threads per process (`--threads`, 1), because the thread count changes how sums are split and so
their last bits, which 250 steps at these learning rates amplify (measured: see the README). Prints the largest weight and loss differences, the
answers that differ, and both runs' headline figures and wall times. Extra arguments go to both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file


def run(workdir: Path, processes: int, threads: int, extra: list[str]) -> float:
    out = workdir / f"{processes}proc"
    env = os.environ | {"EMO_LLAMA_FEATURE_STORE": str(workdir / f"store_{processes}proc"),
                        "TOKENIZERS_PARALLELISM": "false", "EMO_LLAMA_PROGRESS": "lines"}
    env["OMP_NUM_THREADS"] = str(threads)  # the same in both runs: thread count changes float sums
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    else:
        cmd = [sys.executable]
    cmd += ["-m", "emo_llama.train", "--dataset", "mini", "--stack", "offline", "--output_dir", str(out), *extra]
    t0 = time.perf_counter()
    with open(workdir / f"{processes}proc.log", "w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--dropout", type=float, default=0.0, help="LoRA's and the Q-Former's dropout and vision_dropout (0: off)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process, in both runs")
    args, extra = ap.parse_known_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    extra = ["--model_options", json.dumps({"lora_dropout": args.dropout}), "--vision_dropout", str(args.dropout),
             "--stack_options", json.dumps({"qformer_dropout": args.dropout}), *extra]
    seconds = {n: run(work, n, args.threads, extra) for n in (1, 2)}
    m = {n: json.loads((work / f"{n}proc" / "metrics.json").read_text()) for n in (1, 2)}
    d = {n: json.loads((work / f"{n}proc" / "eval_details.json").read_text()) for n in (1, 2)}
    w = {n: load_file(str(work / f"{n}proc" / "model" / "trainable.safetensors")) for n in (1, 2)}
    assert m[2]["processes"] == 2 and m[1]["processes"] == 1
    weight_diff = max(float((w[1][k] - w[2][k]).abs().max()) for k in w[1])
    loss_diff = max(abs(a - b) for a, b in zip(m[1]["train_loss"], m[2]["train_loss"]))
    align_diff = max((abs(a - b) for a, b in zip(m[1]["align_loss"], m[2]["align_loss"])), default=0.0)
    answers = {n: d[n]["trained"]["answers"] for n in (1, 2)}
    differ = sum(a != b for a, b in zip(answers[1], answers[2]))
    for n in (1, 2):
        real = m[n]["real_faces"] or {}
        print(f"{n} process(es): {seconds[n]:.0f} s wall (features {m[n]['feature_seconds']} s, alignment "
              f"{m[n]['align_seconds']} s, LoRA {m[n]['train_seconds']} s); trained {m[n]['trained']}; zero-shot "
              f"{m[n]['zero_shot']}; real faces {real.get('correct')}/{real.get('total')}")
    print(f"largest difference: trained weights {weight_diff:.2e}, LoRA loss {loss_diff:.2e}, alignment loss "
          f"{align_diff:.2e}; test answers that differ: {differ} of {len(answers[1])}")
    print(f"equal={m[1]['trained'] == m[2]['trained'] and differ == 0} weight_diff={weight_diff:.2e}")


if __name__ == "__main__":
    main()
