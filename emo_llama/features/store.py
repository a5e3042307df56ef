"""The on-disk feature store: sharded, resumable extraction and memory-mapped reads of frozen features.

A training run no longer holds the frozen features of its dataset in RAM. Every process extracts its
share of the media that are not stored yet into chunk files of up to `chunk_size` media (safetensors,
one file per chunk, written atomically). Reads go through safetensors' memory map, one media at a
time, as the training loop asks.

Layout: `<root>/<stack>-<key>/chunk-<digest>.safetensors`, where
- `key` hashes everything that changes a feature (`store_settings`): the stack name and options, a
  fingerprint of the frozen vision encoder's and facial expert's weights (their tensors' bytes), the
  face detector's package version, fps, max_frames, crop margin and size, the feature code version
  (`extractor.FEATURE_VERSION`), the store format and the storage dtype; `settings.json` next to the
  chunks spells it out;
- each chunk's header lists its members and their identities (`media_identity`: path, size, mtime),
  and `digest` hashes those identities.

Which media a chunk holds does not depend on the list being extracted. The store is a set of chunks,
and the headers of all of them, read once, form an index identity -> (chunk, position). A media is
stored when its current identity is in that index, wherever it was put; `fill` extracts only the
media that are not, into new chunks. So a dataset list that grows (a larger `train_limit`, another
fold, a second dataset with the same stack) extracts only what is new, a list that shrinks extracts
nothing, and a file that changed on disk has a new identity and is extracted again (its old entry
stays on disk, unused). The chunks of a killed extraction are complete or absent, so a rerun
extracts what is missing, nothing more. (The store used to cut the sorted list into fixed chunks of
64, which tied every chunk to the whole list: one media more or less moved every chunk boundary and
re-extracted everything; that was store version 1.) The other way considered, a chunk per bucket of
a stable hash of the path, keeps a media's bucket whatever the list, but a bucket's chunk still has
to be rewritten whenever the list adds a member to it, and a fixed bucket count gives tiny chunks on
small lists; the index needs neither.

Processes: media i of the sorted, de-duplicated list belongs to process i % world. The share depends
only on the list, never on which media exist yet (a process that is slower to start sees more of
the store, but the other processes only write media of their own shares), so 2 processes resuming a
1-process extraction split the rest between them, and no two processes extract the same media or
write the same chunk (a chunk's name hashes its members, and shares are disjoint).

Unreadable media: a `MediaError` (undecodable, truncated, no video stream, no such file) is recorded
in the chunk as unreadable and not tried again while the file's identity stays the same; a missing
file's identity is "missing", so the file is extracted once it appears. An `OSError` (an I/O error,
a network disk that dropped out) says nothing about the file: it is retried after each of
`io_retry_delays`; if it outlives them, nothing is recorded for that media, the rest of the chunk
is written, and the fill warns. `open` then raises for that media, so the run stops loudly and a
rerun extracts it. Raising inside `fill` instead would leave the other processes waiting for this
one at the barrier that follows extraction, and would throw away the rest of this process's share.

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
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from emo_llama.faces.video import MediaError
from emo_llama.features.audio import AUDIO_STATUSES, AudioExtractor, AudioFeatures
from emo_llama.features.extractor import FeatureExtractor, MediaFeatures
from emo_llama.progress import progress as progress_bar
from emo_llama.utils import atomic_path, model_cache_dir, package_version

STORE_VERSION = "3"  # 2: chunks hold whichever media were missing, found by their headers' identities; 3: expression_probs
FP16_MAX = 65504.0


def store_settings(extractor, half: bool = True) -> dict:
    """Everything that changes a stored feature (the store key hashes this): the extractor's settings
    (stack name and options, weight fingerprints, fps, max_frames, crop, code version) and the store's.
    The face detector's version counts for extractors that crop faces (not for the audio extractor)."""
    faces = {"face_detector": f"facenet-pytorch {package_version('facenet-pytorch')}"} \
        if getattr(extractor, "crops_faces", True) else {}
    return extractor.settings() | faces | {"store_version": STORE_VERSION,
                                           "token_dtype": "float16" if half else "float32"}


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


