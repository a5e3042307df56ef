"""The on-disk feature store on the `tiny` stack with real media: shares, resume after a kill, fp16, the key."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import emo_llama.expert.tiny  # noqa: F401
from emo_llama.features import FeatureExtractor
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


def test_two_shares_killed_then_resumed_equal_one_process(tmp_path, stack, media, monkeypatch):
    ext = extractor_of(stack)
    one = FeatureStore.for_extractor(ext, root=tmp_path / "one", chunk_size=2)
    one.fill(ext, media, progress=False)
    assert one.extracted == 5 and one.plan(media) == one.plan(list(reversed(media)))
    one.open(media)
    # Process 1 of 2 does its share (chunk 1), process 0 is killed inside its second chunk.
    two = FeatureStore.for_extractor(ext, root=tmp_path / "two", chunk_size=2)
    two.fill(ext, media, rank=1, world=2, progress=False)
    assert two.extracted == 2
    calls = {"n": 0}
    original = FeatureStore._extract_one

    def dies_on_the_third(extractor, m):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # a kill in the middle of chunk 2 (rank 0 owns chunks 0 and 2)
        return original(extractor, m)

    monkeypatch.setattr(FeatureStore, "_extract_one", staticmethod(dies_on_the_third))
    with pytest.raises(KeyboardInterrupt):
        two.fill(ext, media, rank=0, world=2, progress=False)
    monkeypatch.setattr(FeatureStore, "_extract_one", staticmethod(original))
    assert len(list(two.dir.glob("chunk-*.safetensors"))) == 2 and not list(two.dir.glob(".*tmp*"))
    with pytest.raises(FileNotFoundError, match="missing"):
        two.open(media)
    # Resumed (here by one process): only the chunk that was cut short is extracted.
    resumed = FeatureStore.for_extractor(ext, root=tmp_path / "two", chunk_size=2)
    resumed.fill(ext, media, progress=False)
    assert (resumed.extracted, resumed.skipped) == (1, 2)
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
        direct, stored = ext.extract_uncached(m), store[m]
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
