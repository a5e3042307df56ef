"""Expected training memory, printed before training, and a clear refusal when it cannot fit the device.

Estimate (bytes), for the LLM that dominates everything:
- weights: every parameter at its own dtype (frozen 7B LLM in bf16: 2 bytes each);
- trainable state: fp32 gradients + AdamW's two fp32 moments = 12 bytes per trainable parameter;
- activations without checkpointing: about 34 * b * s * h bytes per decoder layer in 16-bit (Korthikanti
  et al. 2022, with SDPA/flash attention so no s^2 score matrices are kept), scaled by the MLP width
  (LLaMA's 3 x 11008 vs 2 x 4h); with checkpointing: each layer keeps only its input (2 * b * s * h) and
  one layer is recomputed at a time;
- plus the frozen encoders' outputs and the new modules, small next to these.
An estimate, good to a factor of about 1.5: it is there to stop a run that has no chance, not to tune one.
"""

from __future__ import annotations

import os

import torch


def device_capacity(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def estimate(model, batch: int, seq_len: int, checkpointing: bool, compute_bytes: int = 2,
             shards: int = 1) -> dict[str, float]:
    """GiB per part for one optimizer step of `model` (an EmoLlama) at `batch` x `seq_len` tokens per device.
    shards: FSDP's process count (the LLM's weights, gradients and AdamW moments are split that many ways)."""
    params = list(model.named_parameters())
    weights = sum(p.numel() * p.element_size() for _, p in params) / shards  # the frozen encoders are not sharded
    for part in ("vision", "expert"):
        module = getattr(model.stack, part, None)
        if module is not None:
            weights += sum(p.numel() * p.element_size() for p in module.parameters())
    trainable = sum(p.numel() for _, p in params if p.requires_grad)
    config = model.llm.get_base_model().config
    h, layers = config.hidden_size, config.num_hidden_layers
    mlp_scale = (3 * config.intermediate_size) / (8 * h)          # LLaMA MLP vs the 4h GPT MLP of the formula
    b_s = batch * seq_len
    per_layer = b_s * h * (10 + 24 * mlp_scale) * compute_bytes / 2  # 34 b s h at 16 bit, MLP part scaled
    full = layers * per_layer
    ckpt = layers * 2 * b_s * h * compute_bytes / 2 + per_layer
    gib = 1024 ** 3
    return {"weights": weights / gib, "gradients + AdamW (fp32)": 12 * trainable / shards / gib,
            "activations (no checkpointing)": full / gib, "activations (checkpointing)": ckpt / gib,
            "trainable_params": trainable}


def check_fits(model, batch: int, seq_len: int, checkpointing: bool, device: torch.device,
               log=print, headroom: float = 0.9, shards: int = 1) -> dict[str, float]:
    """Print the estimate; raise MemoryError with what to change when it exceeds `headroom` of the device."""
    parts = estimate(model, batch, seq_len, checkpointing,
                     compute_bytes=2 if device.type == "cuda" else 4, shards=shards)
    act = parts["activations (checkpointing)" if checkpointing else "activations (no checkpointing)"]
    total = parts["weights"] + parts["gradients + AdamW (fp32)"] + act
    capacity = device_capacity(device) / 1024 ** 3
    log(f"expected memory on {device} for batch {batch} x {seq_len} tokens "
        f"({parts['trainable_params']:,} trainable parameters):")
    for key in ("weights", "gradients + AdamW (fp32)", "activations (no checkpointing)", "activations (checkpointing)"):
        log(f"  {key:<34}{parts[key]:>9.2f} GiB")
    log(f"  {'total (gradient checkpointing ' + ('on)' if checkpointing else 'off)'):<34}{total:>9.2f} GiB"
        f"  of {capacity:.1f} GiB")
    if capacity and total > headroom * capacity:
        raise MemoryError(
            f"this run needs about {total:.1f} GiB but {device} has {capacity:.1f} GiB: lower batch_size per device "
            f"(use grad_accum), turn gradient_checkpointing on, or use a smaller stack")
    return parts | {"total": total, "capacity": capacity}
