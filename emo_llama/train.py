"""LoRA instruction tuning of EMO-LLaMA: one `TrainConfig` behind the notebook and `python -m emo_llama.train`.

    python -m emo_llama.train --dataset mini --stack offline --max_steps 120
    accelerate launch --num_processes 2 -m emo_llama.train ...      # DDP (gloo on CPU, NCCL on GPU)

Data order is a pure function of (seed, epoch): each optimizer step takes one global batch, split into
`grad_accum` micro-steps x processes; so N processes at the same global batch see the same samples as
one process, and a resumed run continues exactly where the checkpoint left off.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import typing
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from emo_llama.progress import progress as progress_bar
from emo_llama.recipes import DEFAULT_RECIPE, PAPER_DEFAULTS, RECIPES, apply_recipe  # noqa: F401
from emo_llama.train_data import (
    TrainItem,
    build_items,
    category_question,
    epoch_order,
    item_weights,
    load_splits,
    synthetic_splits,
)
from emo_llama.utils import seed_everything


@dataclass
class TrainConfig:
    # data
    dataset: str = "mini"                  # mini | rafdb | affectnet | ferplus | dfew | ferv39k | mafw
    data_root: str | None = None
    fold: int = 1
    instruction_types: tuple[str, ...] = ("category", "conversation")
    conversation_share: float = 0.1        # share of training draws that are conversations (rest: category)
    conversation_turns: int = 1            # turns per conversation (3 = the generator's full dialogue)
    choice_share: float = 0.0              # category questions ending with the zero-shot guard / "My choice is:"
    descriptive_text: bool = False         # Tab. 8: add the dataset's caption to category questions
    resample: bool = True                  # Tab. 9: inverse-frequency sampling
    max_frames: int = 8                    # video frames at 1 FPS
    train_limit: int | None = None         # cap on training samples (smoke runs)
    eval_limit: int | None = None          # cap on test samples
    # model (EmoLlamaConfig fields)
    stack: str = "offline"
    fim_mode: str = "fim"
    use_face_embedding: bool = True
    use_landmarks: bool = True
    use_agr: bool = True
    lora_r: int = 16
    lora_alpha: int | None = None          # None: 2 * lora_r
    stack_options: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)  # any other EmoLlamaConfig field (dims, dropout)
    # optimisation
    epochs: float = 1.0
    max_steps: int = 150                   # > 0 overrides epochs (CPU default for mini: ~6 min on 2 cores)
    batch_size: int = 4                    # global batch per optimizer step
    grad_accum: int = 1
    lr: float = 5e-4                       # LoRA (paper: 2e-4 over a whole epoch of 340k samples)
    new_module_lr: float | None = 3e-3     # Q-Former/FIM/projectors when not frozen after alignment (None: = lr)
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    recipe: str = "auto"                   # cpu | paper | auto (paper for the paper stack, else cpu): RECIPES
    gradient_checkpointing: bool = False   # recompute the LLM's activations in backward (paper recipe: on)
    check_memory: bool = True              # print expected memory, refuse runs that cannot fit the device
    # label-word alignment of the new modules before LoRA tuning (emo_llama.align; not in the paper)
    align_steps: int = 100                 # 0: off (the paper, whose LLaMA-VID projectors come pre-aligned)
    align_lr: float = 5e-3
    align_batch_size: int = 16
    freeze_after_align: bool = True        # LoRA stage keeps the aligned new modules fixed (no backward)
    # evaluation
    zero_shot: bool = True
    real_faces: bool = True                # end with the real-face check set (emo_llama.real_check)
    eval_batch_size: int = 16
    max_new_tokens: int = 12
    # bookkeeping
    output_dir: str = "runs/05_train"
    checkpoint_every: int = 0              # 0: only the final model
    resume: bool = True                    # continue from output_dir/checkpoints if one exists
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    stop_after: int | None = None          # stop (as if killed) after this many steps: resume tests

    def model_config(self):
        from emo_llama.model import EmoLlamaConfig

        return EmoLlamaConfig(stack=self.stack, stack_options=dict(self.stack_options), fim_mode=self.fim_mode,
                              use_face_embedding=self.use_face_embedding, use_landmarks=self.use_landmarks,
                              use_agr=self.use_agr, lora_r=self.lora_r, lora_alpha=self.lora_alpha or 2 * self.lora_r,
                              **self.model_options)


# ----- the loop -------------------------------------------------------------------------------------

def make_accelerator(device: str = "auto"):
    from accelerate import Accelerator, DistributedDataParallelKwargs

    from emo_llama.utils import resolve_device

    dev = resolve_device(device)
    return Accelerator(cpu=dev.type == "cpu", mixed_precision="bf16" if dev.type == "cuda" else "no",
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def new_module_lr(cfg: TrainConfig) -> float:
    """Learning rate of the new modules in the LoRA stage.

    After label-word alignment they are left as they are by default (0.0): on mini, training them on at
    3e-3 took their tokens' class-word probe from 0.73 to 0.50 within 150 steps (they learn the training
    identities) and the answers' UAR with them. At 0.0 `train_loop` computes their tokens without
    autograd (`EmoLlama.new_modules_frozen`): no backward through them, and only LoRA's gradients are
    clipped. They stay in the optimizer (with no gradients AdamW leaves them alone), so checkpoints
    look the same either way.
    """
    if cfg.align_steps and cfg.freeze_after_align:
        return 0.0
    return cfg.lr if cfg.new_module_lr is None else cfg.new_module_lr


def train_loop(model, items: list[TrainItem], feature_of: Callable[[str], object], cfg: TrainConfig,
               accelerator, output_dir: Path) -> dict:
    """AdamW + warmup/cosine + grad accumulation + checkpoints; returns losses and timings."""
    from transformers import get_cosine_schedule_with_warmup

    from emo_llama.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

    world, rank = accelerator.num_processes, accelerator.process_index
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by processes x grad_accum")
    per_device = cfg.batch_size // (world * cfg.grad_accum)
    steps_per_epoch = max(1, len(items) // cfg.batch_size)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    lora = [p for p in model.llm.parameters() if p.requires_grad]
    new = model.new_module_parameters()
    optimizer = torch.optim.AdamW([{"params": lora, "lr": cfg.lr},
                                   {"params": new, "lr": new_module_lr(cfg)}],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * total), total)
    ckpt_dir = output_dir / "checkpoints"
    start, losses = 0, []
    latest = latest_checkpoint(ckpt_dir) if cfg.resume else None
    if latest is not None:
        start, losses = load_checkpoint(latest, model, optimizer, scheduler, rank)
        accelerator.print(f"resumed from {latest} at step {start}")
    model.new_modules_frozen = new_module_lr(cfg) == 0.0
    ddp_model = accelerator.prepare_model(model)
    weights = item_weights(items, cfg.resample, cfg.conversation_share)
    log_path = output_dir / "train_log.jsonl"
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
        global_idx = order[pos * cfg.batch_size: (pos + 1) * cfg.batch_size].tolist()
        step_loss = torch.zeros((), device=accelerator.device)
        for micro in range(cfg.grad_accum):
            first = (micro * world + rank) * per_device
            chosen = [items[i] for i in global_idx[first: first + per_device]]
            batch = model.make_batch([feature_of(i.media) for i in chosen], [i.turns for i in chosen],
                                     device=accelerator.device)
            sync = nullcontext() if micro == cfg.grad_accum - 1 else accelerator.no_sync(ddp_model)
            with sync, accelerator.autocast():
                loss = ddp_model(batch) / cfg.grad_accum
                accelerator.backward(loss)
            step_loss += loss.detach()
        if cfg.max_grad_norm:
            accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        mean_loss = float(accelerator.reduce(step_loss, reduction="mean"))
        losses.append(mean_loss)
        step_times.append(time.perf_counter() - t0)
        if accelerator.is_main_process:
            bar.set_postfix(loss=f"{mean_loss:.3f}")
            with open(log_path, "a") as fh:
                fh.write(json.dumps({"step": step + 1, "loss": mean_loss, "lr": scheduler.get_last_lr()[0],
                                     "seconds": round(step_times[-1], 3)}) + "\n")
        done = step + 1
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < total:
            save_checkpoint(ckpt_dir, model, optimizer, scheduler, done, losses, rank)
            accelerator.wait_for_everyone()
        if cfg.stop_after is not None and done >= cfg.stop_after:
            break
    model.eval()
    model.new_modules_frozen = False
    return {"train_loss": losses, "steps": len(losses), "step_times": step_times, "total_steps": total}


# ----- the whole run --------------------------------------------------------------------------------

def run(cfg: TrainConfig, model=None, log: Callable[[str], None] = print) -> dict:
    """Features -> zero-shot eval -> label-word alignment -> LoRA training -> eval -> output_dir."""
    from emo_llama.align import align_to_label_words
    from emo_llama.checkpoint import latest_checkpoint
    from emo_llama.data import zero_shot_question
    from emo_llama.evaluate import evaluate, headline, save_plots, to_jsonable
    from emo_llama.features import FeatureExtractor
    from emo_llama.model import EmoLlama
    from emo_llama.run_summary import summarise

    cfg = apply_recipe(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(cfg.device)
    synthetic = cfg.dataset == "synthetic"
    if synthetic:
        classes, train_samples, test_samples, bank = synthetic_splits(cfg)
    else:
        classes, train_samples, test_samples = load_splits(cfg)
    seed_everything(cfg.seed)
    model = model or EmoLlama(cfg.model_config())
    model.to(accelerator.device)
    if accelerator.is_main_process:
        log(model.format_trainable_table())
    t0 = time.perf_counter()
    errors: dict[str, str] = {}  # unreadable media: path -> why (counted and listed in metrics.json)
    if not synthetic:
        extractor = FeatureExtractor.from_stack(model.stack, max_frames=cfg.max_frames, device=accelerator.device)
        with accelerator.main_process_first():  # rank 0 fills the disk cache, the others then read it
            everything = train_samples + test_samples
            feats = extractor.extract_many([s.media for s in everything],
                                           progress=cfg.progress and accelerator.is_main_process, errors=errors,
                                           desc="frozen features (cached on disk)")
        bank = {str(s.media): f for s, f in zip(everything, feats) if f is not None}
    unreadable = unreadable_report(train_samples, test_samples, errors)
    if errors and accelerator.is_main_process:
        log(f"{len(errors)} media file(s) could not be read and are left out of training / scored as wrong "
            f"(listed in metrics.json), e.g. {next(iter(errors.values()))}")
    train_samples = [s for s in train_samples if str(s.media) in bank]
    if not train_samples:
        raise ValueError(f"no training sample of {cfg.dataset} could be read; first error: "
                         f"{next(iter(errors.values()), 'none')}")
    feature_seconds = time.perf_counter() - t0
    items = build_items(train_samples, classes, cfg, lambda s: bank[str(s.media)].agr)
    model.fit_feature_statistics([bank[str(s.media)] for s in train_samples])
    test_media = [bank.get(str(s.media)) for s in test_samples]  # None: unreadable, scored as wrong
    kinds = [s.kind for s in test_samples]
    labels = [s.label for s in test_samples]

    def score(desc: str, questions: list[str]) -> dict:
        return evaluate(model, test_media, labels, classes, questions, cfg.eval_batch_size, cfg.max_new_tokens,
                        cfg.progress, desc, paths=[s.media for s in test_samples], errors=errors)

    # Zero-shot: the paper's prompt (question + class list + "PLEASE ENSURE ... 'My choice is: '").
    zero = (score("zero-shot eval", [zero_shot_question(classes, k) for k in kinds])
            if cfg.zero_shot and accelerator.is_main_process else None)
    accelerator.wait_for_everyone()
    t0 = time.perf_counter()
    align_losses, align_file = [], out / "align_loss.json"
    # A resumed run's checkpoint already holds the aligned weights (and the RNG state after them).
    resumed = cfg.resume and latest_checkpoint(out / "checkpoints") is not None
    if cfg.align_steps and not resumed:
        align_losses = align_to_label_words(
            model, [bank[str(s.media)] for s in train_samples], [s.label for s in train_samples],
            [category_question(classes, s.kind) for s in train_samples],
            classes, cfg.align_steps, cfg.align_batch_size, cfg.align_lr, cfg.seed, accelerator.device,
            progress=cfg.progress and accelerator.is_main_process)
        if accelerator.is_main_process:
            align_file.write_text(json.dumps(align_losses))
    elif cfg.align_steps and align_file.exists():
        align_losses = json.loads(align_file.read_text())  # so a resumed run's metrics.json keeps them
    align_seconds = time.perf_counter() - t0
    if cfg.gradient_checkpointing:
        model.llm.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.check_memory and items:
        from emo_llama.memory import check_fits

        per_device = max(1, cfg.batch_size // (accelerator.num_processes * cfg.grad_accum))
        probe = [items[i] for i in range(min(per_device, len(items)))]
        seq = model.make_batch([bank[i.media] for i in probe], [i.turns for i in probe])["input_ids"].shape[1]
        check_fits(model, per_device, seq, cfg.gradient_checkpointing, accelerator.device,
                   log=accelerator.print)
    t0 = time.perf_counter()
    result = train_loop(model, items, lambda m: bank[m], cfg, accelerator, out)
    train_seconds = time.perf_counter() - t0
    metrics: dict = {}
    if accelerator.is_main_process:
        trained = score("trained eval", [category_question(classes, k) for k in kinds])
        real = None
        if cfg.real_faces and not synthetic:
            from emo_llama.real_check import real_face_check

            real = real_face_check(model, extractor, classes, lambda k: category_question(classes, k),
                                   cfg.max_new_tokens)
        model.save_pretrained(out / "model")
        metrics = {
            "dataset": cfg.dataset, "stack": cfg.stack, "steps": result["steps"],
            "train_seconds": round(train_seconds, 1), "feature_seconds": round(feature_seconds, 1),
            "align_seconds": round(align_seconds, 1), "align_loss": [round(x, 5) for x in align_losses],
            "mean_step_seconds": round(sum(result["step_times"]) / max(1, len(result["step_times"])), 3),
            "zero_shot": headline(zero) if zero else None, "trained": headline(trained),
            "real_faces": real,
            "unreadable": unreadable, "no_face": no_face_report(bank, train_samples, trained),
            "train_loss": [round(x, 5) for x in result["train_loss"]],
            "config": asdict(cfg),
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        details = {"zero_shot": to_jsonable(zero) if zero else None, "trained": to_jsonable(trained)}
        (out / "eval_details.json").write_text(json.dumps(details, indent=2, default=str))
        save_plots(out, result["train_loss"], trained)
        log(summarise(out))
        metrics["_zero_shot_full"], metrics["_trained_full"] = zero, trained
    accelerator.wait_for_everyone()
    metrics["_model"], metrics["_bank"], metrics["_test_samples"] = model, bank, test_samples
    return metrics


def unreadable_report(train_samples, test_samples, errors: dict[str, str]) -> dict:
    """metrics.json's record of media that could not be read: how many, and each one's path and error."""
    items = [{"path": str(s.media), "split": split, "error": errors[str(s.media)]}
             for split, samples in (("train", train_samples), ("test", test_samples)) for s in samples
             if str(s.media) in errors]
    return {"count": len(items), "items": items}


def no_face_report(bank: dict, train_samples, trained: dict, max_listed: int = 50) -> dict:
    """Samples in which MTCNN found no face in any frame (their frames' centres were used), per split."""
    train = sum(not bool(bank[str(s.media)].face_found.any()) for s in train_samples)
    test = [d["path"] for d in trained["no_face"]]
    return {"train": train, "test": len(test), "test_paths": test[:max_listed],
            "test_frames_without_face": trained["frames_without_face"]}


# ----- command line: one flag per TrainConfig field -------------------------------------------------

def _parse_value(kind, text: str):
    origin = typing.get_origin(kind)
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if text.lower() == "none" and type(None) in typing.get_args(kind):
        return None
    if kind is bool:
        return text.lower() in ("1", "true", "yes", "on")
    if origin is tuple:
        return tuple(x for x in text.split(",") if x)
    if kind is dict:
        return json.loads(text)
    if args and origin is not tuple:
        return _parse_value(args[0], text)
    return kind(text)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    hints = typing.get_type_hints(TrainConfig)
    parser = argparse.ArgumentParser(description="LoRA instruction tuning of EMO-LLaMA")
    for f in fields(TrainConfig):
        parser.add_argument(f"--{f.name}", type=str, default=None, help=f"default: {getattr(TrainConfig(), f.name)}")
    ns = parser.parse_args(argv)
    values = {k: _parse_value(hints[k], v) for k, v in vars(ns).items() if v is not None}
    return apply_recipe(TrainConfig(**values), explicit=set(values))


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    metrics = run(cfg)
    if metrics.get("trained"):
        print(json.dumps({k: metrics[k] for k in ("dataset", "stack", "steps", "train_seconds", "zero_shot",
                                                  "trained")}, indent=2))


if __name__ == "__main__":
    main()
