"""MERR-style clue records for any dataset, from the clues the kit computes itself (Emotion-LLaMA's MERR, issue 25).

Emotion-LLaMA's MERR describes each clip by its facial Action Units at the peak frame, the tone of the voice and
the words spoken, and an LLM writes a reason from them. Its public code reads these from files made by scripts
users cannot run (OpenFace, MER-Factory). Here every clue comes from the kit's own frozen features:

- Action Units: `expert.au_geometry.geometric_aus` on the expert's 68 landmarks, against a neutral reference fitted
  on the dataset's neutral training faces (`neutral_reference`); the peak frame is the one whose AUs are strongest;
  the AUs named are that frame's strongest, above `threshold` neutral spreads (AU6, AU10 and the fine lip AUs are
  not measurable from 68 points: `au_geometry.NOT_MEASURABLE`);
- the voice: `features.audio.describe_voice` on eGeMAPS windows, relative to the dataset's own clips
  (`features.audio.VoiceReference`); no sound, no voice clue;
- the words spoken: `Sample.text`, where the dataset gives it.

`merr_records(...)` writes them in MERR's layout (`data.text.merr.merr_record`, then `write_merr_json`), so a
dataset without MERR annotations gets them, and Emotion-LLaMA-style tools read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from emo_llama.data.datasets.base import Sample
from emo_llama.data.text.merr import merr_record
from emo_llama.expert.au_geometry import NeutralReference, geometric_aus
from emo_llama.features.audio import VoiceReference, describe_voice


@dataclass(frozen=True)
class Clues:
    """What the kit reads off one media: AUs at the peak frame (strongest first), that frame, the voice in words."""

    aus: tuple[str, ...]          # e.g. ("AU12", "AU25")
    peak_index: int | None        # None: no frame with a face
    voice: str | None             # None: no sound (or features that are not eGeMAPS)


def neutral_reference(samples: Sequence[Sample], bank: Mapping) -> NeutralReference:
    """The population neutral of a dataset: the landmarks of its neutral samples' frames with a face."""
    frames = []
    for s in samples:
        if s.label == "neutral" and str(s.media) in bank:
            feats = bank[str(s.media)]
            frames += [feats.landmarks_68[t].numpy() for t in range(feats.num_frames) if bool(feats.face_found[t])]
    if len(frames) < 2:
        raise ValueError(f"{len(frames)} neutral frames with a face: the AU estimates need a neutral reference")
    return NeutralReference.fit(np.stack(frames))


def media_clues(feats, au_reference: NeutralReference, voice_reference: VoiceReference | None = None,
                threshold: float = 1.0, k: int = 3) -> Clues:
    """The clues of one media's frozen features (`MediaFeatures`, with its sound attached for a voice clue)."""
    estimates = geometric_aus(feats.landmarks_68.numpy(), au_reference, feats.face_found.numpy())
    peak, aus = None, ()
    if estimates.valid.any():
        strength = np.where(estimates.valid, np.nansum(np.clip(estimates.intensities, 0, None), axis=1), -np.inf)
        peak = int(np.argmax(strength))
        aus = tuple(name for name, _ in estimates.top(peak, k, threshold))
    voice = None
    if voice_reference is not None and feats.audio.shape[-1]:
        voice = describe_voice(feats.audio, feats.audio_valid, voice_reference)
    return Clues(aus, peak, voice)


def merr_records(samples: Sequence[Sample], bank: Mapping, au_reference: NeutralReference,
                 voice_reference: VoiceReference | None = None, threshold: float = 1.0) -> list[dict]:
    """MERR-layout records (each {sample id: {...}}, as `write_merr_json` takes them) of every sample whose
    features are in `bank`, from computed clues.

    The label is the dataset's (MERR's `pseu_emotion`); there is no reason text (MERR's is an LLM's, written from
    these clues). Samples missing from `bank` (unreadable media) are left out; see the bank's errors for why."""
    records = []
    for s in samples:
        if str(s.media) not in bank:
            continue
        clues = media_clues(bank[str(s.media)], au_reference, voice_reference, threshold)
        records.append(merr_record(s.id, s.label, clues.aus, audio_clue=clues.voice, text=s.text,
                                   peak_index=clues.peak_index))
    return records
