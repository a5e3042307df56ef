"""The on-disk feature store: sharded, resumable extraction and memory-mapped reads of frozen features.

A training run no longer holds the frozen features of its dataset in RAM. Every process extracts its
share of the media into chunk files of `chunk_size` media (safetensors, one file per chunk, written
atomically); a killed extraction resumes where it stopped, because a chunk whose file exists is
skipped. Reads go through safetensors' memory map, one media at a time, as the training loop asks.

Layout: `<root>/<key>/chunk-<digest>.safetensors`, where
- `key` hashes everything that changes a feature (`store_settings`): the stack name and options, a
  fingerprint of the frozen vision encoder's and facial expert's weights (their tensors' bytes), the
  face detector's package version, fps, max_frames, crop margin and size, the feature code version
  (`extractor.FEATURE_VERSION`), the store format and the storage dtype; `settings.json` next to the
  chunks spells it out;
- a chunk's `digest` hashes its members' identities (path, size, mtime), so a chunk is rebuilt when
  one of its files changes, and the same dataset list always plans the same chunks.
Chunk c of the plan belongs to process c % world: the share does not depend on which chunks exist, so
2 processes resuming a 1-process extraction split the rest between them.

Storage dtype: vision and face tokens (nearly all the bytes) are float16 unless a value would overflow
it (then that chunk keeps float32); landmarks, age and gender stay float32, masks bool, crops uint8.
Reads return float32 tensors, so the model computes in the same dtype as before. The loss, measured on
mini test with the offline stack by `benchmarks/bench_fp16_store.py`: relative error at most 4.9e-4 per token
value (fp16's rounding, 2**-11), nothing flushed to zero, and a trained model's 216 answers identical to those
from fp32 tokens, at 302 instead of 542 KiB per sample on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from emo_llama.faces.video import MediaError
from emo_llama.features.extractor import FeatureExtractor, MediaFeatures
from emo_llama.progress import progress as progress_bar
from emo_llama.utils import atomic_path, model_cache_dir

STORE_VERSION = "1"
HALF_FIELDS = ("vision_tokens", "face_tokens")
FP16_MAX = 65504.0
TENSOR_FIELDS = ("vision_tokens", "face_tokens", "landmarks_68", "au_masks", "face_found", "age_years",
                 "gender_probs", "crops")


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def store_settings(extractor: FeatureExtractor, half: bool = True) -> dict:
    """Everything that changes a stored feature (the store key hashes this): the extractor's settings
    (stack name and options, weight fingerprints, fps, max_frames, crop, code version) and the store's."""
    return extractor.settings() | {
        "face_detector": f"facenet-pytorch {_package_version('facenet-pytorch')}",
        "store_version": STORE_VERSION, "token_dtype": "float16" if half else "float32",
    }


def media_identity(path: str | Path) -> str:
    """path|size|mtime_ns of a file; for a folder of frames the same over its files (cheap: no bytes read)."""
    p = Path(path)
    try:
        if p.is_dir():
            parts = sorted(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in p.iterdir() if f.is_file())
            return f"{p}|dir|{hashlib.sha256(';'.join(parts).encode()).hexdigest()[:16]}"
        st = p.stat()
        return f"{p}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return f"{p}|missing"


