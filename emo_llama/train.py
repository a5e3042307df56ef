"""LoRA instruction tuning of EMO-LLaMA: one `TrainConfig` behind the notebook and `python -m emo_llama.train`.

    python -m emo_llama.train --dataset mini --stack offline --max_steps 120
    accelerate launch --config_file configs/accelerate/ddp.yaml -m emo_llama.train ...    # DDP, N GPUs
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m emo_llama.train ...   # FSDP2, N GPUs
    torchrun --standalone --nproc_per_node 2 -m emo_llama.train ...   # DDP on CPU (gloo)

`TrainConfig` (`emo_llama.config`, re-exported here) is the one declaration of every user-facing parameter:
the command line (one flag per field), notebook 05's parameters cell (`parameters_cell`, checked by
tests/test_config_drift.py) and the model's `EmoLlamaConfig` (`TrainConfig.model_config`) derive from it.

`run(cfg)` reads top to bottom as the paper's pipeline: load splits -> frozen features -> model ->
zero-shot eval -> label-word alignment (ours) -> LoRA (Eq. 6) -> eval -> real-face check -> save.
Where the equations live: Eq. 1-2 `model/clue_aggregator.py`, Eq. 3 `model/face_info_mining.py`,
Eq. 4 (AGR) `prompts.agr_prompt`, Eq. 5 `model/projectors.py`, Eq. 6 `EmoLlama.forward`.

Data order is a pure function of (seed, epoch): each optimizer step takes one global batch, split into
`grad_accum` micro-steps x processes; so N processes at the same global batch see the same samples as
one process, and a resumed run continues exactly where the checkpoint left off.

Scale (issue 16): every process extracts its share of the frozen features into the on-disk store
(`emo_llama.feature_store`, resumable) and reads them back per batch (memory-mapped), so RAM per process
does not grow with the dataset; the feature statistics come from one streaming pass split over the
processes; evaluation is split over the processes by batch and resumes from its saved batches. Under
FSDP2 the model is sharded for the LoRA stage only (`emo_llama.sharding`).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, InitProcessGroupKwargs
from transformers import get_cosine_schedule_with_warmup

from emo_llama.align import align_to_label_words
from emo_llama.checkpoint import kill_point, latest_checkpoint, load_checkpoint, save_checkpoint

# re-exported: notebooks 05/06, the ablations and users import these from here
from emo_llama.config import NOTEBOOK_PARAMETERS, TrainConfig, config_from_parameters, parse_args  # noqa: F401
from emo_llama.data import Sample
from emo_llama.data.sampling import epoch_order
from emo_llama.evaluate import evaluate, headline, no_face_report, save_plots, to_jsonable, unreadable_report
from emo_llama.feature_store import LazyFeatures, extract_to_store
from emo_llama.features import MediaFeatures
from emo_llama.memory import check_fits
from emo_llama.model import EmoLlama
from emo_llama.progress import progress as progress_bar
from emo_llama.real_check import real_face_check
from emo_llama.recipes import DEFAULT_RECIPE, PAPER_DEFAULTS, RECIPES, apply_recipe  # noqa: F401
from emo_llama.run_summary import summarise
from emo_llama.sharding import check_engine, unsharded_copy
from emo_llama.train_data import (
    TrainItem,
    build_items,
    category_question,
    eval_questions,
    item_weights,
    load_splits,
)
from emo_llama.utils import flush_denormals, resolve_device, seed_everything


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
    return cfg.lr if cfg.new_module_lr is None else cfg.new_module_lr


# ----- the loop -------------------------------------------------------------------------------------

SMALL_DATASETS = ("mini", "synthetic")  # checkpoint_every=-1 means no checkpoints on these
AUTO_CHECKPOINT_EVERY = 500


def checkpoint_interval(cfg: TrainConfig) -> int:
    """Steps between checkpoints: `checkpoint_every`, or for -1 none on mini/synthetic and 500 otherwise."""
    if cfg.checkpoint_every >= 0:
        return cfg.checkpoint_every
    return 0 if cfg.dataset in SMALL_DATASETS else AUTO_CHECKPOINT_EVERY


def make_accelerator(device: str = "auto") -> Accelerator:
    """Mixed precision bf16 on CUDA. DDP's find_unused_parameters is decided per run (`unused_parameters`);
    the collective timeout is long enough for a process to finish its share of the feature extraction."""
    dev = resolve_device(device)
    return Accelerator(cpu=dev.type == "cpu", mixed_precision="bf16" if dev.type == "cuda" else "no",
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False),
                                        InitProcessGroupKwargs(timeout=timedelta(hours=2))])


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
               accelerator, output_dir: Path, stop_after: int | None = None) -> dict:
    """AdamW + warmup/cosine + grad accumulation + checkpoints; returns losses and timings.

    Under FSDP (`emo_llama.sharding`) the model is prepared with its optimizer and stays sharded afterwards.

    stop_after: stop (as if killed) after this many steps; the resume tests use it.
    """
    world, rank = accelerator.num_processes, accelerator.process_index
    sharded = check_engine(accelerator)
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by processes x grad_accum")
    per_device = cfg.batch_size // (world * cfg.grad_accum)
    steps_per_epoch = max(1, len(items) // cfg.batch_size)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    lora = [p for p in model.llm.parameters() if p.requires_grad]
    new = model.new_module_parameters()
    new_lr = lora_stage_new_module_lr(cfg)
    optimizer = torch.optim.AdamW([{"params": lora, "lr": cfg.lr}, {"params": new, "lr": new_lr}],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * total), total)
    ckpt_dir = output_dir / "checkpoints"
    every, minutes = checkpoint_interval(cfg), cfg.checkpoint_minutes
    model.new_modules_frozen = new_lr == 0.0
    if world > 1 and not sharded and accelerator.ddp_handler is not None and items:
        probe = [items[i] for i in range(min(per_device, len(items)))]
        unused = unused_parameters(model, model.make_batch([feature_of(i.media) for i in probe],
                                                           [i.turns for i in probe], device=accelerator.device))
        accelerator.ddp_handler.find_unused_parameters = bool(unused)
        if unused:
            accelerator.print(f"DDP: find_unused_parameters=True ({len(unused)} tensors get no gradient, "
                              f"e.g. {unused[0]})")
    if sharded:  # FSDP2 shards the model in place and points the optimizer at the sharded parameters
        ddp_model, prepared = accelerator.prepare(model, optimizer)
        optimizer, params = prepared.optimizer, [p for p in model.parameters() if p.requires_grad]
    else:
        ddp_model = accelerator.prepare_model(model)
    if rank:  # every process its own dropout masks; process 0 keeps the stream of a one-process run
        torch.manual_seed(cfg.seed + 1_000_003 * rank)
    start, losses = 0, []
    latest = latest_checkpoint(ckpt_dir) if cfg.resume else None
    if latest is not None:  # after prepare: a sharded model loads its slice of the saved weights
        start, losses = load_checkpoint(latest, model, optimizer, scheduler, rank)
        accelerator.print(f"resumed from {latest} at step {start}")
    last_save = time.monotonic()
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
        due = every and (done % every == 0 or done == total)  # the last one lets a killed evaluation resume
        if every and minutes and not due:  # by time: rank 0's clock decides for all processes
            late = torch.tensor(float(time.monotonic() - last_save > 60 * minutes), device=accelerator.device)
            due = bool(accelerator.reduce(late, reduction="sum") > 0) if world > 1 else bool(late)
        if due:
            save_checkpoint(ckpt_dir, model, optimizer, scheduler, done, losses, rank,
                            barrier=accelerator.wait_for_everyone)
            last_save = time.monotonic()
        kill_point(f"train:{done}")
        if stop_after is not None and done >= stop_after:
            break
    model.eval()
    model.new_modules_frozen = False
    return {"train_loss": losses, "steps": len(losses), "step_times": step_times, "total_steps": total}


# ----- the whole run --------------------------------------------------------------------------------

@dataclass
class RunResult:
    """What `run` returns: metrics.json's content, the trained model and what it was scored on."""

    metrics: dict                          # as written to output_dir/metrics.json (empty on non-main processes)
    model: EmoLlama                        # the trained model (also saved to output_dir/model)
    features: Mapping[str, MediaFeatures]  # frozen features by media path (str), train and test (the store)
    test_samples: list[Sample]             # the test split as scored
    classes: tuple[str, ...]               # the class list the questions name
    zero_shot: dict | None = None          # full zero-shot evaluation (answers, confusion, per class; main process)
    trained: dict | None = None            # full evaluation after training (main process)
    output_dir: Path = Path(".")           # metrics.json, eval_details.json, loss.png, confusion.png, model/

    @property
    def model_dir(self) -> Path:
        return self.output_dir / "model"


