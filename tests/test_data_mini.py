"""The bundled `mini` dataset, on a small build: layouts, identity split, determinism (pixels and speech), MTCNN
finds the faces, clips speak; data/README.md's description of the synthesis agrees with the code."""

from __future__ import annotations

import inspect
import json
import re
import time

import numpy as np
import pytest

from emo_llama.data import get_dataset
from emo_llama.data.aus import VARIANTS
from emo_llama.data.labels import MINI_CLASSES
from emo_llama.data.mini.build import _expression, build_mini, load_mini
from emo_llama.data.mini.speech import QUALITIES, SENTENCES
from emo_llama.faces.video import load_frames
from emo_llama.features.audio import load_audio
from emo_llama.utils import REPO_DATA

SMALL = {"max_identities": 6, "colour_images_per_class": 1, "progress": False}
DESCRIBED_QUALITIES = tuple(words for _, words in QUALITIES.values() if words)


@pytest.fixture(scope="module")
def small_mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini") / "a"
    info = build_mini(root, seed=0, **SMALL)
    return root, info


def test_layouts_are_read_by_the_official_loaders(small_mini):
    root, info = small_mini
    images = get_dataset("rafdb", root / "images", split="train")
    videos = get_dataset("mafw", root / "videos", split="train", captions=True)
    assert len(images) > 0 and len(videos) > 0 and images[0].kind == "image" and videos[0].kind == "video"
    assert {s.label for s in images} == set(MINI_CLASSES)
    assert all(s.caption for s in videos)
    n_img = len(images) + len(get_dataset("rafdb", root / "images", split="test"))
    assert n_img == info["images"]


def test_split_by_identity_and_balanced(small_mini):
    root, _ = small_mini
    train = load_mini(root, split="train")
    test = load_mini(root, split="test")
    train_ids, test_ids = {s.identity for s in train}, {s.identity for s in test}
    assert train_ids and test_ids and not train_ids & test_ids
    counts = list(test.class_counts().values())
    assert min(counts) > 0 and max(counts) - min(counts) <= 2
    assert test.classes == MINI_CLASSES and all(s.caption for s in train)


def test_videos_go_neutral_apex_back(small_mini):
    root, _ = small_mini
    for s in load_mini(root, split="train", part="videos").samples[:4]:
        frames = load_frames(s.media)
        assert 4 <= len(frames) <= 6 and frames[0].shape == (128, 128, 3)


def test_clips_speak_a_neutral_sentence_and_images_are_silent(small_mini):
    root, info = small_mini
    for split in ("train", "test"):
        data = load_mini(root, split=split)
        clips = [s for s in data if s.kind == "video"]
        images = [s for s in data if s.kind == "image"]
        assert clips and images
        assert all(s.text in SENTENCES and s.voice and s.voice.endswith(("voice",) + DESCRIBED_QUALITIES)
                   for s in clips)
        assert all(s.text is None and s.voice is None for s in images)
        for s in clips[:3]:
            sound = load_audio(s.media)
            assert sound.status == "ok" and abs(sound.duration - len(load_frames(s.media))) <= 0.2
    with open(root / "images" / "mini_meta.tsv", encoding="utf-8") as f:
        header, first = f.readline().rstrip("\n").split("\t"), f.readline().rstrip("\n").split("\t")
    assert header[-2:] == ["text", "voice"] and first[-2:] == ["", ""]
    assert info["speech"]["engine"].startswith("eSpeak NG") and set(info["speech"]["prosody"]) == set(MINI_CLASSES)


