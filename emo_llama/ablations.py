"""The paper's ablations (Tab. 5-9) and cross-modality tables (Tab. 2/3) as data: named arms of `TrainConfig`
overrides, run with shared work.

    python -m emo_llama.ablations --table 5 --seeds 3 --workers 2
    python -m emo_llama.ablations --table 2,3 --seeds 3 --workers 2 --output_dir runs/cross_modality   # Tab. 2/3
    python -m emo_llama.ablations --table 5,6,7,8,9 --seeds 3 --max_steps 60 --align_steps 40   # any TrainConfig flag

One arm = one name in `ARMS`: the TrainConfig fields that make it (`overrides`), the evaluation-only
changes (`inference`: the trained model of `overrides` is reused, Tab. 8), the media kind it is read on
(`scored_kind`: Tab. 2/3 train on one kind and read the other) and the paper's own figures
(`paper`: MAFW UAR/WAR and AffectNet Acc in percent, as its tables print them).

Every arm sets all the ablated fields itself (`ABLATED`), so an arm means the same whatever the base config.
The paper's rows share models: Tab. 5's first row is Tab. 6's last (LLaMA-VID tuned on both instruction
types, no facial priors), Tab. 5's second is Tab. 7's FIM row, Tab. 5's last is Tab. 8's visual row, Tab. 6's
category row is Tab. 9's resampling row. `plan` runs each distinct training once per seed; Tab. 6's
"no instruction tuning" row is the zero-shot evaluation of the no-priors model (same seed, same initial
weights: `run` seeds before building the model), and Tab. 8's text row re-scores the trained visual-row
model with the captions in the questions. All runs read the same frozen-feature cache on disk.

`run_ablations` writes `results.json` (every arm's per-seed figures, mean and std, the paper's figures, the
wall time of every training) and one figure per table into `output_dir` (default `runs/06_ablations`).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from emo_llama.config import TrainConfig, parse_args
from emo_llama.data.splits import load_splits
from emo_llama.evaluate import evaluate, headline
from emo_llama.features import extract_to_store
from emo_llama.model import EmoLlama
from emo_llama.prompts import eval_questions
from emo_llama.train import RunResult, run
from emo_llama.train.checkpoint import recorded_metrics
from emo_llama.utils import repo_path

TABLES: dict[int, str] = {
    2: "cross-modality: scored on videos",
    3: "cross-modality: scored on images",
    5: "facial priors",
    6: "instruction data types",
    7: "Face Info Mining",
    8: "descriptive text at inference",
    9: "imbalanced-dataset resampling",
    # Not one of EMO-LLaMA's tables: Emotion-LLaMA's modalities (audio, spoken text) on mini's clips.
    10: "Emotion-LLaMA: audio and spoken text",
}
# The fields the arms switch. Each arm sets every one of them (these values unless it says otherwise).
# use_expression None: the expert's expression token wherever the stack's expert reads expressions (offline).
ABLATED: dict = {"use_face_embedding": True, "use_expression": None, "use_landmarks": True, "use_agr": True,
                 "fim_mode": "fim",
                 "instruction_types": ("category", "conversation"), "resample": True, "descriptive_text": False,
                 "train_kinds": ("image", "video"), "use_vision": True, "use_audio": False, "use_text": False}
METRICS = ("acc", "uar", "war", "wf1")  # wf1: weighted F1, MER2023's metric (Emotion-LLaMA reports it)

# The expert's expression token belongs to the face-embedding prior: both come from the expert's expression
# knowledge (the paper's FaceXFormer carries it inside its face embedding).
NO_PRIORS = {"use_face_embedding": False, "use_expression": False, "use_landmarks": False, "use_agr": False}  # LLaMA-VID
FACE_ROI = {"use_face_embedding": True, "use_landmarks": False, "use_agr": False}        # landmarks only as AU ROIs
FACE_LANDMARK = {"use_face_embedding": True, "use_landmarks": True, "use_agr": False}
ALL_PRIORS = {"use_face_embedding": True, "use_landmarks": True, "use_agr": True}
CATEGORY = {"instruction_types": ("category",)}
IMAGES_ONLY, VIDEOS_ONLY = {"train_kinds": ("image",)}, {"train_kinds": ("video",)}
AUDIO = {"use_audio": True}
# Audio only: the sound's token per frame and nothing from the face; trained on clips (images have no sound)
AUDIO_ONLY = NO_PRIORS | AUDIO | VIDEOS_ONLY | {"use_vision": False}


@dataclass(frozen=True)
class Arm:
    name: str
    table: int
    row: str                                          # the row as the paper's table labels it
    overrides: dict = field(default_factory=dict)     # TrainConfig fields of the trained model
    inference: dict = field(default_factory=dict)     # evaluation-only changes (the trained model is reused)
    paper: dict = field(default_factory=dict)         # mafw_uar, mafw_war, affectnet_acc (percent, the paper's)
    scored_kind: str | None = None                    # read one media kind of the test split (Tab. 2/3)

    def config(self, base: TrainConfig) -> TrainConfig:
        """The arm's training config: `base` with every ablated field set as the arm says."""
        return replace(base, **(ABLATED | self.overrides))

    @property
    def tuned(self) -> bool:
        return bool((ABLATED | self.overrides)["instruction_types"])


