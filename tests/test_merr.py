"""Emotion-LLaMA's MERR annotations: read in the released layout (strict and lenient), written back, AU entries."""

from __future__ import annotations

import json

import pytest

from emo_llama.data.labels import UnknownLabelError
from emo_llama.data.text import (
    MerrFormatError,
    MerrRecord,
    merr_record,
    read_merr_json,
    read_merr_txt,
    write_merr_json,
)
from emo_llama.data.text.merr import au_code

# Two good samples in the layout of MERR_fine_grained.json (an object keyed by video name), a malformed one (its
# AU_list holds a visual phrase, not an AU) and one whose label has no class in the kit ("doubt").
SURPRISE = {
    "AU_list": ["AU05", "AU26"],
    "visual_prior_list": ["Eyes widened", "Wide-mouthed"],
    "audio_prior_list": "The woman in the video speaks with an excited voice.",
    "peak_index": "7",
    "peak_AU_list": ["AU05", "AU26"],
    "pseu_emotion": "surprise",
    "text": "Oh my!",
    "smp_reason_caption": "Her eyes are widened and her mouth is wide open; with her excited voice this indicates "
                          "surprise.",
}
WORRIED = {
    "AU_list": ["AU01_r", "AU04_r", "lip corner depressor"],
    "visual_prior_list": ["Inner brow raised"],
    "audio_prior_list": ["A trembling voice", "slow pace"],
    "peak_index": 3,
    "peak_AU_list": ["AU04"],
    "pseu_emotion": "worried",
    "text": "",
    "smp_reason_caption": "Raised inner brows and a trembling voice suggest worry.",
    "source": "MER2023 test3",
}
MALFORMED = dict(SURPRISE, AU_list=["Eyes widened"])
DOUBT = dict(SURPRISE, pseu_emotion="doubt")


@pytest.fixture()
def merr_file(tmp_path):
    path = tmp_path / "MERR_fine_grained.json"
    data = {"sample_00000047": SURPRISE, "sample_00000101": MALFORMED, "sample_00000200": WORRIED,
            "sample_00000300": DOUBT}
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return path


def test_strict_reading_raises_naming_the_first_bad_record(merr_file):
    with pytest.raises(MerrFormatError, match=r"record 'sample_00000101'.*AU_list.*Eyes widened"):
        read_merr_json(merr_file)


def test_lenient_reading_keeps_the_good_records_and_names_the_bad_ones(merr_file):
    records, bad = read_merr_json(merr_file, strict=False)
    assert [r.sample_id for r in records] == ["sample_00000047", "sample_00000200"]
    assert len(bad) == 2
    assert "sample_00000101" in bad[0] and "Eyes widened" in bad[0]
    assert "sample_00000300" in bad[1] and "doubt" in bad[1]


def test_records_carry_canonical_labels_au_codes_and_clues(merr_file):
    surprise, worried = read_merr_json(merr_file, strict=False)[0]
    assert (surprise.label, surprise.label_word) == ("surprise", "surprise")
    assert surprise.aus == ("AU5", "AU26") and surprise.peak_aus == ("AU5", "AU26")
    assert surprise.visual_clues == ("Eyes widened", "Wide-mouthed")
    assert surprise.audio_clue == "The woman in the video speaks with an excited voice."
    assert surprise.text == "Oh my!" and surprise.peak_index == 7
    assert surprise.reason.endswith("surprise.") and surprise.grain == "fine"
    # MER2023's "worried" is the kit's anxiety; OpenFace column names and FACS names read as codes.
    assert (worried.label, worried.label_word) == ("anxiety", "worried")
    assert worried.aus == ("AU1", "AU4", "AU15")
    assert worried.audio_clue == "A trembling voice; slow pace"
    assert worried.text is None  # an empty text is no text
    assert worried.extra == {"source": "MER2023 test3"}


def test_coarse_caption_is_the_reason_and_the_txt_gives_missing_labels(tmp_path):
    coarse = {key: value for key, value in SURPRISE.items() if key not in ("pseu_emotion", "smp_reason_caption")}
    coarse["caption"] = "The woman's expression and actions include eyes widened. Saying: Oh my!"
    json_path = tmp_path / "MERR_coarse_grained.json"
    json_path.write_text(json.dumps({"sample_00000047": coarse}), encoding="utf-8")
    txt_path = tmp_path / "MERR_coarse_grained.txt"
    txt_path.write_text("sample_00000047 35 surprise -1.17\nsample_00000048 happy\n\n", encoding="utf-8")
    labels = read_merr_txt(txt_path)
    assert labels == {"sample_00000047": "surprise", "sample_00000048": "happy"}
    with pytest.raises(MerrFormatError, match="no label"):
        read_merr_json(json_path)
    (record,), bad = read_merr_json(json_path, labels=labels)
    assert bad == [] and record.label == "surprise"
    assert record.grain == "coarse" and record.reason.startswith("The woman's expression")


