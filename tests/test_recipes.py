"""Training recipes by name (user settings win), the expected-memory check, and notebook 02's FaceXFormer switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from emo_llama.config import RECIPES, apply_recipe
from emo_llama.train import TrainConfig, parse_args

ROOT = Path(__file__).resolve().parents[1]


def test_paper_recipe_fills_defaults_and_user_values_win():
    cfg = apply_recipe(TrainConfig(stack="paper"))
    assert cfg.recipe == "paper" and (cfg.lora_r, cfg.lora_alpha, cfg.lr) == (128, 256, 2e-4)
    assert cfg.align_steps == 0 and cfg.max_steps == 0 and cfg.epochs == 1.0 and cfg.gradient_checkpointing
    assert cfg.new_module_lr == 2e-4 and cfg.freeze_after_align is False
    mine = apply_recipe(TrainConfig(stack="paper", lr=1e-4, batch_size=32))
    assert mine.lr == 1e-4 and mine.batch_size == 32 and mine.lora_r == 128
    offline = apply_recipe(TrainConfig())
    assert offline.recipe == "cpu" and offline.lora_r == 16 and offline.align_steps == 100
    forced = apply_recipe(TrainConfig(recipe="paper"))
    assert forced.stack == "offline" and forced.lora_r == 128
    with pytest.raises(ValueError, match="unknown recipe"):
        apply_recipe(TrainConfig(recipe="fast"))


def test_cli_recipe_keeps_explicit_flags_even_at_default_values():
    cfg = parse_args(["--stack", "paper", "--lora_r", "16", "--max_steps", "150"])
    assert cfg.recipe == "paper" and cfg.lora_r == 16 and cfg.max_steps == 150 and cfg.lr == 2e-4
    assert set(RECIPES) >= {"cpu", "paper"}


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
