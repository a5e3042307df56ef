"""The paper's ablation arms (Tab. 5-9): each switch changes what the model reads, and the runner shares work.

Model-level tests use the `tiny` stack with synthetic features; the runner and `run` wiring use the synthetic
dataset (seconds).
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from emo_llama import ablations
from emo_llama.ablations import ABLATED, ARMS, arms_of, plan, run_ablations
from emo_llama.data import Sample
from emo_llama.data.sampling import epoch_order, make_weighted_sampler
from emo_llama.features.synthetic import synthetic_features
from emo_llama.model import EmoLlama, EmoLlamaConfig
from emo_llama.model.parts.face_info_mining import FaceInfoMining, FIMConfig, PoolConcat
from emo_llama.prompts import AGR_PREFIX, eval_questions
from emo_llama.train import TrainConfig
from emo_llama.train.items import TrainItem, item_weights

SMALL = {"context_dim": 16, "fim_dim": 16, "fim_heads": 2, "landmark_hidden": 16, "num_queries": 4,
         "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
QUESTION = "What emotion? Options: a, b, c."


def tiny_model(**overrides) -> EmoLlama:
    torch.manual_seed(0)
    return EmoLlama(EmoLlamaConfig(stack="tiny", stack_options={"encoders": False}, **(SMALL | overrides))).eval()


def tokens(model, feats, question=QUESTION) -> torch.Tensor:
    with torch.no_grad():
        return model.frame_tokens(model.make_batch(feats, [[(question, "a")]] * len(feats)))


def tiny_train_config(out, **overrides) -> TrainConfig:
    base = dict(dataset="synthetic", stack="tiny", stack_options={"encoders": False},
                model_options={k: v for k, v in SMALL.items() if not k.startswith("lora")}, lora_r=4, batch_size=4,
                max_steps=2, align_steps=2, align_batch_size=4, output_dir=str(out), progress=False,
                zero_shot=False, real_faces=False, check_memory=False, max_new_tokens=3, device="cpu",
                eval_limit=3)
    return TrainConfig(**(base | overrides))


# ----- the registry ----------------------------------------------------------------------------------

def test_every_table_has_its_rows_with_the_papers_figures():
    counts = {t: len(arms_of(t)) for t in ablations.TABLES}
    assert counts == {2: 3, 3: 3, 5: 4, 6: 3, 7: 2, 8: 2, 9: 2, 10: 4}
    names = {f.name for f in fields(TrainConfig)}
    for arm in ARMS.values():
        assert set(arm.overrides) | set(arm.inference) <= names, arm.name
        # Tab. 2/3 compare the paper's models on real benchmarks, and Tab. 10 (Emotion-LLaMA's modalities on mini)
        # is not the paper's: no ablation figure of the paper to put beside
        assert {"mafw_uar", "mafw_war"} <= set(arm.paper) or arm.table in (2, 3, 10), arm.name
        assert (arm.scored_kind is not None) == (arm.table in (2, 3, 10)), arm.name  # 10: mini's clips have sound
        cfg = arm.config(TrainConfig(use_agr=False, resample=False))  # the base's ablated fields do not leak
        assert all(getattr(cfg, k) == (ABLATED | arm.overrides)[k] for k in ABLATED), arm.name
    assert ARMS["t6_none"].paper["affectnet_acc"] == 32.96 and ARMS["t8_visual_text"].paper["mafw_uar"] == 49.29
    with pytest.raises(KeyError):
        arms_of(4)


def test_modality_arms_share_the_full_model_and_train_audio_apart():
    jobs = plan(arms_of("5,10"))
    reads = {arm.name: (job.key, source) for job in jobs for arm, source in job.reads}
    assert reads["t10_visual"][0] == reads["t10_visual_text"][0] == reads["t5_agr"][0]  # one training, re-scored
    assert ARMS["t10_visual_text"].inference == {"use_text": True}
    assert len({reads["t10_visual"][0], reads["t10_visual_audio"][0], reads["t10_audio_only"][0]}) == 3
    assert reads["t10_audio_only"][0].endswith("video-only-novision-audio")
    only = ARMS["t10_audio_only"].config(TrainConfig())
    assert only.use_audio and not (only.use_vision or only.use_landmarks or only.use_expression or only.use_agr)


def test_plan_trains_each_distinct_config_once_and_reads_shared_rows_off_it():
    jobs = plan(arms_of("5,6,7,8,9"))
    assert len(jobs) == 7  # 13 arms
    reads = {arm.name: (job.key, source) for job in jobs for arm, source in job.reads}
    assert reads["t5_no_priors"][0] == reads["t6_category_conversation"][0] == reads["t6_none"][0]
    assert reads["t6_none"][1] == "zero_shot" and next(j for j in jobs if j.key == reads["t6_none"][0]).zero_shot
    assert reads["t5_agr"][0] == reads["t8_visual"][0] == reads["t8_visual_text"][0]
    assert reads["t5_face_roi"][0] == reads["t7_fim"][0] != reads["t7_pool_concat"][0]
    assert reads["t6_category"][0] == reads["t9_resampling"][0] != reads["t9_no_resampling"][0]
    assert sum(j.zero_shot for j in jobs) == 1  # the zero-shot evaluation runs once per seed
    alone = plan([ARMS["t6_none"]])  # asked alone, the no-tuning row is its own (untuned) run
    assert len(alone) == 1 and alone[0].overrides["instruction_types"] == () and alone[0].reads[0][1] == "trained"


# ----- Tab. 5: what each prior switch changes --------------------------------------------------------

def test_without_face_embedding_outputs_ignore_the_face_tokens():
    feats = [synthetic_features(0, 1)]
    moved = [replace(feats[0], face_tokens=feats[0].face_tokens + 5 * torch.randn_like(feats[0].face_tokens))]
    off = tiny_model(use_face_embedding=False)
    assert torch.equal(tokens(off, feats), tokens(off, moved))
    assert off.clue_aggregator.face_to_vision is None and not hasattr(off.face_info_mining, "global_attn")
    on = tiny_model()
    assert not torch.allclose(tokens(on, feats), tokens(on, moved), atol=1e-4)  # the control: it does read them


def test_without_agr_the_prompt_has_no_agr_sentence():
    feats = [synthetic_features(0, 1)]
    for use_agr in (True, False):
        model = tiny_model(use_agr=use_agr)
        text = model.tokenizer.decode(model.make_batch(feats, [[(QUESTION, "a")]])["input_ids"][0])
        assert (AGR_PREFIX.strip() in text) == use_agr
        assert ("age: about 30 years" in text) == use_agr


def test_without_landmark_token_the_au_regions_still_place_local_attention():
    feats = [synthetic_features(0, 1)]
    model = tiny_model(use_landmarks=False, use_expression=False)
    out = tokens(model, feats)
    assert out.shape[1] == 2 and model.landmark_encoder is None  # [context, visual]: no landmark token
    moved_landmarks = [replace(feats[0], landmarks_68=feats[0].landmarks_68.flip(1))]
    assert torch.equal(out, tokens(model, moved_landmarks))
    masks = feats[0].au_masks.clone()
    masks[:, 0] = ~masks[:, 0]  # the landmarks moved a region: the visual token (Local Face Attention) changes
    moved_regions = tokens(model, [replace(feats[0], au_masks=masks)])
    assert not torch.allclose(moved_regions[:, 1], out[:, 1], atol=1e-5)
    with_token = tiny_model(use_expression=False)
    assert tokens(with_token, feats).shape[1] == 3
    assert not torch.allclose(tokens(with_token, moved_landmarks)[:, 2], tokens(with_token, feats)[:, 2], atol=1e-5)


# ----- Tab. 6: the context token reads the instruction (Eq. 2) ------------------------------------------

def test_context_token_changes_with_the_instruction_and_the_visual_token_does_not():
    model = tiny_model()
    feats = [synthetic_features(0, 1)]
    a, b = tokens(model, feats), tokens(model, feats, "Describe the background of the image in detail.")
    assert not torch.allclose(a[:, 0], b[:, 0], atol=1e-5)   # context token (Eq. 2, instruction-aware Q-Former)
    assert torch.equal(a[:, 1:], b[:, 1:])                    # visual (FIM) and landmark tokens ignore it


def test_no_instruction_types_means_zero_shot_only(tmp_path):
    from emo_llama.train import run

    result = run(tiny_train_config(tmp_path / "none", instruction_types=()), log=lambda _: None)
    m = result.metrics
    assert m["steps"] == 0 and m["align_loss"] == [] and m["train_loss"] == []
    assert m["trained"] == m["zero_shot"] and result.trained is result.zero_shot
    assert len(result.zero_shot["answers"]) == 3  # the untuned model was scored with the zero-shot prompt
    with pytest.raises(ValueError, match="instruction_types"):
        run(tiny_train_config(tmp_path / "bad", instruction_types=("captions",)), log=lambda _: None)


# ----- Tab. 7: pool & concat vs Face Info Mining -----------------------------------------------------

def test_pool_concat_ignores_where_on_the_face_and_fim_does_not():
    torch.manual_seed(0)
    vision, faces = torch.randn(2, 10, 32), torch.randn(2, 9, 8)
    masks = torch.zeros(2, 3, 9, dtype=torch.bool)
    masks[:, 0, :3] = masks[:, 1, 4:6] = masks[:, 2, 7] = True
    other = masks.roll(1, dims=-1)
    fim_cfg = FIMConfig(dim=16, heads=2)
    fim, pool = FaceInfoMining(32, 8, fim_cfg).eval(), PoolConcat(32, 8, replace(fim_cfg, mode="pool_concat")).eval()
    with torch.no_grad():
        assert torch.equal(pool(vision, faces, masks), pool(vision, faces, other))  # one mean per token set
        shuffled = faces[:, torch.randperm(9)]
        assert torch.allclose(pool(vision, faces, masks), pool(vision, shuffled, masks), atol=1e-6)
        assert not torch.allclose(fim(vision, faces, masks), fim(vision, faces, other), atol=1e-5)
    attention = [m for m in pool.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    assert attention == [] and len([m for m in fim.modules() if isinstance(m, torch.nn.MultiheadAttention)]) == 3


# ----- Tab. 8: descriptive text reaches the evaluation questions --------------------------------------

def _captioned(samples):
    return [replace(s, caption=f"The brows of {s.id} knit.") for s in samples]


def test_eval_questions_carry_the_caption_only_when_asked():
    samples = _captioned([Sample("a", "a.jpg", "anger", "test"), Sample("v", "v.mp4", "fear", "test", kind="video")])
    plain = eval_questions(samples, ("anger", "fear"))
    text = eval_questions(samples, ("anger", "fear"), descriptive_text=True)
    assert not any("brows" in q for q in plain)
    assert text[0].startswith("Description of the image: The brows of a knit.\n") and text[0].endswith(plain[0])
    assert text[1].startswith("Description of the video: The brows of v knit.")
    assert eval_questions(samples, ("anger", "fear"), True, zero_shot=True)[0].endswith("'My choice is: ' FIRST "
                                                                                         "and select ONLY ONE WORD "
                                                                                         "from the provided list.")


def test_run_asks_evaluation_questions_with_captions(tmp_path, monkeypatch):
    import emo_llama.evaluate.protocol as protocol
    import emo_llama.train.stages as stages
    from emo_llama.data.splits import load_splits

    def captioned(cfg):
        splits = load_splits(cfg)
        splits.train = _captioned(splits.train)
        splits.test_sets = {name: _captioned(test) for name, test in splits.test_sets.items()}
        return splits

    monkeypatch.setattr(stages, "load_splits", captioned)
    asked = {}
    real_evaluate = protocol.evaluate

    def spy(model, media, labels, classes, questions, **kwargs):
        asked[kwargs["desc"]] = list(questions)  # desc -> questions
        return real_evaluate(model, media, labels, classes, questions, **kwargs)

    monkeypatch.setattr(protocol, "evaluate", spy)
    stages.run(tiny_train_config(tmp_path / "t", descriptive_text=True, zero_shot=True), log=lambda _: None)
    assert set(asked) == {"zero-shot eval", "trained eval"}
    for questions in asked.values():
        assert len(questions) == 3 and all(q.startswith("Description of the image: The brows of test-") for q in questions)


def test_mafw_is_read_with_captions_when_descriptive_text_is_on(monkeypatch):
    import emo_llama.data as data
    from emo_llama.data.splits import load_splits

    calls = []

    class Fake:
        classes, samples = ("anger",), [Sample("c", Path("/x/c.mp4"), "anger", "train", kind="video")]

    monkeypatch.setattr(data, "get_dataset", lambda name, root, **kw: calls.append((name, kw)) or Fake())
    load_splits(TrainConfig(dataset="mafw", data_root="/x", descriptive_text=True))
    load_splits(TrainConfig(dataset="mafw", data_root="/x"))
    assert [kw.get("captions") for _, kw in calls] == [True, True, None, None]


# ----- Tab. 9: resampling changes the sampling weights, through notebook 04's sampler -----------------------

def test_resampling_balances_the_classes_training_draws():
    items = [TrainItem(f"m{i}", [("q", "a")], "happiness" if i < 16 else "fear") for i in range(20)]
    on, off = item_weights(items, True, 0.1), item_weights(items, False, 0.1)
    assert off is None  # category items only and no resampling: plain shuffling (each item once per epoch)
    assert sorted(epoch_order(len(items), 0, 5, off).tolist()) == list(range(20))
    assert torch.allclose(on[:16].sum(), on[16:].sum())   # each class carries the same total weight
    order = epoch_order(len(items), epoch=0, seed=5, weights=on)
    g = torch.Generator().manual_seed(5 * 1_000_003)
    assert order.tolist() == list(make_weighted_sampler(num_samples=20, weights=on, generator=g))  # the same sampler
    draws = torch.cat([epoch_order(len(items), e, 5, on) for e in range(50)])
    assert 0.4 < float((draws >= 16).float().mean()) < 0.6   # fear: 4 of 20 items, about half of the draws
    plain = torch.cat([epoch_order(len(items), e, 5, off) for e in range(50)])
    assert int((plain >= 16).sum()) == 4 * 50  # exactly the data's share: 4 fear items per epoch
    # on a balanced set the two rows still train on different draws (the last run of Tab. 9 did not: the
    # "off" row drew with replacement from uniform weights, which is what "on" does when classes are equal)
    balanced = items[:4] + items[16:]
    assert item_weights(balanced, False, 0.1) is None
    assert not torch.equal(epoch_order(8, 0, 5, item_weights(balanced, True, 0.1)), epoch_order(8, 0, 5, None))


# ----- the runner ------------------------------------------------------------------------------------

def test_run_ablations_writes_every_arm_and_seed(tmp_path):
    base = tiny_train_config(tmp_path / "unused")
    results = run_ablations("6,8", seeds=2, base=base, output_dir=tmp_path / "abl", log=lambda _: None)
    saved = json.loads((tmp_path / "abl" / "results.json").read_text())
    assert saved["seeds"] == [0, 1] and set(saved["arms"]) == {a.name for a in arms_of("6,8")}
    assert len(saved["runs"]) == 3 * 2  # t6: 2 trainings (t6_none is read off one), t8: 1
    for name, arm in saved["arms"].items():
        assert [s["seed"] for s in arm["per_seed"]] == [0, 1], name
        assert set(arm["mean"]) == set(arm["std"]) == {"acc", "uar", "war", "wf1"}
    assert saved["arms"]["t6_none"]["per_seed"][0]["source"].startswith("zero-shot")
    assert "re-scored" in saved["arms"]["t8_visual_text"]["per_seed"][0]["source"]
    assert (tmp_path / "abl" / "tab6.png").exists() and (tmp_path / "abl" / "tab8.png").exists()
    assert "t6_none" in ablations.comparison_table(results, 6) and "32.96" in ablations.comparison_table(results, 6)
    assert ablations.difference_vs_spread(results, 6).startswith("Tab. 6: UAR no instruction tuning -> category")
    assert not any(t["read_back"] for t in saved["runs"]) and saved["trained_wall_seconds"] is None

    # the same set again: every training is read back from its folder (Tab. 8's text row re-scored), same figures
    again = run_ablations("6,8", seeds=2, base=base, output_dir=tmp_path / "abl", log=lambda _: None)
    assert all(t["read_back"] for t in again["runs"]) and again["trained_wall_seconds"] == saved["wall_seconds"]
    assert [t["seconds"] for t in again["runs"]] == [t["seconds"] for t in saved["runs"]]  # the training's cost
    for name, arm in saved["arms"].items():
        assert [s["uar"] for s in again["arms"][name]["per_seed"]] == [s["uar"] for s in arm["per_seed"]], name
    changed = run_ablations("8", seeds=1, base=replace(base, lr=base.lr / 2), output_dir=tmp_path / "abl",
                            log=lambda _: None)
    assert not changed["runs"][0]["read_back"]  # another config: trained anew


def test_notebook_06_solutions_run(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "notebooks" / "solutions" / "06_ablations.py"
    spec = importlib.util.spec_from_file_location("solutions_06", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answers = module.solve(tiny_train_config(tmp_path / "unused"), seeds=2, output_dir=tmp_path / "sol")
    assert answers["exercise_1"] == {"trainings": 7, "arms": 13,
                                     "t6_none_from": "noface-noexpr-nolmk-noagr-fim-category+conversation-resample"}
    assert set(answers["exercise_2"]["arms"]) == {"t5_no_priors", "x_landmark_only"}
    assert "x_landmark_only" not in ARMS  # the registry is left as the paper's
    assert isinstance(answers["exercise_3"]["beyond_spread"], bool)


def test_comparison_table_shows_each_seeds_real_face_figure():
    seeds = [{"seed": s, "uar": 0.3, "war": 0.3, "acc": 0.3, "real_faces": f"{s}/14"} for s in range(3)]
    bare = [{k: v for k, v in s.items() if k != "real_faces"} for s in seeds]
    results = {"seeds": [0, 1, 2], "config": {"dataset": "mini"},
               "arms": {"t7_pool_concat": ablations.summarise_arm(ARMS["t7_pool_concat"], seeds),
                        "t7_fim": ablations.summarise_arm(ARMS["t7_fim"], bare)}}
    rows = {line.split("|")[1].strip(): line for line in ablations.comparison_table(results, 7).splitlines()
            if line.startswith("| `")}
    assert rows["`t7_pool_concat`"].rstrip().endswith("| 0/14, 1/14, 2/14 |")
    assert rows["`t7_fim`"].rstrip().endswith("| - |")  # run without the check: a dash, not an empty claim
