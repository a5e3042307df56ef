"""Training on the `tiny` stack with synthetic features: the loss falls, resume == uninterrupted, 2 proc == 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures.launch import TINY, launch
from safetensors.torch import load_file

from emo_llama.train import RunResult, TrainConfig, parse_args, run


def tiny_config(out: Path, **overrides) -> TrainConfig:
    base = dict(dataset="synthetic", stack="tiny", stack_options={"encoders": False}, model_options=TINY,
                lora_r=4, batch_size=4, lr=3e-3, max_steps=6, output_dir=str(out), progress=False,
                zero_shot=False, max_new_tokens=4, device="cpu", seed=3, eval_limit=3, align_steps=3,
                align_batch_size=4)
    return TrainConfig(**(base | overrides))


def trained(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model" / "trainable.safetensors"))


def _subnormals_flushed() -> bool:
    # 5e-324 is the smallest float64 subnormal; with flushing on, it cannot survive an operation
    return (torch.tensor([5e-324], dtype=torch.float64) * 1.0).item() == 0.0


def test_training_lowers_the_loss(tmp_path):
    torch.set_flush_denormal(False)
    assert not _subnormals_flushed()
    result = run(tiny_config(tmp_path, max_steps=30, lr=1e-2, instruction_types=("category",), zero_shot=True,
                             eval_limit=3), log=lambda s: None)
    assert isinstance(result, RunResult) and not any(k.startswith("_") for k in result.metrics)
    assert result.trained["n"] == 3 and result.zero_shot["n"] == 3 and len(result.test_samples) == 3
    assert result.model_dir == tmp_path / "model" and set(result.features) >= {str(s.media) for s in result.test_samples}
    losses = result.metrics["train_loss"]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved["trained"]) == {"acc", "uar", "war", "wf1", "unparseable"} and saved["zero_shot"] is not None
    assert saved["steps"] == 30 and (tmp_path / "loss.png").exists() and (tmp_path / "confusion.png").exists()
    assert len((tmp_path / "train_log.jsonl").read_text().splitlines()) == 30
    assert len(saved["align_loss"]) == 3 and saved["config"]["align_steps"] == 3
    # run() flushes subnormal floats: without it alignment slowed 10x on CPU (benchmarks/bench_denormals.py)
    assert _subnormals_flushed()


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    dropout = TINY | {"lora_dropout": 0.2, "dropout": 0.1}  # RNG-dependent steps: the RNG state must resume too
    run(tiny_config(tmp_path / "full", max_steps=8, checkpoint_every=3, model_options=dropout), log=lambda s: None)
    interrupted = tiny_config(tmp_path / "cut", max_steps=8, checkpoint_every=3, model_options=dropout)
    first = run(interrupted, log=lambda s: None, on_event=lambda point: point == "train:4")  # stop there
    assert first.metrics["steps"] == 4  # "killed" after step 4; the newest checkpoint is step 3
    assert len(list((tmp_path / "cut" / "checkpoints").glob("*/step-000003/complete"))) == 1
    resumed = run(interrupted, log=lambda s: None)
    assert resumed.metrics["steps"] == 8
    full, cut = trained(tmp_path / "full"), trained(tmp_path / "cut")
    assert full.keys() == cut.keys()
    assert all(torch.equal(full[k], cut[k]) for k in full)
    # The resumed run skipped alignment (its checkpoint holds the aligned weights) yet reports its losses.
    full_align, cut_align = (json.loads((tmp_path / d / "metrics.json").read_text())["align_loss"]
                             for d in ("full", "cut"))
    assert len(full_align) == 3 and full_align == cut_align


def test_aligned_modules_stay_fixed_while_lora_trains(tmp_path):
    # freeze_after_align (default): runs of 1 and 4 LoRA steps share the aligned new modules, not LoRA.
    for steps in (1, 4):
        run(tiny_config(tmp_path / str(steps), max_steps=steps), log=lambda s: None)
    short, long = trained(tmp_path / "1"), trained(tmp_path / "4")
    new = [k for k in short if not k.startswith("llm.") and "standardise" not in k]
    lora = [k for k in short if "lora_" in k]
    assert new and lora
    assert all(torch.equal(short[k], long[k]) for k in new)
    assert not all(torch.equal(short[k], long[k]) for k in lora)
    # Trained on with LoRA (freeze_after_align=False) they move.
    moving = run(tiny_config(tmp_path / "moving", max_steps=4, freeze_after_align=False), log=lambda s: None)
    assert moving.metrics["steps"] == 4
    assert not all(torch.equal(long[k], trained(tmp_path / "moving")[k]) for k in new)


def test_cli_parses_every_field():
    cfg = parse_args(["--dataset", "mafw", "--data_root", "/x", "--lora_r", "128", "--use_agr", "false",
                      "--instruction_types", "category", "--stack_options", '{"encoders": false}',
                      "--eval_limit", "none", "--lr", "1e-4"])
    assert (cfg.dataset, cfg.data_root, cfg.lora_r, cfg.use_agr) == ("mafw", "/x", 128, False)
    assert cfg.instruction_types == ("category",) and cfg.stack_options == {"encoders": False}
    assert cfg.eval_limit is None and cfg.lr == 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ddp", "fsdp"])
def test_two_processes_equal_one_process(tmp_path, engine):
    # dropout off: with it, each process draws its own masks, so only the no-dropout math can be compared.
    # Under FSDP, process 1's alignment is made to differ (fsdp_worker.py): the run must train process 0's model.
    args = ["--dataset", "synthetic", "--stack", "tiny", "--stack_options", '{"encoders": false}',
            "--model_options", json.dumps(TINY | {"lora_dropout": 0.0}), "--vision_dropout", "0",
            "--lora_r", "4", "--batch_size", "4",
            "--lr", "3e-3", "--max_steps", "4", "--progress", "false", "--zero_shot", "false", "--max_new_tokens",
            "8", "--device", "cpu", "--seed", "3", "--eval_limit", "6", "--align_steps", "3", "--align_batch_size",
            "4", "--real_faces", "false", "--gradient_checkpointing", str(engine == "fsdp")]
    two = launch(args, tmp_path / "two", engine, env={"EMO_LLAMA_TEST_RANK_NOISE": "1"})
    assert two.returncode == 0, two.stderr[-3000:]
    one = launch(args, tmp_path / "one", "one")
    assert one.returncode == 0, one.stderr[-3000:]
    m_one, m_two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert (m_two["processes"], m_two["engine"]) == (2, engine) and m_one["processes"] == 1
    a, b = trained(tmp_path / "one"), trained(tmp_path / "two")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), k
    assert len(m_one["train_loss"]) == len(m_two["train_loss"]) == 4
    assert all(abs(x - y) < 1e-4 for x, y in zip(m_one["train_loss"], m_two["train_loss"]))
    # The answers themselves (8 tokens each), generated by 2 processes and gathered: equal to one process's. They
    # differ from sample to sample, so a model that differed would show in them.
    answers_one, answers_two = (json.loads((tmp_path / d / "eval_details.json").read_text())["trained"]["answers"]
                                for d in ("one", "two"))
    assert answers_two == answers_one and len(set(answers_one)) > 1
