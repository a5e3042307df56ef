"""One training run of EMO-LLaMA, read top to bottom: `run(cfg)` is the list of its stages.

    python -m emo_llama.train --dataset mini --stack offline --max_steps 120
    accelerate launch --config_file configs/accelerate/ddp.yaml -m emo_llama.train ...    # DDP, N GPUs
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m emo_llama.train ...   # FSDP2, N GPUs
    torchrun --standalone --nproc_per_node 2 -m emo_llama.train ...   # DDP on CPU (gloo)

The stages, each a function below: data (the splits) -> model -> features (frozen, in the on-disk store) ->
zero-shot evaluation -> label-word alignment (ours, not the paper's) -> LoRA tuning (Eq. 6, `train.loop`) ->
evaluation (and, tuned on reasons, their clue scores) -> the real-face check -> save. `TrainConfig` (`emo_llama.config`) is the one declaration of every
parameter; the recipe's values are merged into it once, at the top of `run`.
Where the equations live: Eq. 1 the facial expert (`emo_llama.expert`), Eq. 2 `model/parts/clue_aggregator.py`,
Eq. 3 `model/parts/face_info_mining.py`,
Eq. 4 (AGR) `prompts.agr_prompt`, Eq. 5 `model/parts/projectors.py`, Eq. 6 `EmoLlama.forward`.

Scale (issue 16): every process extracts its share of the frozen features into the on-disk store
(`emo_llama.features.store`, resumable) and reads them back per batch (memory-mapped), so RAM per process
does not grow with the dataset; the feature statistics come from one streaming pass split over the
processes; evaluation is split over the processes by batch and resumes from its saved batches. Under
FSDP2 the model is sharded for the LoRA stage only (`emo_llama.train.distributed`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator

from emo_llama.config import TrainConfig, parse_args
from emo_llama.data import Sample
from emo_llama.data.splits import Splits, load_splits
from emo_llama.evaluate import (
    headline,
    no_face_report,
    real_face_check,
    save_plots,
    summarise,
    to_jsonable,
    unreadable_report,
)
from emo_llama.evaluate.protocol import TRAINED_ON, answers_folder, score_set, write_dataset_metrics
from emo_llama.evaluate.reasons import score_reasons
from emo_llama.features import (
    FeatureExtractor,
    LazyFeatures,
    MediaFeatures,
    WithAudio,
    audio_report,
    extract_audio_to_store,
    extract_to_store,
)
from emo_llama.model import EmoLlama
from emo_llama.prompts import category_question, eval_questions
from emo_llama.train.align import align_to_label_words
from emo_llama.train.checkpoint import digest, latest_checkpoint, other_runs, run_fingerprint
from emo_llama.train.distributed import broadcast_new_modules, check_engine, make_accelerator, unsharded_copy
from emo_llama.train.items import TrainItem, build_items, instruction_file_items
from emo_llama.train.loop import train_loop
from emo_llama.train.memory import check_fits
from emo_llama.utils import flush_denormals, repo_path, seed_everything

# A run's callback (`run(on_event=...)`): "train:<step>" after each optimizer step (a true return value stops
# training there) and "eval:<desc>:<batch>" after each evaluation batch. tests/fixtures cut runs with it.
OnEvent = Callable[[str], object]


@dataclass
class RunResult:
    """What `run` returns: metrics.json's content, the trained model and what it was scored on."""

    metrics: dict                          # as written to output_dir/metrics.json (empty on non-main processes)
    model: EmoLlama                        # the trained model (also saved to output_dir/model)
    features: Mapping[str, MediaFeatures]  # frozen features by media path (str), train and test (the store)
    test_samples: list[Sample]             # the primary dataset's test split as scored
    classes: tuple[str, ...]               # the class list its questions name
    zero_shot: dict | None = None          # full zero-shot evaluation (answers, confusion, per class; main process)
    trained: dict | None = None            # full evaluation after training (main process)
    output_dir: Path = Path(".")           # metrics.json, eval_details.json, loss.png, confusion.png, model/
    other_sets: dict[str, dict] = field(default_factory=dict)  # every other scored dataset's full evaluation

    @property
    def model_dir(self) -> Path:
        return self.output_dir / "model"


