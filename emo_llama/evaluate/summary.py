"""The few lines a training run ends with: headline figures and where its outputs are.

    python -m emo_llama.evaluate.summary runs/05_train [--notebook runs/05_train.ipynb]

`emo_llama.train.run` logs the same text when it finishes; `make train` prints it after the notebook.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

OUTPUTS = (("metrics.json", "headline figures"), ("eval_details.json", "every answer, confusion matrices"),
           ("eval", "per scored dataset: metrics.json (with weighted F1, confusion) and answers.json"),
           ("model", "the trained model: EmoLlama.from_pretrained(folder)"), ("loss.png", "loss curve"),
           ("confusion.png", "confusion matrix"), ("train_log.jsonl", "loss per step"))


def _figures(name: str, m: dict) -> str:
    text = f"   {name:<12} acc {m['acc']:.3f}  UAR {m['uar']:.3f}  WAR {m.get('war', m['acc']):.3f}"
    return text + (f"  (unparseable {m['unparseable']})" if m.get("unparseable") else "")


def summarise(out_dir: str | Path, notebook: str | Path | None = None) -> str:
    out = Path(out_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    lines = [f"== run finished: {metrics['dataset']} / {metrics['stack']}, {metrics['steps']} LoRA steps "
             f"(features {metrics['feature_seconds']:.0f} s, alignment {metrics['align_seconds']:.0f} s, "
             f"training {metrics['train_seconds']:.0f} s)"]
    for name, value in metrics.items():  # zero_shot, trained and any other scored set
        if isinstance(value, dict) and {"acc", "uar"} <= set(value):
            lines.append(_figures(name, value))
    for name, value in (metrics.get("other_datasets") or {}).items():  # eval_datasets and further training sets
        unseen = value.get("unseen_classes")
        lines.append(_figures(name, value) + (f"  (never trained on: {', '.join(unseen)})" if unseen else ""))
    unreadable, no_face = metrics.get("unreadable") or {}, metrics.get("no_face") or {}
    if unreadable or no_face:
        lines.append(f"   unreadable media: {unreadable.get('count', 0)}; samples without a face: "
                     f"train {no_face.get('train', 0)}, test {no_face.get('test', 0)} (listed in metrics.json)")
    lines.append(f"   outputs in {out}/:")
    lines += [f"     {name:<18} {what}" for name, what in OUTPUTS if (out / name).exists()]
    if notebook is not None:
        lines.append(f"   executed notebook: {notebook}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Headline figures and outputs of a training run")
    parser.add_argument("out_dir")
    parser.add_argument("--notebook", default=None)
    args = parser.parse_args(argv)
    print(summarise(args.out_dir, args.notebook))


if __name__ == "__main__":
    main()
