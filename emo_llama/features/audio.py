"""Sound next to the frames: a media file's audio track, one-second windows aligned with its frames, encoders.

    track = load_audio("clip.mp4")                  # 16 kHz mono float32 in [-1, 1], with a named status
    encoder = get_audio_encoder("egemaps")          # or "hubert" (path=...), "tiny"
    feats = extract_audio("clip.mp4", encoder, max_seconds=8)
    feats.features (T, D), feats.valid (T,), feats.status, feats.message

Decoding (`load_audio`): PyAV decodes the first audio stream of a video or audio file, its resampler brings it to
16 kHz (float, the channels kept), and the channels are averaged into one (an explicit mean: FFmpeg's own stereo ->
mono matrix adds the channels at -3 dB each, which can leave [-1, 1]). Every result carries a `status`:
- "ok": a waveform to encode;
- "silent": decoded, but the whole track's RMS is below `SILENCE_DBFS` (-60 dBFS, where a full-scale square wave is
  0 dBFS and a full-scale sine -3 dBFS): digital silence or a muted recording, nothing to read from it;
- "no_audio_track": the file has no audio stream, or the media is an image or a folder of frames;
- "unreadable": missing, empty, corrupt or truncated (an FFmpeg error while opening or decoding: a partly decoded
  track is not used, so no waveform of a guessed length reaches an encoder).
Media problems never raise. An OS error that says the storage failed this time (`faces.video.transient`: EIO, a
dropped network disk) is raised as it is, as the frame reader does, so the feature store retries it.

Windows (`audio_windows`): the frame reader keeps the video frame nearest each whole second (0 s, 1 s, ...; evenly
spaced picks past `max_frames`). Window t is the second of sound that starts at frame t's timestamp, [t_k, t_k + 1),
cut from the decoded track on the container's timeline, so T windows go with the T frames `faces.video.read_video`
returns for the same `max_frames`. A file without pictures (an audio file) gets windows [0, 1), [1, 2), ... over its
own duration: ceil(duration) of them (at least one; a tail under `TAIL_TOLERANCE_S` is codec padding, not a second),
capped with the same evenly spaced picks. The last window is shorter where the sound ends inside it; a window with
less sound than an encoder needs (past the end of a track shorter than the picture) gets a zero row and
`valid=False` in `AudioFeatures`, never a made-up value.

Encoders (`AUDIO_ENCODERS`, `get_audio_encoder(name, **options)`), each one window (16 kHz mono) -> a D-vector, and
`encode(track, max_seconds) -> (T, D)`:
- `egemaps`: openSMILE's eGeMAPS v02 functionals (the `opensmile` wheel, which ships the openSMILE library and its
  configs; CPU, offline): the 88 parameters of the Geneva Minimalistic Acoustic Parameter Set (Eyben et al. 2016),
  the field's reference hand-crafted affective set: pitch (F0 in semitones from 27.5 Hz) level, range and slopes,
  loudness, jitter, shimmer, HNR, formants, spectral slope and balance, voiced/unvoiced segment rates. Real and
  interpretable, not learned; `feature_names` names each column.
- `hubert`: a self-supervised speech transformer (HuBERT, wav2vec 2.0 or WavLM) through `transformers`, from a local
  folder only (`path=`; config.json plus weights, safetensors preferred; nothing is ever downloaded); the window's
  last hidden state averaged over time. Emotion-LLaMA (Cheng et al. 2024) encodes audio with HuBERT, the
  chinese-hubert-large checkpoint (TencentGameMate). Loading is strict: a weight missing from the folder, one the
  model does not have, or one of another shape stops the load, naming it.
- `tiny`: a small 1-D convolution net with random weights drawn from `seed` (deterministic, not trained: its vectors
  mean nothing); for tests and the tiny stack.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import torch
from torch import nn

from emo_llama.faces.video import IMAGE_SUFFIXES, nearest_frame_indices, transient
from emo_llama.features.extractor import module_fingerprint
from emo_llama.progress import without_weight_loading_bar
from emo_llama.utils import package_version

SAMPLE_RATE = 16_000           # every encoder here (eGeMAPS, HuBERT) reads 16 kHz speech
SILENCE_DBFS = -60.0           # a whole track quieter than this (RMS, dB re full scale) is "silent"
TAIL_TOLERANCE_S = 0.05        # a last remainder shorter than this is codec padding (an AAC frame), not a window
AUDIO_STATUSES = ("ok", "silent", "no_audio_track", "unreadable")


@dataclass(frozen=True)
class AudioTrack:
    """One media file's sound: `samples` (N,) float32 mono in [-1, 1] at `sample_rate`, and why it is usable or not.

    `samples` is empty unless the status is "ok" or "silent". `start_time` is the container time (s) of samples[0];
    `frame_times` the timestamps (s) of the file's video frames (None when it has no video stream).
    """

    path: str
    status: str
    message: str
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sample_rate: int = SAMPLE_RATE
    start_time: float = 0.0
    frame_times: np.ndarray | None = None
    rms_dbfs: float = -math.inf

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def has_audio(self) -> bool:
        """A decoded waveform is there (silent or not)."""
        return self.status in ("ok", "silent")


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB re full scale (a full-scale square wave is 0 dBFS, a full-scale sine -3.01 dBFS)."""
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def _decode(path: Path, sample_rate: int) -> tuple[np.ndarray, float, np.ndarray | None] | None:
    """(mono samples, start time, video frame times) of the file's first audio stream; None when it has none.

    One pass over the packets: audio packets are decoded, video packets only give their timestamps (the same
    timestamps `read_video` picks its frames from)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        audio = container.streams.audio[0]
        video = container.streams.video[0] if container.streams.video else None
        # Keep the channels through the resampler and average them here (see the module docstring).
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        chunks: list[np.ndarray] = []
        start_time: float | None = None
        video_pts: list[int] = []
        for packet in container.demux(*(s for s in (audio, video) if s is not None)):
            if packet.stream.type == "video":
                if packet.pts is not None and packet.size > 0:
                    video_pts.append(packet.pts)
                continue
            for frame in packet.decode():  # the final empty packet flushes the decoder
                if start_time is None and frame.time is not None:
                    start_time = float(frame.time)
                chunks.extend(out.to_ndarray().mean(axis=0) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().mean(axis=0) for out in resampler.resample(None))
        frame_times = None
        if video is not None:
            frame_times = np.asarray(sorted(video_pts), dtype=np.float64) * float(video.time_base)
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    # Lossy decoders and the resampler can overshoot full scale by a little; the contract is [-1, 1].
    return np.clip(samples, -1.0, 1.0), (start_time or 0.0), frame_times


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
               silence_dbfs: float = SILENCE_DBFS) -> AudioTrack:
    """The audio track of a video or audio file, 16 kHz mono float32, with a named status (module docstring).

    Never raises for a media problem; a transient OS error (the storage, not the file) passes through."""
    path = Path(path)
    name = str(path)
    if path.is_dir():
        return AudioTrack(name, "no_audio_track", f"{path}: a folder of frames has no sound")
    if not path.exists():
        return AudioTrack(name, "unreadable", f"{path}: no such file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return AudioTrack(name, "no_audio_track", f"{path}: an image has no sound")
    if path.stat().st_size == 0:
        return AudioTrack(name, "unreadable", f"{path}: zero-length file")
    try:
        decoded = _decode(path, sample_rate)
    except (av.error.FFmpegError, OSError) as err:
        if transient(err):
            raise
        return AudioTrack(name, "unreadable", f"{path}: cannot decode its audio ({err}); the file is corrupt "
                                              "or truncated")
    if decoded is None:
        return AudioTrack(name, "no_audio_track", f"{path}: the file has no audio stream")
    samples, start_time, frame_times = decoded
    if samples.size == 0:
        return AudioTrack(name, "unreadable", f"{path}: the audio stream holds no decodable samples",
                          frame_times=frame_times)
    level = rms_dbfs(samples)
    if level < silence_dbfs:
        status, message = "silent", (f"{path}: the track is silent (RMS {level:.1f} dBFS < {silence_dbfs:.0f} dBFS "
                                     f"over {len(samples) / sample_rate:.2f} s)")
    else:
        status, message = "ok", f"{path}: {len(samples) / sample_rate:.2f} s of sound, RMS {level:.1f} dBFS"
    return AudioTrack(name, status, message, samples, sample_rate, start_time, frame_times, level)


@dataclass(frozen=True)
class AudioWindows:
    """The windows of one track: `samples[t]` (at most `window_seconds` of sound) starts at `starts[t]`
    (container time, s: the matching video frame's timestamp); shorter where the sound ends inside it."""

    samples: list[np.ndarray]
    starts: np.ndarray
    window_seconds: float
    sample_rate: int

    def __len__(self) -> int:
        return len(self.samples)


def audio_windows(track: AudioTrack, max_seconds: int | None, window_seconds: float = 1.0) -> AudioWindows:
    """Window t = the `window_seconds` of sound from frame t's timestamp on (module docstring), at most
    `max_seconds` windows, picked as the frame reader picks frames."""
    if not track.has_audio:
        raise ValueError(f"{track.path}: no waveform to window (status {track.status!r}: {track.message})")
    if window_seconds <= 0:
        raise ValueError(f"window_seconds={window_seconds}: expected a positive length")
    rate = 1.0 / window_seconds
    if track.frame_times is not None and len(track.frame_times):
        picks = nearest_frame_indices(track.frame_times, rate, max_seconds)
        starts = track.frame_times[picks]
    else:  # no pictures: whole windows over the track itself
        count = max(1, math.ceil(track.duration / window_seconds - TAIL_TOLERANCE_S / window_seconds))
        picks = nearest_frame_indices(np.arange(count) * window_seconds, rate, max_seconds)
        starts = track.start_time + np.asarray(picks, dtype=np.float64) * window_seconds
    length = round(window_seconds * track.sample_rate)
    first = np.round((np.asarray(starts) - track.start_time) * track.sample_rate).astype(int)
    windows = [track.samples[max(0, s):max(0, s + length)] for s in first]
    return AudioWindows(windows, np.asarray(starts, dtype=np.float64), window_seconds, track.sample_rate)


class AudioEncoder:
    """One window of 16 kHz mono sound -> a `dim`-vector. Subclasses give `name`, `dim`, `min_samples` (the shortest
    window they can read) and `_encode_window`; `settings()` is everything that changes their output."""

    name: str = ""
    dim: int = 0
    min_samples: int = 1
    sample_rate: int = SAMPLE_RATE

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{i}" for i in range(self.dim))

    def settings(self) -> dict:
        return {"audio_encoder": self.name, "sample_rate": self.sample_rate}

    def _encode_window(self, window: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def readable(self, windows: AudioWindows) -> torch.Tensor:
        """(T,) bool: which windows hold enough sound for this encoder."""
        return torch.tensor([len(w) >= self.min_samples for w in windows.samples], dtype=torch.bool)

    def encode_windows(self, windows: AudioWindows) -> torch.Tensor:
        """(T, dim) float32; a window shorter than `min_samples` gets a zero row (see `readable`)."""
        if windows.sample_rate != self.sample_rate:
            raise ValueError(f"{self.name}: windows at {windows.sample_rate} Hz, the encoder reads {self.sample_rate}")
        rows = torch.zeros(len(windows), self.dim)
        for t, window in enumerate(windows.samples):
            if len(window) >= self.min_samples:
                rows[t] = self._encode_window(window)
        return rows

    def encode(self, track: AudioTrack, max_seconds: int | None, window_seconds: float = 1.0) -> torch.Tensor:
        """(T, dim): one row per window of `audio_windows(track, max_seconds)`."""
        return self.encode_windows(audio_windows(track, max_seconds, window_seconds))


class EgemapsEncoder(AudioEncoder):
    """openSMILE's eGeMAPS v02 functionals over each window (88 values; module docstring)."""

    name = "egemaps"
    min_samples = SAMPLE_RATE // 10  # shorter windows hold no full 60 ms pitch frame: openSMILE gives NaNs

    def __init__(self) -> None:
        # Imported here: opensmile brings pandas and its native library, which nothing else needs at import time.
        import opensmile

        self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                      feature_level=opensmile.FeatureLevel.Functionals)
        self._names = tuple(self._smile.feature_names)
        self.dim = len(self._names)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._names

    def settings(self) -> dict:
        return super().settings() | {"feature_set": "eGeMAPSv02 functionals",
                                     "opensmile": package_version("opensmile")}

    def _encode_window(self, window: np.ndarray) -> torch.Tensor:
        values = self._smile.process_signal(window, self.sample_rate).to_numpy(dtype=np.float32)[0]
        if not np.isfinite(values).all():
            bad = [n for n, v in zip(self._names, values, strict=True) if not np.isfinite(v)]
            raise ValueError(f"eGeMAPS gave non-finite {bad[:4]} for a {len(window)}-sample window")
        return torch.tensor(values)


HUBERT_MODEL_TYPES = ("hubert", "wav2vec2", "wavlm")


def conv_receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Samples one output frame of a stack of 1-D convolutions reads (HuBERT / wav2vec 2.0's front end: 400)."""
    field_, step = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field_ += (kernel - 1) * step
        step *= stride
    return field_


class HubertEncoder(AudioEncoder):
    """A local HuBERT / wav2vec 2.0 / WavLM checkpoint, mean-pooled last hidden state per window (module docstring).

    `path`: a local folder with config.json and the weights (model.safetensors preferred; a pytorch_model.bin is
    read by transformers with `torch.load(weights_only=True)`). `ignore_unexpected`: key prefixes of weights the
    bare model does not have that may be dropped knowingly (e.g. ("lm_head.",) for a CTC fine-tune's head).
    Inputs are normalised to zero mean and unit variance per window when the folder's preprocessor_config.json says
    `do_normalize` (without one: when the model's feature extractor uses layer norm, as the large models do)."""

    name = "hubert"

    def __init__(self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, ignore_unexpected: Sequence[str] = ()) -> None:
        if path is None:
            raise ValueError("the hubert audio encoder needs path= a local folder (config.json + weights)")
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a local folder; the hubert audio encoder loads a checkpoint "
                                    "from a local folder only (config.json + model.safetensors), never from a hub")
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type not in HUBERT_MODEL_TYPES:
            raise ValueError(f"{folder}: model_type {config.model_type!r}; expected one of {HUBERT_MODEL_TYPES}")
        with without_weight_loading_bar():
            model, info = AutoModel.from_pretrained(folder, local_files_only=True, output_loading_info=True,
                                                    dtype=dtype, weights_only=True)
        missing = sorted(info.get("missing_keys", ()))
        unexpected = sorted(k for k in info.get("unexpected_keys", ())
                            if not any(k.startswith(p) for p in ignore_unexpected))
        wrong = sorted(str(m) for m in info.get("mismatched_keys", ()))
        if missing or unexpected or wrong:
            raise KeyError(f"{folder} does not fit {type(model).__name__}: {len(missing)} missing {missing[:6]}, "
                           f"{len(unexpected)} unexpected {unexpected[:6]}, {len(wrong)} wrong shape {wrong[:6]}")
        self.path = str(folder)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.dim = int(config.hidden_size)
        self.min_samples = conv_receptive_field(config.conv_kernel, config.conv_stride)
        self.normalize = self._normalize_setting(folder, config)

    @staticmethod
    def _normalize_setting(folder: Path, config) -> bool:
        preprocessor = folder / "preprocessor_config.json"
        if preprocessor.is_file():
            return bool(json.loads(preprocessor.read_text()).get("do_normalize", False))
        return getattr(config, "feat_extract_norm", "group") == "layer"

    def settings(self) -> dict:
        return super().settings() | {"weights": module_fingerprint(self.model), "normalize": self.normalize}

    @torch.no_grad()
    def _encode_window(self, window: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(window, dtype=torch.float32)
        if self.normalize:  # as transformers' Wav2Vec2FeatureExtractor does
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
        dtype = next(self.model.parameters()).dtype
        hidden = self.model(x[None].to(self.device, dtype)).last_hidden_state  # (1, frames, hidden)
        return hidden[0].float().mean(dim=0).cpu()


class TinyAudioNet(nn.Module):
    """Two strided 1-D convolutions and a time average: (B, samples) -> (B, dim)."""

    kernels, strides = (400, 3), (160, 2)

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(nn.Conv1d(1, width, self.kernels[0], self.strides[0]), nn.GELU(),
                                   nn.Conv1d(width, dim, self.kernels[1], self.strides[1]))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.convs(audio[:, None]).mean(dim=-1)


class TinyAudioEncoder(AudioEncoder):
    """Random weights drawn from `seed` alone (whatever the global RNG state): tests and the tiny stack only."""

    name = "tiny"
    min_samples = conv_receptive_field(TinyAudioNet.kernels, TinyAudioNet.strides)

    def __init__(self, dim: int = 16, width: int = 8, seed: int = 0) -> None:
        self.dim, self.seed = dim, seed
        self.model = TinyAudioNet(dim, width)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.model.parameters():
                fan_in = p[0].numel() if p.ndim > 1 else 1
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
        self.model.eval().requires_grad_(False)

    def settings(self) -> dict:
        return super().settings() | {"weights": module_fingerprint(self.model)}

    @torch.no_grad()
    def _encode_window(self, window: np.ndarray) -> torch.Tensor:
        return self.model(torch.as_tensor(window, dtype=torch.float32)[None])[0]


AUDIO_ENCODERS: dict[str, Callable[..., AudioEncoder]] = {
    "egemaps": EgemapsEncoder,
    "hubert": HubertEncoder,
    "tiny": TinyAudioEncoder,
}


def get_audio_encoder(name: str = "egemaps", **options) -> AudioEncoder:
    if name not in AUDIO_ENCODERS:
        raise ValueError(f"unknown audio encoder {name!r}; choose one of {sorted(AUDIO_ENCODERS)}")
    return AUDIO_ENCODERS[name](**options)


@dataclass(frozen=True)
class AudioFeatures:
    """One media file's audio features: `features` (T, D) float32 and `valid` (T,) bool (the window held enough
    sound for the encoder; a False row is zeros), `starts` (T,) window starts (s); T = 0 unless status is "ok"."""

    features: torch.Tensor
    valid: torch.Tensor
    starts: torch.Tensor
    status: str
    message: str

    # As a feature store's record (features.store.FeatureStore(record=AudioFeatures)): the tensors it keeps and
    # the one text next to them (status and message, as JSON). Nothing is stored in float16: eGeMAPS values
    # span many orders of magnitude.
    STORED = ("features", "valid", "starts")
    HALF = ()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.STORED}

    @property
    def store_text(self) -> str:
        return json.dumps({"status": self.status, "message": self.message})

    @classmethod
    def from_store(cls, tensors: dict[str, torch.Tensor], text: str) -> AudioFeatures:
        note = json.loads(text)
        return cls(**tensors, status=note["status"], message=note["message"])

    @staticmethod
    def stored_status(text: str) -> str:
        """The status from a store's text alone (`store_text`), without reading the tensors."""
        return json.loads(text)["status"]


def extract_audio(path: str | os.PathLike, encoder: AudioEncoder, max_seconds: int | None,
                  window_seconds: float = 1.0) -> AudioFeatures:
    """Decode, window and encode one media file's sound; a file without usable sound comes back with T = 0 and
    its status ("silent", "no_audio_track", "unreadable"), never with invented features."""
    track = load_audio(path, encoder.sample_rate)
    if track.status != "ok":
        return AudioFeatures(torch.zeros(0, encoder.dim), torch.zeros(0, dtype=torch.bool),
                             torch.zeros(0, dtype=torch.float64), track.status, track.message)
    windows = audio_windows(track, max_seconds, window_seconds)
    return AudioFeatures(encoder.encode_windows(windows), encoder.readable(windows),
                         torch.from_numpy(windows.starts), track.status, track.message)


AUDIO_FEATURE_VERSION = "1"


class AudioExtractor:
    """media path -> AudioFeatures with one window per kept frame: the audio counterpart of
    `features.extractor.FeatureExtractor`, so the same on-disk store keeps, resumes and shards it
    (`FeatureStore.for_extractor(AudioExtractor(...))`, keyed on `settings()`)."""

    record = AudioFeatures
    crops_faces = False  # the store key leaves the face detector out

    def __init__(self, encoder: AudioEncoder, max_frames: int = 8, fps: float = 1.0):
        self.encoder, self.max_frames, self.fps = encoder, max_frames, fps

    def settings(self) -> dict:
        """Everything that changes an audio feature (the store key hashes this)."""
        return {"stack": f"audio-{self.encoder.name}", "encoder": self.encoder.settings(),
                "max_frames": self.max_frames, "window_seconds": 1.0 / self.fps, "version": AUDIO_FEATURE_VERSION,
                "pyav": package_version("av")}

    def extract_uncached(self, media: str | os.PathLike) -> AudioFeatures:
        """Never raises for a media problem (its status says it); a transient OS error passes through."""
        return extract_audio(media, self.encoder, self.max_frames, 1.0 / self.fps)


# ----- the voice as words: a clue an LLM can read (MERR's audio_prior_list, the reason instruction) ----------------

# The eGeMAPS functionals a listener names, each with the words for "above" and "below" the reference voice.
VOICE_CUES = (
    ("F0semitoneFrom27.5Hz_sma3nz_amean", "high-pitched", "low-pitched"),
    ("F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2", "wide-ranging", "monotonous"),
    ("loudness_sma3_amean", "loud", "soft"),
    ("loudnessPeaksPerSec", "fast", "slow"),  # syllable-rate proxy (VoicedSegmentsPerSec counts pauses too)
)


@dataclass(frozen=True)
class VoiceReference:
    """Mean and spread of each `VOICE_CUES` functional over a set of voices (a dataset's clips): a voice is
    described relative to it, as a listener would ("higher than these speakers usually are")."""

    columns: tuple[int, ...]
    mean: np.ndarray
    spread: np.ndarray

    @classmethod
    def fit(cls, clips: Sequence[tuple[torch.Tensor, torch.Tensor]], feature_names: Sequence[str]) -> VoiceReference:
        """From (features (T, 88), valid (T,)) per clip of eGeMAPS windows: each clip's mean over its windows with
        sound counts once. Raises when the features are not eGeMAPS or fewer than 2 clips have sound."""
        missing = [name for name, *_ in VOICE_CUES if name not in feature_names]
        if missing:
            raise ValueError(f"the voice is described from eGeMAPS functionals; these features lack {missing[:2]}")
        columns = tuple(list(feature_names).index(name) for name, *_ in VOICE_CUES)
        rows = np.array([clip_mean(f, v)[list(columns)] for f, v in clips if bool(v.any())])
        if len(rows) < 2:
            raise ValueError(f"{len(rows)} clips with sound: a voice reference needs at least 2")
        return cls(columns, rows.mean(0), np.maximum(rows.std(0, ddof=1), 1e-6))


def clip_mean(features: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """One clip's features averaged over its windows with sound (float64)."""
    return features[valid.bool()].double().mean(0).numpy()


def describe_voice(features: torch.Tensor, valid: torch.Tensor, reference: VoiceReference,
                   threshold: float = 0.5) -> str | None:
    """The clip's voice in words relative to `reference`, e.g. "a high-pitched, loud and fast voice"; "an
    ordinary voice" when no cue is `threshold` spreads from the reference; None when no window has sound (no
    clue, never a guessed one)."""
    if not bool(valid.any()):
        return None
    z = (clip_mean(features, valid)[list(reference.columns)] - reference.mean) / reference.spread
    words = [up if value > 0 else down for value, (_, up, down) in zip(z, VOICE_CUES) if abs(value) >= threshold]
    if not words:
        return "an ordinary voice"
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"a {listed} voice"