@dataclass
class Run:
    """What the stages share: the config, the accelerator, where outputs go, and what earlier stages made."""

    cfg: TrainConfig
    accelerator: Accelerator
    out: Path
    log: Callable[[str], None]
    on_event: OnEvent | None
    sharded: bool                                  # FSDP2 (emo_llama.train.distributed)
    splits: Splits | None = None                   # the datasets' samples (emo_llama.data.splits)
    train_samples: list[Sample] = field(default_factory=list)  # the training samples that could be read
    instruction_items: list[TrainItem] = field(default_factory=list)  # instruction_files' records
    instruction_media: list[Sample] = field(default_factory=list)
    bad_instructions: list[str] = field(default_factory=list)       # named and skipped records
    bank: Mapping[str, MediaFeatures] | None = None  # the feature store (or a synthetic split's features)
    extractor: FeatureExtractor | None = None      # None for synthetic features: no real-face check then
    state: Path | None = None                      # this run's checkpoints (output_dir/checkpoints/<digest>)
    fingerprint: dict = field(default_factory=dict)  # what the trained model depends on (train.checkpoint)
    errors: dict[str, str] = field(default_factory=dict)   # unreadable media -> why
    unreadable: dict = field(default_factory=dict)         # metrics.json's report of them
    audio: dict | None = None                              # metrics.json's audio report (use_audio)
    seconds: dict[str, float] = field(default_factory=dict)  # feature, align and train stages

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def classes(self) -> tuple[str, ...]:  # the primary dataset's classes (metrics.json's headline)
        return self.splits.classes_of[self.splits.primary]

    @property
    def test_samples(self) -> list[Sample]:
        return self.splits.test

    @property
    def show(self) -> bool:  # progress bars on the main process only
        return self.cfg.progress and self.main


def run(cfg: TrainConfig, model: EmoLlama | None = None, log: Callable[[str], None] = print,
        on_event: OnEvent | None = None) -> RunResult:
    """Data -> model -> features -> zero-shot -> align -> tune -> evaluate -> real faces -> save."""
    r = setup(cfg, log, on_event)
    load_data(r)
    model = build_model(r, model)
    items = extract_features(r, model)
    zero = zero_shot_stage(r, model, tune=bool(items))
    align_losses = align_stage(r, model, tune=bool(items))
    result = tune_stage(r, model, items)
    if r.sharded and items:  # generation runs on an unsharded copy with the gathered trained weights
        model = unsharded_copy(model, r.accelerator.device)
    scored = evaluate_stage(r, model, zero if not items else None)  # untuned: the zero-shot scores
    trained = scored.pop(r.splits.primary)
    done = RunResult({}, model, r.bank, r.test_samples, tuple(r.classes), zero, None, r.out, other_sets=scored)
    if r.main:
        done.trained = trained
        reasons = reasons_stage(r, model) if items else None
        real = real_faces_stage(r, model)
        done.metrics = save_stage(r, model, result, zero, trained, scored, real, align_losses, reasons)
    r.accelerator.wait_for_everyone()
    return done


# ----- the stages, in order -------------------------------------------------------------------------

def setup(cfg: TrainConfig, log: Callable[[str], None], on_event: OnEvent | None) -> Run:
    """The output folder and the accelerator (DDP / FSDP2 / one process)."""
    flush_denormals()  # training on CPU slows ~10x without it (see emo_llama.utils.flush_denormals)
    out = repo_path(cfg.output_dir)  # from JupyterLab (cwd notebooks/) too: the repository's runs/
    out.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(cfg.device)
    sharded = check_engine(accelerator)  # FSDP: True; DeepSpeed, FSDP asked on CPU: raise
    if accelerator.is_main_process:
        log(f"output folder: {out}")
    return Run(cfg, accelerator, out, log, on_event, sharded)


