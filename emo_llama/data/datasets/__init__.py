"""The benchmarks in their official layouts (`image_sets`: RAF-DB, AffectNet, FERPlus; `video_sets`: DFEW,
FERV39K, MAFW; `zero_shot_sets`: MELD, MER2023, CASME II, CMMA, the sets the paper evaluates zero-shot) and
what every dataset shares (`base`: Sample, FERDataset, the named errors, the registry)."""
