"""The paper's evaluation protocol: any model on any registered dataset, one metrics file per dataset, and a
table shaped like the paper's Tab. 2/3 (a row per model, UAR and WAR per dataset).

    python -m emo_llama.evaluate --model runs/05_train --dataset dfew --data_root /data/DFEW --fold 1
    python -m emo_llama.evaluate --model runs/05_train --dataset mini,rafdb=/data/RAF-DB,mafw=/data/MAFW
    python -m emo_llama.evaluate --model expert --dataset mini          # the offline stack's zero-shot baseline
    python -m emo_llama.evaluate --model pretrained --stack paper --llamavid_path /w/llama-vid-7b --dataset mafw

Models:
- a trained run (`runs/05_train` or its `model/` folder): `EmoLlama.from_pretrained`, asked the category question it
  was tuned on, naming the evaluated dataset's classes;
- `pretrained`: the stack's pretrained MLLM without any of EMO-LLaMA's modules (no face tokens, landmark or
  expression token, no AGR, no Face Info Mining: the content token is the vision tokens' mean, as LLaMA-VID makes
  it), untuned, asked the paper's zero-shot prompt. On the paper stack with `llamavid_path` this is LLaMA-VID
  itself with one context and one content token per frame, the paper's zero-shot row. The offline stack has no pretrained vision-language model
  (its projectors start random, so "zero-shot" there scores a model that cannot see), and it refuses;
- `expert`: the offline stack's baseline instead: its facial expert's own expression reading (face-api's
  expression net, trained on real faces, never tuned here), the highest-ranked of the dataset's classes. It
  reads seven basic classes only; a dataset's other classes (contempt, MAFW's anxiety ...) it never names.

Class sets are mapped through the canonical vocabulary (`emo_llama.data.labels`, `class_table()`): the question
lists the evaluated dataset's classes, and classes the model was never trained on are reported as `unseen_classes`
(read from the run's `trained_on.json`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from emo_llama import __version__
from emo_llama.config import TrainConfig
from emo_llama.data import compute_metrics
from emo_llama.data.labels import try_canonical
from emo_llama.data.splits import load_test_sets
from emo_llama.evaluate.scoring import by_kind, evaluate, headline, to_jsonable
from emo_llama.features import LazyFeatures, WithAudio, extract_audio_to_store, extract_to_store
from emo_llama.model import EmoLlama, get_stack
from emo_llama.prompts import eval_questions
from emo_llama.utils import digest, repo_path

TRAINED_ON = "trained_on.json"   # next to a saved model: the datasets and classes it was tuned on
BASELINES = ("pretrained", "expert")
# The pretrained baseline: every module EMO-LLaMA adds to its MLLM off (ablations.NO_PRIORS too), and LLaMA-VID's
# content token (the vision tokens averaged) in place of Face Info Mining, whose layers would start untrained.
NO_NEW_MODULES = {"use_face_embedding": False, "use_expression": False, "use_landmarks": False, "use_agr": False,
                  "fim_mode": "mean"}


def trained_digest(model) -> str:
    """A hash of the trained tensors' values (`model.trained_tensors()`): names an evaluation's saved answers."""
    h = hashlib.sha256()
    for name, t in sorted(model.trained_tensors(), key=lambda item: item[0]):
        t = t.full_tensor() if hasattr(t, "full_tensor") else t  # an FSDP2 shard: every process joins
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def answers_folder(root: Path, desc: str, model, samples, questions, max_new_tokens: int, features_key: str) -> Path:
    """Where an evaluation saves its batches (`evaluate(progress_dir=...)`): named by what its answers depend on
    (the samples and labels, the questions, the answer length, the features, the code version and the trained
    tensors' values), so a resumed evaluation reads back only answers of this very model, never those of an
    earlier run or an earlier build of mini."""
    key = {"desc": desc, "samples": [(str(s.media), s.label) for s in samples], "questions": list(questions),
           "max_new_tokens": max_new_tokens, "features": features_key, "code": __version__,
           "model": trained_digest(model)}
    return Path(root) / f"{desc.replace(' ', '_')}-{digest(key)}"


def score_set(model, bank, samples, classes: Sequence[str], questions: Sequence[str], *, seen=None,
              errors=None, **evaluate_options) -> dict:
    """`evaluate` on one dataset's test samples read from the feature store, with metrics per media kind and the
    classes the model never trained on (`seen`: its training classes; None: not known)."""
    media = LazyFeatures(bank, [s.media for s in samples])  # None: unreadable, scored as wrong
    metrics = evaluate(model, media, [s.label for s in samples], classes, list(questions),
                       paths=[s.media for s in samples], errors=errors, kinds=[s.kind for s in samples],
                       **evaluate_options)
    metrics["unseen_classes"] = [c for c in classes if c not in seen] if seen is not None else None
    return metrics


def expert_metrics(bank, samples, classes: Sequence[str], expression_names: Sequence[str]) -> dict:
    """The facial expert's own reading as a classifier: per sample, its frames' mean expression probabilities, the
    best-ranked class among `classes`. An unreadable sample, or one without a face, counts as unparseable."""
    names = [try_canonical(n) for n in expression_names]
    predictions = []
    for s in samples:
        feats = bank.get(str(s.media)) if hasattr(bank, "get") else bank[str(s.media)]
        probs = None if feats is None else feats.expression_probs
        if probs is None or probs.shape[-1] == 0 or not bool(feats.face_found.any()):
            predictions.append(None)
            continue
        ranked = [names[i] for i in np.argsort(-probs.float().mean(0).numpy())]
        predictions.append(next((n for n in ranked if n in classes), None))
    metrics = compute_metrics([s.label for s in samples], predictions, classes)
    metrics["predictions"] = predictions
    kinds = [s.kind for s in samples]
    if len(set(kinds)) > 1:
        metrics["by_kind"] = by_kind([s.label for s in samples], predictions, kinds, classes)
    metrics["unseen_classes"] = [c for c in classes if c not in names]
    return metrics


def load_model(spec: str, cfg: TrainConfig) -> tuple[EmoLlama, tuple[str, ...] | None, str]:
    """(model, the classes it was tuned on or None, its name in the table) for a run folder or `pretrained`."""
    if spec == "pretrained":
        if cfg.stack == "offline":
            raise ValueError("the offline stack has no pretrained vision-language MLLM to score zero-shot (its "
                             "projectors start random); its baseline is --model expert, the facial expert's reading")
        model = EmoLlama(replace(cfg, **NO_NEW_MODULES).model_config())
        return model.eval(), None, f"{cfg.stack} pretrained (zero-shot)"
    folder = saved_model_folder(spec)
    if not (folder / "emo_llama_config.json").exists():
        raise FileNotFoundError(f"{folder}: no saved model here (expected emo_llama_config.json; a training run "
                                f"saves one into <output_dir>/model), and not one of {BASELINES}")
    classes = trained_on(folder).get("classes")
    seen = tuple(classes) if classes is not None else None
    return EmoLlama.from_pretrained(folder, device=cfg.device), seen, str(folder.parent.name or folder)


def saved_model_folder(spec: str) -> Path:
    """The folder a saved model is in: a run folder's `model/`, or `spec` itself."""
    folder = repo_path(spec)
    return folder / "model" if (folder / "model" / "emo_llama_config.json").exists() else folder


def trained_on(folder: Path) -> dict:
    """What a saved model was tuned on (its trained_on.json: datasets, classes, train_kinds, use_text); {} when a
    model saved without one."""
    path = folder / TRAINED_ON
    return json.loads(path.read_text()) if path.exists() else {}


def trained_with_text(spec: str) -> bool:
    """Whether a saved run was tuned with the words spoken in its questions (`use_text`, in its trained_on.json):
    it is then asked with them too, as it was trained."""
    return bool(trained_on(saved_model_folder(spec)).get("use_text", False))


def evaluate_models(model_spec: str, cfg: TrainConfig, datasets: Sequence[str], output_dir: str | Path | None = None,
                    progress: bool = True) -> dict[str, dict]:
    """Score one model on each dataset's test split; writes <output_dir>/<dataset>/metrics.json (and
    answers.json) and <output_dir>/table.md. Returns dataset -> its full metrics."""
    out = repo_path(output_dir) if output_dir else _default_output(model_spec)
    tests = load_test_sets(cfg, datasets)  # a missing dataset raises its loader's clear error before any model loads
    expert = model_spec == "expert"
    if expert:
        stack, model, seen, name = get_stack(cfg.stack, **cfg.model_config().stack_options), None, None, "facial expert"
        if not stack.expression_names:
            raise ValueError(f"the {cfg.stack} stack's facial expert reads no expression classes; --model expert "
                             "needs one that does (the offline stack)")
    else:
        model, seen, name = load_model(model_spec, cfg)
        stack = model.stack
    samples = [s for _, test in tests.values() for s in test]
    _, bank, errors = extract_to_store(stack, samples, cfg.max_frames, "cpu" if expert else model.device,
                                       progress=progress)
    if not expert and model.config.use_audio:  # a model that hears gets each media's sound next to its frames
        _, audio_store, _ = extract_audio_to_store(stack.audio_encoder(), samples, cfg.max_frames, progress=progress)
        bank = WithAudio(bank, audio_store)
    # a model tuned with the words spoken is asked with them, as it was trained (its trained_on.json, read once)
    use_text = cfg.use_text or (not expert and trained_with_text(model_spec))
    results = {}
    for dataset, (classes, test) in tests.items():
        if expert:
            metrics = expert_metrics(bank, test, classes, stack.expression_names)
        else:
            questions = eval_questions(test, classes, cfg.descriptive_text, zero_shot=model_spec == "pretrained",
                                       use_text=use_text)
            desc = f"eval {dataset}"
            saved = answers_folder(out / "answers_progress", desc, model, test, questions, cfg.max_new_tokens,
                                   getattr(bank, "key", ""))  # a killed evaluation resumes from its saved batches
            metrics = score_set(model, bank, test, classes, questions, seen=seen, errors=errors,
                                batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_new_tokens, progress=progress,
                                desc=desc, progress_dir=saved)
        results[dataset] = metrics
        write_dataset_metrics(out / dataset, name, dataset, classes, metrics, test)
    (out / "table.md").write_text(protocol_table({name: {d: headline(m) for d, m in results.items()}}) + "\n")
    return results


def write_dataset_metrics(folder: Path, model_name: str, dataset: str, classes, metrics: dict, samples) -> None:
    """<folder>/metrics.json (the figures, confusion, per class, unseen classes) and answers.json (each sample's)."""
    folder.mkdir(parents=True, exist_ok=True)
    keep = ("confusion", "per_class_recall", "per_class_precision", "support", "unparseable_examples",
            "unparseable_per_class")
    record = {"model": model_name, "dataset": dataset, "classes": list(classes), "n": metrics["n"],
              **headline(metrics), "unseen_classes": metrics.get("unseen_classes"),
              **{k: metrics[k] for k in keep if k in metrics}}
    (folder / "metrics.json").write_text(json.dumps(to_jsonable(record), indent=2, default=str))
    answers = [{"media": str(s.media), "label": s.label, "kind": s.kind, "prediction": p,
                **({"answer": a} if a is not None else {})}
               for s, p, a in zip(samples, metrics["predictions"], metrics.get("answers") or [None] * len(samples))]
    (folder / "answers.json").write_text(json.dumps(answers, indent=1))


def protocol_table(rows: dict[str, dict[str, dict]], metrics: Sequence[str] = ("uar", "war")) -> str:
    """Markdown shaped like the paper's Tab. 2/3: one row per model, `metrics` (percent) per dataset.
    rows: model name -> dataset -> headline figures; a dataset a model was not scored on shows "-"."""
    datasets = list(dict.fromkeys(d for figures in rows.values() for d in figures))
    head = "| model | " + " | ".join(f"{d} {m.upper()}" for d in datasets for m in metrics) + " |"
    lines = [head, "|" + "---|" * (1 + len(datasets) * len(metrics))]
    for name, figures in rows.items():
        cells = [f"{100 * figures[d][m]:.2f}" if d in figures else "-" for d in datasets for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _default_output(model_spec: str) -> Path:
    if model_spec in BASELINES:
        return repo_path(f"runs/eval/{model_spec}")
    folder = repo_path(model_spec)
    return (folder.parent if folder.name == "model" else folder) / "eval"