def test_captions_follow_the_aus(small_mini):
    import csv

    from emo_llama.data.aus import VARIANTS, describe_aus

    root, _ = small_mini
    with open(root / "images" / "mini_meta.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for row in rows:
        aus = tuple(int(a) for a in row["aus"].split("+")) if row["aus"] != "none" else ()
        assert aus in VARIANTS[row["label"]], row  # every sample is one of its class's variants
        assert row["caption"] == describe_aus(aus)
    happy = [r for r in rows if r["aus"] == "6+12"]
    assert not happy or happy[0]["caption"] == "The lip corners rise and the cheeks lift."
    assert {r["judge_agreed"] for r in rows} <= {"yes", "no"}


def test_same_seed_same_bytes_and_pixels(small_mini, tmp_path):
    root, _ = small_mini
    again = tmp_path / "b"
    build_mini(again, seed=0, **SMALL)
    label_file = "images/EmoLabel/list_patition_label.txt"
    assert (root / label_file).read_bytes() == (again / label_file).read_bytes()
    for part in ("images/mini_meta.tsv", "videos/mini_meta.tsv",
                 "videos/Train & Test Set/single/with_caption/set_1/test.txt"):
        assert (root / part).read_bytes() == (again / part).read_bytes()
    a, b = load_mini(root, split="test"), load_mini(again, split="test")
    for sa, sb in zip(a.samples, b.samples):
        assert np.array_equal(np.stack(load_frames(sa.media)), np.stack(load_frames(sb.media)))
    clips = [(sa, sb) for sa, sb in zip(a.samples, b.samples) if sa.kind == "video"]
    assert clips and all(np.array_equal(load_audio(sa.media).samples, load_audio(sb.media).samples)
                         for sa, sb in clips)  # the same speech too


def test_only_split_renders_that_split_exactly_as_the_full_build(small_mini, tmp_path):
    # benchmarks/mini_gate_spread.py relies on this to score the gate of many seeds cheaply.
    root, _ = small_mini
    part = tmp_path / "test_only"
    build_mini(part, seed=0, only_split="test", **SMALL)
    label_file = "images/EmoLabel/list_patition_label.txt"
    full = [line for line in (root / label_file).read_text().splitlines() if line.startswith("test_")]
    assert full and (part / label_file).read_text().splitlines() == full
    a, b = load_mini(root, split="test"), load_mini(part, split="test")
    assert len(a.samples) == len(b.samples) > len(full)  # the images and the clips
    for sa, sb in zip(a.samples, b.samples):
        assert sa.label == sb.label and sa.text == sb.text and sa.voice == sb.voice
        assert np.array_equal(np.stack(load_frames(sa.media)), np.stack(load_frames(sb.media)))
        if sa.kind == "video":  # a clip's speech is keyed on its slot, not its running number
            assert np.array_equal(load_audio(sa.media).samples, load_audio(sb.media).samples)


def test_mtcnn_finds_the_synthesised_faces(small_mini):
    from emo_llama.data.mini.sanity import detection_rate, first_frames

    root, _ = small_mini
    samples = load_mini(root, split="train").samples + load_mini(root, split="test").samples
    rate, missed = detection_rate(first_frames(samples))
    assert rate >= 0.95, f"MTCNN missed {len(missed)} of {len(samples)}"


def test_get_dataset_builds_once_into_the_cache(small_mini, tmp_path, monkeypatch):
    monkeypatch.setenv("EMO_LLAMA_CACHE", str(tmp_path))
    first = get_dataset("mini", split="test", **SMALL)
    marker = first.root / "BUILD_INFO.json"
    stamp = marker.stat().st_mtime_ns
    start = time.perf_counter()
    second = get_dataset("mini", split="test", **SMALL)
    assert time.perf_counter() - start < 5 and marker.stat().st_mtime_ns == stamp  # no rebuild
    assert first.root.is_relative_to(tmp_path) and len(second) == len(first)
    assert json.loads(marker.read_text())["identities"] == 6


def test_mini_rejects_other_folds(small_mini):
    root, _ = small_mini
    with pytest.raises(ValueError, match="fold"):
        load_mini(root, fold=2)


def _readme_variant_table(readme: str) -> dict[str, tuple[tuple[int, ...], ...]]:
    """The rows of data/README.md's `| class | AU variants |` table: "6+12 / 6+12+25" -> ((6, 12), (6, 12, 25))."""
    lines = readme[readme.index("| class | AU variants |"):].splitlines()[2:]
    table = {}
    for line in lines:
        if not line.strip().startswith("|"):
            break
        label, variants = (cell.strip() for cell in line.strip().strip("|").split("|"))
        table[label] = tuple(() if v.strip() == "none" else tuple(int(au) for au in v.split("+"))
                             for v in variants.split("/"))
    return table


def test_data_readme_states_the_variants_and_intensity_the_code_uses():
    readme = (REPO_DATA / "README.md").read_text()
    assert _readme_variant_table(readme) == {label: VARIANTS[label] for label in MINI_CLASSES}
    # the build that the README's history marks as current names its intensity range: the code's defaults
    lo, hi = re.search(r"intensity (\d+\.\d+)–(\d+\.\d+) \(\*\*current\*\*\)", readme).groups()
    defaults = inspect.signature(_expression).parameters
    assert (float(lo), float(hi)) == (defaults["lo"].default, defaults["hi"].default)
