"""Worked solutions of notebook 07's exercises (run by tests/test_solutions.py, on the tiny stack where a model is
needed: its random weights make the mechanics, not the figures, the point there).

1. Hear the difference: describe mini's test voices from eGeMAPS against its training clips, and compare the words
   with the `voice` column mini wrote when it synthesised them.
2. No sound in training: the audio arm with half the seconds replaced by "no sound" (`audio_dropout`).
3. MERR from clues: MERR-style records of mini's test clips from the kit's own clues, written and read back.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from emo_llama.config import TrainConfig
from emo_llama.data import get_dataset
from emo_llama.data.text.clues import merr_records, neutral_reference
from emo_llama.data.text.merr import read_merr_json, write_merr_json
from emo_llama.features import FeatureExtractor, extract_audio_to_store, get_audio_encoder
from emo_llama.features.audio import VoiceReference, describe_voice
from emo_llama.model import get_stack
from emo_llama.train import run


def exercise_1(train_clips: int = 40, test_clips: int = 6) -> list[dict]:
    """Each test clip: its class, the voice mini wrote, the voice eGeMAPS describes relative to the training clips.
    The two need not use the same words: mini describes the prosody it drew (relative to its neutral row), eGeMAPS
    what it measures relative to all training voices (most of which are not neutral)."""
    encoder = get_audio_encoder("egemaps")
    train = get_dataset("mini", split="train", part="videos").samples[:train_clips]
    test = get_dataset("mini", split="test", part="videos").samples[:test_clips]
    _, store, _ = extract_audio_to_store(encoder, train + test, max_frames=8, progress=False)
    reference = VoiceReference.fit([(store[str(s.media)].features, store[str(s.media)].valid) for s in train],
                                   encoder.feature_names)
    return [{"id": s.id, "label": s.label, "written": s.voice,
             "described": describe_voice(store[str(s.media)].features, store[str(s.media)].valid, reference)}
            for s in test]


def exercise_2(out: str | Path, stack: str = "tiny", max_steps: int = 2) -> dict:
    """The audio arm with `audio_dropout` 0.5, trained briefly; its metrics.json's audio section and model config."""
    small = {"context_dim": 16, "fim_dim": 16, "fim_heads": 2, "landmark_hidden": 16, "num_queries": 4}
    cfg = TrainConfig(stack=stack, use_audio=True, train_kinds=("video",), model_options=small | {"audio_dropout": 0.5},
                      lora_r=4, batch_size=2, max_steps=max_steps, align_steps=1, align_batch_size=4,
                      output_dir=str(out), progress=False, zero_shot=False, real_faces=False, max_new_tokens=4,
                      device="cpu", train_limit=14, eval_limit=7)
    result = run(cfg, log=lambda _: None)
    return {"audio": result.metrics["audio"], "audio_dropout": result.model.config.audio_dropout}


def exercise_3(stack: str = "tiny", neutral_faces: int = 10, test_clips: int = 3) -> dict:
    """MERR records of a few test clips, from the landmarks' AUs (a neutral reference fitted on mini's neutral
    training images) and the voice, written with `write_merr_json` and read back with `read_merr_json`."""
    extractor = FeatureExtractor.from_stack(get_stack(stack), device="cpu")
    neutral = [s for s in get_dataset("mini", split="train", part="images").samples if s.label == "neutral"]
    neutral = neutral[:neutral_faces]
    bank = {str(s.media): extractor(s.media) for s in neutral}
    clips = get_dataset("mini", split="test", part="videos").samples[:test_clips]
    encoder = get_audio_encoder("egemaps")
    _, audio, _ = extract_audio_to_store(encoder, clips, max_frames=8, progress=False)
    bank |= {str(s.media): extractor(s.media).with_audio(audio[str(s.media)]) for s in clips}
    voices = VoiceReference.fit([(audio[str(s.media)].features, audio[str(s.media)].valid) for s in clips],
                                encoder.feature_names)
    records = merr_records(clips, bank, neutral_reference(neutral, bank), voices)
    path = write_merr_json(records, Path(tempfile.mkdtemp()) / "mini_merr.json")
    read, bad = read_merr_json(path)
    return {"records": records, "read_back": read, "bad": bad, "path": str(path)}


def solve(out: str | Path | None = None, stack: str = "tiny") -> dict:
    out = Path(out or tempfile.mkdtemp())
    return {"exercise_1": exercise_1(), "exercise_2": exercise_2(out / "audio_dropout", stack),
            "exercise_3": exercise_3(stack)}


if __name__ == "__main__":
    import json

    print(json.dumps(solve(), indent=1, default=str))
