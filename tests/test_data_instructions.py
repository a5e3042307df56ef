"""Category and conversation instructions, the fixed prompts, LLaVA JSON round trips and resampling."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from emo_llama.data import (
    BASIC7,
    InstructionFormatError,
    LLMConversationGenerator,
    OfflineConversationGenerator,
    Sample,
    agr_prompt,
    category_instruction,
    category_instructions,
    make_weighted_sampler,
    parse_answer,
    read_llava_json,
    write_llava_json,
    zero_shot_question,
)
from emo_llama.data.aus import describe_aus
from emo_llama.data.sampling import inverse_frequency_weights, resampled_counts
from emo_llama.data.text.conversations import record_from_llm_reply
from emo_llama.data.text.llava_json import validate_record

IMG = Sample(id="a1", media=Path("/x/a1.jpg"), label="happiness", split="train", caption="The lip corners rise.")
VID = Sample(id="v1", media=Path("/x/v1.mp4"), label="fear", split="test", kind="video")

ZERO_SHOT = ("PLEASE ENSURE that you start your answer with 'My choice is: ' FIRST and select ONLY ONE WORD "
             "from the provided list.")


def test_category_instruction_record():
    rec = category_instruction(IMG, BASIC7, phrasing=0)
    human, gpt = rec["conversations"]
    assert human["value"].startswith("<image>\n") and "neutral, happiness, sadness" in human["value"]
    assert gpt["value"] == "happiness" and rec["image"] == "/x/a1.jpg" and "video" not in rec
    validate_record(rec)
    vid = category_instruction(VID, BASIC7, phrasing=0)
    assert vid["video"] == "/x/v1.mp4" and "video" in vid["conversations"][0]["value"]


def test_zero_shot_prompt_is_the_papers_and_answer_parses_back():
    rec = category_instruction(IMG, BASIC7, zero_shot=True)
    assert rec["conversations"][0]["value"].endswith(ZERO_SHOT)
    assert rec["conversations"][1]["value"] == "My choice is: happiness"
    assert parse_answer(rec["conversations"][1]["value"], BASIC7) == "happiness"
    assert zero_shot_question(BASIC7).endswith(ZERO_SHOT)


def test_agr_prompt_and_caption_in_question():
    agr = agr_prompt(31.4, "female")
    assert agr == ("According to the specific question, you are allowed to use or partially use the following "
                   "information: age: about 31 years; gender: female.")
    rec = category_instruction(IMG, BASIC7, agr=agr, use_caption=True)
    text = rec["conversations"][0]["value"]
    assert agr in text and "The lip corners rise." in text
    with pytest.raises(ValueError, match="agr_prompt"):
        category_instruction(IMG, BASIC7, agr="age 31")


def test_phrasings_vary_and_are_reproducible():
    samples = [IMG] * 30
    a = category_instructions(samples, BASIC7, seed=1)
    b = category_instructions(samples, BASIC7, seed=1)
    assert a == b
    assert len({r["conversations"][0]["value"] for r in a}) >= 4


def test_label_outside_class_list_is_an_error():
    with pytest.raises(ValueError, match="not in the class list"):
        category_instruction(IMG, ("anger", "fear"))


def test_offline_conversation_is_grounded():
    gen = OfflineConversationGenerator(seed=0)
    rec = gen(IMG, agr=agr_prompt(40, "male"))
    turns = [t["value"] for t in rec["conversations"]]
    assert len(turns) == 6 and turns[0].startswith("<image>\n")
    assert "happy" in turns[1] and turns[3] == "The lip corners rise." and "40 years" in turns[5]
    validate_record(rec)
    no_caption = gen(VID)  # falls back to the label's prototype cues
    assert "brows" in no_caption["conversations"][3]["value"] and "video" in no_caption
    assert gen(IMG) == OfflineConversationGenerator(seed=0)(IMG)


def test_au_captions():
    assert describe_aus([6, 12]) == "The lip corners rise and the cheeks lift."
    assert describe_aus([]).startswith("The face is relaxed")


def test_llm_generator_builds_requests_without_calling(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    gen = LLMConversationGenerator()
    url, headers, body = gen.build_request(IMG, b"\xff\xd8jpeg", api_key="k")
    assert url.endswith(":generateContent") and headers["x-goog-api-key"] == "k"
    assert "'happiness'" in body["contents"][0]["parts"][0]["text"]
    url, headers, body = LLMConversationGenerator(provider="openai", model="m", base_url="http://h/v1/") \
        .build_request(VID, b"x", frame_descriptions=["a man", "he flinches"], api_key="k")
    assert url == "http://h/v1/chat/completions" and body["model"] == "m"
    assert "he flinches" in body["messages"][0]["content"][0]["text"]
    with pytest.raises(RuntimeError, match="GEMINI_API_KEY"):
        gen._key()  # off by default: no key, no call


def test_llm_reply_parsing():
    rec = record_from_llm_reply(IMG, '```json\n[{"question": "Mood?", "answer": "Happy."}]\n```')
    assert rec["conversations"][0]["value"] == "<image>\nMood?"
    with pytest.raises(ValueError, match="no JSON list"):
        record_from_llm_reply(IMG, "sorry")


def test_llava_json_round_trip(tmp_path):
    recs = category_instructions([IMG, VID], BASIC7) + [OfflineConversationGenerator()(IMG)]
    for suffix in (".json", ".jsonl"):
        path = write_llava_json(recs, tmp_path / f"out{suffix}")
        assert read_llava_json(path) == recs


@pytest.mark.parametrize("bad, msg", [
    ({"image": "a.jpg", "conversations": []}, "missing 'id'"),
    ({"id": "r", "image": "a.jpg", "conversations": []}, "non-empty"),
    ({"id": "r", "image": "a.jpg", "conversations": [{"from": "human", "value": "hi"},
                                                     {"from": "gpt", "value": "x"}]}, "<image>"),
    ({"id": "r", "conversations": [{"from": "gpt", "value": "x"}]}, "turn 0"),
    ({"id": "r", "image": "a", "video": "b", "conversations": []}, "both"),
])
def test_llava_validation_names_the_record(tmp_path, bad, msg):
    good = category_instruction(IMG, BASIC7)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([good, bad]))
    with pytest.raises(InstructionFormatError, match=rf"bad.json record 1.*{msg}"):
        read_llava_json(path)


def test_weighted_sampler_balances_classes():
    labels = ["happiness"] * 90 + ["fear"] * 10
    w = inverse_frequency_weights(labels)
    assert w[0] == pytest.approx(1 / 90) and w[-1] == pytest.approx(1 / 10)
    sampler = make_weighted_sampler(labels, num_samples=4000, generator=torch.Generator().manual_seed(0))
    assert isinstance(sampler, torch.utils.data.WeightedRandomSampler)
    counts = resampled_counts(labels, sampler, ["happiness", "fear"])
    assert sum(counts.values()) == 4000 and abs(counts["fear"] / 4000 - 0.5) < 0.05
    assert Counter(labels)["fear"] / len(labels) == 0.1  # it was 10 % before resampling


def test_sampler_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        make_weighted_sampler([])
