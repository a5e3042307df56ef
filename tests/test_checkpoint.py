"""Checkpoints: RNG state as plain JSON/safetensors (nothing evaluated), and in a run of several processes the
`complete` marker only after every process's state is on disk."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import torch

from emo_llama.train.checkpoint import rng_state, set_rng_state

WORKER = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path

    import torch
    import torch.distributed as dist

    from emo_llama.train.checkpoint import latest_checkpoint, save_checkpoint

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 2)

        def trainable_state_dict(self):
            return {k: v.detach().clone() for k, v in self.state_dict().items()}

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    folder = Path(sys.argv[1])
    model = Model()
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    if rank == 1:
        time.sleep(2.0)  # the slow process: its RNG files arrive late
    path = save_checkpoint(folder, model, optimizer, scheduler, 3, [1.0, 0.5, 0.25], rank, barrier=dist.barrier)
    if rank == 0:
        # complete is written: every process's state must already be there
        files = sorted(p.name for p in path.iterdir())
        (folder / "seen.json").write_text(json.dumps({"files": files, "latest": str(latest_checkpoint(folder))}))
    dist.barrier()
    dist.destroy_process_group()
''')


def test_rng_state_round_trips_through_json():
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002
    torch.manual_seed(3)
    state = json.loads(json.dumps(rng_state()))  # plain JSON: lists and numbers only
    torch_state = {"cpu": torch.get_rng_state()}
    want = (random.random(), np.random.rand(), torch.rand(1))  # noqa: NPY002
    random.seed(9)
    np.random.seed(9)  # noqa: NPY002
    torch.manual_seed(9)
    set_rng_state(state, torch_state)
    assert (random.random(), np.random.rand()) == want[:2] and torch.equal(torch.rand(1), want[2])  # noqa: NPY002


def test_two_processes_mark_complete_only_after_both_wrote(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path / "ckpt")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads((tmp_path / "ckpt" / "seen.json").read_text())
    for rank in (0, 1):
        assert f"rng-{rank}.json" in seen["files"] and f"rng-torch-{rank}.safetensors" in seen["files"]
    assert "complete" in seen["files"] and seen["latest"].endswith("step-000003")


def test_a_recorded_run_is_read_back_only_for_its_own_config_fields_added_since_at_their_default(tmp_path):
    import json as _json
    from dataclasses import asdict, replace

    from emo_llama.config import TrainConfig
    from emo_llama.train.checkpoint import recorded_metrics

    cfg = TrainConfig(output_dir=str(tmp_path), seed=3)
    old = {k: v for k, v in _json.loads(_json.dumps(asdict(cfg), default=str)).items() if k != "use_audio"}
    (tmp_path / "metrics.json").write_text(_json.dumps({"config": old, "trained": {"uar": 0.5}}))
    assert recorded_metrics(cfg)["trained"]["uar"] == 0.5     # use_audio did not exist: that run did not hear
    assert recorded_metrics(replace(cfg, use_audio=True)) is None
    assert recorded_metrics(replace(cfg, seed=4)) is None
    assert recorded_metrics(replace(cfg, progress=False)) is not None  # run-neutral fields do not count
