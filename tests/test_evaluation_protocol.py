"""The paper's evaluation protocol (issue 24): several datasets in one run, each scored with its own classes;
evaluation of a saved model on any registered dataset; instruction files; media kinds; weighted F1; baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures.fer_layouts import write_casme2, write_ferplus_folders, write_rafdb
from fixtures.launch import TINY
from sklearn.metrics import f1_score

from emo_llama.data import InstructionFormatError, compute_metrics, get_dataset
from emo_llama.data.labels import CASME2_CLASSES, FERPLUS_CLASSES, RAFDB_CLASSES
from emo_llama.data.splits import load_splits, load_test_sets, weights_by_dataset
from emo_llama.evaluate.__main__ import main as evaluate_main
from emo_llama.evaluate.protocol import NO_NEW_MODULES, load_model, protocol_table
from emo_llama.prompts import class_list_text
from emo_llama.train import TrainConfig, run
from emo_llama.train.items import TrainItem, build_items, instruction_file_items, item_weights


def tiny_media_config(out: Path, **overrides) -> TrainConfig:
    """The tiny stack (random weights) on real media files: seconds per run."""
    base = dict(stack="tiny", model_options=TINY, lora_r=4, batch_size=2, max_steps=2, align_steps=1,
                align_batch_size=4, output_dir=str(out), progress=False, zero_shot=False, real_faces=False,
                max_new_tokens=4, device="cpu", train_limit=14, eval_limit=7)
    return TrainConfig(**(base | overrides))


# ----- several datasets, media kinds -----------------------------------------------------------------

def test_two_datasets_load_together_each_with_its_own_classes(tmp_path):
    write_rafdb(tmp_path / "raf")
    cfg = TrainConfig(datasets=("mini", f"rafdb={tmp_path / 'raf'}"), eval_datasets=(f"ferplus={tmp_path / 'fp'}",),
                      train_limit=14, eval_limit=7)
    write_ferplus_folders(tmp_path / "fp")
    splits = load_splits(cfg)
    assert splits.trained_on == ("mini", "rafdb") and splits.primary == "mini"
    assert list(splits.test_sets) == ["mini", "rafdb", "ferplus"]
    assert splits.classes_of["rafdb"] == RAFDB_CLASSES and splits.classes_of["ferplus"] == FERPLUS_CLASSES
    assert {s.dataset for s in splits.train} == {"mini", "rafdb"} and len([s for s in splits.train
                                                                           if s.dataset == "rafdb"]) == 3
    assert set(splits.classes) == set(RAFDB_CLASSES) and "contempt" not in splits.classes  # ferplus is scored only
    # a category question names the classes of the sample's own dataset, in that dataset's order
    items = build_items(splits.train, splits.classes_of, cfg, agr_of=lambda s: "")
    raf_item = next(i for i in items if i.dataset == "rafdb" and i.task == "category")
    assert class_list_text(RAFDB_CLASSES) in raf_item.turns[0][0]
    mini_item = next(i for i in items if i.dataset == "mini" and i.task == "category")
    assert class_list_text(splits.classes_of["mini"]) in mini_item.turns[0][0]


def test_a_spec_names_the_split_it_scores_for_sets_without_a_test_split(tmp_path):
    write_casme2(tmp_path / "casme")
    with pytest.warns(UserWarning):  # the released sheet's apex cells that are not numbers, listed
        sets = load_test_sets(TrainConfig(), [f"casme2:all={tmp_path / 'casme'}"])
    classes, samples = sets["casme2:all"]
    assert classes == CASME2_CLASSES and samples and {s.dataset for s in samples} == {"casme2"}
    with pytest.raises(ValueError, match="fold must be the test subject"):  # "test" is leave-one-subject-out
        load_test_sets(TrainConfig(fold=99), [f"casme2={tmp_path / 'casme'}"])


def test_a_dataset_named_twice_or_weights_that_do_not_fit_raise():
    with pytest.raises(ValueError, match="named twice"):
        load_splits(TrainConfig(datasets=("mini", "mini")))
    with pytest.raises(ValueError, match="one positive weight per dataset"):
        weights_by_dataset(TrainConfig(datasets=("mini", "rafdb"), dataset_weights=(1.0,)))
    assert weights_by_dataset(TrainConfig(datasets=("mini", "rafdb=/x"), dataset_weights=(1, 3))) == {"mini": 1.0,
                                                                                                       "rafdb": 3.0}
    with pytest.raises(ValueError, match="train_kinds"):
        load_splits(TrainConfig(train_kinds=("audio",)))


def test_dataset_weights_split_the_category_draws_between_datasets():
    items = ([TrainItem(f"a{i}", [("q", "x")], "happiness", "category", "a") for i in range(10)]
             + [TrainItem(f"b{i}", [("q", "x")], "fear" if i % 3 else "anger", "category", "b") for i in range(30)]
             + [TrainItem(f"c{i}", [("q", "x")], "", "instruction", "instructions") for i in range(4)])
    weights = item_weights(items, resample=True, conversation_share=0.2, dataset_weights={"a": 1.0, "b": 1.0})
    by = {d: float(weights[[i.dataset == d for i in items]].sum()) for d in ("a", "b", "instructions")}
    assert by == pytest.approx({"a": 0.4, "b": 0.4, "instructions": 0.2})
    b = [(i.label, float(w)) for i, w in zip(items, weights) if i.dataset == "b"]  # resampled inside b
    assert sum(w for lab, w in b if lab == "anger") == pytest.approx(sum(w for lab, w in b if lab == "fear"))
    by_size = item_weights(items, resample=False, conversation_share=0.2)  # unset: by size, as one dataset
    assert float(by_size[:10].sum()) == pytest.approx(0.8 * 10 / 40)


def test_train_kinds_keep_one_media_kind_for_training_only():
    both, videos = load_splits(TrainConfig()), load_splits(TrainConfig(train_kinds=("video",)))
    assert {s.kind for s in videos.train} == {"video"} and videos.skipped_kinds == sum(s.kind == "image"
                                                                                       for s in both.train)
    assert [s.media for s in videos.test] == [s.media for s in both.test]  # the test split keeps both kinds


# ----- a run on two datasets + an instruction file; its model scored elsewhere ------------------------

def _instruction_file(tmp_path: Path) -> tuple[Path, Path]:
    """Two good records on mini's images, one whose image is missing, one without the assistant's answer."""
    mini = get_dataset("mini", split="train")
    images = [s.media for s in mini.samples if s.kind == "image"][:2]
    records = [{"id": f"r{i}", "image": str(p.relative_to(p.parents[1])),
                "conversations": [{"from": "human", "value": "<image>\nWhat does this face show?"},
                                  {"from": "gpt", "value": f"A face, record {i}."}]} for i, p in enumerate(images)]
    records.append({"id": "gone", "image": "nowhere/missing.jpg",
                    "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "?"}]})
    records.append({"id": "broken", "image": "x.jpg", "conversations": [{"from": "human", "value": "<image>\nq"}]})
    path = tmp_path / "instructions.json"
    path.write_text(json.dumps(records))
    return path, images[0].parents[1]


def test_instruction_file_records_are_trained_on_and_bad_ones_named(tmp_path):
    path, root = _instruction_file(tmp_path)
    cfg = TrainConfig(instruction_files=(str(path),), instruction_root=str(root))
    items, media, bad = instruction_file_items(cfg)
    assert [i.task for i in items] == ["instruction", "instruction"] and len(media) == 2
    assert items[0].turns == [("<image>\nWhat does this face show?", "A face, record 0.")]
    gone, broken = sorted(bad, key=lambda text: "broken" in text)
    assert len(bad) == 2 and "record 2 (id='gone')" in gone and "does not exist" in gone
    assert "record 3 (id='broken')" in broken and "assistant" in broken
    with pytest.raises(InstructionFormatError, match="broken"):
        instruction_file_items(TrainConfig(instruction_files=(str(path),), instruction_root=str(root),
                                           instruction_strict=True))


def test_a_run_trains_on_two_datasets_and_a_json_file_then_any_dataset_scores_its_model(tmp_path):
    write_rafdb(tmp_path / "raf")
    write_ferplus_folders(tmp_path / "fp")
    path, root = _instruction_file(tmp_path)
    out = tmp_path / "run"
    result = run(tiny_media_config(out, datasets=("mini", f"rafdb={tmp_path / 'raf'}"),
                                   eval_datasets=(f"ferplus={tmp_path / 'fp'}",), instruction_files=(str(path),),
                                   instruction_root=str(root), conversation_share=0.5), log=lambda _: None)
    m = result.metrics
    assert m["datasets"]["trained_on"] == ["mini", "rafdb"] and m["datasets"]["scored"] == ["mini", "rafdb", "ferplus"]
    assert m["instruction_files"]["records"] == 2 and m["instruction_files"]["skipped"] == 2
    assert set(m["other_datasets"]) == {"rafdb", "ferplus"} and m["steps"] == 2
    assert m["other_datasets"]["ferplus"]["unseen_classes"] == ["contempt"]  # never among the training classes
    assert m["other_datasets"]["rafdb"]["unseen_classes"] == []
    trained_on = json.loads((out / "model" / "trained_on.json").read_text())
    assert trained_on["datasets"] == ["mini", "rafdb"] and "contempt" not in trained_on["classes"]
    for name in ("mini", "rafdb", "ferplus"):
        saved = json.loads((out / "eval" / name / "metrics.json").read_text())
        assert {"acc", "uar", "war", "wf1", "unparseable", "confusion", "classes"} <= set(saved), name
        assert len(json.loads((out / "eval" / name / "answers.json").read_text())) == saved["n"]

    # the saved model, scored by the command line on a dataset it was not trained on
    evaluate_main(["--model", str(out), "--dataset", f"ferplus={tmp_path / 'fp'}", "--output_dir",
                   str(tmp_path / "ev"), "--progress", "false", "--device", "cpu", "--max_new_tokens", "4"])
    saved = json.loads((tmp_path / "ev" / "ferplus" / "metrics.json").read_text())
    assert saved["classes"] == list(FERPLUS_CLASSES) and saved["unseen_classes"] == ["contempt"]
    assert saved["n"] == len(get_dataset("ferplus", root=tmp_path / "fp", split="test").samples)
    table = (tmp_path / "ev" / "table.md").read_text()
    assert "ferplus UAR" in table and table.count("\n") == 3  # header, rule, one model


def test_the_expert_baseline_is_the_experts_own_reading(tmp_path):
    evaluate_main(["--model", "expert", "--stack", "tiny", "--dataset", "mini", "--eval_limit", "7",
                   "--output_dir", str(tmp_path), "--progress", "false"])
    saved = json.loads((tmp_path / "mini" / "metrics.json").read_text())
    answers = json.loads((tmp_path / "mini" / "answers.json").read_text())
    assert saved["model"] == "facial expert" and len(answers) == 7
    # every prediction is a class of the dataset, or None for a sample without a face
    assert all(a["prediction"] in saved["classes"] or a["prediction"] is None for a in answers)
    assert saved["acc"] == pytest.approx(sum(a["prediction"] == a["label"] for a in answers) / 7, abs=1e-4)


def test_the_pretrained_baseline_switches_every_new_module_off_and_refuses_the_offline_stack():
    with pytest.raises(ValueError, match="--model expert"):
        load_model("pretrained", TrainConfig(stack="offline"))
    model, seen, name = load_model("pretrained", TrainConfig(stack="tiny", model_options=TINY, device="cpu"))
    assert seen is None and "zero-shot" in name
    assert all(getattr(model.config, k) is v for k, v in NO_NEW_MODULES.items())
    assert model.frame_token_names == ("context", "visual")


# ----- metrics -----------------------------------------------------------------------------------------

def test_weighted_f1_is_sklearns_with_unparseable_answers_as_misses():
    y_true = ["happiness"] * 4 + ["anger"] * 2 + ["fear"]
    y_pred = ["happiness", "happiness", "anger", None, "anger", "happiness", "fear"]
    metrics = compute_metrics(y_true, y_pred, ["happiness", "anger", "fear"])
    expected = f1_score(y_true, ["<none>" if p is None else p for p in y_pred],
                        labels=["happiness", "anger", "fear"], average="weighted")
    assert metrics["wf1"] == pytest.approx(expected)


def test_protocol_table_is_one_row_per_model_and_marks_missing_cells():
    table = protocol_table({"a": {"dfew": {"uar": 0.5, "war": 0.6}}, "b": {"mafw": {"uar": 0.25, "war": 0.3}}})
    lines = table.splitlines()
    assert lines[0] == "| model | dfew UAR | dfew WAR | mafw UAR | mafw WAR |"
    assert lines[2] == "| a | 50.00 | 60.00 | - | - |" and lines[3] == "| b | - | - | 25.00 | 30.00 |"


def test_metrics_by_kind_score_images_and_videos_apart():
    from emo_llama.evaluate.scoring import evaluate

    class Fixed:  # answers "happiness" to everything
        def eval(self):
            return self

        def generate(self, media, questions, **kw):
            from emo_llama.model.answers import Answer

            return [Answer("happiness") for _ in media]

    media = [torch.zeros(1)] * 4
    labels = ["happiness", "anger", "happiness", "happiness"]
    metrics = evaluate(Fixed(), media, labels, ["happiness", "anger"], "q", progress=False,
                       kinds=["image", "image", "video", "video"])
    assert metrics["by_kind"]["image"]["acc"] == 0.5 and metrics["by_kind"]["video"]["acc"] == 1.0
    assert "by_kind" not in evaluate(Fixed(), media, labels, ["happiness", "anger"], "q", progress=False,
                                     kinds=["image"] * 4)


def test_an_edited_instruction_file_is_another_run(tmp_path):
    from emo_llama.train.checkpoint import digest, run_fingerprint

    class NoTensors:
        def trained_tensors(self):
            return []

    media = tmp_path / "a.jpg"
    media.write_bytes(b"x")
    before = [TrainItem(str(media), [("<image>\nq", "an answer")], "", "instruction")]
    after = [TrainItem(str(media), [("<image>\nq", "another answer")], "", "instruction")]
    runs = [digest(run_fingerprint({}, [], "f", NoTensors(), items)) for items in (before, after, before, ())]
    assert runs[0] != runs[1] and runs[0] == runs[2] and runs[3] != runs[0]
