"""Crop every image or clip of a dataset once and keep the crops on disk.

Each media item becomes one `.npz` (no pickles) holding its crops and detections. Finished items
are skipped on the next call, and a file only appears under its final name once it is complete,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from emo_llama.faces.cropper import FaceCropper
from emo_llama.faces.video import MediaError, load_frames
from emo_llama.utils import atomic_path


@dataclass
class CropCacheSummary:
    items: int = 0
    cropped: int = 0  # items processed in this call
    skipped_existing: int = 0  # items already on disk from an earlier call
    unreadable: int = 0  # items whose media could not be decoded (see `errors`)
    frames: int = 0
    faces_found: int = 0
    faces_missing: int = 0
    missing_examples: list[str] = field(default_factory=list)  # "item#frame", first few
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.items} items ({self.cropped} cropped now, {self.skipped_existing} already cached, "
                f"{self.unreadable} unreadable); {self.frames} frames: {self.faces_found} faces found, "
                f"{self.faces_missing} without a face")


def item_key(item) -> str:
    """File-name-safe key: a sample's `id` when it has one, else the media path."""
    raw = str(getattr(item, "id", None) or getattr(item, "media", item))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_")


def load_cached_crops(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def cache_crops(items: Iterable, out_dir: str | os.PathLike, cropper: FaceCropper, fps: float = 1.0,
                max_frames: int | None = 16, progress: bool = True) -> CropCacheSummary:
    """Crop each item (a media path, or an object with `.media` and `.id`) into `out_dir/<key>.npz`.

    Arrays per item: `crops` (T, S, S, 3) uint8 (zeros where no face), `found` (T,) bool,
    `boxes` (T, 4), `landmarks_5` (T, 5, 2), `probs` (T,) — NaN where no face.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = list(items)
    summary = CropCacheSummary(items=len(items))
    size = cropper.config.size
    for item in tqdm(items, desc="cropping faces", disable=not progress):
        key = item_key(item)
        final = out_dir / f"{key}.npz"
        if final.exists():
            summary.skipped_existing += 1
            found = load_cached_crops(final)["found"]
        else:
            try:
                frames = load_frames(getattr(item, "media", item), fps=fps, max_frames=max_frames)
            except MediaError as err:
                summary.unreadable += 1
                summary.errors.append(str(err))
                continue
            results = cropper.crop(frames)
            found = np.array([r.found for r in results])
            arrays = {
                "crops": np.stack([r.crop if r.crop is not None else np.zeros((size, size, 3), np.uint8)
                                   for r in results]),
                "found": found,
                "boxes": np.stack([r.box if r.found else np.full(4, np.nan) for r in results]),
                "landmarks_5": np.stack([r.landmarks_5 if r.found else np.full((5, 2), np.nan) for r in results]),
                "probs": np.array([r.prob if r.found else np.nan for r in results]),
            }
            with atomic_path(final) as tmp:
                with open(tmp, "wb") as fh:  # a file handle stops numpy from appending another .npz
                    np.savez_compressed(fh, **arrays)
            summary.cropped += 1
        summary.frames += len(found)
        summary.faces_found += int(found.sum())
        summary.faces_missing += int((~found).sum())
        for t in np.flatnonzero(~found)[: max(0, 5 - len(summary.missing_examples))]:
            summary.missing_examples.append(f"{key}#{t}")
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(asdict(summary), indent=1))
    return summary
