"""The six benchmarks in their official layouts (`image_sets`: RAF-DB, AffectNet, FERPlus; `video_sets`: DFEW,
FERV39K, MAFW) and what every dataset shares (`base`: Sample, FERDataset, the named errors, the registry)."""
