"""Small helpers every module uses: seeding, devices, natural sort, atomic writes, a figure under widgets."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

# The repository's data/ folder: committed weights (weights/), face crops (faces/) and built data (cache/).
REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_DATA = REPO_ROOT / "data"


def repo_path(path: str | os.PathLike) -> Path:
    """An absolute path for `path`. A relative one is read against the repository when the working folder is
    inside it (JupyterLab runs a notebook in notebooks/, `make` in the root: both mean the root's runs/), and
    against the working folder otherwise (the package imported by another project)."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    here = Path.cwd().resolve()
    inside = (REPO_ROOT / "pyproject.toml").exists() and here.is_relative_to(REPO_ROOT)
    return (REPO_ROOT if inside else here) / path


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


def figure_with_controls(draw: Callable[..., object], controls: dict) -> object:
    """Controls (ipywidgets, keyed by `draw`'s argument names) over a pyplot figure that follows them.

    `draw(**values)` draws one figure with pyplot. The figure for the controls' first values is an ordinary output
    of the cell (it shows in any rendering of the notebook); the box under it holds the controls and an `Output`
    widget, which gets a redrawn figure only when a control changes, i.e. only with a live frontend. Why not
    `interactive_output`: it draws into its `Output` widget while the cell runs, and headless (papermill,
    nbconvert) nbclient answers each output captured there with a message on the kernel's shell channel, the
    channel on which it is awaiting the cell's reply; now and then that reply never arrives and the cell runs
    into its timeout (jupyter/nbclient#312). Returns the box (already displayed).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    def values() -> dict:
        return {name: control.value for name, control in controls.items()}

    draw(**values())
    plt.show()
    view = widgets.Output()

    def redraw(_change) -> None:
        with view:
            view.clear_output(wait=True)
            draw(**values())
            plt.show()

    for control in controls.values():
        control.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox(list(controls.values())), view])
    # What a rendering without the widget (GitHub, nbconvert) shows instead: a hint, not the widget's repr.
    shown = box._repr_mimebundle_()
    names = ", ".join(control.description or name for name, control in controls.items())
    shown["text/plain"] = f"[controls: {names}; with a running kernel they redraw the figure under them]"
    display(shown, raw=True)
    return box


@contextmanager
def without_is_gradient_checkpointing_warning() -> Iterator[None]:
    """Ignore transformers' FutureWarning "`is_gradient_checkpointing` is deprecated" inside this block (or a
    function it decorates), and only that warning.

    Why: peft's `PeftModel` asks the base model `is_gradient_checkpointing`, a property transformers 5 deprecates
    with that warning, so every `get_peft_model` printed it (a pink box in each notebook that builds a model).
    The caller is peft, not us: nothing to change on our side until peft asks `is_activation_checkpointing`.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning,
                                module=r"transformers\.modeling_utils")
        yield


def digest(value) -> str:
    """A short stable hash of a JSON-able value (names checkpoint and saved-answer folders by what they depend on)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def package_version(name: str) -> str:
    """An installed package's version, or "absent" (feature and store keys name the code that made them)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"
