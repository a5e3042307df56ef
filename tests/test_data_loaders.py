"""Loaders of the six official FER layouts, on tiny fixtures written in each format (and its variants)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures import fer_layouts as fx  # noqa: E402

from emo_llama.data import DatasetFormatError, DatasetNotFoundError, get_dataset  # noqa: E402
from emo_llama.data.labels import MAFW_CLASSES, MAFW_CLASSES_DFER_CLIP  # noqa: E402


def labels(ds):
    return [s.label for s in ds.samples]


# ---------------------------------------------------------------- RAF-DB

@pytest.mark.parametrize("spelling", ["patition", "partition"])
def test_rafdb_aligned_both_spellings(tmp_path, spelling):
    want = fx.write_rafdb(tmp_path, spelling=spelling)
    train = get_dataset("rafdb", tmp_path, split="train")
    test = get_dataset("rafdb", tmp_path, split="test")
    assert labels(train) == want["train"] and labels(test) == want["test"]
    assert train.classes[0] == "surprise" and len(train.classes) == 7
    assert train[0].media.name == "train_00001_aligned.jpg" and train[0].media.exists()
    assert train[0].kind == "image" and train[0].split == "train"


def test_rafdb_original_images(tmp_path):
    fx.write_rafdb(tmp_path, media="original")
    ds = get_dataset("rafdb", tmp_path, split="test")
    assert [s.media.name for s in ds] == ["test_0001.jpg", "test_0002.jpg"]


def test_rafdb_malformed_line_names_file_and_line(tmp_path):
    fx.write_rafdb(tmp_path)
    f = tmp_path / "EmoLabel" / "list_patition_label.txt"
    f.write_text(f.read_text() + "train_00009.jpg nine\n")
    with pytest.raises(DatasetFormatError, match=r"list_patition_label.txt:6"):
        get_dataset("rafdb", tmp_path)
    with pytest.warns(UserWarning, match="skipped 1"):
        lenient = get_dataset("rafdb", tmp_path, strict=False)
    assert len(lenient) == 3 and len(lenient.skipped) == 1 and ":6:" in lenient.skipped[0]


def test_missing_dataset_says_what_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        get_dataset("rafdb", tmp_path / "nowhere")
    msg = str(err.value)
    assert "list_patition_label.txt" in msg and "nowhere" in msg and "whdeng" in msg and "download" in msg


def test_unknown_dataset_lists_known_names():
    with pytest.raises(KeyError, match="affectnet"):
        get_dataset("fer2014", "/tmp")


# ---------------------------------------------------------------- AffectNet

@pytest.mark.parametrize("header", [fx.AFFECTNET_HEADER, "#" + fx.AFFECTNET_HEADER, None])
def test_affectnet_header_variants_and_protocols(tmp_path, header):
    want = fx.write_affectnet(tmp_path, header=header)
    seven = get_dataset("affectnet", tmp_path, split="train")
    eight = get_dataset("affectnet", tmp_path, split="train", num_classes=8)
    test = get_dataset("affectnet", tmp_path, split="test")
    assert labels(seven) == want["train7"] and labels(eight) == want["train8"]
    assert labels(test) == want["test"] and len(seven.classes) == 7 and eight.classes[-1] == "contempt"
    assert seven[0].box == (10.0, 20.0, 40.0, 60.0)  # x, y, x + w, y + h
    assert seven[1].media.suffix == ".jpg"  # listed as .png, found under the real extension


def test_affectnet_bad_expression_line(tmp_path):
    fx.write_affectnet(tmp_path)
    f = tmp_path / "Manually_Annotated_file_lists" / "validation.csv"
    f.write_text(f.read_text() + "1/x.jpg,1,2,3,4,,happy,0,0\n")
    with pytest.raises(DatasetFormatError, match=r"validation.csv:4"):
        get_dataset("affectnet", tmp_path, split="test")


# ---------------------------------------------------------------- FERPlus

def test_ferplus_from_csv_majority_protocol(tmp_path, monkeypatch):
    want = fx.write_ferplus_csv(tmp_path / "ferplus")
    monkeypatch.setenv("EMO_LLAMA_CACHE", str(tmp_path / "cache"))
    for split in ("train", "val", "test"):
        ds = get_dataset("ferplus", tmp_path / "ferplus", split=split)
        assert labels(ds) == want[split], split
        assert len(ds.classes) == 8
    first = get_dataset("ferplus", tmp_path / "ferplus")[0]
    assert first.media.is_relative_to(tmp_path / "cache") and first.media.name == "fer0000001.png"


def test_ferplus_generated_folders(tmp_path):
    want = fx.write_ferplus_folders(tmp_path)
    for split in ("train", "val", "test"):
        assert labels(get_dataset("ferplus", tmp_path, split=split)) == want[split]


def test_ferplus_majority_rule():
    from emo_llama.data.datasets.image_sets import ferplus_majority

    assert ferplus_majority([5, 5, 0, 0, 0, 0, 0, 0, 0, 0]) is None  # exactly half is not a majority
    assert ferplus_majority([6, 1, 1, 1, 1, 0, 0, 0, 0, 0]) == 0  # single votes are noise
    assert ferplus_majority([0] * 10) is None


# ---------------------------------------------------------------- DFEW

@pytest.mark.parametrize("spelling", ["single-labeled", "single_labeled"])
@pytest.mark.parametrize("media", ["clip_224x224_16f", "clip_224x224", "original"])
def test_dfew_layouts(tmp_path, spelling, media):
    want = fx.write_dfew(tmp_path, spelling=spelling, media=media)
    ds = get_dataset("dfew", tmp_path, split="train", fold=3)
    assert labels(ds) == want["train"] and [s.id for s in ds] == want["train_ids"]
    assert ds.classes[:3] == ("happiness", "sadness", "neutral") and ds.fold == 3 and ds[0].kind == "video"
    assert labels(get_dataset("dfew", tmp_path, split="test", fold=5)) == want["test"]
    with pytest.raises(ValueError, match="fold must be 1..5"):
        get_dataset("dfew", tmp_path, fold=6)


def test_dfew_16f_frames_read_in_natural_order(tmp_path):
    from emo_llama.faces.video import load_frames

    fx.write_dfew(tmp_path)
    frames = load_frames(get_dataset("dfew", tmp_path)[0].media)
    assert [int(f[0, 0, 0]) for f in frames[:3]] == [10, 20, 30]  # 1.jpg, 2.jpg, 3.jpg (not 1, 10, 11)
    assert len(frames) == 16


# ---------------------------------------------------------------- FERV39K

def test_ferv39k(tmp_path):
    want = fx.write_ferv39k(tmp_path)
    ds = get_dataset("ferv39k", tmp_path, split="train")
    assert labels(ds) == want["train"] and ds[0].media == tmp_path / "2_ClipsforFaceCrop" / "Action/Sad/0010"
    assert labels(get_dataset("ferv39k", tmp_path, split="test")) == want["test"]


def test_ferv39k_bad_line(tmp_path):
    fx.write_ferv39k(tmp_path)
    (tmp_path / "4_setups/All_scenes/test_All.csv").write_text("Action/Fear/0001 Fear\nAction/Fear/0002 Bored\n")
    with pytest.raises(DatasetFormatError, match=r"test_All.csv:2"):
        get_dataset("ferv39k", tmp_path, split="test")


# ---------------------------------------------------------------- MAFW

@pytest.mark.parametrize("media", ["clips", "frames"])
def test_mafw_single_no_caption(tmp_path, media):
    want = fx.write_mafw(tmp_path, media=media)
    ds = get_dataset("mafw", tmp_path, split="train", fold=2)
    assert labels(ds) == want["train"] and ds.classes == MAFW_CLASSES and ds[0].caption is None
    assert ds[0].media.exists() and ds[0].id == "00025"
    assert labels(get_dataset("mafw", tmp_path, split="test")) == want["test"]


def test_mafw_with_caption_gbk(tmp_path):
    fx.write_mafw(tmp_path)
    ds = get_dataset("mafw", tmp_path, split="train", captions=True)
    assert ds[0].caption == fx.CAPTION_EN and ds[0].label == "anger"


def test_mafw_compound(tmp_path):
    want = fx.write_mafw(tmp_path)
    ds = get_dataset("mafw", tmp_path, split="train", labels="compound")
    assert labels(ds) == want["compound_train"]
    assert ds.classes == ("anger_disgust", "sadness_surprise")


# ---------------------------------------------------------------- DFER list files

@pytest.mark.parametrize("style, order", [("dfer-clip", MAFW_CLASSES_DFER_CLIP), ("mae-dfer", MAFW_CLASSES)])
def test_mafw_list_files_with_reroot(tmp_path, style, order):
    fx.write_mafw(tmp_path, media="frames")
    list_file = tmp_path / "lists" / "set_1" / "train.txt"
    fx.write_dfer_list(list_file, "/data/old/MAFW/frames", [("00025", 0), ("00026", 3)], style)
    ds = get_dataset("mafw", split="train", list_file=list_file,
                     reroot=("/data/old/MAFW", str(tmp_path / "data")))
    assert labels(ds) == [order[0], order[3]] and ds.classes == order
    assert ds[0].media == tmp_path / "data" / "frames" / "00025"


def test_list_file_missing_clip_hints_at_reroot(tmp_path):
    list_file = tmp_path / "train.txt"
    fx.write_dfer_list(list_file, "/nonexistent", [("00001", 0)], "mae-dfer")
    with pytest.raises(DatasetFormatError, match=r"train.txt:1.*reroot"):
        get_dataset("dfew", split="train", list_file=list_file)
    ds = get_dataset("dfew", split="train", list_file=list_file, check_media=False)
    assert ds[0].label == "happiness"


def test_dfew_accepts_unpadded_clip_names(tmp_path):
    fx.write_dfew(tmp_path, media="original")
    clips = tmp_path / "Clip" / "original"
    (clips / "00010.mp4").rename(clips / "10.mp4")  # some re-packed copies drop the zero padding
    ds = get_dataset("dfew", tmp_path, split="train")
    assert [s.media.name for s in ds] == ["00001.mp4", "00002.mp4", "10.mp4"]