def _paper(uar=None, war=None, acc=None) -> dict:
    return {k: v for k, v in (("mafw_uar", uar), ("mafw_war", war), ("affectnet_acc", acc)) if v is not None}


ARMS: dict[str, Arm] = {a.name: a for a in (
    # Tab. 2/3: cross-modality on mini (the paper trains on images and scores videos, Tab. 2, and the reverse,
    # Tab. 3, on the real benchmarks). All priors; one training per media kind, each read on both kinds.
    Arm("t2_images_on_videos", 2, "trained on images", ALL_PRIORS | IMAGES_ONLY, scored_kind="video",
        paper=_paper(27.26, 38.09)),  # EMO-LLaMA trained on images, zero-shot on MAFW
    Arm("t2_videos_on_videos", 2, "trained on videos", ALL_PRIORS | VIDEOS_ONLY, scored_kind="video"),
    Arm("t2_both_on_videos", 2, "trained on both", ALL_PRIORS, scored_kind="video"),
    Arm("t3_videos_on_images", 3, "trained on videos", ALL_PRIORS | VIDEOS_ONLY, scored_kind="image",
        paper=_paper(acc=38.43)),  # EMO-LLaMA trained on videos, zero-shot on AffectNet
    Arm("t3_images_on_images", 3, "trained on images", ALL_PRIORS | IMAGES_ONLY, scored_kind="image"),
    Arm("t3_both_on_images", 3, "trained on both", ALL_PRIORS, scored_kind="image"),
    # Tab. 5: facial priors (MAFW)
    Arm("t5_no_priors", 5, "no facial priors", NO_PRIORS, paper=_paper(34.75, 44.86)),
    Arm("t5_face_roi", 5, "face embedding + landmarks for ROIs", FACE_ROI, paper=_paper(40.67, 45.52)),
    Arm("t5_landmark_token", 5, "+ landmark token", FACE_LANDMARK, paper=_paper(41.14, 46.94)),
    Arm("t5_agr", 5, "+ AGR", ALL_PRIORS, paper=_paper(41.57, 48.63)),
    # Tab. 6: instruction data types (LLaMA-VID, no facial priors; AffectNet and MAFW)
    Arm("t6_none", 6, "no instruction tuning", NO_PRIORS | {"instruction_types": ()},
        paper=_paper(19.33, 23.11, 32.96)),
    Arm("t6_category", 6, "category", NO_PRIORS | CATEGORY, paper=_paper(31.56, 44.15, 57.93)),
    Arm("t6_category_conversation", 6, "category + conversation", NO_PRIORS, paper=_paper(34.75, 44.86, 59.58)),
    # Tab. 7: Face Info Mining vs pooling (face embedding, landmarks for ROIs)
    Arm("t7_pool_concat", 7, "pool & concat", FACE_ROI | {"fim_mode": "pool_concat"}, paper=_paper(34.51, 44.58)),
    Arm("t7_fim", 7, "Face Info Mining", FACE_ROI, paper=_paper(40.67, 45.52)),
    # Tab. 8: descriptive text at inference (the full model; the text row re-scores the same model)
    Arm("t8_visual", 8, "visual", ALL_PRIORS, paper=_paper(41.57, 48.63)),
    Arm("t8_visual_text", 8, "visual + descriptive text", ALL_PRIORS, {"descriptive_text": True},
        paper=_paper(49.29, 55.42)),
    # Tab. 9: imbalanced-dataset resampling of category data (LLaMA-VID, category instructions)
    Arm("t9_no_resampling", 9, "resampling off", NO_PRIORS | CATEGORY | {"resample": False},
        paper=_paper(28.49, 39.27, 11.30)),
    Arm("t9_resampling", 9, "resampling on", NO_PRIORS | CATEGORY, paper=_paper(31.56, 44.15, 57.93)),
    # Emotion-LLaMA's modalities, read on mini's clips (the only media with sound). The visual row is Tab. 5's full
    # model; the text row re-scores it with the words spoken in the question (mini's sentences are lexically
    # neutral on purpose, so the text should not help there: notebook 07).
    Arm("t10_visual", 10, "face (all priors)", ALL_PRIORS, scored_kind="video"),
    Arm("t10_visual_audio", 10, "face + audio", ALL_PRIORS | AUDIO, scored_kind="video"),
    Arm("t10_audio_only", 10, "audio only", AUDIO_ONLY, scored_kind="video"),
    Arm("t10_visual_text", 10, "face + spoken text", ALL_PRIORS, {"use_text": True}, scored_kind="video"),
)}


