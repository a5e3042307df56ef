"""Training recipes by name (user settings win), the expected-memory check, and notebook 02's FaceXFormer switch."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from emo_llama.config import RECIPES, config_from_parameters
from emo_llama.train import TrainConfig, parse_args

ROOT = Path(__file__).resolve().parents[1]


def test_paper_recipe_fills_unset_fields_and_user_values_win():
    cfg = TrainConfig(stack="paper")
    assert cfg.recipe == "paper" and (cfg.lora_r, cfg.lr) == (128, 2e-4) and cfg.model_config().lora_alpha == 256
    assert cfg.align_steps == 0 and cfg.max_steps == 0 and cfg.epochs == 1.0 and cfg.gradient_checkpointing
    assert cfg.new_module_lr == 2e-4 and cfg.freeze_after_align is False
    mine = TrainConfig(stack="paper", lr=1e-4, batch_size=32)
    assert mine.lr == 1e-4 and mine.batch_size == 32 and mine.lora_r == 128
    offline = TrainConfig()
    assert offline.recipe == "cpu" and offline.lora_r == 16 and offline.align_steps == 100
    forced = TrainConfig(recipe="paper")
    assert forced.stack == "offline" and forced.lora_r == 128
    with pytest.raises(ValueError, match="unknown recipe"):
        TrainConfig(recipe="fast")


def test_a_value_the_user_gave_wins_even_when_it_equals_the_cpu_default():
    # The recipe used to be merged a second time in run(), where "differs from the CPU default" stood for "set by
    # the user": --stack paper --lr 5e-4 trained at the paper's 2e-4.
    cpu = RECIPES["cpu"]
    cli = parse_args(["--stack", "paper", "--lr", str(cpu["lr"]), "--lora_r", str(cpu["lora_r"]),
                      "--max_steps", str(cpu["max_steps"])])
    assert (cli.recipe, cli.lr, cli.lora_r, cli.max_steps) == ("paper", cpu["lr"], cpu["lora_r"], cpu["max_steps"])
    assert cli.batch_size == RECIPES["paper"]["batch_size"]  # what was not given comes from the recipe
    notebook = config_from_parameters(stack="paper", lr=cpu["lr"], lora_r=None)
    assert notebook.lr == cpu["lr"] and notebook.lora_r == RECIPES["paper"]["lora_r"]
    assert replace(cli, seed=1).lr == cpu["lr"]  # a merged config stays merged


def test_memory_estimate_and_refusal(monkeypatch):
    from emo_llama.model import EmoLlama, EmoLlamaConfig
    from emo_llama.train import memory

    torch.manual_seed(0)
    model = EmoLlama(EmoLlamaConfig(stack="tiny", stack_options={"encoders": False}, context_dim=16, fim_dim=16,
                                    fim_heads=2, landmark_hidden=16, num_queries=4, lora_r=4, lora_alpha=8))
    parts = memory.estimate(model, batch=4, seq_len=64, checkpointing=True)
    assert parts["activations (checkpointing)"] < parts["activations (no checkpointing)"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert parts["trainable_params"] == trainable
    assert parts["gradients + AdamW (fp32)"] == pytest.approx(12 * trainable / 1024 ** 3)
    fsdp = memory.estimate(model, batch=4, seq_len=64, checkpointing=True, shards=4)  # FSDP over 4 processes
    assert fsdp["gradients + AdamW (fp32)"] == pytest.approx(parts["gradients + AdamW (fp32)"] / 4)
    llm_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert fsdp["weights"] == pytest.approx(parts["weights"] - 0.75 * llm_bytes / 1024 ** 3)
    lines = []
    ok = memory.check_fits(model, 4, 64, True, torch.device("cpu"), log=lines.append)
    assert ok["total"] < ok["capacity"] and any("activations (checkpointing)" in line for line in lines)
    monkeypatch.setattr(memory, "device_capacity", lambda device: 1024)
    with pytest.raises(MemoryError, match="gradient_checkpointing"):
        memory.check_fits(model, 4, 64, False, torch.device("cpu"), log=lines.append)


@pytest.mark.notebook
@pytest.mark.slow
def test_02_facexformer_without_checkpoint_stops_clearly(tmp_path):
    import papermill

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(ROOT / "notebooks" / "02_facial_priors.ipynb"), str(tmp_path / "02.ipynb"),
                                   parameters={"expert_name": "facexformer", "faces": "astronaut",
                                               "expert_path": str(tmp_path / "model.pt")},
                                   kernel_name="python3", cwd=str(ROOT), progress_bar=False)
    assert "kartiknarayan/facexformer" in str(err.value) and "model.pt" in str(err.value)
