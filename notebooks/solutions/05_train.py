"""Worked solutions to the exercises at the end of notebook 05 (LoRA instruction tuning).

    python notebooks/solutions/05_train.py                    # two tiny trainings, a few seconds each
    python notebooks/solutions/05_train.py --max_steps 60

Everything here trains the `tiny` stack on `dataset="synthetic"`: random frozen features, a random 2-layer
LLM with a byte-level tokenizer, no downloads, a few seconds on a CPU. Its weights are random, so what it
shows is the plumbing - which positions the loss sees, how many frame tokens a clip becomes, what a switch
removes - not how well EMO-LLaMA reads faces; that needs the `offline` stack (notebook 05 itself, or
`make ablations` for Tab. 5). tests/test_solutions.py runs `solve` so that these answers never rot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emo_llama.features.synthetic import synthetic_features
from emo_llama.model.parts.prompting import batch_view
from emo_llama.prompts import category_question
from emo_llama.train import RunResult, TrainConfig, run

TINY_MODEL = {"context_dim": 16, "fim_dim": 16, "fim_heads": 2, "landmark_hidden": 16, "num_queries": 4}


def tiny_config(output_dir: str | Path, **overrides) -> TrainConfig:
    """A training of a few seconds: tiny stack (random weights), synthetic features, CPU. The expert's
    expression token is off: the exercises count the paper's three tokens per frame (context, visual, landmark)."""
    base = dict(dataset="synthetic", stack="tiny", stack_options={"encoders": False}, model_options=TINY_MODEL,
                use_expression=False,
                lora_r=4, batch_size=4, lr=1e-2, max_steps=20, align_steps=3, align_batch_size=4,
                instruction_types=("category",), zero_shot=False, real_faces=False, check_memory=False,
                progress=False, max_new_tokens=4, eval_limit=6, device="cpu", seed=0, output_dir=str(output_dir))
    return TrainConfig(**(base | overrides))


def exercise_1(result: RunResult) -> dict:
    """Exercise 1: build one training example as `run` does and read its label mask. Which positions does the
    loss of Eq. 6 see? Predict their number for the answer 'happiness'.

    Answer: only the answer and the end-of-turn token that closes it - never the system prompt, the AGR
    sentence, the frame tokens or the question. The tiny stack's tokenizer is byte-level (one position per
    character), so 'happiness' gives 9 trained positions plus `<|im_end|>`: 10 of the ~340. They come last
    (only the newline after `<|im_end|>` follows, untrained), after the three frame tokens
    `<F1:con><F1:vis><F1:lan>`. With SmolLM2's tokenizer (the offline stack) a class word is one to three
    tokens ('happiness' is 'h' + 'appiness'), so each category sample trains on 2-4 positions out of a few
    hundred.
    """
    model, sample = result.model, result.test_samples[0]
    question = category_question(result.classes, sample.kind)
    batch = model.make_batch([result.features[str(sample.media)]], [[(question, sample.label)]])
    view = batch_view(model.tokenizer, batch, token_names=model.frame_token_names)
    trained = [r for r in view if r["trained"]]
    frames = [r for r in view if r["what"] != "text"]
    print("".join(r["token"] for r in view))
    print(f"{len(view)} positions; trained: {[r['token'] for r in trained]}")
    return {"label": sample.label, "positions": len(view), "trained_tokens": [r["token"] for r in trained],
            "trained_positions": [r["pos"] for r in trained], "frame_positions": [r["pos"] for r in frames],
            "last_position": view[-1]["pos"]}


def exercise_2(result: RunResult, frames: int = 4) -> dict:
    """Exercise 2: a clip of 4 frames. How many positions of the LLM's input are frame tokens, and in what order?

    Answer: 3 per frame - the Clue Aggregator's context token (Eq. 2), the Face Info Mining visual token (Eq.
    3) and the landmark token (Eq. 5) - so 12, frame by frame: `<F1:con><F1:vis><F1:lan><F2:con>...<F4:lan>`,
    spliced where the `<video>` placeholder was. The cost of a video grows linearly with its frames (at 1
    FPS, 3 positions per second), which is why EMO-LLaMA keeps so few tokens per frame.
    """
    model = result.model
    clip = synthetic_features(label_index=0, seed=1, frames=frames)
    batch = model.make_batch([clip], [[("How does the person in the video feel?", "happiness")]])
    view = batch_view(model.tokenizer, batch, token_names=model.frame_token_names)
    order = [r["token"] for r in view if r["what"] != "text"]
    print(f"{frames} frames -> {len(order)} frame positions: {''.join(order)}")
    return {"frame_positions": len(order), "order": order}


def _prompt_positions(result: RunResult) -> int:
    """Positions of the LLM's input for the first test sample with its category question and answer."""
    model, sample = result.model, result.test_samples[0]
    batch = model.make_batch([result.features[str(sample.media)]],
                             [[(category_question(result.classes, sample.kind), sample.label)]])
    return int(batch["attention_mask"].sum())


def exercise_3(output_dir: str | Path, max_steps: int = 20, with_landmarks: RunResult | None = None) -> dict:
    """Exercise 3: train once with `use_landmarks=False` next to the default and compare. Predict what changes in
    the model, in each sample's prompt and in the trainable-parameter table.

    Answer: the landmark token (MLP^L, Eq. 5) is gone: `model.landmark_encoder` is None, so the table loses
    its row and the trainable count drops by exactly its parameters, and every frame contributes 2 positions
    (context, visual) instead of 3, so a prompt is one position shorter per frame. The 68 landmarks are
    still used: they place the AU regions that Local Face Attention pools over, so the switch removes a
    token, not the landmarks. Whether accuracy drops cannot be read from this tiny run (random weights, a
    loss on bytes; after 20 steps neither run answers the test items in a parseable way); on mini, whose
    expressions are made by moving landmarks, the Tab. 5 ablation of notebook 06 is the place to measure it.
    """
    runs = {}
    for use_landmarks in (True, False):
        result = with_landmarks if use_landmarks and with_landmarks is not None else run(
            tiny_config(Path(output_dir) / f"landmarks-{use_landmarks}", max_steps=max_steps,
                        use_landmarks=use_landmarks), log=lambda s: None)
        model = result.model
        runs[use_landmarks] = {
            "tokens_per_frame": model.config.tokens_per_frame,
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "landmark_encoder": (None if model.landmark_encoder is None
                                 else sum(p.numel() for p in model.landmark_encoder.parameters())),
            "parts": [row[0] for row in model.trainable_table()],
            "prompt_positions": _prompt_positions(result),
            "final_loss": result.metrics["train_loss"][-1], "trained": result.metrics["trained"]}
    for flag, found in runs.items():
        print(f"use_landmarks={flag}:", {k: v for k, v in found.items() if k != "parts"})
    return {"with": runs[True], "without": runs[False]}


def solve(output_dir: str | Path = "runs/05_solutions", max_steps: int = 20) -> dict:
    default = run(tiny_config(Path(output_dir) / "landmarks-True", max_steps=max_steps), log=lambda s: None)
    return {"exercise_1": exercise_1(default), "exercise_2": exercise_2(default),
            "exercise_3": exercise_3(output_dir, max_steps, with_landmarks=default)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="runs/05_solutions")
    parser.add_argument("--max_steps", type=int, default=20)
    args = parser.parse_args()
    solve(args.output_dir, args.max_steps)
