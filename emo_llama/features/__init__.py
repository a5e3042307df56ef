"""Frozen features, computed once: one extractor and where its results are kept (notebooks 03 and 05).

- `extractor`: media -> frames (1 FPS) -> face crops -> vision encoder + facial expert -> `MediaFeatures`;
  `FeatureExtractor.settings()` is everything that changes a feature, and both caches key on it;
- `store`: the sharded, resumable, memory-mapped on-disk store that training reads (one chunk file per 64 media);
  the extractor's own per-media cache serves single media (`EmoLlama.answer`, notebooks, the real-face check);
- `synthetic`: random frozen features with learnable classes, for the tiny stack's tests.
"""

from emo_llama.features.extractor import FeatureExtractor, MediaFeatures
from emo_llama.features.store import FeatureStore, LazyFeatures, extract_to_store

__all__ = ["FeatureExtractor", "FeatureStore", "LazyFeatures", "MediaFeatures", "extract_to_store"]
