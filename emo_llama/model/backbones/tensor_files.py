"""Reading the tensors of a released checkpoint: one file, or a folder of safetensors (else .bin) shards.

Shared by the LLaMA-VID loader and EVA-G's (which may read its tower out of a LLaMA-VID folder). `.bin`
shards are read with `torch.load(weights_only=True)`: tensors only, nothing is unpickled beyond them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of `path`: a file, or a folder's *.safetensors shards (else its *.bin shards)."""
    path = Path(path).expanduser()
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors or *.bin weight files in {path}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            state.update(load_file(str(f)))
        else:
            state.update(torch.load(f, map_location="cpu", weights_only=True))
    return state