class StoredEntry(NamedTuple):
    """Where one media identity's features are: chunk file, position in it, AGR text, or why it is unreadable."""

    chunk: str
    position: int
    agr: str
    error: str | None


class FeatureStore(Mapping):
    """media path (str) -> MediaFeatures, read from memory-mapped chunk files; `fill` extracts what is missing.

    `record`: what one media's entry is, its class (`MediaFeatures`; the audio store holds
    `features.audio.AudioFeatures`): its `STORED` tensor fields, `HALF` fields, `store_text` and `from_store`.

    After `open(media)`, a Mapping over exactly those of `media` that could be read: `store[path]`,
    `path in store`, `len(store)`. `agr(path)` and `face_found(path)` read one small entry without loading
    the tokens. `errors` maps each unreadable media path to why; `failed` maps each media that the last
    `fill` could not read for an I/O error (nothing stored: the next fill tries it again) to the error.
    """

    io_retry_delays: tuple[float, ...] = (1.0, 4.0, 16.0)  # seconds before each retry of an OSError

    def __init__(self, root: str | Path, settings: dict, chunk_size: int = 64, half: bool = True,
                 max_open: int = 32, record: type = MediaFeatures):
        self.settings, self.chunk_size, self.half, self.max_open = settings, chunk_size, half, max_open
        self.record = record
        self.key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.dir = Path(root) / f"{settings.get('stack', 'stack')}-{self.key}"
        self._stored: dict[str, StoredEntry] = {}  # media identity -> entry, over every chunk read so far
        self._chunks_read: set[str] = set()
        self._index: dict[str, tuple[str, int]] = {}
        self._agr: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self._handles: OrderedDict[str, object] = OrderedDict()
        self.extracted = self.skipped = 0  # media counts over this object's fills

    @classmethod
    def for_extractor(cls, extractor, root: str | Path | None = None, **kwargs) -> FeatureStore:
        """The store of `extractor`'s features (a FeatureExtractor, or an AudioExtractor: its `record`)."""
        root = Path(root) if root else default_store_root() or model_cache_dir() / "feature_store"
        record = getattr(extractor, "record", MediaFeatures)
        return cls(root, store_settings(extractor, kwargs.get("half", True)), record=record, **kwargs)

    # ----- the index of what is stored ----------------------------------------------------------
    def _read_new_chunks(self) -> None:
        """Add the chunks written since the last look (by earlier runs, other processes, this one) to the
        index, reading headers only. An identity held twice (two jobs extracting at once) is read from the
        chunk that was indexed first."""
        for path in sorted(self.dir.glob("chunk-*.safetensors")):  # atomic_path's temporaries start with "."
            if path.name in self._chunks_read:
                continue
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            members, identities = json.loads(meta["members"]), json.loads(meta["identities"])
            agr, errors = json.loads(meta["agr"]), json.loads(meta["errors"])
            for pos, (m, identity, a) in enumerate(zip(members, identities, agr)):
                self._stored.setdefault(identity, StoredEntry(path.name, pos, a, errors.get(m)))
            self._chunks_read.add(path.name)

    @staticmethod
    def share(media: Sequence[str | Path], rank: int = 0, world: int = 1) -> list[str]:
        """Process `rank`'s media: position i of the sorted unique list belongs to process i % world."""
        return sorted({str(m) for m in media})[rank::world]

    # ----- extraction ---------------------------------------------------------------------------
    def fill(self, extractor: FeatureExtractor, media: Sequence[str | Path], rank: int = 0, world: int = 1,
             progress: bool = True) -> None:
        """Extract this process's share of the media that are not stored (by identity) into new chunks."""
        self.dir.mkdir(parents=True, exist_ok=True)
        settings_file = self.dir / "settings.json"
        if rank == 0 and not settings_file.exists():
            with atomic_path(settings_file) as tmp:
                tmp.write_text(json.dumps(self.settings, indent=2, sort_keys=True))
        self._read_new_chunks()
        identity = {m: media_identity(m) for m in self.share(media, rank, world)}
        todo = [m for m, i in identity.items() if i not in self._stored]
        self.skipped += len(identity) - len(todo)
        self.failed = {}
        bar = progress_bar(total=len(todo), desc=f"frozen features -> store (process {rank})", disable=not progress)
        for start in range(0, len(todo), self.chunk_size):
            batch = todo[start: start + self.chunk_size]
            results = {m: self._extract_one(extractor, m) for m in batch}
            members = [m for m in batch if results[m] is not None]
            if members:
                self._write_chunk(members, [identity[m] for m in members], [results[m] for m in members])
            self.extracted += len(members)
            bar.update(len(batch))
        bar.close()
        if self.failed:
            first = next(iter(self.failed.items()))
            warnings.warn(f"{len(self.failed)} media could not be read for an I/O error after "
                          f"{len(self.io_retry_delays)} retries and are not stored (e.g. {first[0]}: {first[1]}); "
                          "a rerun of the extraction tries them again", RuntimeWarning, stacklevel=2)

    def _extract_one(self, extractor: FeatureExtractor, media: str) -> MediaFeatures | str | None:
        """The media's features; or why it is unreadable (a MediaError, recorded with the chunk); or None
        after an OSError that outlived every retry (noted in `failed`, nothing recorded)."""
        delays = iter(self.io_retry_delays)
        while True:
            try:
                return extractor.extract_uncached(Path(media))
            except MediaError as err:
                return str(err)
            except OSError as err:
                delay = next(delays, None)
                if delay is None:
                    self.failed[media] = f"{type(err).__name__}: {err}"
                    return None
                time.sleep(delay)

    def _write_chunk(self, members: list[str], identities: list[str], feats: list[MediaFeatures | str]) -> None:
        tensors, agr, errors = {}, [], {}
        for pos, (f, m) in enumerate(zip(feats, members)):
            if isinstance(f, str):
                errors[m] = f
                agr.append("")
                continue
            agr.append(f.store_text)
            for name, t in f.tensors().items():
                tensors[f"{pos}/{name}"] = t
        half_fields = self.record.HALF
        half = self.half and all(float(t.abs().max()) <= FP16_MAX for k, t in tensors.items()
                                 if k.split("/")[1] in half_fields and t.numel())
        if half:
            tensors = {k: (t.half() if k.split("/")[1] in half_fields else t) for k, t in tensors.items()}
        meta = {"members": json.dumps(members), "identities": json.dumps(identities), "agr": json.dumps(agr),
                "errors": json.dumps(errors)}
        digest = hashlib.sha256("\n".join(identities).encode()).hexdigest()[:20]
        name = f"chunk-{digest}.safetensors"
        with atomic_path(self.dir / name) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        for pos, (m, identity) in enumerate(zip(members, identities)):
            self._stored.setdefault(identity, StoredEntry(name, pos, agr[pos], errors.get(m)))
        self._chunks_read.add(name)

    # ----- reading ------------------------------------------------------------------------------
    def open(self, media: Sequence[str | Path]) -> FeatureStore:
        """Index exactly `media` (chunk headers only). Raises when one of them is not stored: never
        extracted, changed on disk since, or left out by an I/O error during the extraction."""
        self._index.clear()
        self._agr.clear()
        self.errors.clear()
        self._read_new_chunks()
        wanted = sorted({str(m) for m in media})
        missing = []
        for m in wanted:
            entry = self._stored.get(media_identity(m))
            if entry is None:
                missing.append(m)
            elif entry.error is not None:
                self.errors[m] = entry.error
            else:
                self._index[m], self._agr[m] = (entry.chunk, entry.position), entry.agr
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(wanted)} media missing from the feature store {self.dir} (not extracted, "
                f"changed since, or an I/O error during extraction), e.g. {missing[0]}; run the extraction "
                "(fill) again")
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

    def __getitem__(self, media: str | Path):
        media = str(media)
        if media not in self._index:
            raise KeyError(media)
        return self.record.from_store({k: self._tensor(media, k) for k in self.record.STORED}, self._agr[media])

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

    def __getstate__(self):
        # picklable for DataLoader workers: handles are reopened there, and reads need only `_index`, not the
        # index of everything the store holds
        return self.__dict__ | {"_handles": OrderedDict(), "_stored": {}, "_chunks_read": set()}


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
    store = filled_store(extractor, samples, rank, world, barrier, progress, root, chunk_size)
    return extractor, store, dict(store.errors)


