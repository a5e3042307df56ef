"""Audio: decoding a media file's sound (PyAV, 16 kHz mono, named statuses), windows aligned with the 1-FPS frames,
and the encoders (eGeMAPS, HuBERT from a local folder, tiny). Every media file is written here by PyAV."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fixtures.media import AUDIO_RATE, FPS, TONE_PLAN, TONE_SECONDS, tone, write_media  # noqa: F401
from PIL import Image

from emo_llama.faces.video import read_video
from emo_llama.features.audio import (
    AUDIO_ENCODERS,
    SAMPLE_RATE,
    audio_windows,
    extract_audio,
    get_audio_encoder,
    load_audio,
    rms_dbfs,
)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    files = {name: root / f"{name}.mp4" for name in ("tone", "no_audio", "silent", "quiet", "short_audio")}
    write_media(files["tone"], audio=tone(TONE_PLAN, TONE_SECONDS, AUDIO_RATE))
    write_media(files["no_audio"], audio=None)
    write_media(files["silent"], audio=np.zeros(int(TONE_SECONDS * AUDIO_RATE), np.float32))
    # -69 dBFS after the downmix: quieter than the -60 dBFS silence threshold, louder than digital zero.
    write_media(files["quiet"], audio=tone([(220.0, 0.001)], TONE_SECONDS, AUDIO_RATE))
    # The picture lasts 3 s, the sound 2.02 s: window 2 holds ~0.03 s, too little for any encoder here.
    write_media(files["short_audio"], seconds=3.0, audio=tone([(220.0, 0.5)], 2.02, AUDIO_RATE))
    files["wav"] = root / "speech.wav"
    write_media(files["wav"], seconds=3.4, video=False, audio=tone([(330.0, 0.5)], 3.4, 22_050),
                audio_codec="pcm_s16le", rate=22_050, stereo=False)
    whole = files["tone"].read_bytes()
    files["truncated"] = root / "truncated.mp4"
    files["truncated"].write_bytes(whole[: len(whole) // 2])
    files["garbage"] = root / "garbage.mp4"
    files["garbage"].write_bytes(b"this is not a video" * 50)
    files["image"] = root / "face.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(files["image"])
    files["frames"] = root / "frames"
    files["frames"].mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(files["frames"] / "0.png")
    return files


def test_load_audio_resamples_to_16k_mono_and_averages_channels(media):
    track = load_audio(media["tone"])
    assert track.status == "ok", track.message
    assert track.sample_rate == SAMPLE_RATE
    assert track.samples.ndim == 1 and track.samples.dtype == np.float32
    # AAC pads the last frame: the decoded length is the written one within one codec frame (1024 samples at 44.1 kHz).
    assert abs(track.duration - TONE_SECONDS) < 1024 / AUDIO_RATE
    assert np.abs(track.samples).max() <= 1.0
    # Second 1 holds amplitude 0.8 on the left channel and nothing on the right: their mean has amplitude 0.4
    # (FFmpeg's own stereo -> mono matrix would give 0.8 / sqrt 2 = 0.57).
    second_1 = track.samples[SAMPLE_RATE + 800: 2 * SAMPLE_RATE - 800]
    assert np.abs(second_1).max() == pytest.approx(0.4, abs=0.03)
    assert track.rms_dbfs == pytest.approx(rms_dbfs(track.samples))


def test_wav_is_resampled_to_its_exact_length(media):
    track = load_audio(media["wav"])
    assert track.status == "ok", track.message
    assert track.frame_times is None  # no pictures
    assert abs(len(track.samples) - 3.4 * SAMPLE_RATE) <= 2


@pytest.mark.parametrize("name, status", [
    ("no_audio", "no_audio_track"), ("image", "no_audio_track"), ("frames", "no_audio_track"),
    ("silent", "silent"), ("quiet", "silent"), ("truncated", "unreadable"), ("garbage", "unreadable"),
])
def test_every_unusable_media_gets_a_named_status_and_no_waveform(media, name, status):
    track = load_audio(media[name])
    assert track.status == status, track.message
    assert str(media[name]) in track.message
    if status != "silent":
        assert track.samples.size == 0 and not track.has_audio


def test_missing_file_is_unreadable(tmp_path):
    track = load_audio(tmp_path / "nowhere.mp4")
    assert track.status == "unreadable" and "no such file" in track.message


def test_silence_threshold_is_the_documented_level(media):
    quiet = load_audio(media["quiet"])
    assert -75 < quiet.rms_dbfs < -60  # between digital zero and the threshold
    assert load_audio(media["quiet"], silence_dbfs=-80).status == "ok"
    assert load_audio(media["silent"]).rms_dbfs == -math.inf


@pytest.mark.parametrize("max_seconds", [8, 2, 1])
def test_windows_go_with_the_frames_the_video_reader_keeps(media, max_seconds):
    track = load_audio(media["tone"])
    windows = audio_windows(track, max_seconds)
    frames = read_video(media["tone"], fps=1.0, max_frames=max_seconds)
    assert len(windows) == len(frames) == min(math.ceil(TONE_SECONDS), max_seconds)
    # Frame i of the clip is grey level 9 i: the kept frames' timestamps, read from the pictures themselves.
    frame_times = [round(float(frame.mean()) / 9) / FPS for frame in frames]
    np.testing.assert_allclose(windows.starts, frame_times)
    if max_seconds >= 3:
        np.testing.assert_allclose(windows.starts, [0.0, 1.0, 2.0])
        assert [len(w) for w in windows.samples[:2]] == [SAMPLE_RATE, SAMPLE_RATE]
        assert len(windows.samples[2]) == pytest.approx(0.5 * SAMPLE_RATE, abs=1024 / AUDIO_RATE * SAMPLE_RATE)
    # Window t is second t of the sound: its level follows TONE_PLAN's amplitudes (0.1 then 0.8, halved by the mix).
    levels = [rms_dbfs(w) for w in audio_windows(track, 8).samples]
    assert levels[1] - levels[0] == pytest.approx(20 * math.log10(8), abs=0.5)


def test_audio_file_windows_cover_its_duration_and_thin_out_evenly(media):
    track = load_audio(media["wav"])
    assert len(audio_windows(track, 8)) == math.ceil(3.4)
    capped = audio_windows(track, 2)
    np.testing.assert_allclose(capped.starts, [0.0, 3.0])  # evenly spaced picks, as the frame reader caps frames
    assert len(audio_windows(load_audio(media["tone"]), 8, window_seconds=0.5)) == 5


def test_a_window_past_the_end_of_the_sound_is_marked_invalid(media):
    encoder = get_audio_encoder("tiny")
    feats = extract_audio(media["short_audio"], encoder, max_seconds=8)
    assert feats.status == "ok"
    assert feats.features.shape == (3, 16)
    assert 0 < len(audio_windows(load_audio(media["short_audio"]), 8).samples[2]) < encoder.min_samples
    assert feats.valid.tolist() == [True, True, False]
    assert torch.count_nonzero(feats.features[2]) == 0


def test_extract_audio_gives_no_features_for_unusable_media(media):
    encoder = get_audio_encoder("tiny")
    for name, status in (("no_audio", "no_audio_track"), ("silent", "silent"), ("garbage", "unreadable")):
        feats = extract_audio(media[name], encoder, max_seconds=8)
        assert feats.status == status and feats.features.shape == (0, encoder.dim)
    with pytest.raises(ValueError, match="no waveform"):
        audio_windows(load_audio(media["no_audio"]), 8)


def test_egemaps_reads_pitch_and_loudness(media):
    encoder = get_audio_encoder("egemaps")
    assert encoder.dim == len(encoder.feature_names) == 88
    feats = extract_audio(media["tone"], encoder, max_seconds=8)
    assert feats.features.shape == (3, 88) and feats.valid.all()
    assert torch.isfinite(feats.features).all()
    names = list(encoder.feature_names)
    f0 = feats.features[:, names.index("F0semitoneFrom27.5Hz_sma3nz_amean")]
    loudness = feats.features[:, names.index("loudness_sma3_amean")]
    # 220 Hz is 36 semitones above 27.5 Hz, 440 Hz 48.
    assert f0[0].item() == pytest.approx(12 * math.log2(220 / 27.5), abs=0.5)
    assert (f0[2] - f0[1]).item() == pytest.approx(12.0, abs=0.5)
    assert loudness[1] > 2 * loudness[0]  # the same pitch, 18 dB louder


def test_tiny_encoder_shape_and_determinism(media):
    track = load_audio(media["tone"])
    first = get_audio_encoder("tiny", seed=3).encode(track, max_seconds=8)
    torch.manual_seed(123)  # the global RNG plays no part
    again = get_audio_encoder("tiny", seed=3).encode(track, max_seconds=8)
    other = get_audio_encoder("tiny", seed=4).encode(track, max_seconds=8)
    assert first.shape == (3, 16)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert not torch.allclose(first[0], first[2])  # different sound, different vector


def test_unknown_encoder_is_named():
    with pytest.raises(ValueError, match="egemaps"):
        get_audio_encoder("whisper")
    assert set(AUDIO_ENCODERS) == {"egemaps", "hubert", "tiny"}


def tiny_hubert_folder(folder):
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    HubertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


def test_hubert_loads_a_local_folder_and_encodes(media, tmp_path):
    folder = tiny_hubert_folder(tmp_path / "hubert")
    encoder = get_audio_encoder("hubert", path=folder)
    assert encoder.min_samples == 1 + 9 + 2 * 5  # the tiny front end's receptive field
    features = encoder.encode(load_audio(media["tone"]), max_seconds=8)
    assert features.shape == (3, 32)
    assert torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[2])


def test_hubert_folder_missing_a_weight_stops_the_load(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tiny_hubert_folder(tmp_path / "hubert")
    weights = load_file(folder / "model.safetensors")
    dropped = "encoder.layers.1.attention.k_proj.weight"
    del weights[dropped]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(KeyError, match=dropped.replace(".", r"\.")):
        get_audio_encoder("hubert", path=folder)


def test_hubert_never_downloads(monkeypatch, tmp_path):
    import transformers

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_hub(*args, **kwargs):
        raise AssertionError("from_pretrained was called for a hub name")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", no_hub)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    with pytest.raises(FileNotFoundError, match="local folder"):
        get_audio_encoder("hubert", path="TencentGameMate/chinese-hubert-large")
    with pytest.raises(ValueError, match="path="):
        get_audio_encoder("hubert")
