"""Loaders of the zero-shot sets of Tab. 4 (MELD, MER2023, CASME II, CMMA) on tiny fixtures written in each
released format with its quirks, and the class table that maps every dataset's own words."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures import fer_layouts as fx  # noqa: E402

from emo_llama.data import REGISTRY, DatasetFormatError, DatasetNotFoundError, get_dataset, parse_answer  # noqa: E402
from emo_llama.data.datasets.base import Sample  # noqa: E402
from emo_llama.data.labels import (  # noqa: E402
    AFFECTNET_CLASSES,
    BASIC7,
    CANONICAL,
    CASME2_CLASSES,
    DATASET_WORDS,
    DFEW_CLASSES,
    FERPLUS_CLASSES,
    MAFW_CLASSES,
    MELD_CLASSES,
    MER2023_CLASSES,
    RAFDB_CLASSES,
    class_table,
)


def labels(ds):
    return [s.label for s in ds.samples]


def append(path: Path, line: str, encoding: str = "utf-8") -> None:
    path.write_bytes(path.read_bytes() + (line + "\n").encode(encoding))


# ---------------------------------------------------------------- MELD

def test_meld_reads_each_split_with_text_and_speaker(tmp_path):
    want = fx.write_meld(tmp_path)
    for split in ("train", "dev", "test"):
        ds = get_dataset("meld", tmp_path, split=split)
        assert labels(ds) == want[split]["labels"], split
        assert [s.text for s in ds] == want[split]["texts"], split  # commas, quotes, the U+0092 apostrophe
        assert [s.identity for s in ds] == want[split]["speakers"] and [s.id for s in ds] == want[split]["ids"]
        assert all(s.kind == "video" and s.fold is None for s in ds) and ds.fold is None
    train = get_dataset("meld", tmp_path)
    assert train.classes == MELD_CLASSES and "happiness" in train.classes and "joy" not in train.classes
    assert train[0].media == tmp_path / "train_splits" / "dia0_utt0.mp4"
    assert train[1].text == 'Oh, you mean "that" one?'
    assert labels(get_dataset("meld", tmp_path, split="val")) == want["dev"]["labels"]


def test_meld_raw_folder_and_windows_1252_copy(tmp_path):
    want = fx.write_meld(tmp_path, raw_folder=True, encoding="cp1252")
    assert b"\x92" in (tmp_path / "MELD.Raw" / "train_sent_emo.csv").read_bytes()  # the copy's single byte
    ds = get_dataset("meld", tmp_path, split="train")
    assert [s.text for s in ds] == want["train"]["texts"]
    assert ds[2].text == "That\u2019s it!" and ds[0].media.parent == tmp_path / "MELD.Raw" / "train_splits"


def test_meld_missing_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        get_dataset("meld", tmp_path / "nowhere", split="test")
    assert "test_sent_emo.csv" in str(err.value) and "MELD.Raw.tar.gz" in str(err.value)


def test_meld_malformed_line_unknown_label_and_missing_clip(tmp_path):
    fx.write_meld(tmp_path)
    label_csv = tmp_path / "train_sent_emo.csv"
    append(label_csv, '9,"Hi, there.",Ross,neutral,neutral,7')  # line 5: too few fields
    with pytest.raises(DatasetFormatError, match=r"train_sent_emo.csv:5: expected 11 fields"):
        get_dataset("meld", tmp_path)
    append(label_csv, '10,Whatever.,Ross,bored,neutral,2,0,3,19,"00:01:00,000","00:01:01,000"')  # line 6
    (tmp_path / "train_splits" / "dia2_utt0.mp4").write_bytes(b"\x00")
    (tmp_path / "train_splits" / "dia1_utt0.mp4").unlink()  # line 4's clip
    with pytest.warns(UserWarning, match="skipped 3"):
        lenient = get_dataset("meld", tmp_path, strict=False)
    assert len(lenient) == 2 and [s.split(": ")[0].rsplit(":", 1)[1] for s in lenient.skipped] == ["4", "5", "6"]
    assert "bored" in lenient.skipped[2] and "joy" in lenient.skipped[2]  # names the accepted words
    assert "dia1_utt0.mp4 is missing" in lenient.skipped[0]


# ---------------------------------------------------------------- MER2023

def test_mer2023_train_maps_worried_to_anxiety_and_finds_avi(tmp_path):
    want = fx.write_mer2023(tmp_path)
    ds = get_dataset("mer2023", tmp_path, split="train")
    assert labels(ds) == want["train"] and ds.classes == MER2023_CLASSES and len(ds.classes) == 6
    assert ds[1].media.name == "sample_00000002.avi" and ds[0].media.suffix == ".mp4"
    assert all(s.kind == "video" for s in ds) and DATASET_WORDS["mer2023"]["worried"] == "anxiety"


def test_mer2023_test_splits_need_their_label_files(tmp_path):
    want = fx.write_mer2023(tmp_path, test_labels=("test1", "test3"))
    assert labels(get_dataset("mer2023", tmp_path, split="test1")) == want["test1"]
    assert labels(get_dataset("mer2023", tmp_path, split="test3")) == want["test3"]  # no valence column
    with pytest.raises(DatasetNotFoundError, match="released without their labels") as err:
        get_dataset("mer2023", tmp_path, split="test2")
    assert "test2-label.csv" in str(err.value) and "MERChallenge" in str(err.value)


def test_mer2023_missing_folder_and_bad_lines(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="MERChallenge"):
        get_dataset("mer2023", tmp_path / "nowhere")
    fx.write_mer2023(tmp_path)
    append(tmp_path / "train-label.csv", "sample_00000005,bored,0.0")  # line 6
    with pytest.raises(DatasetFormatError, match=r"train-label.csv:6: label 'bored' is not a mer2023 class"):
        get_dataset("mer2023", tmp_path)
    append(tmp_path / "train-label.csv", "sample_00000009,sad,1.0")  # line 7: no video
    with pytest.warns(UserWarning, match="skipped 2"):
        lenient = get_dataset("mer2023", tmp_path, strict=False)
    assert len(lenient) == 4 and ":7: video" in lenient.skipped[1]


# ---------------------------------------------------------------- CASME II

def test_casme2_apex_frames_skip_the_non_number_apex_row(tmp_path):
    want = fx.write_casme2(tmp_path)
    for strict in (True, False):
        with pytest.warns(UserWarning, match="apex frame is not a number"):
            ds = get_dataset("casme2", tmp_path, split="all", strict=strict)
        assert labels(ds) == want["apex_labels"] and [s.aus for s in ds] == want["apex_aus"]
        assert len(ds.skipped) == 1 and "sub02/EP09_01" in ds.skipped[0] and "'/'" in ds.skipped[0]
        assert "CASME2-coding-20140508.csv:4" in ds.skipped[0]
    assert ds.classes == CASME2_CLASSES and ds.split == "all" and ds.fold is None
    assert ds[0].media == tmp_path / "CASME2_RAW_selected" / "sub01" / "EP02_01f" / "img59.jpg"
    assert ds[1].media.parent.parent.name == "sub01"  # the sheet wrote the subject as 1
    assert all(s.kind == "image" for s in ds) and ds[0].identity == "sub01"


def test_casme2_clip_mode_keeps_every_row_as_a_frame_folder(tmp_path):
    want = fx.write_casme2(tmp_path)
    ds = get_dataset("casme2", tmp_path, split="all", media="clip")
    assert labels(ds) == want["clip_labels"] and ds.skipped == []
    assert all(s.kind == "video" and s.media.is_dir() for s in ds) and ds[2].aus == "14"


def test_casme2_cropped_release(tmp_path):
    want = fx.write_casme2(tmp_path, layout="cropped")
    with pytest.warns(UserWarning):
        ds = get_dataset("casme2", tmp_path, split="all")
    assert labels(ds) == want["apex_labels"] and ds[0].media.name == "reg_img59.jpg"
    assert ds[0].media.parts[-4] == "Cropped"


def test_casme2_xlsx_sheet(tmp_path):
    want = fx.write_casme2(tmp_path, sheet="xlsx")
    with pytest.warns(UserWarning):
        ds = get_dataset("casme2", tmp_path, split="all")
    assert labels(ds) == want["apex_labels"] and [s.aus for s in ds] == want["apex_aus"]
    assert "CASME2-coding-20140508.xlsx:4" in ds.skipped[0]


def test_casme2_leave_one_subject_out(tmp_path):
    want = fx.write_casme2(tmp_path)
    for subject, n_rows in want["subjects"].items():
        test = get_dataset("casme2", tmp_path, split="test", fold=subject, media="clip")
        train = get_dataset("casme2", tmp_path, split="train", fold=subject, media="clip")
        assert len(test) == n_rows and {s.identity for s in test} == {f"sub{subject:02d}"}
        assert f"sub{subject:02d}" not in {s.identity for s in train}
        assert len(train) + len(test) == sum(want["subjects"].values()) and test.fold == subject
    with pytest.raises(ValueError, match=r"fold must be the test subject's number, one of \[1, 2, 3\]"):
        get_dataset("casme2", tmp_path, split="test", fold=9)


def test_casme2_missing_frames_bad_rows_and_missing_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="casme.psych.ac.cn"):
        get_dataset("casme2", tmp_path / "nowhere")
    fx.write_casme2(tmp_path)
    (tmp_path / "CASME2_RAW_selected" / "sub03" / "EP01_01" / "img28.jpg").unlink()  # line 6's apex
    with pytest.raises(DatasetFormatError, match=r"CASME2-coding-20140508.csv:6: apex frame .*img28.jpg"):
        get_dataset("casme2", tmp_path, split="all")
    append(tmp_path / "CASME2-coding-20140508.csv", "04,EP05_02,,1,2,3,,4,contempt")  # line 7
    with pytest.warns(UserWarning):
        lenient = get_dataset("casme2", tmp_path, split="all", strict=False)
    assert len(lenient) == 3 and len(lenient.skipped) == 3  # the apex quirk, the missing frame, the label
    assert any(":7: label 'contempt' is not a casme2 class" in line for line in lenient.skipped)
    assert any(":6: apex frame" in line and "img28.jpg is missing" in line for line in lenient.skipped)


# ---------------------------------------------------------------- CMMA

def test_cmma_reads_the_public_label_files(tmp_path):
    want = fx.write_cmma(tmp_path)
    for split in ("train", "dev", "test"):  # test.csv: "CoversationID" header, a "digust" row
        ds = get_dataset("cmma", tmp_path, split=split, clip_name="video/{utterance_id}.mp4")
        assert labels(ds) == want[split], split
    train = get_dataset("cmma", tmp_path, clip_name="video/{utterance_id}.mp4")
    assert [s.text for s in train] == want["train_texts"] and train[0].identity == "唐悠悠"
    assert len(train) == 2 and train.skipped == []  # the rows of empty fields are not samples
    assert train[0].media == tmp_path / "video" / "C_1_U_1.mp4" and train[0].kind == "video"


def test_cmma_without_clip_naming_says_what_is_missing(tmp_path):
    fx.write_cmma(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="not publicly documented.*clip_name") as err:
        get_dataset("cmma", tmp_path)
    assert "annoymity2022/Chinese-Dataset" in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="annoymity2022"):
        get_dataset("cmma", tmp_path / "nowhere", clip_name="video/{utterance_id}.mp4")


def test_cmma_bad_line(tmp_path):
    fx.write_cmma(tmp_path)
    append(tmp_path / "text" / "dev.csv", "C_1802,C_1802_U_1,什么,吴非,x,y,bored,neutral,none,none,2,0,none,none",
           encoding="gbk")
    with pytest.raises(DatasetFormatError, match=r"dev.csv:3: label 'bored'"):
        get_dataset("cmma", tmp_path, split="dev", clip_name="video/{utterance_id}.mp4")


# ---------------------------------------------------------------- the class table and the vocabulary

def test_dataset_words_cover_every_registered_dataset_in_class_order():
    assert set(DATASET_WORDS) == set(REGISTRY)
    own_order = {"rafdb": RAFDB_CLASSES, "affectnet": AFFECTNET_CLASSES, "ferplus": FERPLUS_CLASSES,
                 "dfew": DFEW_CLASSES, "mafw": MAFW_CLASSES, "meld": MELD_CLASSES, "mer2023": MER2023_CLASSES,
                 "casme2": CASME2_CLASSES, "mini": BASIC7}
    for name, classes in own_order.items():
        assert tuple(DATASET_WORDS[name].values()) == classes, name
    assert DATASET_WORDS["meld"]["joy"] == "happiness" and DATASET_WORDS["rafdb"]["Happiness"] == "happiness"
    assert DATASET_WORDS["ferplus"]["contempt"] == "contempt" and DATASET_WORDS["dfew"]["Angry"] == "anger"
    rows = class_table()
    assert ("mer2023", "worried", "anxiety") in rows and ("casme2", "others", "others") in rows
    assert len(rows) == sum(len(t) for t in DATASET_WORDS.values())
    assert CANONICAL[-2:] == ("repression", "others")
    assert CANONICAL[:11] == BASIC7 + ("contempt", "anxiety", "helplessness", "disappointment")  # unchanged


# Answers as models write them; "other"/"others" and "repressed" are ordinary words in most of them.
ANSWERS = {
    "The other person in the photo looks happy.": "happiness",
    "Compared with the other faces, this one is sad.": "sadness",
    "My choice is: surprise. The other cues agree.": "surprise",
    "He seems angry, though he repressed it.": "anger",
    "Neither happy nor sad; others might say neutral.": "happiness",
}


@pytest.mark.parametrize("classes", [BASIC7, RAFDB_CLASSES, FERPLUS_CLASSES, MAFW_CLASSES, MELD_CLASSES,
                                     MER2023_CLASSES])
def test_new_classes_do_not_change_how_answers_parse(classes):
    for answer, want in ANSWERS.items():
        assert parse_answer(answer, classes) == want, answer


def test_other_is_never_read_as_the_class_others():
    assert parse_answer("The other person in the photo looks happy.", CASME2_CLASSES) == "happiness"
    assert parse_answer("The other eye twitches.", CASME2_CLASSES) is None
    assert parse_answer("My choice is: others", CASME2_CLASSES) == "others"
    assert parse_answer("He repressed a smile", CASME2_CLASSES) == "repression"


def test_others_counts_only_when_no_other_class_is_named():
    assert parse_answer("Compared with others, she looks happy.", CASME2_CLASSES) == "happiness"
    assert parse_answer("others", CASME2_CLASSES) == "others"
    assert parse_answer("My choice is: others (maybe surprise)", CASME2_CLASSES) == "surprise"


def test_sample_text_and_aus_default_to_none():
    sample = Sample(id="x", media=Path("x.jpg"), label="neutral", split="train")
    assert sample.text is None and sample.aus is None
