"""Clues the kit computes itself (`emo_llama.data.text.clues`, `features.audio.describe_voice`) and MERR records
written from them: a known landmark move and a known voice give the clue they should; no face, no sound: no clue."""

from __future__ import annotations

import json

import pytest
import torch
from test_au_geometry import NEUTRAL_68, UP, D

from emo_llama.data import Sample
from emo_llama.data.text.clues import media_clues, merr_records, neutral_reference
from emo_llama.data.text.merr import read_merr_json, write_merr_json
from emo_llama.features.audio import VOICE_CUES, VoiceReference, describe_voice
from emo_llama.features.synthetic import synthetic_features

NAMES = ("other_0", *(name for name, *_ in VOICE_CUES), "other_1")


def voice(pitch=0.0, spread=0.0, loud=0.0, rate=0.0, frames=3, valid=True):
    row = torch.tensor([7.0, 30 + pitch, 4 + spread, 1 + loud, 2 + rate, -3.0])
    return row.expand(frames, -1).clone(), torch.full((frames,), valid)


@pytest.fixture(scope="module")
def voices() -> VoiceReference:
    g = torch.Generator().manual_seed(0)
    clips = [voice(*(torch.randn(4, generator=g) * torch.tensor([1.0, 0.5, 0.2, 0.3])).tolist()) for _ in range(40)]
    return VoiceReference.fit(clips, NAMES)


def test_a_voice_is_described_by_the_cues_that_stand_out(voices):
    assert describe_voice(*voice(pitch=3, loud=0.6, rate=0.9), voices) == "a high-pitched, loud and fast voice"
    assert describe_voice(*voice(pitch=-3, spread=-1.5), voices) == "a low-pitched and monotonous voice"
    assert describe_voice(*voice(), voices) == "an ordinary voice"
    assert describe_voice(*voice(pitch=5, valid=False), voices) is None  # no sound, no clue


def test_voice_reference_needs_egemaps_and_two_clips_with_sound():
    with pytest.raises(ValueError, match="eGeMAPS"):
        VoiceReference.fit([voice()] * 3, [f"x{i}" for i in range(6)])
    with pytest.raises(ValueError, match="at least 2"):
        VoiceReference.fit([voice(), voice(valid=False)], NAMES)


def face(shape, frames=1, found=True, label=0):
    feats = synthetic_features(label, 1, frames=frames)
    feats.landmarks_68 = torch.tensor(shape, dtype=torch.float32).expand(frames, 68, 2).clone()
    feats.face_found = torch.full((frames,), found)
    return feats


def smile():
    shape = NEUTRAL_68.copy()
    shape[[48, 54]] += UP * 0.12 * D
    shape[48, 0] -= 0.05 * D
    shape[54, 0] += 0.05 * D
    return shape


def test_clues_name_the_peak_frames_aus_and_nothing_without_a_face():
    g = torch.Generator().manual_seed(0)
    neutral = {f"n{i}": face(NEUTRAL_68 + torch.randn(68, 2, generator=g).numpy() * 0.01 * D) for i in range(30)}
    samples = [Sample(id=k, media=k, label="neutral", split="train") for k in neutral]
    reference = neutral_reference(samples, neutral)
    clip = face(NEUTRAL_68, frames=3)
    clip.landmarks_68[1] = torch.tensor(smile(), dtype=torch.float32)
    clues = media_clues(clip, reference)
    assert clues.peak_index == 1 and clues.aus[0] == "AU12" and "AU15" not in clues.aus
    assert clues.voice is None  # no sound attached
    none = media_clues(face(smile(), found=False), reference)
    assert none.aus == () and none.peak_index is None
    with pytest.raises(ValueError, match="neutral frames"):
        neutral_reference(samples[:1], neutral)


def test_merr_records_from_computed_clues_round_trip(tmp_path, voices):
    g = torch.Generator().manual_seed(1)
    bank = {f"n{i}": face(NEUTRAL_68 + torch.randn(68, 2, generator=g).numpy() * 0.01 * D) for i in range(10)}
    happy = face(smile(), frames=2)
    happy.audio, happy.audio_valid = voice(pitch=3, loud=0.6, frames=2)
    bank["happy.mp4"] = happy
    samples = [Sample(id=k, media=k, label="neutral", split="train") for k in list(bank)[:10]]
    clip = Sample(id="clip1", media="happy.mp4", label="happiness", split="test", kind="video", text="It is here.")
    gone = Sample(id="gone", media="missing.mp4", label="anger", split="test", kind="video")
    records = merr_records([clip, gone], bank, neutral_reference(samples, bank), voices)
    assert [list(r) for r in records] == [["clip1"]]  # the unreadable one is left out, not guessed
    record = records[0]["clip1"]
    assert record["AU_list"][0] == "AU12" and record["audio_prior_list"] == "a high-pitched and loud voice"
    assert record["text"] == "It is here." and record["pseu_emotion"] == "happy"
    path = write_merr_json(records, tmp_path / "merr.json")
    read = read_merr_json(path)
    good, bad = read
    assert json.loads(path.read_text())["clip1"]["AU_list"] == record["AU_list"] and len(good) == 1 and not bad