def run(cfg: TrainConfig, model: EmoLlama | None = None, log: Callable[[str], None] = print,
        stop_after: int | None = None) -> RunResult:
    """Splits -> frozen features -> model -> zero-shot eval -> alignment -> LoRA -> eval -> real faces -> save.

    stop_after: stop the LoRA loop (as if killed) after this many steps (resume tests).
    """
    cfg = apply_recipe(cfg)
    flush_denormals()  # training on CPU slows ~10x without it (see emo_llama.utils.flush_denormals)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(cfg.device)
    sharded = check_engine(accelerator)  # FSDP: True (emo_llama.sharding); DeepSpeed, FSDP asked on CPU: raise
    main = accelerator.is_main_process
    show = cfg.progress and main
    # 1. data: the splits (synthetic ones come with their features)
    classes, train_samples, test_samples, bank = load_splits(cfg)
    # 2. the model
    seed_everything(cfg.seed)
    model = model or EmoLlama(cfg.model_config())
    model.to(accelerator.device)
    if main:
        log(model.format_trainable_table())
    # 3. frozen features in the on-disk store (emo_llama.feature_store): every process extracts its share,
    #    reads are memory-mapped per batch; unreadable media are left out of training
    t0 = time.perf_counter()
    extractor, errors = None, {}
    world, rank = accelerator.num_processes, accelerator.process_index
    if bank is None:
        extractor, bank, errors = extract_to_store(model.stack, train_samples + test_samples, cfg.max_frames,
                                                   accelerator.device, rank, world, accelerator.wait_for_everyone,
                                                   progress=cfg.progress)
    unreadable = unreadable_report(train_samples, test_samples, errors)
    if errors and main:
        log(f"{len(errors)} media file(s) could not be read and are left out of training / scored as wrong "
            f"(listed in metrics.json), e.g. {next(iter(errors.values()))}")
    train_samples = [s for s in train_samples if str(s.media) in bank]
    if not train_samples:
        raise ValueError(f"no training sample of {cfg.dataset} could be read; first error: "
                         f"{next(iter(errors.values()), 'none')}")
    feature_seconds = time.perf_counter() - t0
    # 4. instruction items (emo_llama.train_data) and the feature standardisers
    agr_of = bank.agr if hasattr(bank, "agr") else (lambda m: bank[m].agr)
    items = build_items(train_samples, classes, cfg, lambda s: agr_of(str(s.media)))
    train_media = LazyFeatures(bank, [s.media for s in train_samples])  # read from the store on access
    fit_statistics(model, train_samples, bank, accelerator)
    test_media = LazyFeatures(bank, [s.media for s in test_samples])  # None: unreadable, scored as wrong
    if not cfg.resume:
        shutil.rmtree(out / "eval_progress", ignore_errors=True)

    def score(desc: str, questions: list[str], state: str) -> dict:
        return evaluate(model, test_media, [s.label for s in test_samples], classes, questions,
                        cfg.eval_batch_size, cfg.max_new_tokens, show, desc,
                        paths=[s.media for s in test_samples], errors=errors, accelerator=accelerator,
                        progress_dir=eval_progress_dir(out, cfg, desc, questions, state))

    # Tab. 6's first row: no instruction data means no tuning; the zero-shot model is what gets scored
    tune = bool(items)
    if not tune and main:
        log("instruction_types is empty: no instruction tuning (no alignment, no LoRA steps); zero-shot only")
    # 5. zero-shot: the paper's prompt (question + class list + "PLEASE ENSURE ... 'My choice is: '")
    zero = (score("zero-shot eval", eval_questions(test_samples, classes, cfg.descriptive_text, zero_shot=True),
                  "untrained") if cfg.zero_shot or not tune else None)
    zero = zero if main else None
    accelerator.wait_for_everyone()
    # 6. label-word alignment of the new modules (emo_llama.align; not in the paper)
    t0 = time.perf_counter()
    align_losses = align_stage(model, cfg, out, train_media,
                               [s.label for s in train_samples], [category_question(classes, s.kind)
                                                                   for s in train_samples], classes,
                               accelerator) if tune else []
    align_seconds = time.perf_counter() - t0
    # 7. LoRA instruction tuning (Eq. 6)
    if cfg.gradient_checkpointing:
        model.llm.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.check_memory and items:
        per_device = max(1, cfg.batch_size // (accelerator.num_processes * cfg.grad_accum))
        probe = [items[i] for i in range(min(per_device, len(items)))]
        seq = model.make_batch([bank[i.media] for i in probe], [i.turns for i in probe])["input_ids"].shape[1]
        check_fits(model, per_device, seq, cfg.gradient_checkpointing, accelerator.device, log=accelerator.print,
                   shards=world if sharded else 1)
    t0 = time.perf_counter()
    result = (train_loop(model, items, lambda m: bank[m], cfg, accelerator, out, stop_after) if tune
              else {"train_loss": [], "steps": 0, "step_times": [], "total_steps": 0})
    train_seconds = time.perf_counter() - t0
    if sharded and tune:  # generation runs on an unsharded copy with the gathered trained weights
        model = unsharded_copy(model, accelerator.device)
    done = RunResult({}, model, bank, test_samples, tuple(classes), zero, None, out)
    # 8. evaluation with the tuned question (all processes, one share each; no tuning: the zero-shot scores)
    trained = (score("trained eval", eval_questions(test_samples, classes, cfg.descriptive_text),
                     f"trained-{result['total_steps']}") if tune else zero)
    if main:
        # 9. the real-face check, 10. outputs
        done.trained = trained
        real = (real_face_check(model, extractor, classes, lambda k: category_question(classes, k),
                                cfg.max_new_tokens) if cfg.real_faces and extractor is not None else None)
        model.save_pretrained(done.model_dir)
        done.metrics = {
            "dataset": cfg.dataset, "stack": cfg.stack, "steps": result["steps"],
            "processes": world, "engine": "fsdp" if sharded else "ddp" if world > 1 else "one process",
            "train_seconds": round(train_seconds, 1), "feature_seconds": round(feature_seconds, 1),
            "align_seconds": round(align_seconds, 1), "align_loss": [round(x, 5) for x in align_losses],
            "mean_step_seconds": round(sum(result["step_times"]) / max(1, len(result["step_times"])), 3),
            "zero_shot": headline(zero) if zero else None, "trained": headline(trained),
            "real_faces": real,
            "unreadable": unreadable, "no_face": no_face_report(bank, train_samples, trained),
            "train_loss": [round(x, 5) for x in result["train_loss"]],
            "config": asdict(cfg),
        }
        (out / "metrics.json").write_text(json.dumps(done.metrics, indent=2))
        details = {"zero_shot": to_jsonable(zero) if zero else None, "trained": to_jsonable(trained)}
        (out / "eval_details.json").write_text(json.dumps(details, indent=2, default=str))
        save_plots(out, result["train_loss"], trained)
        log(summarise(out))
    accelerator.wait_for_everyone()
    return done


def fit_statistics(model, train_samples, bank, accelerator) -> None:
    """The feature standardisers from one streaming pass over the training features, split over the processes
    (process r reads samples r, r + world, ...; the moments are summed across processes)."""
    world, rank = accelerator.num_processes, accelerator.process_index
    share = train_samples[rank::world] if len(train_samples) >= world else train_samples
    stats = model.feature_moments(bank[str(s.media)] for s in share)
    if world > 1 and len(train_samples) >= world:
        stats = {k: accelerator.reduce(v.to(accelerator.device), reduction="sum").cpu() for k, v in sorted(stats.items())}
    model.set_feature_statistics(stats)


def eval_progress_dir(out: Path, cfg: TrainConfig, desc: str, questions: list[str], state: str) -> Path:
    """Where an evaluation saves its batches: named by what it scores (config, questions, model state), so
    a resumed run reads back only answers of the same evaluation."""
    keep = {k: v for k, v in asdict(cfg).items()
            if k not in ("progress", "resume", "checkpoint_every", "checkpoint_minutes", "output_dir")}
    text = json.dumps([keep, desc, questions, state], sort_keys=True, default=str)
    return out / "eval_progress" / f"{desc.replace(' ', '_')}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def align_stage(model, cfg: TrainConfig, out: Path, media: list, labels: list[str], questions: list[str],
                classes, accelerator) -> list[float]:
    """Label-word alignment, or, in a resumed run, its losses read back (the checkpoint holds its weights)."""
    align_file = out / "align_loss.json"
    resumed = cfg.resume and latest_checkpoint(out / "checkpoints") is not None
    if cfg.align_steps and not resumed:
        losses = align_to_label_words(model, media, labels, questions, classes, cfg.align_steps,
                                      cfg.align_batch_size, cfg.align_lr, cfg.seed, accelerator.device,
                                      progress=cfg.progress and accelerator.is_main_process)
        if accelerator.is_main_process:
            align_file.write_text(json.dumps(losses))
        return losses
    if cfg.align_steps and align_file.exists():
        return json.loads(align_file.read_text())  # so a resumed run's metrics.json keeps them
    return []


def main(argv: list[str] | None = None) -> None:
    result = run(parse_args(argv))
    if result.metrics.get("trained"):
        print(json.dumps({k: result.metrics[k] for k in ("dataset", "stack", "steps", "train_seconds", "zero_shot",
                                                         "trained")}, indent=2))


if __name__ == "__main__":
    main()
