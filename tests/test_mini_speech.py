"""mini's speech (emo_llama.data.mini.speech): eSpeak NG through ctypes speaks, deterministically; its pitch and rate
parameters move the measured pitch and length; a clip written with sound decodes with the same frames; the words
for a prosody follow its values."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from emo_llama.data.mini import speech
from emo_llama.data.mini.build import write_clip
from emo_llama.data.mini.speech import (
    PROSODY,
    SAMPLE_RATE,
    SENTENCES,
    VOICES,
    describe_prosody,
    draw_speech,
    place_in_clip,
    synthesise,
    voice_for,
)
from emo_llama.faces.video import load_frames
from emo_llama.features.audio import load_audio, rms_dbfs

NEUTRAL = PROSODY["neutral"]


def median_f0(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, lo: float = 60.0, hi: float = 500.0) -> float:
    """Median pitch (Hz) of the clearly voiced 40 ms frames, by normalised autocorrelation: a measure of its own,
    independent of espeak's parameters."""
    size, hop = int(0.04 * sample_rate), int(0.01 * sample_rate)
    lags = np.arange(int(sample_rate / hi), int(sample_rate / lo) + 1)
    loudest = np.abs(samples).max()
    estimates = []
    for start in range(0, len(samples) - size, hop):
        frame = samples[start:start + size] - samples[start:start + size].mean()
        if np.abs(frame).max() < 0.1 * loudest:
            continue
        ac = np.correlate(frame, frame, "full")[size - 1:]
        if ac[0] <= 0:
            continue
        normed = ac[lags] / ac[0]
        best = int(np.argmax(normed))
        if normed[best] > 0.6:
            estimates.append(sample_rate / lags[best])
    assert len(estimates) > 10, "too few voiced frames to measure pitch"
    return float(np.median(estimates))


def test_synthesis_speaks_and_repeats_itself_exactly():
    first = synthesise(SENTENCES[0], NEUTRAL, VOICES[0])
    synthesise(SENTENCES[1], PROSODY["anger"], VOICES[5], noise_seed=7)  # another utterance in between
    again = synthesise(SENTENCES[0], NEUTRAL, VOICES[0])
    assert first.dtype == np.float32 and first.ndim == 1
    assert 0.8 < len(first) / SAMPLE_RATE < 3.5  # a short sentence
    assert rms_dbfs(first) > -35 and np.abs(first).max() <= 1.0
    assert np.array_equal(first, again)  # espeak's state does not leak from one utterance into the next


def test_raising_the_pitch_parameter_raises_the_measured_pitch():
    low = median_f0(synthesise(SENTENCES[2], replace(NEUTRAL, pitch=25), VOICES[0]))
    high = median_f0(synthesise(SENTENCES[2], replace(NEUTRAL, pitch=75), VOICES[0]))
    assert 12 * math.log2(high / low) > 3.0, (low, high)  # semitones


def test_raising_the_rate_shortens_the_utterance_and_volume_makes_it_louder():
    slow = synthesise(SENTENCES[3], replace(NEUTRAL, rate=120), VOICES[4])
    fast = synthesise(SENTENCES[3], replace(NEUTRAL, rate=220), VOICES[4])
    assert len(fast) < 0.75 * len(slow)
    soft = synthesise(SENTENCES[3], replace(NEUTRAL, volume=40), VOICES[4])
    loud = synthesise(SENTENCES[3], replace(NEUTRAL, volume=100), VOICES[4])
    assert rms_dbfs(loud) - rms_dbfs(soft) > 4.0


def test_a_clip_with_sound_decodes_with_its_frames_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    plan = draw_speech("sadness", 0, "lfw_001", (1, 100))
    track = place_in_clip(synthesise(plan.text, plan.prosody, plan.voice, plan.noise_seed), seconds=len(frames))
    write_clip(frames, tmp_path / "speech.mp4", audio=track)
    write_clip(frames, tmp_path / "silent.mp4")
    sound = load_audio(tmp_path / "speech.mp4")
    assert sound.status == "ok" and sound.sample_rate == 16_000
    assert abs(sound.duration - len(frames)) <= 0.2, sound.duration
    assert list(sound.frame_times) == [0.0, 1.0, 2.0, 3.0]
    with_sound, without = load_frames(tmp_path / "speech.mp4"), load_frames(tmp_path / "silent.mp4")
    assert len(with_sound) == len(without) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(with_sound, without))
    assert load_audio(tmp_path / "silent.mp4").status == "no_audio_track"


def test_the_sentence_fills_most_of_the_clip_and_never_runs_past_it():
    utterance = synthesise(SENTENCES[0], NEUTRAL, VOICES[1])
    for seconds in (4, 5, 6):
        track = place_in_clip(utterance, seconds)
        assert len(track) == seconds * SAMPLE_RATE
        spoken = np.flatnonzero(np.abs(track) > 1e-3)
        assert (spoken[-1] - spoken[0]) / len(track) > 0.85  # whole sayings spread over the clip
        assert spoken[0] > 0 and spoken[-1] < len(track) - 1
        # whole sayings only: the track's speech is the utterance's, a whole number of times
        assert np.count_nonzero(np.abs(track) > 1e-3) % np.count_nonzero(np.abs(utterance) > 1e-3) == 0
    single = place_in_clip(utterance, seconds=len(utterance) / SAMPLE_RATE + 0.5)  # room for one saying only
    assert np.count_nonzero(single) == np.count_nonzero(utterance)
    with pytest.raises(ValueError, match="does not fit"):
        place_in_clip(utterance, seconds=0.5)


def test_every_sentence_fits_the_shortest_clip_at_the_slowest_rate():
    slowest = min(PROSODY.values(), key=lambda p: p.rate)
    slowest = replace(slowest, rate=math.floor(slowest.rate * (1 - speech.JITTER.rate)))
    for text in SENTENCES:
        for voice in VOICES:
            place_in_clip(synthesise(text, slowest, voice), seconds=4)  # raises if it does not fit


def test_the_words_follow_the_values_not_the_class():
    assert describe_prosody(NEUTRAL) == "an even voice"
    sad = describe_prosody(PROSODY["sadness"])
    assert all(w in sad for w in ("low", "monotonous", "slow", "soft", "breathy")), sad
    # a neutral row made loud and fast is described as loud and fast, whatever class it belongs to
    assert describe_prosody(replace(NEUTRAL, rate=NEUTRAL.rate * 1.2, volume=NEUTRAL.volume * 1.5)) == \
        "a fast and very loud voice"


def test_each_identity_keeps_one_voice_of_its_known_gender():
    assert voice_for("demo_sample3_1", 0).gender == "female" and voice_for("grace_hopper", 0).gender == "female"
    assert voice_for("carphone", 0).gender == "male"
    assert voice_for("lfw_010", 0) == voice_for("lfw_010", 0)
    assert len({voice_for(f"lfw_{i:03d}", 0) for i in range(40)}) >= 4  # several voices over the identities
    plan = draw_speech("anger", 0, "lfw_010", (10, 100))
    assert plan == draw_speech("anger", 0, "lfw_010", (10, 100)) and plan.voice == voice_for("lfw_010", 0)
    assert plan.text in SENTENCES and plan.prosody.quality == PROSODY["anger"].quality
