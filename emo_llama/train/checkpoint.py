"""Training checkpoints: trained weights (safetensors), optimizer/scheduler state, RNG streams, step; and which run
a checkpoint belongs to.

A run's checkpoints live in `<output_dir>/checkpoints/<digest>/`, where the digest hashes everything that changes
the trained model (`run_fingerprint`: the config fields that matter, the training list with each file's size and
mtime, the feature store's key, the code version, the trained tensors' names and shapes), written out next to them
as `run.json`. A run resumes only from its own folder: the same output_dir with another seed, learning rate or
dataset starts fresh (and says what differs from the checkpoints it leaves alone).

Data order is a pure function of (seed, epoch), so the step number is the whole sampler state.
Optimizer and scheduler states are plain tensors/numbers: saved with torch.save, read with
weights_only=True. RNG states are plain JSON (Python's and NumPy's integer state vectors) and
safetensors (torch's byte states): nothing is ever evaluated or unpickled. Only the newest `keep`
checkpoints are kept. Under FSDP the same files hold the gathered (full) weights and the optimizer state keyed by
parameter name (torch.distributed.checkpoint's full state dict; `emo_llama.train.distributed`).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from emo_llama import __version__
from emo_llama.features.store import media_identity
from emo_llama.train.distributed import (
    is_sharded,
    load_optimizer_state,
    load_trainable_state,
    optimizer_state,
)
from emo_llama.utils import digest


def rng_state() -> dict:
    """Python's and NumPy's global RNG states as JSON-ready lists (torch's go to safetensors)."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002  (the legacy global stream is what seeding touches)
    return {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }


def set_rng_state(state: dict, torch_state: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(torch_state["cpu"])
    if torch.cuda.is_available() and "cuda" in torch_state:
        torch.cuda.set_rng_state(torch_state["cuda"])


def save_checkpoint(folder: Path, model, optimizer, scheduler, step: int, losses: list[float],
                    rank: int = 0, keep: int = 1, barrier: Callable[[], None] | None = None) -> Path:
    """Write step-<step>/: rank 0 writes weights and optimizer, every rank its RNG streams.

    In a run of several processes every process calls this with `barrier` (e.g.
    `accelerator.wait_for_everyone`): the `complete` marker is written only after every process's files
    are on disk, so an interrupted save is never resumed from.
    """
    path = Path(folder) / f"step-{step:06d}"
    path.mkdir(parents=True, exist_ok=True)
    torch_rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        torch_rng["cuda"] = torch.cuda.get_rng_state()
    save_file(torch_rng, str(path / f"rng-torch-{rank}.safetensors"))
    (path / f"rng-{rank}.json").write_text(json.dumps(rng_state()))
    sharded = is_sharded(model)  # FSDP: gathering weights and optimizer state is a collective: every rank joins
    weights = model.trainable_state_dict() if sharded or rank == 0 else None
    optim = optimizer_state(model, optimizer) if sharded else optimizer.state_dict() if rank == 0 else None
    if rank == 0:
        save_file(weights, str(path / "trainable.safetensors"))
        torch.save(optim, path / "optimizer.pt")
        torch.save(scheduler.state_dict(), path / "scheduler.pt")
        (path / "trainer_state.json").write_text(json.dumps({"step": step, "train_loss": losses}))
    if barrier is not None:
        barrier()  # every process's state is on disk from here on
    if rank == 0:
        (path / "complete").write_text("ok\n")  # written last: an interrupted save is never resumed from
        for old in sorted(Path(folder).glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return path


def latest_checkpoint(folder: Path) -> Path | None:
    done = sorted(p for p in Path(folder).glob("step-*") if (p / "complete").exists())
    return done[-1] if done else None


def load_checkpoint(path: Path, model, optimizer, scheduler, rank: int = 0) -> tuple[int, list[float]]:
    optim = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    if is_sharded(model):  # FSDP: every rank reads the full state and keeps its slice
        load_trainable_state(model, load_file(str(path / "trainable.safetensors")))
        load_optimizer_state(model, optimizer, optim)
    else:
        model.load_trainable(path / "trainable.safetensors")
        optimizer.load_state_dict(optim)
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=True))
    rank_file = path / f"rng-{rank}.json"
    if rank_file.exists():
        set_rng_state(json.loads(rank_file.read_text()), load_file(str(path / f"rng-torch-{rank}.safetensors")))
    state = json.loads((path / "trainer_state.json").read_text())
    return int(state["step"]), list(state["train_loss"])


# TrainConfig fields that change neither the trained model nor its scores: where it goes, how it is shown, when
# it is saved; then those that change only what is evaluated afterwards. RESULT_NEUTRAL: both.
RUN_NEUTRAL = ("output_dir", "progress", "resume", "checkpoint_every", "checkpoint_minutes", "check_memory", "device")
RESULT_NEUTRAL = (*RUN_NEUTRAL, "zero_shot", "real_faces", "eval_batch_size", "max_new_tokens", "eval_limit")


def recorded_metrics(cfg) -> dict | None:
    """A finished run's metrics.json when it records exactly `cfg` (up to RUN_NEUTRAL's fields), else None: what
    `benchmarks/seed_spread.py` and `emo_llama.ablations` read back instead of training the same thing again."""
    path = Path(cfg.output_dir) / "metrics.json"
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    wanted = json.loads(json.dumps(asdict(cfg), default=str))
    # A field the recorded config lacks was added to TrainConfig after that run, which therefore ran as the
    # field's default says (e.g. use_audio False): it matches exactly when the wanted value is that default.
    defaults = json.loads(json.dumps(asdict(type(cfg)()), default=str))
    recorded = defaults | metrics.get("config", {})
    same = all(recorded.get(k) == v for k, v in wanted.items() if k not in RUN_NEUTRAL)
    return metrics if same else None


def run_fingerprint(config: dict, train_samples, features_key: str, model, instruction_items=()) -> dict:
    """What a checkpoint's training depends on (`run.json`); `digest(fingerprint)` names its folder. Records read
    from instruction files count by content (their media and turns): an edited file is another run."""
    files = hashlib.sha256()
    for s in train_samples:
        files.update(f"{media_identity(s.media)}|{s.label}\n".encode())
    shapes = hashlib.sha256(json.dumps([(n, list(t.shape), str(t.dtype)) for n, t in model.trained_tensors()])
                            .encode()).hexdigest()[:16]
    fingerprint = {"config": {k: v for k, v in config.items() if k not in RESULT_NEUTRAL},
                   "train_samples": len(train_samples), "train_files": files.hexdigest()[:16],
                   "features": features_key, "code": __version__, "trained_tensors": shapes}
    if instruction_items:
        fingerprint["instruction_records"] = digest([(media_identity(i.media), i.turns) for i in instruction_items])
    return fingerprint


def fingerprint_differences(old: dict, new: dict) -> list[str]:
    """'name: old -> new' for each entry (config fields one by one) that differs between two fingerprints."""
    flat_old = old.get("config", {}) | {k: v for k, v in old.items() if k != "config"}
    flat_new = new.get("config", {}) | {k: v for k, v in new.items() if k != "config"}
    return [f"{k}: {flat_old.get(k, '(absent)')!r} -> {flat_new.get(k, '(absent)')!r}"
            for k in sorted(set(flat_old) | set(flat_new)) if flat_old.get(k) != flat_new.get(k)]


def other_runs(folder: Path, fingerprint: dict) -> list[tuple[Path, list[str]]]:
    """Checkpoint folders next to this run's that belong to other runs, with what differs from each."""
    own = Path(folder) / digest(fingerprint)
    found = []
    for run_file in sorted(Path(folder).glob("*/run.json")):
        if run_file.parent != own:
            found.append((run_file.parent, fingerprint_differences(json.loads(run_file.read_text()), fingerprint)))
    return found


