"""Small helpers every module uses: seeding, device resolution, natural sort, atomic writes."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

# The repository's data/ folder: committed weights (weights/), face crops (faces/) and built data (cache/).
REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed python, numpy and torch (all devices) from one number; return a CPU generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - libraries still draw from the legacy global RNG
    torch.manual_seed(seed)  # also seeds every CUDA/MPS device
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu. Any other value is passed to torch.device unchanged."""
    if isinstance(device, torch.device):
        return device
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str | os.PathLike) -> list:
    """Sort key that orders '2.jpg' before '10.jpg' (datasets number frames without zero padding)."""
    parts = _DIGITS.split(Path(name).name if isinstance(name, Path) else str(name))
    return [int(p) if p.isdigit() else p.lower() for p in parts]


@contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `final`; rename it onto `final` only if the block succeeds.

    A crash or Ctrl-C mid-write leaves no half-written file under the final name, so a cache
    that skips existing files can resume safely.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp-{os.getpid()}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def torch_threads(n: int):
    """Run a block with `n` torch threads, then restore the previous number."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def flush_denormals() -> bool:
    """Treat subnormal floats (|x| < 1.2e-38 in fp32) as zero on CPU, for the rest of the process.

    Why: without it, label-word alignment on 2 CPU cores slowed from 0.8 to 7.8 s/step within 60 steps
    (subnormal values appear as training goes on, and x86 computes on them in a slow path); with it the
    steps stay at about 1 s. Only values below fp32's normal range change, so results do not move in any
    figure we report. Returns False where the CPU has no such mode.
    """
    return torch.set_flush_denormal(True)


def model_cache_dir() -> Path:
    """Where dequantised weights and frozen features live: never inside the repository."""
    return Path(os.environ.get("EMO_LLAMA_MODEL_CACHE", Path.home() / ".cache" / "emo_llama")).expanduser()


def default_cache_dir() -> Path:
    """Where built data lives: $EMO_LLAMA_CACHE, else <repo>/data/cache (git-ignored)."""
    env = os.environ.get("EMO_LLAMA_CACHE")
    if env:
        return Path(env).expanduser()
    return REPO_DATA / "cache"
