"""Emotion-LLaMA's audio branch wired in: the audio store, features with their sound attached, the audio token,
audio-only and text-in-the-question; tiny stack, real media written with PyAV (tests/test_audio.py's writer)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fixtures.media import AUDIO_RATE, TONE_PLAN, TONE_SECONDS, tone, write_media
from test_model_modules import QUESTION, tiny_model

from emo_llama.data import Sample
from emo_llama.data.text.instructions import category_instruction
from emo_llama.features import WithAudio, audio_report, extract_audio_to_store, get_audio_encoder
from emo_llama.features.audio import AudioExtractor, AudioFeatures
from emo_llama.features.store import FeatureStore
from emo_llama.features.synthetic import synthetic_features
from emo_llama.prompts import eval_questions


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    files = {name: root / f"{name}.mp4" for name in ("tone", "no_audio", "silent")}
    write_media(files["tone"], audio=tone(TONE_PLAN, TONE_SECONDS, AUDIO_RATE))
    write_media(files["no_audio"], audio=None)
    write_media(files["silent"], audio=np.zeros(int(TONE_SECONDS * AUDIO_RATE), np.float32))
    files["garbage"] = root / "garbage.mp4"
    files["garbage"].write_bytes(b"not a video" * 40)
    return files


def samples_of(files) -> list[Sample]:
    return [Sample(id=name, media=path, label="neutral", split="test", kind="video") for name, path in files.items()]


def test_audio_store_keeps_every_status_and_resumes(clips, tmp_path):
    encoder = get_audio_encoder("tiny")
    _, store, statuses = extract_audio_to_store(encoder, samples_of(clips), max_frames=8, root=tmp_path,
                                                progress=False)
    assert statuses == {str(clips["tone"]): "ok", str(clips["no_audio"]): "no_audio_track",
                        str(clips["silent"]): "silent", str(clips["garbage"]): "unreadable"}
    stored = store[str(clips["tone"])]
    direct = AudioExtractor(encoder, max_frames=8).extract_uncached(clips["tone"])
    assert torch.equal(stored.features, direct.features) and torch.equal(stored.valid, direct.valid)
    assert stored.features.shape == (3, encoder.dim)  # 2.5 s: windows at 0, 1, 2 s
    # a second extraction finds everything stored and extracts nothing
    again = FeatureStore.for_extractor(AudioExtractor(encoder, max_frames=8), root=tmp_path)
    again.fill(AudioExtractor(encoder, max_frames=8), [str(p) for p in clips.values()], progress=False)
    assert again.extracted == 0 and again.skipped == 4
    report = audio_report(statuses)
    assert report["status_counts"] == {"ok": 1, "silent": 1, "no_audio_track": 1, "unreadable": 1}
    assert report["clips_without_sound"] == 3 and str(clips["tone"]) not in report["listed"]


def test_audio_store_key_follows_the_encoder(tmp_path):
    a = FeatureStore.for_extractor(AudioExtractor(get_audio_encoder("tiny", seed=0)), root=tmp_path)
    b = FeatureStore.for_extractor(AudioExtractor(get_audio_encoder("tiny", seed=1)), root=tmp_path)
    c = FeatureStore.for_extractor(AudioExtractor(get_audio_encoder("tiny", seed=0), max_frames=4), root=tmp_path)
    assert len({a.key, b.key, c.key}) == 3
    assert "face_detector" not in a.settings


def test_with_audio_attaches_one_window_per_frame_and_never_invents_sound():
    feats = synthetic_features(0, 1, frames=3)
    heard = AudioFeatures(torch.ones(2, 5), torch.tensor([True, False]), torch.tensor([0.0, 1.0]), "ok", "")
    joined = feats.with_audio(heard)
    assert joined.audio.shape == (3, 5)
    assert joined.audio_valid.tolist() == [True, False, False]  # window 1 too short, frame 2 past the sound
    assert joined.audio[2].abs().sum() == 0 and joined.audio_status == "ok"
    silent = feats.with_audio(AudioFeatures(torch.zeros(0, 5), torch.zeros(0, dtype=torch.bool),
                                            torch.zeros(0), "silent", "quiet"))
    assert silent.audio_valid.sum() == 0 and silent.audio_status == "silent"
    assert torch.equal(joined.vision_tokens, feats.vision_tokens)


def test_with_audio_bank_joins_two_stores(clips, tmp_path):
    class Visual(dict):
        key = "v"

    visual = Visual({str(p): synthetic_features(0, i, frames=3) for i, p in enumerate(clips.values())})
    _, store, _ = extract_audio_to_store(get_audio_encoder("tiny"), samples_of(clips), 8, root=tmp_path,
                                         progress=False)
    bank = WithAudio(visual, store)
    assert bank[str(clips["tone"])].audio_valid.tolist() == [True, True, True]
    assert bank[str(clips["no_audio"])].audio_valid.tolist() == [False] * 3
    assert bank[str(clips["garbage"])].audio_status == "unreadable"
    assert bank.key.startswith("v+audio-") and len(bank) == 4


def heard(feats, seed: int, valid: bool = True):
    t = feats.num_frames
    g = torch.Generator().manual_seed(seed)
    return feats.with_audio(AudioFeatures(torch.randn(t, 16, generator=g), torch.full((t,), valid),
                                          torch.arange(t, dtype=torch.float64), "ok", ""))


def test_audio_token_is_one_more_token_per_frame_and_no_sound_is_its_own_embedding():
    model = tiny_model(use_audio=True)
    assert model.config.tokens_per_frame == 5 and model.frame_token_names[-1] == "audio"
    feats = [heard(synthetic_features(0, 1), 1), heard(synthetic_features(1, 2, frames=3), 2)]
    model.fit_feature_statistics(feats)
    model.eval()
    batch = model.make_batch(feats, [[(QUESTION, "a")]] * 2)
    tokens = model.frame_tokens(batch)
    assert tokens.shape == (4, 5, 64)
    assert torch.isfinite(model(batch))
    muted = [heard(f, 9, valid=False) for f in feats]
    tokens_muted = model.frame_tokens(model.make_batch(muted, [[(QUESTION, "a")]] * 2))
    assert torch.allclose(tokens_muted[:, -1], model.audio_token.no_sound.expand(4, -1))
    assert not torch.allclose(tokens[:, -1], tokens_muted[:, -1])
    assert torch.equal(tokens[:, :-1], tokens_muted[:, :-1])  # the sound changes its own token only


def test_audio_only_model_reads_sound_without_vision_tokens():
    model = tiny_model(use_audio=True, use_vision=False, use_landmarks=False, use_expression=False)
    assert model.frame_token_names == ("audio",)
    feats = [heard(synthetic_features(0, 1), 1)]
    model.fit_feature_statistics(feats)
    batch = model.make_batch(feats, [[(QUESTION, "a")]])
    assert model.frame_tokens(batch).shape == (1, 1, 64)
    with pytest.raises(ValueError, match="every frame token is switched off"):
        tiny_model(use_vision=False, use_landmarks=False, use_expression=False)


def test_features_without_sound_of_the_right_width_are_refused_by_name():
    model = tiny_model(use_audio=True)
    with pytest.raises(ValueError, match="audio of width 0"):
        model.make_batch([synthetic_features(0, 1)], [[(QUESTION, "a")]])
    with pytest.raises(ValueError, match="not one training window has sound"):
        model.fit_feature_statistics([heard(synthetic_features(0, 1), 1, valid=False)])


def test_audio_dropout_mutes_frames_in_training_only():
    model = tiny_model(use_audio=True, audio_dropout=1.0)
    feats = [heard(synthetic_features(0, 1, frames=3), 1)]
    model.fit_feature_statistics(feats)
    batch = model.make_batch(feats, [[(QUESTION, "a")]])
    model.train()
    assert torch.allclose(model.frame_tokens(batch)[:, -1], model.audio_token.no_sound.expand(3, -1))
    model.eval()
    assert not torch.allclose(model.frame_tokens(batch)[:, -1], model.audio_token.no_sound.expand(3, -1))


def test_spoken_text_goes_into_training_and_test_questions_when_asked():
    clip = Sample(id="c", media="c.mp4", label="anger", split="train", kind="video", text="The chair is made of wood.")
    image = Sample(id="i", media="i.jpg", label="anger", split="train")
    with_text = category_instruction(clip, ("anger", "neutral"), phrasing=0, use_text=True)
    question = with_text["conversations"][0]["value"]
    assert 'The person says: "The chair is made of wood."' in question
    assert "says" not in category_instruction(clip, ("anger", "neutral"), phrasing=0)["conversations"][0]["value"]
    asked = eval_questions([clip, image], ("anger", "neutral"), use_text=True)
    assert asked[0].startswith('The person says: "The chair') and "says" not in asked[1]
    assert json.dumps(eval_questions([clip], ("anger",))) == json.dumps(eval_questions([clip], ("anger",),
                                                                                        use_text=False))


def test_a_run_hears_minis_clips_and_its_model_answers_a_clip_with_its_sound(tmp_path):
    from fixtures.launch import TINY

    from emo_llama.config import TrainConfig
    from emo_llama.data import get_dataset
    from emo_llama.model import EmoLlama
    from emo_llama.train import run

    cfg = TrainConfig(stack="tiny", model_options=TINY, lora_r=4, batch_size=2, max_steps=2, align_steps=1,
                      align_batch_size=4, output_dir=str(tmp_path / "run"), progress=False, zero_shot=False,
                      real_faces=False, max_new_tokens=4, device="cpu", train_limit=14, eval_limit=7,
                      use_audio=True, use_text=True, train_kinds=("video",))
    result = run(cfg, log=lambda _: None)
    audio = result.metrics["audio"]
    counts = audio["status_counts"]
    assert counts["ok"] >= 1 and counts["no_audio_track"] >= 1  # mini's clips speak, its images have no sound
    assert audio["clips_without_sound"] == 0  # every clip of mini has a track with speech
    clip = next(s for s in get_dataset("mini", split="train", part="videos").samples if str(s.media) in result.features)
    assert result.features[str(clip.media)].audio_valid.any()
    model = EmoLlama.from_pretrained(tmp_path / "run" / "model", device="cpu")
    assert model.config.use_audio and model.frame_token_names[-1] == "audio"
    extractor = model.feature_extractor()
    assert extractor.audio is not None and extractor(clip.media).audio_valid.any()
    answer = model.answer([clip.media], ["Which emotion?"], extractor=extractor, require_face=False)[0]
    assert answer.answered
    # the command line scores the saved run with its sound, and asks with the words spoken as it was tuned
    from emo_llama.evaluate.__main__ import main as evaluate_main
    from emo_llama.evaluate.protocol import trained_with_text

    assert trained_with_text(str(tmp_path / "run"))
    evaluate_main(["--model", str(tmp_path / "run"), "--dataset", "mini", "--eval_limit", "7", "--output_dir",
                   str(tmp_path / "ev"), "--progress", "false", "--device", "cpu", "--max_new_tokens", "4"])
    scored = json.loads((tmp_path / "ev" / "mini" / "answers.json").read_text())
    assert len(scored) == 7


def test_a_run_tuned_on_reasons_reports_their_clue_scores(tmp_path):
    from fixtures.launch import TINY

    from emo_llama.config import TrainConfig
    from emo_llama.train import run

    cfg = TrainConfig(stack="tiny", model_options=TINY, lora_r=4, batch_size=2, max_steps=2, align_steps=1,
                      align_batch_size=4, output_dir=str(tmp_path / "run"), progress=False, zero_shot=False,
                      real_faces=False, max_new_tokens=4, device="cpu", train_limit=14, eval_limit=7,
                      instruction_types=("category", "reason"))
    result = run(cfg, log=lambda _: None)
    reasons = result.metrics["reasons"]
    assert {"label_accuracy", "clue_precision_micro", "clue_recall_micro"} <= set(reasons)
    assert reasons["n"] == 7 and "answers" not in reasons  # every mini test sample has its AU coding
    answers = json.loads((tmp_path / "run" / "eval" / "mini" / "reasons.json").read_text())
    assert len(answers) == 7 and {"id", "label", "aus", "reason"} <= set(answers[0])


def test_a_meld_layout_is_heard_from_its_clips_and_read_with_its_utterances(tmp_path):
    import fixtures.fer_layouts as fx

    from emo_llama.data import get_dataset

    fx.write_meld(tmp_path)
    ds = get_dataset("meld", tmp_path, split="test")
    for i, s in enumerate(ds.samples):  # the fixture's placeholder files become real clips, the first one mute
        write_media(s.media, audio=None if i == 0 else tone(TONE_PLAN, TONE_SECONDS, AUDIO_RATE))
    _, store, statuses = extract_audio_to_store(get_audio_encoder("tiny"), ds.samples, 8, root=tmp_path / "store",
                                                progress=False)
    assert statuses[str(ds.samples[0].media)] == "no_audio_track"
    assert all(statuses[str(s.media)] == "ok" for s in ds.samples[1:])
    question = eval_questions(ds.samples[1:2], ds.classes, use_text=True)[0]
    assert f'The person says: "{ds.samples[1].text}"' in question
