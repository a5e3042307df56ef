"""The on-disk feature store: on the `tiny` stack with real media, shares, resume after a kill, fp16, the
key; with a counting stand-in extractor, which media a changed list, a changed file and a failed read
extract again."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import emo_llama.expert.tiny  # noqa: F401
from emo_llama.faces.video import MediaError
from emo_llama.features import FeatureExtractor, MediaFeatures
from emo_llama.features.store import FeatureStore, LazyFeatures
from emo_llama.model import get_stack


@pytest.fixture(scope="module")
def stack():
    return get_stack("tiny")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from emo_llama.faces.samples import astronaut, carphone_video

    folder = tmp_path_factory.mktemp("media")
    face = astronaut()
    paths = []
    for i, img in enumerate([face, face[:, ::-1], face[::2, ::2]]):
        Image.fromarray(np.ascontiguousarray(img)).save(folder / f"img{i}.png")
        paths.append(str(folder / f"img{i}.png"))
    (folder / "broken.png").write_bytes(b"not an image")
    return [*paths, str(carphone_video()), str(folder / "broken.png")]


def extractor_of(stack, **kw):
    return FeatureExtractor.from_stack(stack, max_frames=2, device="cpu", use_cache=False, **kw)


class DiesOnTheThird:
    """The real extractor, but the third extraction is a kill (Ctrl-C, a preempted job)."""

    def __init__(self, extractor):
        self.extractor, self.calls = extractor, 0

    def extract_uncached(self, media):
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return self.extractor.extract_uncached(media)


def test_two_shares_killed_then_resumed_equal_one_process(tmp_path, stack, media):
    ext = extractor_of(stack)
    one = FeatureStore.for_extractor(ext, root=tmp_path / "one", chunk_size=2)
    one.fill(ext, media, progress=False)
    assert one.extracted == 5 and one.share(media, 0, 2) == one.share(list(reversed(media)), 0, 2)
    one.open(media)
    # Process 1 of 2 does its share (2 of the 5 media: one chunk), process 0 (3 media: chunks of 2 and 1) is
    # killed inside its second chunk.
    two = FeatureStore.for_extractor(ext, root=tmp_path / "two", chunk_size=2)
    two.fill(ext, media, rank=1, world=2, progress=False)
    assert two.extracted == 2
    with pytest.raises(KeyboardInterrupt):
        two.fill(DiesOnTheThird(ext), media, rank=0, world=2, progress=False)
    assert len(list(two.dir.glob("chunk-*.safetensors"))) == 2 and not list(two.dir.glob(".*tmp*"))
    with pytest.raises(FileNotFoundError, match="missing"):
        FeatureStore.for_extractor(ext, root=tmp_path / "two", chunk_size=2).open(media)
    # Resumed (here by one process): only the media of the chunk that was cut short is extracted.
    resumed = FeatureStore.for_extractor(ext, root=tmp_path / "two", chunk_size=2)
    resumed.fill(ext, media, progress=False)
    assert (resumed.extracted, resumed.skipped) == (1, 4)
    resumed.open(media)
    assert set(resumed) == set(one) == set(media[:4]) and len(resumed) == 4
    assert list(resumed.errors) == [media[4]] and "broken.png" in resumed.errors[media[4]]
    for m in media[:4]:
        a, b = one[m], resumed[m]
        assert a.agr == b.agr == resumed.agr(m) and a.agr.startswith("According")
        for k, v in a.tensors().items():
            assert torch.equal(v, b.tensors()[k]), (m, k)
    assert resumed[media[3]].num_frames == 2  # the video, 2 frames at 1 FPS
    lazy = LazyFeatures(resumed, media)
    assert len(lazy) == 5 and lazy[4] is None and not lazy.present(4) and lazy.present(0)
    assert torch.equal(lazy[1].landmarks_68, one[media[1]].landmarks_68)


def test_stored_features_are_the_extractors_within_fp16_rounding(tmp_path, stack, media):
    ext = extractor_of(stack)
    store = FeatureStore.for_extractor(ext, root=tmp_path, chunk_size=4)
    store.fill(ext, media[:4], progress=False)
    store.open(media[:4])
    chunk = next(store.dir.glob("chunk-*.safetensors"))
    from safetensors import safe_open

    with safe_open(str(chunk), "pt") as f:
        assert f.get_tensor("0/vision_tokens").dtype == torch.float16
        assert f.get_tensor("0/landmarks_68").dtype == torch.float32
    for m in media[:4]:
        direct, stored = ext.extract_uncached(Path(m)), store[m]
        for k in ("vision_tokens", "face_tokens"):
            assert stored.tensors()[k].dtype == torch.float32
            err = (stored.tensors()[k] - direct.tensors()[k]).abs()
            assert bool((err <= direct.tensors()[k].abs() * 2 ** -11 + 1e-7).all()), k
            assert float(err.max()) > 0 or k == "face_tokens"  # it is rounded, not stored in full
        for k in ("landmarks_68", "au_masks", "face_found", "age_years", "gender_probs", "crops"):
            assert torch.equal(stored.tensors()[k], direct.tensors()[k]), k


def test_store_key_covers_what_changes_a_feature(stack):
    base = FeatureStore.for_extractor(extractor_of(stack), root="/nonexistent").key
    keys = {
        "max_frames": FeatureStore.for_extractor(FeatureExtractor.from_stack(stack, max_frames=3, device="cpu"),
                                                 root="/x").key,
        "margin": FeatureStore.for_extractor(extractor_of(stack, margin=0.2), root="/x").key,
        "fps": FeatureStore.for_extractor(extractor_of(stack, fps=2.0), root="/x").key,
        "dtype": FeatureStore.for_extractor(extractor_of(stack), root="/x", half=False).key,
        "options": FeatureStore.for_extractor(extractor_of(stack, stack_options={"vision_path": "/w/clip"}),
                                              root="/x").key,
    }
    other = get_stack("tiny")
    with torch.no_grad():
        next(other.vision.parameters()).add_(1e-3)  # same stack name and options, other weights
    keys["weights"] = FeatureStore.for_extractor(extractor_of(other), root="/x").key
    assert base not in keys.values() and len(set(keys.values())) == len(keys)
    assert FeatureStore.for_extractor(extractor_of(get_stack("tiny")), root="/y").key == base


# ----- which media a fill extracts (a counting stand-in for the extractor, files that are never decoded) -----

class CountingExtractor:
    """Stands in for FeatureExtractor: one frame of small tensors whose value is the file's size, so a
    read shows which version of a file was extracted. `calls` counts extractions per media; a media in
    `io_errors` raises that many OSErrors before it reads, one in `undecodable` raises MediaError."""

    def __init__(self, io_errors: dict[str, int] | None = None, undecodable: set[str] = frozenset()):
        self.calls: Counter[str] = Counter()
        self.io_errors, self.undecodable = dict(io_errors or {}), undecodable

    def extract_uncached(self, media: Path) -> MediaFeatures:
        self.calls[str(media)] += 1
        if not media.exists():  # as load_frames says it
            raise MediaError(f"{media}: no such file or folder; expected an image, a video or a folder of frames")
        if str(media) in self.undecodable:
            raise MediaError(f"{media}: cannot decode video (invalid data); the file is corrupt or truncated")
        if self.io_errors.get(str(media), 0) > 0:
            self.io_errors[str(media)] -= 1
            raise OSError(5, "Input/output error", str(media))
        size = float(media.stat().st_size)
        return MediaFeatures(
            vision_tokens=torch.full((1, 2, 3), size), face_tokens=torch.full((1, 2, 3), size),
            landmarks_68=torch.zeros(1, 68, 2), au_masks=torch.ones(1, 2, 2, dtype=torch.bool),
            face_found=torch.ones(1, dtype=torch.bool), age_years=torch.full((1,), 30.0),
            gender_probs=torch.tensor([[0.5, 0.5]]), crops=torch.zeros(1, 4, 4, 3, dtype=torch.uint8),
            agr=f"According to the specific question ({media.name})")


def media_files(folder: Path, names: list[str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_bytes(b"x" * (10 + i))
    return [str(folder / name) for name in names]


def fake_store(root: Path, chunk_size: int = 2) -> FeatureStore:
    """A new store object on `root`, as a new run (or another process) would make it; no retry waits."""
    store = FeatureStore(root, {"stack": "counting"}, chunk_size=chunk_size)
    store.io_retry_delays = (0.0, 0.0)
    return store


def test_a_longer_list_extracts_only_the_new_media_and_a_shorter_one_nothing(tmp_path):
    a = media_files(tmp_path / "media", [f"a{i}.mp4" for i in range(5)])
    b = media_files(tmp_path / "media", [f"{c}.mp4" for c in "bcx"])  # sorted among a's: chunk bounds move
    ext = CountingExtractor()
    fake_store(tmp_path / "store").fill(ext, a, progress=False)
    assert ext.calls == Counter(a)
    bigger = fake_store(tmp_path / "store")
    bigger.fill(ext, a + b, progress=False)
    assert ext.calls == Counter(a + b) and (bigger.extracted, bigger.skipped) == (3, 5)
    smaller = fake_store(tmp_path / "store")
    smaller.fill(ext, a[1:4] + b[:1], progress=False)
    assert ext.calls == Counter(a + b) and (smaller.extracted, smaller.skipped) == (0, 4)
    smaller.open(a[1:4] + b[:1])
    assert sorted(smaller) == sorted(a[1:4] + b[:1]) and not smaller.errors
    for m in a[1:4] + b[:1]:
        assert float(smaller[m].vision_tokens[0, 0, 0]) == os.path.getsize(m) and Path(m).name in smaller.agr(m)


def test_a_changed_file_is_extracted_again(tmp_path):
    media = media_files(tmp_path / "media", [f"a{i}.mp4" for i in range(4)])
    ext = CountingExtractor()
    fake_store(tmp_path / "store").fill(ext, media, progress=False)
    Path(media[2]).write_bytes(b"y" * 1000)  # a re-encoded clip: new size and mtime
    again = fake_store(tmp_path / "store")
    again.fill(ext, media, progress=False)
    assert ext.calls[media[2]] == 2 and sum(ext.calls.values()) == 5 and again.extracted == 1
    again.open(media)
    assert float(again[media[2]].vision_tokens[0, 0, 0]) == 1000.0


def chunk_members(store: FeatureStore) -> list[str]:
    members = []
    for path in store.dir.glob("chunk-*.safetensors"):
        with safe_open(str(path), "pt") as f:
            members += json.loads(f.metadata()["members"])
    return members


def test_two_processes_extract_every_media_once_also_after_a_one_process_start(tmp_path):
    a = media_files(tmp_path / "media", [f"a{i}.mp4" for i in range(5)])
    b = media_files(tmp_path / "media", [f"b{i}.mp4" for i in range(4)])
    ext = CountingExtractor()
    ranks = [fake_store(tmp_path / "store"), fake_store(tmp_path / "store")]
    for rank in (0, 1):  # the processes, one after the other
        ranks[rank].fill(ext, a, rank=rank, world=2, progress=False)
    assert ext.calls == Counter(a) and [r.extracted for r in ranks] == [3, 2]
    # A longer list: one process had stored a, two processes extract b, each a share of it.
    ranks = [fake_store(tmp_path / "store"), fake_store(tmp_path / "store")]
    for rank in (1, 0):  # in either order: the share does not depend on what the other has written
        ranks[rank].fill(ext, a + b, rank=rank, world=2, progress=False)
    assert ext.calls == Counter(a + b) and sum(r.extracted for r in ranks) == 4 and min(r.extracted for r in ranks)
    assert sorted(chunk_members(ranks[0])) == sorted(a + b)  # every media in exactly one chunk
    assert len(fake_store(tmp_path / "store").open(a + b)) == 9


def test_an_io_error_is_retried_and_the_media_stored(tmp_path):
    media = media_files(tmp_path / "media", ["a.mp4", "b.mp4", "c.mp4"])
    ext = CountingExtractor(io_errors={media[1]: 1})  # a network disk that drops out once
    store = fake_store(tmp_path / "store")
    store.fill(ext, media, progress=False)
    store.open(media)
    assert ext.calls[media[1]] == 2 and media[1] in store and not store.errors and not store.failed


def test_an_undecodable_file_is_recorded_unreadable_and_not_tried_again(tmp_path):
    media = media_files(tmp_path / "media", ["a.mp4", "b.mp4", "c.mp4"])
    ext = CountingExtractor(undecodable={media[1]})
    fake_store(tmp_path / "store").fill(ext, media, progress=False)
    again = fake_store(tmp_path / "store")
    again.fill(ext, media, progress=False)
    again.open(media)
    assert ext.calls[media[1]] == 1 and media[1] not in again and "corrupt" in again.errors[media[1]]
    assert sorted(again) == [media[0], media[2]]


def test_a_missing_file_is_unreadable_until_it_appears(tmp_path):
    media = media_files(tmp_path / "media", ["a.mp4", "b.mp4"]) + [str(tmp_path / "media" / "late.mp4")]
    ext = CountingExtractor()
    store = fake_store(tmp_path / "store")
    store.fill(ext, media, progress=False)
    assert "no such file" in store.open(media).errors[media[2]]
    Path(media[2]).write_bytes(b"z" * 7)  # the copy of the dataset finished
    again = fake_store(tmp_path / "store")
    again.fill(ext, media, progress=False)
    again.open(media)
    assert ext.calls == Counter(media + media[2:]) and not again.errors and float(again[media[2]].age_years) == 30


def test_an_io_error_that_outlasts_the_retries_is_not_recorded_and_the_next_fill_reads_it(tmp_path):
    media = media_files(tmp_path / "media", ["a.mp4", "b.mp4", "c.mp4"])
    down = CountingExtractor(io_errors={media[1]: 99})  # the disk stays away for the whole fill
    store = fake_store(tmp_path / "store")
    with pytest.warns(RuntimeWarning, match="I/O error"):
        store.fill(down, media, progress=False)
    assert down.calls[media[1]] == 3 and list(store.failed) == [media[1]] and store.extracted == 2
    with pytest.raises(FileNotFoundError, match="1 of 3 media missing"):
        fake_store(tmp_path / "store").open(media)
    back = CountingExtractor()  # the disk is back: the next run reads it, and only it
    rerun = fake_store(tmp_path / "store")
    rerun.fill(back, media, progress=False)
    rerun.open(media)
    assert back.calls == Counter([media[1]]) and sorted(rerun) == media and not rerun.errors