def arms_of(tables: Sequence[int] | str | int | None = None, names: Sequence[str] | str | None = None) -> list[Arm]:
    """Arms by table number(s) ("5,6" or [5, 6]; None: all) and/or by name; unknown ones raise."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if names:
        unknown = sorted(set(names) - set(ARMS))
        if unknown:
            raise KeyError(f"unknown arms {unknown}; known: {sorted(ARMS)}")
        return [ARMS[n] for n in names]
    if isinstance(tables, (int, str)):
        tables = [int(t) for t in str(tables).split(",") if t.strip()]
    tables = list(tables or TABLES)
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise KeyError(f"no table {unknown}; the paper's ablations are Tab. {sorted(TABLES)}")
    return [a for a in ARMS.values() if a.table in tables]


# ----- the plan: one training per distinct config, every arm read off one of them -------------------

def _key(overrides: dict) -> str:
    """A short, stable name of a training config (the ablated fields only)."""
    cfg = ABLATED | overrides
    parts = [("face" if cfg["use_face_embedding"] else "noface"), ("noexpr" if cfg["use_expression"] is False else "expr"),
             ("lmk" if cfg["use_landmarks"] else "nolmk"),
             ("agr" if cfg["use_agr"] else "noagr"), cfg["fim_mode"],
             "+".join(cfg["instruction_types"]) or "notuning", ("resample" if cfg["resample"] else "shuffle")]
    if cfg["descriptive_text"]:
        parts.append("text")
    if tuple(cfg["train_kinds"]) != ABLATED["train_kinds"]:
        parts.append("+".join(cfg["train_kinds"]) + "-only")
    parts += [name for name, on in (("novision", not cfg["use_vision"]), ("audio", cfg["use_audio"]),
                                    ("spoken", cfg["use_text"])) if on]
    return "-".join(parts)


@dataclass
class Job:
    """One training (per seed) and the arms read off it: (arm, source) with source trained | zero_shot."""

    key: str
    overrides: dict
    zero_shot: bool = False
    reads: list[tuple[Arm, str]] = field(default_factory=list)


def plan(arms: Sequence[Arm]) -> list[Job]:
    """The distinct trainings the arms need. A no-tuning arm is the zero-shot score of the tuned model with
    the same priors when that model is trained anyway (same seed = same initial weights); else its own run."""
    jobs: dict[str, Job] = {}
    for arm in arms:
        if arm.tuned:
            key = _key(arm.overrides)
            jobs.setdefault(key, Job(key, ABLATED | arm.overrides)).reads.append((arm, "trained"))
    for arm in arms:
        if arm.tuned:
            continue
        tuned = {**arm.overrides, "instruction_types": ABLATED["instruction_types"]}
        host = jobs.get(_key(tuned))
        if host is not None:
            host.zero_shot = True
            host.reads.append((arm, "zero_shot"))
        else:
            key = _key(arm.overrides)
            jobs.setdefault(key, Job(key, ABLATED | arm.overrides, zero_shot=True)).reads.append((arm, "trained"))
    return list(jobs.values())


# ----- running -------------------------------------------------------------------------------------

def score_with(result, cfg: TrainConfig, inference: dict, progress: bool = False) -> dict:
    """Re-score a trained run's model with evaluation-only changes (Tab. 8: the captions in the questions).

    The test split is read again with the changed config, so MAFW's loader is asked for its captions."""
    icfg = replace(cfg, **inference)
    captions = {str(s.media): s.caption for s in load_splits(icfg).test}
    samples = [replace(s, caption=captions.get(str(s.media), s.caption)) for s in result.test_samples]
    questions = eval_questions(samples, result.classes, icfg.descriptive_text, use_text=icfg.use_text)
    media = [result.features.get(str(s.media)) for s in samples]
    return evaluate(result.model, media, [s.label for s in samples], result.classes, questions,
                    batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_new_tokens, progress=progress,
                    desc="eval with " + ",".join(inference), paths=[s.media for s in samples],
                    kinds=[s.kind for s in samples])  # images and videos apart (`by_kind`), as a training's eval


