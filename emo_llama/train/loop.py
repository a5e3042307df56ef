"""The LoRA stage's loop (Eq. 6): AdamW, warmup + cosine decay, gradient accumulation, checkpoints, resume.

Data order is a pure function of (seed, epoch) (`emo_llama.data.sampling.epoch_order`): each optimizer step takes
one global batch, split into `grad_accum` micro-steps x processes, so N processes at the same global batch see the
same samples as one process, and a resumed run continues exactly where the checkpoint left off.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from transformers import get_cosine_schedule_with_warmup

from emo_llama.config import TrainConfig
from emo_llama.data.sampling import epoch_order
from emo_llama.data.splits import weights_by_dataset
from emo_llama.progress import progress as progress_bar
from emo_llama.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from emo_llama.train.distributed import check_engine
from emo_llama.train.items import TrainItem, item_weights


def lora_stage_new_module_lr(cfg: TrainConfig) -> float:
    """Learning rate of the new modules in the LoRA stage (`cfg.new_module_lr`, or 0.0 when frozen).

    After label-word alignment they are left as they are by default (0.0): on mini, training them on at
    3e-3 took their tokens' class-word probe from 0.73 to 0.50 within 150 steps (they learn the training
    identities) and the answers' UAR with them. At 0.0 `train_loop` computes their tokens without
    autograd (`EmoLlama.new_modules_frozen`): no backward through them, and only LoRA's gradients are
    clipped. They stay in the optimizer (with no gradients AdamW leaves them alone), so checkpoints
    look the same either way.
    """
    if cfg.align_steps and cfg.freeze_after_align:
        return 0.0
    return cfg.new_module_lr


SMALL_DATASETS = ("mini", "synthetic")  # checkpoint_every=-1 means no checkpoints on these
AUTO_CHECKPOINT_EVERY = 500


def checkpoint_interval(cfg: TrainConfig) -> int:
    """Steps between checkpoints: `checkpoint_every`, or for -1 none on mini/synthetic and 500 otherwise."""
    if cfg.checkpoint_every >= 0:
        return cfg.checkpoint_every
    return 0 if cfg.dataset in SMALL_DATASETS else AUTO_CHECKPOINT_EVERY


def unused_parameters(model, batch: dict) -> list[str]:
    """Trainable parameters that one training forward/backward leaves without a gradient.

    DDP needs `find_unused_parameters=True` exactly when this is not empty (e.g. `use_landmarks=False`
    leaves the landmark MLP unused, new modules frozen after alignment get no gradient). The probe runs
    under a forked RNG and clears the gradients it made, so training is unchanged.
    """
    with torch.random.fork_rng(devices=[]):
        model.train()
        model(batch).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    return unused


def train_loop(model, items: list[TrainItem], feature_of: Callable[[str], object], cfg: TrainConfig,
               accelerator, output_dir: Path, on_event: Callable[[str], object] | None = None,
               checkpoint_dir: Path | None = None) -> dict:
    """AdamW + warmup/cosine + grad accumulation + checkpoints; returns losses and timings.

    Under FSDP (`emo_llama.train.distributed`) the model is prepared with its optimizer and stays sharded afterwards.

    on_event: called with "train:<step>" after each optimizer step (and its checkpoint); a true return value stops
    training there, as a transformers TrainerCallback can (the resume tests cut runs this way).
    checkpoint_dir: where this run's checkpoints are saved and resumed from (default output_dir/checkpoints;
    `emo_llama.train.stages` passes the run's own folder, named by its fingerprint). output_dir gets train_log.jsonl.
    """
    world, rank = accelerator.num_processes, accelerator.process_index
    sharded = check_engine(accelerator)  # FSDP2: True; DDP or one process: False
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by processes x grad_accum")
    per_device = cfg.batch_size // (world * cfg.grad_accum)
    steps_per_epoch = max(1, len(items) // cfg.batch_size)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer, scheduler = make_optimizer(model, cfg, total)
    if world > 1 and not sharded and accelerator.ddp_handler is not None and items:
        set_find_unused_parameters(model, [items[i] for i in range(min(per_device, len(items)))], feature_of,
                                   accelerator)
    ddp_model, optimizer, params = prepare(model, optimizer, accelerator, sharded)
    if rank:  # every process its own dropout masks; process 0 keeps the stream of a one-process run
        torch.manual_seed(cfg.seed + 1_000_003 * rank)
    ckpt_dir = checkpoint_dir or output_dir / "checkpoints"
    start, losses = 0, []
    latest = latest_checkpoint(ckpt_dir) if cfg.resume else None
    if latest is not None:  # after prepare: a sharded model loads its slice of the saved weights
        start, losses = load_checkpoint(latest, model, optimizer, scheduler, rank)
        accelerator.print(f"resumed from {latest} at step {start}")
    log_file = output_dir / "train_log.jsonl"
    if accelerator.is_main_process and start == 0:
        log_file.write_text("")  # a fresh run's log starts empty; a resumed one appends to its own
    last_save = time.monotonic()
    weights = item_weights(items, cfg.resample, cfg.conversation_share, weights_by_dataset(cfg))
    step_times: list[float] = []
    order, order_epoch = None, -1
    bar = progress_bar(range(start, total), desc="LoRA training", total=total, initial=start,
                       disable=not (cfg.progress and accelerator.is_main_process))
    model.train()
    for step in bar:
        t0 = time.perf_counter()
        epoch, pos = divmod(step, steps_per_epoch)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(len(items), epoch, cfg.seed, weights), epoch
        global_batch = [items[i] for i in order[pos * cfg.batch_size: (pos + 1) * cfg.batch_size].tolist()]
        step_loss = accumulate_gradients(ddp_model, model, global_batch, feature_of, cfg.grad_accum, per_device,
                                         accelerator)
        if cfg.max_grad_norm:
            accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(accelerator.reduce(step_loss, reduction="mean")))
        step_times.append(time.perf_counter() - t0)
        if accelerator.is_main_process:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            with open(log_file, "a") as fh:
                fh.write(json.dumps({"step": step + 1, "loss": losses[-1], "lr": scheduler.get_last_lr()[0],
                                     "seconds": round(step_times[-1], 3)}) + "\n")
        done = step + 1
        if checkpoint_due(cfg, done, total, last_save, accelerator):
            save_checkpoint(ckpt_dir, model, optimizer, scheduler, done, losses, rank,
                            barrier=accelerator.wait_for_everyone)
            last_save = time.monotonic()
        if on_event is not None and on_event(f"train:{done}"):
            break
    model.eval()
    model.new_modules_frozen = False
    return {"train_loss": losses, "steps": len(losses), "step_times": step_times, "total_steps": total}


def make_optimizer(model, cfg: TrainConfig, total: int):
    """AdamW over LoRA (cfg.lr) and the new modules (`lora_stage_new_module_lr`), warmup then cosine decay.
    New modules at lr 0 are computed without autograd from here on (`EmoLlama.new_modules_frozen`)."""
    lora = [p for p in model.llm.parameters() if p.requires_grad]
    new_lr = lora_stage_new_module_lr(cfg)
    optimizer = torch.optim.AdamW([{"params": lora, "lr": cfg.lr}, {"params": model.new_module_parameters(),
                                                                    "lr": new_lr}],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * total), total)
    model.new_modules_frozen = new_lr == 0.0
    return optimizer, scheduler


def set_find_unused_parameters(model, probe: list[TrainItem], feature_of: Callable[[str], object],
                               accelerator) -> None:
    """DDP: find_unused_parameters exactly when a probe step leaves trainable tensors without a gradient."""
    unused = unused_parameters(model, model.make_batch([feature_of(i.media) for i in probe],
                                                       [i.turns for i in probe], device=accelerator.device))
    accelerator.ddp_handler.find_unused_parameters = bool(unused)
    if unused:
        accelerator.print(f"DDP: find_unused_parameters=True ({len(unused)} tensors get no gradient, e.g. {unused[0]})")


def prepare(model, optimizer, accelerator, sharded: bool):
    """(model to call, optimizer, parameters to clip) under DDP / one process, or FSDP2 (`sharded`), which shards
    the model in place and points the optimizer at the sharded parameters."""
    if sharded:
        ddp_model, prepared = accelerator.prepare(model, optimizer)
        return ddp_model, prepared.optimizer, [p for p in model.parameters() if p.requires_grad]
    return accelerator.prepare_model(model), optimizer, [p for p in model.parameters() if p.requires_grad]


def accumulate_gradients(ddp_model, model, global_batch: list[TrainItem], feature_of: Callable[[str], object],
                         grad_accum: int, per_device: int, accelerator) -> torch.Tensor:
    """Forward and backward of this process's share of one global batch, in `grad_accum` micro-steps (gradients
    are synchronised on the last one); returns this process's share of the loss (the loss is its mean over processes).

    Eq. 6's mean (`EmoLlamaConfig.loss_mean`) over the whole global batch, however it is split:
    "sample": each micro-batch's mean of per-sample means / grad_accum (every micro-batch holds the same number
    of samples, and DDP averages over processes). "token": the summed token losses of each micro-batch divided by
    the answer tokens of the whole global batch (every micro-batch counted, the count summed over processes),
    times the number of processes, which DDP's (and FSDP's) gradient average divides out again.
    """
    world, rank = accelerator.num_processes, accelerator.process_index
    shares = [global_batch[(micro * world + rank) * per_device:][:per_device] for micro in range(grad_accum)]
    batches = [model.make_batch([feature_of(i.media) for i in chosen], [i.turns for i in chosen]) for chosen in shares]
    token_mean = model.config.loss_mean == "token"
    if token_mean:
        count = torch.tensor(float(sum(int(model.loss_positions(b["labels"]).sum()) for b in batches)),
                             device=accelerator.device)
        if world > 1:
            count = accelerator.reduce(count, reduction="sum")
        scale = world / count.clamp(min=1)
    step_loss = torch.zeros((), device=accelerator.device)
    for micro, batch in enumerate(batches):
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        sync = nullcontext() if micro == grad_accum - 1 else accelerator.no_sync(ddp_model)
        with sync, accelerator.autocast():
            loss = ddp_model(batch, reduction="sum") * scale if token_mean else ddp_model(batch) / grad_accum
            accelerator.backward(loss)
        step_loss += loss.detach()
    return step_loss


def checkpoint_due(cfg: TrainConfig, done: int, total: int, last_save: float, accelerator) -> bool:
    """Every `checkpoint_interval` steps and at the last step (so a killed evaluation resumes), or after
    `checkpoint_minutes` by process 0's clock (all processes agree)."""
    every, minutes = checkpoint_interval(cfg), cfg.checkpoint_minutes
    due = every and (done % every == 0 or done == total)
    if every and minutes and not due:
        late = torch.tensor(float(time.monotonic() - last_save > 60 * minutes), device=accelerator.device)
        due = bool(accelerator.reduce(late, reduction="sum") > 0) if accelerator.num_processes > 1 else bool(late)
    return bool(due)