def load_data(r: Run) -> None:
    """1. The datasets' splits (a synthetic one comes with its features) and the instruction files' records.
    A missing dataset raises the loader's error; a bad instruction record is named (or raises, when strict)."""
    r.splits = load_splits(r.cfg)
    r.train_samples, r.bank = r.splits.train, r.splits.bank
    r.instruction_items, r.instruction_media, r.bad_instructions = instruction_file_items(r.cfg)
    if r.bad_instructions and r.main:
        r.log(f"{len(r.bad_instructions)} instruction record(s) skipped (listed in metrics.json), "
              f"first: {r.bad_instructions[0]}")


def build_model(r: Run, model: EmoLlama | None) -> EmoLlama:
    """2. The model (frozen stack + new modules + LoRA), seeded, on the accelerator's device."""
    seed_everything(r.cfg.seed)
    model = model or EmoLlama(r.cfg.model_config())
    model.to(r.accelerator.device)
    if r.main:
        r.log(model.format_trainable_table())
    return model


def extract_features(r: Run, model: EmoLlama) -> list[TrainItem]:
    """3. Frozen features into the on-disk store (every process its share; reads are memory-mapped per batch),
    then the instruction items and the feature standardisers. Unreadable media are left out of training."""
    cfg, accelerator = r.cfg, r.accelerator
    t0 = time.perf_counter()
    media = r.train_samples + r.splits.all_test + r.instruction_media
    if r.bank is None:
        r.extractor, r.bank, r.errors = extract_to_store(
            model.stack, media, cfg.max_frames, accelerator.device, accelerator.process_index,
            accelerator.num_processes, accelerator.wait_for_everyone, progress=cfg.progress)
    if model.config.use_audio:  # the sound of every media, one window per kept frame, in its own store
        audio_extractor, audio_store, statuses = extract_audio_to_store(
            model.stack.audio_encoder(), media, cfg.max_frames, accelerator.process_index,
            accelerator.num_processes, accelerator.wait_for_everyone, progress=cfg.progress)
        r.bank = WithAudio(r.bank, audio_store)
        if r.extractor is not None:
            r.extractor.audio = audio_extractor
        r.audio = audio_report(statuses, {str(s.media): s.kind for s in media})
        if r.audio["clips_without_sound"] and r.main:
            r.log(f"{r.audio['clips_without_sound']} clip(s) have no usable sound (no audio track, silent or "
                  f"unreadable; listed in metrics.json's audio section): their audio tokens say 'no sound'")
    if r.errors and r.main:
        r.log(f"{len(r.errors)} media file(s) could not be read and are left out of training / scored as wrong "
              f"(listed in metrics.json), e.g. {next(iter(r.errors.values()))}")
    r.unreadable = unreadable_report(r.train_samples + r.instruction_media, r.splits.all_test, r.errors)
    r.train_samples = [s for s in r.train_samples if str(s.media) in r.bank]
    if not r.train_samples:
        raise ValueError(f"no training sample of {list(r.splits.trained_on)} could be read; first error: "
                         f"{next(iter(r.errors.values()), 'none')}")
    r.seconds["feature"] = time.perf_counter() - t0
    bank = r.bank
    agr_of = bank.agr if hasattr(bank, "agr") else (lambda m: bank[m].agr)
    items = build_items(r.train_samples, r.splits.classes_of, cfg, lambda s: agr_of(str(s.media)))
    items += [i for i in r.instruction_items if i.media in r.bank]  # unreadable media: listed, not trained on
    fit_statistics(model, r.train_samples, bank, accelerator)
    choose_state(r, model)
    if not items and r.main:  # Tab. 6's first row: no instruction data means no tuning
        r.log("instruction_types is empty: no instruction tuning (no alignment, no LoRA steps); zero-shot only")
    return items