def train_job(base: TrainConfig, job: Job, seed: int, out: Path, threads: int | None = None) -> tuple[dict, dict]:
    """One training of the plan and the arms read off it: ({arm name: figures}, timing). Runs in the calling
    process or in a worker process (`workers`), so it takes and returns plain data only. A training whose folder
    already holds a finished run of exactly this config (`recorded_metrics`) is read back, not trained again: a
    killed set resumes, and a notebook re-run with the same parameters takes minutes."""
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    cfg = replace(base, **job.overrides, seed=seed, zero_shot=job.zero_shot,
                  output_dir=str(out / "runs" / f"{job.key}-seed{seed}"), resume=False)
    recorded = recorded_metrics(cfg)
    result = run(cfg, log=lambda _: None) if recorded is None else None
    metrics = recorded or result.metrics
    seconds = time.perf_counter() - t0
    test_kinds = None
    rows = {}
    for arm, source in job.reads:
        if source == "zero_shot":
            figures, how = metrics["zero_shot"], "zero-shot evaluation of this run's untrained model"
        elif arm.inference:
            result = result or reloaded(cfg, metrics)
            figures = headline(score_with(result, cfg, arm.inference))
            how = f"this run re-scored with {arm.inference}"
        else:
            figures, how = metrics["trained"], "this run"
        if arm.scored_kind:  # the cross-modality tables read one media kind of the test split
            if test_kinds is None:
                test_kinds = {s.kind for s in (result.test_samples if result is not None else load_splits(cfg).test)}
            figures = _of_kind(figures, arm, test_kinds)
        else:
            figures = {k: v for k, v in figures.items() if k != "by_kind"}
        real = metrics.get("real_faces") if source == "trained" else None  # the trained model's
        rows[arm.name] = ({"seed": seed, **figures, "run": job.key, "source": how}
                          | ({"real_faces": f"{real['correct']}/{real['total']}"} if real else {}))
    timing = {"seed": seed, "run": job.key, "seconds": round(seconds, 1), "read_back": recorded is not None,
              "with_rescoring_seconds": round(time.perf_counter() - t0, 1),
              "steps": metrics.get("steps"), "train_seconds": metrics.get("train_seconds"),
              "align_seconds": metrics.get("align_seconds")}
    return rows, timing


def reloaded(cfg: TrainConfig, metrics: dict) -> RunResult:
    """A finished run's model, test split and features, for re-scoring it (Tab. 8) without training again."""
    model = EmoLlama.from_pretrained(Path(cfg.output_dir) / "model", device=cfg.device)
    splits = load_splits(cfg)
    bank = splits.bank if splits.bank is not None else extract_to_store(  # a synthetic split brings its own
        model.stack, splits.test, cfg.max_frames, model.device, progress=False)[1]
    return RunResult(metrics, model, bank, splits.test, splits.classes_of[splits.primary],
                     output_dir=Path(cfg.output_dir))


