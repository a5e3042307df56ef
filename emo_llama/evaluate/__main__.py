"""`python -m emo_llama.evaluate --model <run folder | pretrained | expert> --dataset <name[=folder],...>`:
score a model on any registered dataset's test split (`emo_llama.evaluate.protocol`)."""

from __future__ import annotations

import argparse
import typing

from emo_llama.config import TrainConfig, coerce
from emo_llama.data.splits import spec_name
from emo_llama.evaluate.protocol import BASELINES, evaluate_models, protocol_table
from emo_llama.evaluate.scoring import headline

# The TrainConfig fields the command reads (the same names and meanings as `python -m emo_llama.train`).
FIELDS = ("data_root", "fold", "eval_limit", "limit_seed", "descriptive_text", "use_text", "max_frames",
          "eval_batch_size", "max_new_tokens", "stack", "llm_path", "vision_path", "expert_path", "llamavid_path",
          "qformer_bert", "audio_path", "device")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score a model on registered datasets (the paper's protocol)",
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("--model", required=True,
                        help=f"a training run's folder (or its model/ folder), or one of {BASELINES}")
    parser.add_argument("--dataset", required=True, help="a comma list of datasets, each 'name', 'name=folder', "
                        "'name:split' or 'name:split=folder' (split: the one scored, default test)")
    parser.add_argument("--output_dir", default=None, help="default: <run>/eval, or runs/eval/<baseline>")
    hints = typing.get_type_hints(TrainConfig)
    for name in FIELDS:
        parser.add_argument(f"--{name}", metavar=name.upper(), help=f"as in python -m emo_llama.train ({hints[name]})")
    parser.add_argument("--progress", default="true")
    args = vars(parser.parse_args(argv))
    model, datasets, output_dir = args.pop("model"), args.pop("dataset"), args.pop("output_dir", None)
    progress = coerce(bool, args.pop("progress"), "progress")
    names = [d.strip() for d in datasets.split(",") if d.strip()]
    cfg = TrainConfig(dataset=spec_name(names[0]), **{k: coerce(hints[k], v, k) for k, v in args.items()})
    results = evaluate_models(model, cfg, names, output_dir, progress=progress)
    print(protocol_table({model: {d: headline(m) for d, m in results.items()}}, ("uar", "war", "wf1")))


if __name__ == "__main__":
    main()