@pytest.mark.parametrize("content, message", [("{not json", "not valid JSON"),
                                              ('[{"pseu_emotion": "happy"}]', "keyed by sample id")])
def test_a_file_that_is_not_a_merr_object_raises_in_both_modes(tmp_path, content, message):
    path = tmp_path / "MERR_fine_grained.json"
    path.write_text(content, encoding="utf-8")
    for strict in (True, False):
        with pytest.raises(MerrFormatError, match=message):
            read_merr_json(path, strict=strict)


def test_merr_record_writes_the_released_layout():
    (sample_id, value), = merr_record("mini_0001", "anxiety", [1, "AU4", "lip corner depressor"],
                                      audio_clue="a low, slow voice", reason="...: anxiety").items()
    assert sample_id == "mini_0001"
    assert value["pseu_emotion"] == "worried"  # Emotion-LLaMA's own word
    assert value["AU_list"] == ["AU01", "AU04", "AU15"] and value["peak_AU_list"] == value["AU_list"]
    assert value["visual_prior_list"] == ["the inner brows rise", "the brows are drawn down and together",
                                          "the lip corners are pulled down"]
    assert value["audio_prior_list"] == "a low, slow voice" and value["smp_reason_caption"] == "...: anxiety"
    assert "text" not in value and "peak_index" not in value  # unknown values are left out, not invented
    coarse = merr_record("x", "happiness", [6, 12], reason="a smile", grain="coarse")["x"]
    assert coarse["caption"] == "a smile" and "smp_reason_caption" not in coarse
    with pytest.raises(UnknownLabelError):
        merr_record("x", "bewildered", [])


def test_round_trip_merr_record_write_read(tmp_path):
    path = tmp_path / "out" / "MERR_fine_grained.json"
    written = [merr_record("clip_1", "happiness", ["AU6", "AU12"], audio_clue="a bright, fast voice",
                           text="Great news!", reason="cheeks lift (AU6), lip corners rise (AU12): happiness",
                           peak_index=12),
               merr_record("clip_2", "sadness", [1, 4, 15], peak_aus=[15])]
    write_merr_json(written, path)
    records, bad = read_merr_json(path)
    assert bad == []
    first, second = records
    assert first == MerrRecord(sample_id="clip_1", label="happiness", label_word="happy", aus=("AU6", "AU12"),
                               peak_aus=("AU6", "AU12"),
                               visual_clues=("the cheeks lift", "the lip corners rise"),
                               audio_clue="a bright, fast voice", text="Great news!",
                               reason="cheeks lift (AU6), lip corners rise (AU12): happiness", grain="fine",
                               peak_index=12)
    assert second.aus == ("AU1", "AU4", "AU15") and second.peak_aus == ("AU15",) and second.reason is None
    # A read record writes back to the same object, its extra keys included.
    rewritten = tmp_path / "again.json"
    write_merr_json(records, rewritten)
    assert json.loads(rewritten.read_text()) == json.loads(path.read_text())


def test_records_read_from_a_released_file_write_back_unchanged(merr_file, tmp_path):
    records = read_merr_json(merr_file, strict=False)[0]
    write_merr_json(records, tmp_path / "copy.json")
    copied = read_merr_json(tmp_path / "copy.json")[0]
    assert copied == records and copied[1].extra == {"source": "MER2023 test3"}


def test_write_refuses_a_repeated_id_and_a_bad_record(tmp_path):
    record = merr_record("clip_1", "happiness", [12])
    with pytest.raises(MerrFormatError, match="clip_1.*twice"):
        write_merr_json([record, record], tmp_path / "a.json")
    with pytest.raises(MerrFormatError, match="record 0"):
        write_merr_json([{"clip_1": {"pseu_emotion": "happy", "AU_list": ["smiling"]}}], tmp_path / "b.json")
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("entry, code", [("AU12", "AU12"), ("AU 12", "AU12"), ("au05_r", "AU5"), ("AU05_c", "AU5"),
                                         ("12", "AU12"), (6, "AU6"), (4.0, "AU4"), ("lip corner puller", "AU12"),
                                         ("Lip-Corner Puller", "AU12"), ("AU12 (lip corner puller)", "AU12"),
                                         ("blink", "AU45")])
def test_au_entries_read_as_codes(entry, code):
    assert au_code(entry) == code


@pytest.mark.parametrize("entry", ["Eyes widened", "12 apples", "AU12 (brow lowerer)", "AU100", "AU0", "", True])
def test_entries_that_are_not_aus_raise(entry):
    with pytest.raises(ValueError, match="not an Action Unit"):
        au_code(entry)