def run_ablations(tables: Sequence[int] | str | None = None, seeds: int | Sequence[int] = 3,
                  base: TrainConfig | None = None, output_dir: str | Path = "runs/06_ablations",
                  arms: Sequence[str] | str | None = None, log: Callable[[str], None] = print,
                  workers: int = 1) -> dict:
    """Run the arms of `tables` (or the named `arms`) for each seed; write results.json and the figures.

    base: the config every arm starts from (data, stack, run size); its ablated fields are ignored.
    seeds: a count (0..n-1) or the seeds themselves.
    workers: trainings run at once, each in its own process with an equal share of the CPU threads (on 2 cores,
    2 one-thread trainings side by side finish in about the time of one two-thread training). Every training is
    a pure function of its config and seed, so the figures do not depend on `workers`, up to the summation order
    of the thread count (a different thread count acts like one more seed; see README).
    """
    base = base or TrainConfig()
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    chosen = arms_of(tables, arms)
    jobs = plan(chosen)
    out = repo_path(output_dir)  # relative: the repository's runs/, from JupyterLab (cwd notebooks/) too
    out.mkdir(parents=True, exist_ok=True)
    earlier = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    trained_before = {(t["seed"], t["run"]): t for t in earlier.get("runs", [])}
    t_all = time.perf_counter()
    log(f"{len(chosen)} arms -> {len(jobs)} trainings x {len(seeds)} seeds" + (f", {workers} at once" if workers > 1 else ""))
    todo = [(seed, job) for seed in seeds for job in jobs]
    done: list[tuple[dict, dict]] = []
    if workers <= 1:
        for seed, job in todo:
            log(f"== seed {seed}: {job.key} ({', '.join(a.name for a, _ in job.reads)})")
            done.append(train_job(base, job, seed, out))
            _log_rows(done[-1][0], log)
    else:
        threads = max(1, torch.get_num_threads() // workers)
        # spawn: a fresh interpreter per worker (a forked process would inherit the parent's torch threads)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(train_job, base, job, seed, out, threads): (seed, job) for seed, job in todo}
            for future in as_completed(futures):
                seed, job = futures[future]
                done.append(future.result())
                timing = done[-1][1]
                log(f"== seed {seed}: {job.key} " + ("read back from its folder" if timing["read_back"]
                                                     else f"done ({timing['seconds']:.0f} s)"))
                _log_rows(done[-1][0], log)
    for _, timing in done:  # a training read back keeps the cost recorded when it was trained
        earlier_timing = trained_before.get((timing["seed"], timing["run"]))
        if timing["read_back"] and earlier_timing:
            timing |= {"read_back_seconds": timing["seconds"], "seconds": earlier_timing["seconds"],
                       "with_rescoring_seconds": earlier_timing["with_rescoring_seconds"]}
    order = {(seed, job.key): i for i, (seed, job) in enumerate(todo)}
    done.sort(key=lambda d: order[(d[1]["seed"], d[1]["run"])])  # seed order, whatever finished first
    per_arm: dict[str, list[dict]] = {a.name: [rows[a.name] for rows, _ in done if a.name in rows] for a in chosen}
    results = {
        "config": {k: v for k, v in asdict(base).items() if k not in ABLATED},
        "seeds": seeds,
        "workers": workers,
        "tables": sorted({a.table for a in chosen}),
        "arms": {a.name: summarise_arm(a, per_arm[a.name]) for a in chosen},
        "runs": [timing for _, timing in done],
        "wall_seconds": round(time.perf_counter() - t_all, 1),
        # a set read back whole: the wall time of the execution that trained it (results.json before this one)
        "trained_wall_seconds": (earlier.get("trained_wall_seconds") or earlier.get("wall_seconds")
                                 if done and all(t["read_back"] for _, t in done) else None),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    for table in results["tables"]:
        fig = plot_table(results, table)
        fig.savefig(out / f"tab{table}.png", dpi=110, bbox_inches="tight")
    log(f"wrote {out / 'results.json'} and tab*.png ({results['wall_seconds'] / 60:.1f} min)")
    return results


def _of_kind(figures: dict, arm: Arm, kinds: set[str]) -> dict:
    """The figures of `arm.scored_kind`'s test samples (a split of one kind has no `by_kind`: its figures are it)."""
    by_kind = figures.get("by_kind") or ({arm.scored_kind: figures} if kinds == {arm.scored_kind} else {})
    if arm.scored_kind not in by_kind:
        raise ValueError(f"{arm.name} is scored on the test split's {arm.scored_kind}s, and the scored samples "
                         f"hold none (kinds: {sorted(kinds)}); raise eval_limit")
    return {k: v for k, v in by_kind[arm.scored_kind].items() if k != "by_kind"} | {"kind": arm.scored_kind}


def _log_rows(rows: dict, log: Callable[[str], None]) -> None:
    for name, f in rows.items():
        log(f"   {name:<26} UAR {f['uar']:.3f}  WAR {f['war']:.3f}  acc {f['acc']:.3f}")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarise_arm(arm: Arm, seeds: list[dict]) -> dict:
    # a figure every seed has (runs recorded before wF1 existed lack it: then it is left out, not guessed)
    metrics = [m for m in METRICS if all(m in s for s in seeds)]
    stats = {m: _mean_std([s[m] for s in seeds]) for m in metrics}
    return {"table": arm.table, "row": arm.row, "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in arm.overrides.items()},
            "inference": arm.inference, "paper": arm.paper, "per_seed": seeds,
            "mean": {m: round(stats[m][0], 4) for m in metrics}, "std": {m: round(stats[m][1], 4) for m in metrics}}


# ----- reading the results -------------------------------------------------------------------------

def table_arms(results: dict, table: int) -> list[str]:
    return [name for name, a in results["arms"].items() if a["table"] == table]


def comparison_table(results: dict, table: int) -> str:
    """A markdown table: per arm, ours (mean ± std over seeds, percent) next to the paper's figures."""
    names = table_arms(results, table)
    lines = [f"**Tab. {table}: {TABLES[table]}** ({len(results['seeds'])} seeds; ours on "
             f"{results['config']['dataset']}, the paper's on MAFW / AffectNet)", "",
             "| arm | row | UAR (ours) | WAR (ours) | Acc (ours) | wF1 (ours) | MAFW UAR (paper) | MAFW WAR (paper) "
             "| AffectNet Acc (paper) | real faces right (per seed) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        a = results["arms"][name]
        ours = [f"{100 * a['mean'][m]:.1f} ± {100 * a['std'][m]:.1f}" if m in a["mean"] else "-"
                for m in ("uar", "war", "acc", "wf1")]
        paper = [f"{a['paper'][k]:.2f}" if k in a["paper"] else "-" for k in ("mafw_uar", "mafw_war", "affectnet_acc")]
        real = ", ".join(s["real_faces"] for s in a["per_seed"] if "real_faces" in s) or "-"
        lines.append(f"| `{name}` | {a['row']} | " + " | ".join(ours + paper + [real]) + " |")
    return "\n".join(lines)


def difference_vs_spread(results: dict, table: int, metric: str = "uar", arms: tuple[str, str] | None = None) -> str:
    """One sentence: the change from the table's first arm to its last (or from `arms[0]` to `arms[1]`), against
    the seed spread."""
    names = table_arms(results, table)
    first, last = (results["arms"][n] for n in (arms or (names[0], names[-1])))
    diff = last["mean"][metric] - first["mean"][metric]
    spread = max(first["std"][metric], last["std"][metric])
    paper_key = "mafw_" + metric if metric in ("uar", "war") else "affectnet_acc"
    paper = ""
    if paper_key in first["paper"] and paper_key in last["paper"]:
        paper = f" (paper: {last['paper'][paper_key] - first['paper'][paper_key]:+.2f} points on MAFW/AffectNet)"
    if len(results["seeds"]) < 2:
        verdict = "one seed gives no spread to compare with"
    elif abs(diff) > 2 * spread:
        verdict = f"more than twice the larger seed std ({100 * spread:.1f}): a difference the seeds do not explain"
    elif abs(diff) > spread:
        verdict = f"between one and two seed stds ({100 * spread:.1f}): suggestive, not settled"
    else:
        verdict = f"within one seed std ({100 * spread:.1f}): not distinguishable from seed noise"
    return (f"Tab. {table}: {metric.upper()} {first['row']} -> {last['row']}: {100 * diff:+.1f} points{paper}; "
            f"{verdict}.")


def plot_paper(table: int):
    """The paper's own figures for a table's arms (hollow diamonds): what a table not run here would be read
    against."""
    from matplotlib.figure import Figure

    arms = [a for a in arms_of(table) if a.paper]
    keys = [k for k in ("mafw_uar", "mafw_war", "affectnet_acc") if any(k in a.paper for a in arms)]
    fig = Figure(figsize=(3.2 * len(keys) + 0.6, 3.2))
    for ax, key in zip(fig.subplots(1, len(keys), squeeze=False)[0], keys):
        shown = [a for a in arms if key in a.paper]
        ax.scatter(range(len(shown)), [a.paper[key] for a in shown], marker="D", facecolors="none",
                   edgecolors="tab:red", s=40, label="paper")
        ax.set_xticks(range(len(shown)), [a.row for a in shown], rotation=25, ha="right", fontsize=8)
        ax.set_title(key.replace("mafw_", "MAFW ").replace("affectnet_", "AffectNet ").upper(), fontsize=10)
        ax.set_ylabel("percent")
        ax.set_xlim(-0.5, len(shown) - 0.5)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Tab. {table}: {TABLES[table]}: the paper's figures (not run here)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_table(results: dict, table: int):
    """Per metric panel: every seed's point, mean ± std bar, and the paper's figure (hollow diamond)."""
    from matplotlib.figure import Figure

    names = table_arms(results, table)
    panels = [("uar", "mafw_uar", "UAR"), ("war", "mafw_war", "WAR")]
    if any("affectnet_acc" in results["arms"][n]["paper"] for n in names):
        panels.append(("acc", "affectnet_acc", "Acc (paper: AffectNet)"))
    fig = Figure(figsize=(3.2 * len(panels) + 0.6, 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, paper_key, title) in zip(axes, panels):
        for x, name in enumerate(names):
            a = results["arms"][name]
            points = [100 * s[metric] for s in a["per_seed"]]
            jitter = [x + 0.08 * (i - (len(points) - 1) / 2) for i in range(len(points))]
            ax.scatter(jitter, points, s=14, color="tab:blue", alpha=0.6, zorder=3,
                       label="ours, each seed" if x == 0 else None)
            ax.errorbar(x, 100 * a["mean"][metric], yerr=100 * a["std"][metric], fmt="o", color="tab:blue",
                        capsize=5, markersize=7, zorder=4, label="ours, mean ± std" if x == 0 else None)
            if paper_key in a["paper"]:
                ax.scatter([x + 0.25], [a["paper"][paper_key]], marker="D", facecolors="none", edgecolors="tab:red",
                           s=40, zorder=4, label="paper" if x == 0 else None)
        ax.set_xticks(range(len(names)), [results["arms"][n]["row"] for n in names], rotation=25, ha="right",
                      fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("percent")
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Tab. {table}: {TABLES[table]} ({results['config']['dataset']}, {len(results['seeds'])} seeds)",
                 fontsize=11)
    fig.tight_layout()
    return fig


# ----- command line --------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description="The paper's ablations (Tab. 5-9); every other flag is a TrainConfig field "
                    "(python -m emo_llama.train --help), e.g. --dataset mafw --data_root ... --max_steps 60")
    parser.add_argument("--table", default="5,6,7,8,9", help="table number(s), comma-separated (default: 5-9; "
                        "2,3: cross-modality)")
    parser.add_argument("--arms", default="", help="arm names instead of tables, comma-separated: " + ", ".join(ARMS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..n-1 per arm (default: 3)")
    parser.add_argument("--output_dir", default="runs/06_ablations", help="results.json and tab*.png go here")
    parser.add_argument("--workers", type=int, default=1, help="trainings at once, one process each (default: 1)")
    args, rest = parser.parse_known_args(argv)
    base = parse_args(rest)
    if "--real_faces" not in rest and base.stack == "tiny":  # random weights say nothing about real faces
        base = replace(base, real_faces=False)
    return run_ablations(args.table, args.seeds, base, args.output_dir, arms=args.arms or None, workers=args.workers)


if __name__ == "__main__":
    main()
