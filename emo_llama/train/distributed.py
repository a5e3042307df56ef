"""Several processes: the accelerator a run uses (`make_accelerator`: DDP or FSDP2 through accelerate, or one
process), and what changes when training is sharded with FSDP2 (accelerate's `configs/accelerate/fsdp.yaml`).

Under FSDP2 (`torch.distributed.fsdp.fully_shard`, applied by `accelerator.prepare`) every parameter of the
wrapped model becomes a DTensor that holds this process's slice; each `LlamaDecoderLayer` is all-gathered just
before its forward and freed after it, so the frozen base weights, LoRA's gradients and AdamW's moments are
split N ways. Three things then work differently from DDP, and this module holds them:

- weights and optimizer state are *gathered* to be saved and *scattered* to be loaded
  (`EmoLlama.trainable_state_dict`, `optimizer_state`, `load_trainable_state`, `load_optimizer_state`). Gathering is a
  collective: every process must call these, in the same order;
- evaluation and the real-face check generate answers from an *unsharded copy* (`unsharded_copy`): processes
  answer different batches with different lengths, which sharded layers (one all-gather per layer call) cannot
  do without a deadlock. The copy holds the whole model on every device, as DDP does; FSDP's saving is in
  training (gradients, optimizer moments, activations of the sharded layers), not in generation;
- label-word alignment and the zero-shot evaluation run before the model is sharded; after alignment every
  process takes process 0's weights (`broadcast_new_modules`), as DDP's wrapper does.

accelerate runs a CPU job with FSDP as DDP (it maps FSDP to MULTI_CPU), so `check_engine` refuses that
instead of silently training something else. tests/test_distributed.py runs accelerate's FSDP2 path over
gloo by setting accelerate's state itself.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, InitProcessGroupKwargs
from accelerate.state import AcceleratorState
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor

from emo_llama.model import EmoLlama
from emo_llama.utils import resolve_device


def make_accelerator(device: str = "auto") -> Accelerator:
    """Mixed precision bf16 on CUDA. DDP's find_unused_parameters is decided per run (`emo_llama.train.loop.unused_parameters`);
    the collective timeout is long enough for a process to finish its share of the feature extraction."""
    dev = resolve_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # One process: accelerate keeps its state for the life of the process and refuses a second Accelerator
        # of another device or precision ("AcceleratorState has already been initialized"), so re-running
        # notebook 05 in the same kernel with another `device` would stop there. Nothing else shares that state.
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(cpu=dev.type == "cpu", mixed_precision="bf16" if dev.type == "cuda" else "no",
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False),
                                        InitProcessGroupKwargs(timeout=timedelta(hours=2))])


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP2 has sharded this model's parameters (DTensors)."""
    return any(isinstance(p, DTensor) for p in model.parameters())


def check_engine(accelerator) -> bool:
    """True for FSDP, False for DDP / one process; raises for what emo_llama.train does not run."""
    kind = accelerator.distributed_type.value
    if kind == "DEEPSPEED":
        raise NotImplementedError("DeepSpeed: not supported by emo_llama.train (and not installed here); use "
                                  "configs/accelerate/fsdp.yaml for sharded training")
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and kind != "FSDP":
        raise RuntimeError(f"FSDP was asked for (ACCELERATE_USE_FSDP) but accelerate set up {kind}: accelerate "
                           "runs FSDP only on GPUs and turns a CPU job into DDP. Use configs/accelerate/ddp.yaml "
                           "(or torchrun) on CPU.")
    return kind == "FSDP"


def broadcast_new_modules(model) -> None:
    """Process 0's values of every trained tensor (new modules, LoRA, feature statistics) on every process.

    DDP's wrapper does this when it is built; FSDP2's `fully_shard` does not: each process keeps the slice of
    its own tensors. Label-word alignment runs on every process before sharding, so without this the shards
    would come from as many sets of aligned weights as there are processes whenever the processes' alignments
    differ (GPU kernels are not bit-reproducible)."""
    for _, tensor in model.trained_tensors():
        torch.distributed.broadcast(tensor.data, src=0)


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    """Load full (unsharded) trained weights into a sharded model: each process keeps its slice."""
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))


def optimizer_state(model, optimizer) -> dict:
    """The optimizer's full state (moments gathered, keyed by parameter name) on process 0; {} elsewhere."""
    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True,
                                                                               cpu_offload=True))


def load_optimizer_state(model, optimizer, state: dict) -> None:
    """Scatter a full optimizer state (as `optimizer_state` saved it) onto the sharded parameters. Not strict:
    parameters that never had a gradient (new modules frozen after alignment) have no AdamW state to load."""
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True, strict=False))


def unsharded_copy(model, device) -> torch.nn.Module:
    """A fresh, unsharded EmoLlama with the trained weights of a sharded one (every process must call this).

    The frozen base weights never change (LoRA), so a new model from the same config plus the gathered trained
    weights (LoRA, new modules, feature statistics) is the trained model exactly.
    """
    state = model.trainable_state_dict()
    copy = EmoLlama(model.config)
    copy.load_trained_state(state)
    return copy.to(device).eval()