def filled_store(extractor, samples, rank: int = 0, world: int = 1, barrier=None, progress: bool = True,
                 root: str | Path | None = None, chunk_size: int = 64) -> FeatureStore:
    """The store of `extractor`'s features, holding every sample's media: each process extracts its share of what
    is missing, waits for the others (`barrier`), then indexes the whole store."""
    store = FeatureStore.for_extractor(extractor, root=root, chunk_size=chunk_size)
    media = [str(s.media) for s in samples]
    store.fill(extractor, media, rank, world, progress=progress)
    if barrier is not None:
        barrier()
    return store.open(media)


class WithAudio(Mapping):
    """The visual feature bank with each media's sound attached (`MediaFeatures.with_audio`), read from the audio
    store on access. `key` names both stores (a run's fingerprint and saved answers depend on both)."""

    def __init__(self, visual: Mapping, audio: Mapping):
        self.visual, self.audio = visual, audio
        self.key = f"{getattr(visual, 'key', 'synthetic features')}+audio-{getattr(audio, 'key', 'unkeyed')}"

    def __getitem__(self, media: str | Path) -> MediaFeatures:
        return self.visual[str(media)].with_audio(self.audio[str(media)])

    def agr(self, media: str | Path) -> str:
        return self.visual.agr(media) if hasattr(self.visual, "agr") else self.visual[str(media)].agr

    def face_found(self, media: str | Path):
        return self.visual.face_found(media) if hasattr(self.visual, "face_found") else self.visual[str(media)].face_found

    def __contains__(self, media) -> bool:
        return str(media) in self.visual and str(media) in self.audio

    def __iter__(self) -> Iterator[str]:
        return (m for m in self.visual if m in self.audio)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def extract_audio_to_store(encoder, samples, max_frames: int, rank: int = 0, world: int = 1, barrier=None,
                           progress: bool = True, root: str | Path | None = None,
                           chunk_size: int = 64) -> tuple[AudioExtractor, FeatureStore, dict[str, str]]:
    """(extractor, store, status of every media): the sound of every sample, one window per kept frame, into the
    same kind of store as the visual features (its own key: the audio encoder's settings). A media without usable
    sound is stored with its status ("silent", "no_audio_track", "unreadable"), never skipped or guessed."""
    extractor = AudioExtractor(encoder, max_frames=max_frames)
    store = filled_store(extractor, samples, rank, world, barrier, progress, root, chunk_size)
    return extractor, store, {m: AudioFeatures.stored_status(store.agr(m)) for m in store}


def audio_report(statuses: Mapping[str, str], kinds: Mapping[str, str] | None = None, listed: int = 50) -> dict:
    """metrics.json's audio section: how many media have each status, and the clips without usable sound named
    (images have no sound by nature: counted, not listed)."""
    counts = {status: 0 for status in AUDIO_STATUSES}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    kinds = kinds or {}
    lacking = sorted(m for m, status in statuses.items() if status != "ok" and kinds.get(m) != "image")
    return {"status_counts": counts, "clips_without_sound": len(lacking), "listed": lacking[:listed]}


def default_store_root() -> Path | None:
    """`EMO_LLAMA_FEATURE_STORE` when set (e.g. a fast shared disk), else the model cache's feature_store/."""
    value = os.environ.get("EMO_LLAMA_FEATURE_STORE")
    return Path(value) if value else None