def choose_state(r: Run, model: EmoLlama) -> None:
    """This run's checkpoint folder, named by its fingerprint: a resumed run finds its own checkpoints only.
    Checkpoints of other configurations in the same output_dir are left alone, and the log says what differs."""
    features_key = getattr(r.bank, "key", "synthetic features")
    r.fingerprint = run_fingerprint(asdict(r.cfg), r.train_samples, features_key, model, r.instruction_items)
    r.state = r.out / "checkpoints" / digest(r.fingerprint)
    if not r.cfg.resume and r.main:
        shutil.rmtree(r.state, ignore_errors=True)
        shutil.rmtree(r.out / "eval_progress", ignore_errors=True)
    r.accelerator.wait_for_everyone()
    if r.main:
        r.state.mkdir(parents=True, exist_ok=True)
        (r.state / "run.json").write_text(json.dumps(r.fingerprint, indent=2, default=str))
        for folder, differences in other_runs(r.out / "checkpoints", r.fingerprint):
            r.log(f"not resumed: {folder} holds another run ({'; '.join(differences[:6]) or 'unknown'})")
    r.accelerator.wait_for_everyone()


def zero_shot_stage(r: Run, model: EmoLlama, tune: bool) -> dict | None:
    """4. The untrained model with the paper's zero-shot prompt (question + class list + "PLEASE ENSURE ...").
    Without tuning, this is what gets scored."""
    zero = None
    if r.cfg.zero_shot or not tune:
        questions = eval_questions(r.test_samples, r.classes, r.cfg.descriptive_text, zero_shot=True,
                                   use_text=r.cfg.use_text)
        zero = score(r, model, "zero-shot eval", questions, r.test_samples, r.classes)
    zero = zero if r.main else None
    r.accelerator.wait_for_everyone()
    return zero


def align_stage(r: Run, model: EmoLlama, tune: bool) -> list[float]:
    """5. Label-word alignment of the new modules (emo_llama.train.align; not in the paper), or, in a resumed run,
    its losses read back (the checkpoint holds its weights)."""
    t0 = time.perf_counter()
    losses = _align(r, model) if tune else []
    if r.sharded and losses:  # FSDP2 shards what each process holds: all must start from rank 0's weights,
        broadcast_new_modules(model)  # as DDP's wrapper makes them for DDP
    r.seconds["align"] = time.perf_counter() - t0
    return losses


def _align(r: Run, model: EmoLlama) -> list[float]:
    cfg, align_file = r.cfg, r.state / "align_loss.json"
    resumed = cfg.resume and latest_checkpoint(r.state) is not None
    if cfg.align_steps and not resumed:
        media = LazyFeatures(r.bank, [s.media for s in r.train_samples])  # read from the store on access
        questions = [category_question(r.splits.classes_of[s.dataset], s.kind) for s in r.train_samples]
        losses = align_to_label_words(model, media, [s.label for s in r.train_samples], questions, r.splits.classes,
                                      cfg.align_steps, cfg.align_batch_size, cfg.align_lr, cfg.seed,
                                      r.accelerator.device, progress=r.show)
        if r.main:
            align_file.write_text(json.dumps(losses))
        return losses
    if cfg.align_steps and align_file.exists():
        return json.loads(align_file.read_text())  # so a resumed run's metrics.json keeps them
    return []