class FeatureStore(Mapping):
    """media path (str) -> MediaFeatures, read from memory-mapped chunk files; `fill` extracts what is missing.

    A Mapping over the planned media that could be read: `store[path]`, `path in store`, `len(store)`.
    `agr(path)` and `face_found(path)` read one small entry without loading the tokens. `errors` maps each
    unreadable media path to why.
    """

    def __init__(self, root: str | Path, settings: dict, chunk_size: int = 64, half: bool = True,
                 max_open: int = 32):
        self.settings, self.chunk_size, self.half, self.max_open = settings, chunk_size, half, max_open
        self.key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.dir = Path(root) / f"{settings.get('stack', 'stack')}-{self.key}"
        self._index: dict[str, tuple[str, int]] = {}
        self._agr: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self._handles: OrderedDict[str, object] = OrderedDict()
        self.extracted = self.skipped = 0

    @classmethod
    def for_extractor(cls, extractor: FeatureExtractor, root: str | Path | None = None, **kwargs) -> FeatureStore:
        root = Path(root) if root else default_store_root() or model_cache_dir() / "feature_store"
        return cls(root, store_settings(extractor, kwargs.get("half", True)), **kwargs)

    # ----- planning and extraction --------------------------------------------------------------
    def plan(self, media: Sequence[str | Path]) -> list[tuple[str, list[str]]]:
        """(chunk file name, member paths) for the unique media, in sorted order, `chunk_size` per chunk."""
        unique = sorted({str(m) for m in media})
        chunks = []
        for start in range(0, len(unique), self.chunk_size):
            members = unique[start: start + self.chunk_size]
            digest = hashlib.sha256("\n".join(media_identity(m) for m in members).encode()).hexdigest()[:20]
            chunks.append((f"chunk-{digest}.safetensors", members))
        return chunks

    def fill(self, extractor: FeatureExtractor, media: Sequence[str | Path], rank: int = 0, world: int = 1,
             progress: bool = True) -> None:
        """Extract this process's share of the chunks that are not on disk yet (chunk c -> process c % world)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        settings_file = self.dir / "settings.json"
        if rank == 0 and not settings_file.exists():
            with atomic_path(settings_file) as tmp:
                tmp.write_text(json.dumps(self.settings, indent=2, sort_keys=True))
        mine = [(name, members) for c, (name, members) in enumerate(self.plan(media)) if c % world == rank]
        todo = [(name, members) for name, members in mine if not (self.dir / name).exists()]
        self.skipped += len(mine) - len(todo)
        total = sum(len(m) for _, m in todo)
        bar = progress_bar(total=total, desc=f"frozen features -> store (process {rank})", disable=not progress)
        for name, members in todo:
            self._write_chunk(self.dir / name, [self._extract_one(extractor, m) for m in members], members)
            self.extracted += len(members)
            bar.update(len(members))
        bar.close()

    @staticmethod
    def _extract_one(extractor: FeatureExtractor, media: str) -> MediaFeatures | str:
        try:
            return extractor.extract_uncached(Path(media))
        except (MediaError, OSError) as err:
            return str(err)

    def _write_chunk(self, path: Path, feats: list[MediaFeatures | str], members: list[str]) -> None:
        tensors, agr, errors = {}, [], {}
        for pos, (f, m) in enumerate(zip(feats, members)):
            if isinstance(f, str):
                errors[m] = f
                agr.append("")
                continue
            agr.append(f.agr)
            for name, t in f.tensors().items():
                tensors[f"{pos}/{name}"] = t
        half = self.half and all(float(t.abs().max()) <= FP16_MAX for k, t in tensors.items()
                                 if k.split("/")[1] in HALF_FIELDS and t.numel())
        if half:
            tensors = {k: (t.half() if k.split("/")[1] in HALF_FIELDS else t) for k, t in tensors.items()}
        meta = {"members": json.dumps(members), "agr": json.dumps(agr), "errors": json.dumps(errors)}
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)

    # ----- reading ------------------------------------------------------------------------------
    def open(self, media: Sequence[str | Path]) -> FeatureStore:
        """Index the planned chunks (their headers only). Raises when a chunk is missing (not extracted)."""
        self._index.clear()
        self._agr.clear()
        self.errors.clear()
        for name, _ in self.plan(media):
            path = self.dir / name
            if not path.exists():
                raise FileNotFoundError(f"{path}: feature chunk missing; run the extraction (fill) first")
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            members, agr = json.loads(meta["members"]), json.loads(meta["agr"])
            self.errors.update(json.loads(meta.get("errors", "{}")))
            for pos, (m, a) in enumerate(zip(members, agr)):
                if m not in self.errors:
                    self._index[m], self._agr[m] = (name, pos), a
        return self

    def _handle(self, name: str):
        handle = self._handles.get(name)
        if handle is None:
            handle = safe_open(str(self.dir / name), "pt")  # memory-mapped; tensors are read on request
            self._handles[name] = handle
            while len(self._handles) > self.max_open:
                self._handles.popitem(last=False)
        else:
            self._handles.move_to_end(name)
        return handle

    def _tensor(self, media: str, field: str) -> torch.Tensor:
        name, pos = self._index[media]
        t = self._handle(name).get_tensor(f"{pos}/{field}")
        return t.float() if t.dtype == torch.float16 else t

    def __getitem__(self, media: str | Path) -> MediaFeatures:
        media = str(media)
        if media not in self._index:
            raise KeyError(media)
        return MediaFeatures(**{k: self._tensor(media, k) for k in TENSOR_FIELDS}, agr=self._agr[media])

    def agr(self, media: str | Path) -> str:
        return self._agr[str(media)]

    def face_found(self, media: str | Path) -> torch.Tensor:
        return self._tensor(str(media), "face_found")

    def __contains__(self, media) -> bool:
        return str(media) in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("chunk-*.safetensors"))

    def __getstate__(self):  # picklable for DataLoader workers: handles are reopened there
        return self.__dict__ | {"_handles": OrderedDict()}


class LazyFeatures(Sequence):
    """A read-only list of MediaFeatures fetched from a store (or any mapping) on access: nothing is held."""

    def __init__(self, bank: Mapping, keys: Sequence[str | Path | None]):
        self.bank, self.keys = bank, [None if k is None else str(k) for k in keys]

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return LazyFeatures(self.bank, self.keys[i])
        return self.bank[self.keys[i]] if self.present(i) else None

    def present(self, i: int) -> bool:
        """Whether item i has features (readable), without reading them."""
        return self.keys[i] is not None and self.keys[i] in self.bank


def extract_to_store(stack, samples, max_frames: int, device, rank: int = 0, world: int = 1,
                     barrier=None, progress: bool = True, root: str | Path | None = None,
                     chunk_size: int = 64) -> tuple[FeatureExtractor, FeatureStore, dict[str, str]]:
    """(extractor, store, errors): every process extracts its share into the store, waits for the others
    (`barrier`), then indexes the whole store. Unreadable media are recorded in errors (path -> why)."""
    extractor = FeatureExtractor.from_stack(stack, max_frames=max_frames, device=device)
    store = FeatureStore.for_extractor(extractor, root=root, chunk_size=chunk_size)
    media = [str(s.media) for s in samples]
    store.fill(extractor, media, rank, world, progress=progress)
    if barrier is not None:
        barrier()
    store.open(media)
    return extractor, store, dict(store.errors)


def default_store_root() -> Path | None:
    """`EMO_LLAMA_FEATURE_STORE` when set (e.g. a fast shared disk), else the model cache's feature_store/."""
    value = os.environ.get("EMO_LLAMA_FEATURE_STORE")
    return Path(value) if value else None
