"""Frozen features, computed once: one extractor and where its results are kept (notebooks 03 and 05).

- `extractor`: media -> frames (1 FPS) -> face crops -> vision encoder + facial expert -> `MediaFeatures`;
  `FeatureExtractor.settings()` is everything that changes a feature, and both caches key on it;
- `store`: the sharded, resumable, memory-mapped on-disk store that training reads (one chunk file per 64 media);
  the extractor's own per-media cache serves single media (`EmoLlama.answer`, notebooks, the real-face check);
- `synthetic`: random frozen features with learnable classes, for the tiny stack's tests;
- `audio`: a media file's sound (PyAV, 16 kHz mono, a named status when there is none), one window per kept frame,
  and the audio encoders by name (`AUDIO_ENCODERS`: egemaps, hubert, tiny); `AudioExtractor` puts them in the
  same kind of store (`extract_audio_to_store`), and `WithAudio` joins the two banks for a model that hears.
"""

from emo_llama.features.audio import (
    AUDIO_ENCODERS,
    AudioEncoder,
    AudioExtractor,
    AudioFeatures,
    AudioTrack,
    audio_windows,
    extract_audio,
    get_audio_encoder,
    load_audio,
)
from emo_llama.features.extractor import FeatureExtractor, MediaFeatures
from emo_llama.features.store import (
    FeatureStore,
    LazyFeatures,
    WithAudio,
    audio_report,
    extract_audio_to_store,
    extract_to_store,
)

__all__ = ["AUDIO_ENCODERS", "AudioEncoder", "AudioExtractor", "AudioFeatures", "WithAudio", "audio_report",
           "extract_audio_to_store", "AudioTrack", "FeatureExtractor", "FeatureStore",
           "LazyFeatures", "MediaFeatures", "audio_windows", "extract_audio", "extract_to_store", "get_audio_encoder",
           "load_audio"]
