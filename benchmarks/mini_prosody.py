"""Does mini's speech carry the emotion the way the vocal-emotion literature says? An independent measure (openSMILE's
eGeMAPS) reads mini's clips and each class is compared with neutral.

    .venv/bin/python benchmarks/mini_prosody.py [--seed 0] [--root DIR]

mini's clips (`emo_llama.data.mini.build`, v5) speak a lexically neutral sentence with eSpeak NG, the prosody drawn
around a row per class (`emo_llama.data.mini.speech.PROSODY`). Here the sound is read back from the MP4 files as
any dataset's would be (`emo_llama.features.audio.load_audio`: decoded AAC, 16 kHz mono), cut to its first saying
of the sentence (`first_saying`: the pauses between sayings would dilute rate and loudness) and described by
eGeMAPS v02 functionals over it:
- F0 mean: F0semitoneFrom27.5Hz_sma3nz_amean (semitones);
- F0 range: F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2 (20th to 80th percentile, semitones);
- loudness: loudness_sma3_amean (auditory loudness, sone);
- rate: loudnessPeaksPerSec (loudness peaks per second, eGeMAPS' syllable-rate proxy);
- HF energy: alphaRatioV_sma3nz_amean (dB, energy 1-5 kHz over 50 Hz-1 kHz in voiced frames: higher = more
  high-frequency energy, a tenser voice);
- HNR: HNRdBACF_sma3nz_amean (dB, harmonics-to-noise ratio: lower = breathier, rougher, more irregular voicing).
Every identity speaks with its own voice (male or female, several accents), which moves F0 by up to an octave;
each value is therefore centred on its speaker (minus the mean over that speaker's clips, all classes) before the
class means are taken. Then, for every cue and class the literature gives a direction for (`EXPECTED`, sources in
`emo_llama.data.mini.speech`), the sign of (class mean - neutral mean) is compared with it. The table also shows
the direction the prosody table itself intended (from its rows), so that a failure says whether the table or the
synthesiser disagrees with the literature. The last line sums up.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from emo_llama.data.labels import MINI_CLASSES
from emo_llama.data.mini.build import ensure_mini, load_mini
from emo_llama.data.mini.speech import DESCRIBE_STEPS, PROSODY, voice_for
from emo_llama.features.audio import AudioWindows, get_audio_encoder, load_audio

# cue -> (eGeMAPS column, unit)
CUES = {
    "F0 mean": ("F0semitoneFrom27.5Hz_sma3nz_amean", "st"),
    "F0 range": ("F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2", "st"),
    "loudness": ("loudness_sma3_amean", "sone"),
    "rate": ("loudnessPeaksPerSec", "/s"),
    "HF energy": ("alphaRatioV_sma3nz_amean", "dB"),
    "HNR": ("HNRdBACF_sma3nz_amean", "dB"),
}

# (cue, class) -> (direction vs neutral, source). BS: Banse & Scherer 1996; JL: Juslin & Laukka 2003 (Table 11);
# MA: Murray & Arnott 1993; GN: Gobl & Ni Chasaide 2003; "-": no source (surprise, speech.py says why).
EXPECTED: dict[tuple[str, str], tuple[int, str]] = {
    ("F0 mean", "happiness"): (+1, "JL, BS"), ("F0 mean", "sadness"): (-1, "JL, BS"),
    ("F0 mean", "surprise"): (+1, "-"), ("F0 mean", "fear"): (+1, "JL, BS"),
    ("F0 mean", "anger"): (+1, "JL, BS"), ("F0 mean", "disgust"): (-1, "MA"),
    ("F0 range", "happiness"): (+1, "JL"), ("F0 range", "sadness"): (-1, "JL, BS"),
    ("F0 range", "surprise"): (+1, "-"), ("F0 range", "fear"): (-1, "JL (MA: +)"),
    ("F0 range", "anger"): (+1, "JL, BS"),
    ("loudness", "happiness"): (+1, "JL"), ("loudness", "sadness"): (-1, "JL, BS"),
    ("loudness", "surprise"): (+1, "-"), ("loudness", "anger"): (+1, "JL, BS"),
    ("loudness", "disgust"): (-1, "MA"),
    ("rate", "happiness"): (+1, "JL"), ("rate", "sadness"): (-1, "JL, BS"), ("rate", "fear"): (+1, "JL"),
    ("rate", "anger"): (+1, "JL"), ("rate", "disgust"): (-1, "MA"),
    ("HF energy", "anger"): (+1, "JL, BS"), ("HF energy", "sadness"): (-1, "JL, BS"),
    ("HF energy", "fear"): (-1, "JL"),
    ("HNR", "fear"): (-1, "JL, GN"), ("HNR", "sadness"): (-1, "JL, GN"), ("HNR", "disgust"): (-1, "MA"),
}

# What each voice quality of speech.QUALITIES is meant to do to the two voice-quality cues.
QUALITY_INTENT = {"tense": {"HF energy": +1}, "lax": {"HF energy": -1, "HNR": -1},
                  "whispery": {"HF energy": -1, "HNR": -1}, "creaky": {"HNR": -1}}
# The prosody parameter behind each prosodic cue, and how far from neutral counts as a direction.
PARAMETER = {"F0 mean": "pitch", "F0 range": "range", "loudness": "volume", "rate": "rate"}


def intended(cue: str, label: str) -> int:
    """The direction (vs neutral) that speech.PROSODY's row means for `cue`: 0 where the row stays within one
    description step of neutral, or where its quality does not aim at the cue."""
    row, neutral = PROSODY[label], PROSODY["neutral"]
    if cue in PARAMETER:
        name = PARAMETER[cue]
        value, base, step = getattr(row, name), getattr(neutral, name), getattr(DESCRIBE_STEPS, name)
        change = value - base if name in ("pitch", "range") else value / base - 1
        return int(np.sign(change)) if abs(change) >= step else 0
    return QUALITY_INTENT.get(row.quality, {}).get(cue, 0)


def first_saying(samples: np.ndarray, sample_rate: int, frame_s: float = 0.02, floor: float = 0.01,
                 pause_s: float = 0.2) -> np.ndarray:
    """The first stretch of speech: from the first 20 ms frame whose RMS is above `floor` of the loudest frame's to
    the first pause of `pause_s` or more after it (mini's sentences have no inner pause that long; its clips say
    the sentence again after one), so that rate and loudness are not diluted by the pauses between sayings."""
    size = int(frame_s * sample_rate)
    frames = samples[: len(samples) // size * size].reshape(-1, size)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    loud = rms > floor * rms.max()
    first = int(np.argmax(loud))
    quiet_run, end = 0, len(loud)
    for i in range(first, len(loud)):
        quiet_run = 0 if loud[i] else quiet_run + 1
        if quiet_run * frame_s >= pause_s:
            end = i - quiet_run + 1
            break
    return samples[first * size:end * size]


def measure(root: Path, seed: int) -> tuple[dict[str, list[dict[str, float]]], dict[str, int]]:
    """label -> one {cue: speaker-centred value} per clip; and the decode statuses."""
    encoder = get_audio_encoder("egemaps")
    columns = {cue: encoder.feature_names.index(name) for cue, (name, _) in CUES.items()}
    rows, statuses = [], defaultdict(int)
    for split in ("train", "test"):
        for sample in load_mini(root, split=split, part="videos"):
            track = load_audio(sample.media)
            statuses[track.status] += 1
            if track.status != "ok":
                continue
            speech = first_saying(track.samples, track.sample_rate)
            window = AudioWindows([speech], np.zeros(1), len(speech) / track.sample_rate, track.sample_rate)
            values = encoder.encode_windows(window)[0].numpy()
            rows.append((sample.label, voice_for(sample.identity, seed).name,
                         {cue: float(values[i]) for cue, i in columns.items()}))
    by_speaker = defaultdict(list)
    for _, speaker, values in rows:
        by_speaker[speaker].append(values)
    centre = {s: {cue: float(np.mean([v[cue] for v in vs])) for cue in CUES} for s, vs in by_speaker.items()}
    per_class: dict[str, list[dict[str, float]]] = defaultdict(list)
    for label, speaker, values in rows:
        per_class[label].append({cue: values[cue] - centre[speaker][cue] for cue in CUES})
    return per_class, dict(statuses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="mini build seed (default 0)")
    ap.add_argument("--root", type=Path, default=None, help="a built mini folder (default: ensure_mini(seed))")
    args = ap.parse_args()
    start = time.perf_counter()
    root = args.root or ensure_mini(seed=args.seed)
    info = json.loads((root / "BUILD_INFO.json").read_text())
    print(f"mini v{info['version']} seed {info['seed']} at {root}; speech: {info['speech']['engine']}")
    per_class, statuses = measure(root, info["seed"])
    print(f"clips read: {statuses} (eGeMAPS v02 over each clip's speech, centred on its speaker)\n")

    header = f"{'class':10s} {'n':>3s}" + "".join(f" {cue + ' (' + unit + ')':>15s}" for cue, (_, unit) in CUES.items())
    print(header)
    means = {}
    for label in MINI_CLASSES:
        clips = per_class.get(label, [])
        means[label] = {cue: float(np.mean([c[cue] for c in clips])) if clips else float("nan") for cue in CUES}
        print(f"{label:10s} {len(clips):3d}" + "".join(f" {means[label][cue]:+15.2f}" for cue in CUES))

    print(f"\n{'cue':10s} {'class':10s} {'vs neutral':>11s}  literature  source        table  holds")
    held = 0
    for (cue, label), (direction, source) in EXPECTED.items():
        difference = means[label][cue] - means["neutral"][cue]
        holds = np.sign(difference) == direction
        held += bool(holds)
        sign = "+" if direction > 0 else "-"
        meant = {1: "+", -1: "-", 0: "0"}[intended(cue, label)]
        print(f"{cue:10s} {label:10s} {difference:+11.2f}  {sign:>10s}  {source:12s}  {meant:>5s}  "
              f"{'yes' if holds else 'NO'}")
    print(f"\n({time.perf_counter() - start:.0f} s)")
    print(f"summary: {held} of {len(EXPECTED)} expected directions hold")


if __name__ == "__main__":
    main()
