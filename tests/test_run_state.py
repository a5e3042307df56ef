"""What a run reuses from its output folder: only its own checkpoints and only its own model's saved answers; where
that folder is; and a second run in one process (notebook 05 re-run in the same kernel with another device)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import tiny_config

import emo_llama.data.splits as splits
from emo_llama.config import RECIPES
from emo_llama.train import run
from emo_llama.utils import REPO_ROOT, repo_path


def quiet(_line: str) -> None:
    pass


def weights(result) -> dict[str, torch.Tensor]:
    return result.model.trainable_state_dict()


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_another_config_in_the_same_folder_trains_afresh_and_the_same_one_resumes(tmp_path):
    out = tmp_path / "runs"
    first = run(tiny_config(out, checkpoint_every=6), log=quiet)  # a checkpoint at its last step
    lines: list[str] = []
    second = run(tiny_config(out, checkpoint_every=6, seed=4), log=lines.append)
    fresh = run(tiny_config(tmp_path / "fresh", checkpoint_every=6, seed=4), log=quiet)
    assert same(weights(second), weights(fresh)) and not same(weights(second), weights(first))
    assert second.metrics["trained"] == fresh.metrics["trained"]
    assert any(line.startswith("not resumed") and "seed: 3 -> 4" in line for line in lines), lines
    assert len(list((out / "checkpoints").glob("*/run.json"))) == 2
    # The first configuration again: it finds its own finished checkpoint and trains no step.
    steps: list[str] = []
    again = run(tiny_config(out, checkpoint_every=6), log=quiet,
                on_event=lambda point: steps.append(point) if point.startswith("train:") else None)
    assert steps == [] and same(weights(again), weights(first))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["seed"] == 3 and Path(metrics["run"]["checkpoints"]).parent == out / "checkpoints"


def test_saved_answers_are_read_back_only_for_the_model_that_gave_them(tmp_path, monkeypatch):
    # No checkpoints (mini's default): the second run trains again. Its data were rebuilt under the same paths
    # and config (as after a mini rebuild or a code edit), so it trains another model, which must be scored anew.
    cfg = tiny_config(tmp_path / "runs", checkpoint_every=0, max_new_tokens=6, eval_limit=6)
    before = run(cfg, log=quiet)
    built = splits.synthetic_features
    monkeypatch.setattr(splits, "synthetic_features", lambda label, seed, **kw: built(label, seed + 777, **kw))
    after = run(cfg, log=quiet)
    alone = run(tiny_config(tmp_path / "alone", checkpoint_every=0, max_new_tokens=6, eval_limit=6), log=quiet)
    assert after.trained["answers"] == alone.trained["answers"]
    assert after.trained["answers"] != before.trained["answers"]  # else this test could not tell them apart


def test_relative_output_paths_mean_the_repository_from_inside_it(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT / "notebooks")  # where JupyterLab runs notebook 05
    assert repo_path("runs/05_train") == REPO_ROOT / "runs" / "05_train"
    monkeypatch.chdir(tmp_path)  # another project importing the package
    assert repo_path("runs/05_train") == tmp_path / "runs" / "05_train"
    assert repo_path(tmp_path / "x") == tmp_path / "x"


def test_a_second_run_in_one_process_may_use_another_precision():
    # A fresh process, as a kernel is: a CUDA run leaves accelerate's state at bf16, then a CPU run follows.
    code = ("from accelerate import Accelerator; Accelerator(cpu=True, mixed_precision='bf16'); "
            "from emo_llama.train.distributed import make_accelerator; a = make_accelerator('cpu'); "
            "print(a.mixed_precision, a.device.type)")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]  # accelerate alone: "AcceleratorState has already been ..."
    assert done.stdout.split() == ["no", "cpu"]


def test_the_run_trains_with_a_given_value_that_equals_the_cpu_default(tmp_path):
    # run() used to merge the recipe a second time, taking "equals the CPU default" for "not given".
    cpu_lr = RECIPES["cpu"]["lr"]
    cfg = tiny_config(tmp_path, recipe="paper", lr=cpu_lr, max_steps=2, batch_size=4, grad_accum=1, align_steps=0,
                      gradient_checkpointing=False)
    result = run(cfg, log=quiet)
    assert result.metrics["config"]["recipe"] == "paper" and result.metrics["config"]["lr"] == cpu_lr
    first_step = json.loads((tmp_path / "train_log.jsonl").read_text().splitlines()[0])
    assert first_step["lr"] == pytest.approx(0.5 * cpu_lr)  # 2 steps, no warmup: cosine halfway after step 1