def tune_stage(r: Run, model: EmoLlama, items: list[TrainItem]) -> dict:
    """6. LoRA instruction tuning (Eq. 6) after the expected-memory check; nothing when there are no items."""
    cfg, accelerator = r.cfg, r.accelerator
    if cfg.gradient_checkpointing:
        model.llm.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.check_memory and items:
        per_device = max(1, cfg.batch_size // (accelerator.num_processes * cfg.grad_accum))
        probe = [items[i] for i in range(min(per_device, len(items)))]
        seq = model.make_batch([r.bank[i.media] for i in probe], [i.turns for i in probe])["input_ids"].shape[1]
        check_fits(model, per_device, seq, cfg.gradient_checkpointing, accelerator.device, log=accelerator.print,
                   shards=accelerator.num_processes if r.sharded else 1)
    t0 = time.perf_counter()
    bank = r.bank
    result = (train_loop(model, items, lambda m: bank[m], cfg, accelerator, r.out, r.on_event, r.state) if items
              else {"train_loss": [], "steps": 0, "step_times": [], "total_steps": 0})
    r.seconds["train"] = time.perf_counter() - t0
    return result


def evaluate_stage(r: Run, model: EmoLlama, untuned: dict | None = None) -> dict[str, dict]:
    """7. The tuned model with the question it was tuned on, on every scored dataset's test split (the training
    datasets', then `eval_datasets`), each question naming that dataset's classes (every process a share).
    Untuned (`untuned`: the primary dataset's zero-shot scores), the others are asked the zero-shot prompt."""
    seen = set(r.splits.classes)
    scored = {}
    for name, samples in r.splits.test_sets.items():
        classes = r.splits.classes_of[name]
        if untuned is not None and name == r.splits.primary:
            scored[name] = untuned
            continue
        questions = eval_questions(samples, classes, r.cfg.descriptive_text, zero_shot=untuned is not None,
                                   use_text=r.cfg.use_text)
        desc = "trained eval" if name == r.splits.primary else f"trained eval {name}"
        scored[name] = score(r, model, desc, questions, samples, classes, seen)
    return scored


def reasons_stage(r: Run, model: EmoLlama) -> dict | None:
    """7b. When the model was tuned on reasons: "what is the emotion and why?" on the primary test split's samples
    with AU coding, scored offline (`evaluate.reasons.score_reasons`: the label the reason concludes, and the AUs it
    names against the AUs that are there), main process."""
    if "reason" not in r.cfg.instruction_types:
        return None
    samples = [s for s in r.test_samples if str(s.media) in r.bank]
    if not any(s.aus is not None for s in samples):
        r.log("no test sample has AU coding (Sample.aus): the reasons cannot be scored")
        return None
    return score_reasons(model, r.bank, samples, r.classes, batch_size=r.cfg.eval_batch_size, progress=r.show,
                         use_voice=model.config.use_audio)


def real_faces_stage(r: Run, model: EmoLlama) -> dict | None:
    """8. Does it work on real faces? The real-face check set (emo_llama.evaluate.real_faces), main process."""
    if not r.cfg.real_faces or r.extractor is None:
        return None
    return real_face_check(model, r.extractor, r.classes, lambda k: category_question(r.classes, k),
                           r.cfg.max_new_tokens)


def save_stage(r: Run, model: EmoLlama, result: dict, zero: dict | None, trained: dict, others: dict[str, dict],
               real: dict | None, align_losses: list[float], reasons: dict | None = None) -> dict:
    """9. The model (with the datasets and classes it was tuned on), metrics.json (the primary dataset's figures,
    then every other scored dataset's), eval/<dataset>/ per dataset, eval_details.json, the plots and the summary
    lines (main process)."""
    cfg, out, world, splits = r.cfg, r.out, r.accelerator.num_processes, r.splits
    model.save_pretrained(out / "model")
    (out / "model" / TRAINED_ON).write_text(json.dumps({"datasets": list(splits.trained_on),
                                                        "classes": list(splits.classes),
                                                        "train_kinds": list(cfg.train_kinds),
                                                        "use_text": cfg.use_text}, indent=1))
    for name, scored in {splits.primary: trained, **others}.items():
        write_dataset_metrics(out / "eval" / name, str(out.name), name, splits.classes_of[name], scored,
                              splits.test_sets[name])
    metrics = {
        "dataset": splits.primary, "stack": cfg.stack, "steps": result["steps"], "output_dir": str(out),
        "run": {"digest": digest(r.fingerprint), "checkpoints": str(r.state)},
        "samples": splits.notes,
        "datasets": {"trained_on": list(splits.trained_on), "train_kinds": list(cfg.train_kinds),
                     "left_out_by_kind": splits.skipped_kinds, "scored": list(splits.test_sets)},
        "instruction_files": {"files": list(cfg.instruction_files),
                              "records": len([i for i in r.instruction_items if i.media in r.bank]),
                              "skipped": len(r.bad_instructions), "skipped_items": r.bad_instructions[:50]},
        "processes": world, "engine": "fsdp" if r.sharded else "ddp" if world > 1 else "one process",
        "train_seconds": round(r.seconds["train"], 1), "feature_seconds": round(r.seconds["feature"], 1),
        "align_seconds": round(r.seconds["align"], 1), "align_loss": [round(x, 5) for x in align_losses],
        "mean_step_seconds": round(sum(result["step_times"]) / max(1, len(result["step_times"])), 3),
        "zero_shot": headline(zero) if zero else None, "trained": headline(trained),
        "other_datasets": {name: headline(m) | {"unseen_classes": m.get("unseen_classes")} for name, m in others.items()},
        "real_faces": real,
        "reasons": {k: v for k, v in reasons.items() if k not in ("answers", "predicted", "named")} if reasons else None,
        "audio": r.audio,
        "unreadable": r.unreadable, "no_face": no_face_report(r.bank, r.train_samples, trained),
        "train_loss": [round(x, 5) for x in result["train_loss"]],
        "config": asdict(cfg),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if reasons:
        (out / "eval" / splits.primary / "reasons.json").write_text(json.dumps(reasons["answers"], indent=1))
    details = {"zero_shot": to_jsonable(zero) if zero else None, "trained": to_jsonable(trained)}
    (out / "eval_details.json").write_text(json.dumps(details, indent=2, default=str))
    save_plots(out, result["train_loss"], trained)
    r.log(summarise(out))
    return metrics


# ----- what the stages use ---------------------------------------------------------------------------

def score(r: Run, model: EmoLlama, desc: str, questions: list[str], samples: list[Sample], classes,
          seen=None) -> dict:
    """Evaluate on a test split (unreadable media scored as wrong), saving each batch as it is answered."""
    return score_set(model, r.bank, samples, classes, questions, seen=seen, errors=r.errors,
                     batch_size=r.cfg.eval_batch_size, max_new_tokens=r.cfg.max_new_tokens, progress=r.show,
                     desc=desc, accelerator=r.accelerator, on_event=r.on_event,
                     progress_dir=eval_progress_dir(r, model, desc, questions, samples))


def fit_statistics(model, train_samples, bank, accelerator) -> None:
    """The feature standardisers from one streaming pass over the training features, split over the processes
    (process r reads samples r, r + world, ...; the moments are summed across processes)."""
    world, rank = accelerator.num_processes, accelerator.process_index
    share = train_samples[rank::world] if len(train_samples) >= world else train_samples
    stats = model.feature_moments(bank[str(s.media)] for s in share)
    if world > 1 and len(train_samples) >= world:
        stats = {k: accelerator.reduce(v.to(accelerator.device), reduction="sum").cpu() for k, v in sorted(stats.items())}
    model.set_feature_statistics(stats)


def eval_progress_dir(r: Run, model: EmoLlama, desc: str, questions: list[str], samples: list[Sample]) -> Path:
    """Where an evaluation of this run saves its batches (`emo_llama.evaluate.protocol.answers_folder`)."""
    return answers_folder(r.out / "eval_progress", desc, model, samples, questions, r.cfg.max_new_tokens,
                          getattr(r.bank, "key", "synthetic features"))


def main(argv: list[str] | None = None, on_event: OnEvent | None = None) -> None:
    """The command line: one flag per TrainConfig field (`python -m emo_llama.train --help`)."""
    result = run(parse_args(argv), on_event=on_event)
    if result.metrics.get("trained"):
        print(json.dumps({k: result.metrics[k] for k in ("dataset", "stack", "steps", "train_seconds", "zero_shot",
                                                         "trained")}, indent=2))


if __name__ == "__main__":
    main()
