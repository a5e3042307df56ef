"""Sound next to the face, for notebook 07: a clip's waveform under its frames, and eGeMAPS cues by class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from emo_llama.features.audio import VOICE_CUES, AudioFeatures, AudioTrack, audio_windows, clip_mean


def plot_clip_sound(track: AudioTrack, crops: np.ndarray, max_seconds: int | None = 8, title: str = ""):
    """The clip's face crops (one per kept frame) above its waveform, each frame's one-second window shaded:
    window t is the sound that goes with frame t (`audio_windows`)."""
    windows = audio_windows(track, max_seconds)
    frames = len(crops)
    fig = plt.figure(figsize=(1.6 * max(frames, 4), 3.4))
    grid = fig.add_gridspec(2, frames, height_ratios=(1, 1.1))
    for t in range(frames):
        ax = fig.add_subplot(grid[0, t])
        ax.imshow(crops[t])
        ax.set_axis_off()
        ax.set_title(f"frame {t} ({windows.starts[t]:.0f} s)" if t < len(windows) else f"frame {t}", fontsize=8)
    ax = fig.add_subplot(grid[1, :])
    times = track.start_time + np.arange(len(track.samples)) / track.sample_rate
    ax.plot(times, track.samples, lw=0.4, color="black")
    for t, start in enumerate(windows.starts):
        ax.axvspan(start, start + windows.window_seconds, color=f"C{t % 10}", alpha=0.15)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_xlim(times[0] if len(times) else 0, times[-1] if len(times) else 1)
    fig.suptitle(title or track.path, fontsize=10)
    fig.tight_layout()
    return fig


def voice_cue_table(clips: Mapping[str, Sequence[AudioFeatures]], feature_names: Sequence[str]) -> dict:
    """{class: {cue: (mean, std over clips)}} of the `VOICE_CUES` eGeMAPS functionals, each clip's windows with
    sound averaged first (a clip counts once). Classes whose clips have no sound are left out."""
    columns = {name: list(feature_names).index(name) for name, *_ in VOICE_CUES}
    table = {}
    for label, feats in clips.items():
        rows = np.array([clip_mean(f.features, f.valid) for f in feats if bool(f.valid.any())])
        if len(rows):
            table[label] = {name: (float(rows[:, j].mean()), float(rows[:, j].std())) for name, j in columns.items()}
    return table


CUE_LABELS = {
    "F0semitoneFrom27.5Hz_sma3nz_amean": "pitch (semitones above 27.5 Hz)",
    "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2": "pitch range (semitones, 20th-80th pct)",
    "loudness_sma3_amean": "loudness (sones)",
    "loudnessPeaksPerSec": "loudness peaks per second (rate)",
}


def plot_voice_cues(table: Mapping[str, Mapping[str, tuple[float, float]]], title: str = ""):
    """One panel per voice cue: each class's mean over its clips, ± std."""
    cues = [name for name, *_ in VOICE_CUES]
    labels = list(table)
    fig, axes = plt.subplots(1, len(cues), figsize=(3.3 * len(cues), 3.2))
    for ax, cue in zip(axes, cues):
        means = [table[c][cue][0] for c in labels]
        stds = [table[c][cue][1] for c in labels]
        ax.bar(range(len(labels)), means, yerr=stds, color=[f"C{i}" for i in range(len(labels))], alpha=0.8)
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(CUE_LABELS.get(cue, cue), fontsize=9)
        low = min(m - s for m, s in zip(means, stds))
        high = max(m + s for m, s in zip(means, stds))
        ax.set_ylim(low - 0.1 * (high - low), high + 0.1 * (high - low))
    fig.suptitle(title or "eGeMAPS voice cues by class (mean ± std over clips)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_voice_curves(clips: Mapping[str, Sequence[AudioFeatures]], feature_names: Sequence[str],
                      cues: Sequence[str] = ("F0semitoneFrom27.5Hz_sma3nz_amean", "loudness_sma3_amean")):
    """Per cue, each class's mean over its clips of the cue in window t (second t of the clip): how the voice runs
    through a clip, class by class. A window without sound is left out of its mean."""
    fig, axes = plt.subplots(1, len(cues), figsize=(4.2 * len(cues), 3.2))
    for ax, cue in zip(np.atleast_1d(axes), cues):
        j = list(feature_names).index(cue)
        for k, (label, feats) in enumerate(clips.items()):
            length = max(len(f.valid) for f in feats)
            values = np.full((len(feats), length), np.nan)
            for i, f in enumerate(feats):
                rows = f.features[:, j].numpy().copy()
                rows[~f.valid.numpy()] = np.nan
                values[i, : len(rows)] = rows
            counts = np.sum(~np.isnan(values), axis=0)
            mean = np.nansum(values, axis=0) / np.maximum(counts, 1)
            shown = counts > 0
            ax.plot(np.arange(length)[shown], mean[shown], "o-", color=f"C{k}", label=label, lw=1.4, ms=3)
        ax.set_xlabel("second of the clip (window t, with frame t)")
        ax.set_title(CUE_LABELS.get(cue, cue), fontsize=9)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, ncol=2)
    fig.suptitle("eGeMAPS per one-second window, mean over each class's clips", fontsize=10)
    fig.tight_layout()
    return fig
