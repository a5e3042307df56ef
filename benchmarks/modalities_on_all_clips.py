"""Tab. 10's trained models (notebook 07, `make multimodal`) scored on every clip of mini's test split.

`make multimodal` scores each arm on the 112-sample test draw of `make ablations`, which holds 17 of the test split's
29 clips (mini v5, seed 0), so one clip is 6 points of UAR. This re-scores the same saved models (nothing is trained)
on every test clip and prints one line per arm and seed, then per arm mean ± std over seeds, and the differences against the seed spread.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/modalities_on_all_clips.py --runs runs/07_multimodal
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from emo_llama.ablations import arms_of, plan
from emo_llama.data import get_dataset
from emo_llama.evaluate import evaluate, headline
from emo_llama.features import WithAudio, extract_audio_to_store, extract_to_store
from emo_llama.model import EmoLlama
from emo_llama.prompts import eval_questions


def score_arm_seed(folder: Path, clips, classes, use_text: bool) -> dict:
    model = EmoLlama.from_pretrained(folder / "model", device="cpu")
    _, bank, _ = extract_to_store(model.stack, clips, 8, "cpu", progress=False)
    if model.config.use_audio:
        _, audio, _ = extract_audio_to_store(model.stack.audio_encoder(), clips, 8, progress=False)
        bank = WithAudio(bank, audio)
    questions = eval_questions(clips, classes, use_text=use_text)
    result = evaluate(model, [bank[str(s.media)] for s in clips], [s.label for s in clips], classes, questions,
                      batch_size=16, progress=False, paths=[s.media for s in clips])
    return headline(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/07_multimodal", help="make multimodal's output_dir")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    test = get_dataset("mini", split="test")
    clips = [s for s in test.samples if s.kind == "video"]
    print(f"mini test: {len(clips)} clips, {len(test.classes)} classes")
    rows: dict[str, list[dict]] = {}
    for job in plan(arms_of(10)):
        for arm, _ in job.reads:
            for seed in seeds:
                folder = Path(args.runs) / "runs" / f"{job.key}-seed{seed}"
                if not (folder / "model").exists():
                    print(f"{arm.name} seed {seed}: no saved model in {folder}, skipped")
                    continue
                figures = score_arm_seed(folder, clips, test.classes, bool(arm.inference.get("use_text")))
                rows.setdefault(arm.name, []).append(figures)
                print(f"{arm.name:<18} seed {seed}: UAR {figures['uar']:.3f}  WAR {figures['war']:.3f}  "
                      f"wF1 {figures['wf1']:.3f}", flush=True)
    summary = {}
    for name, figures in rows.items():
        uars = [f["uar"] for f in figures]
        summary[name] = (statistics.mean(uars), statistics.stdev(uars) if len(uars) > 1 else 0.0, uars)
        print(f"{name:<18} UAR {100 * summary[name][0]:.1f} ± {100 * summary[name][1]:.1f} over {len(uars)} seeds")
    base = summary.get("t10_visual")
    for name, (mean, std, _) in summary.items():
        if base and name != "t10_visual":
            spread = max(std, base[1])
            print(f"{name} - t10_visual: {100 * (mean - base[0]):+.1f} UAR points, {abs(mean - base[0]) / spread:.1f}"
                  f" x the larger seed std ({100 * spread:.1f})" if spread else "")
    print("json " + json.dumps({k: {"mean": round(v[0], 4), "std": round(v[1], 4), "per_seed": v[2]}
                               for k, v in summary.items()}))


if __name__ == "__main__":
    main()
