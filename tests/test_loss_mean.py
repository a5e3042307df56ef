"""Eq. 6's mean (issue 22, item 3): over all answer tokens of the global batch (the paper, LLaVA; the paper
recipe's `loss_mean="token"`) or per sample then over samples (`"sample"`, the CPU default), on the `tiny` stack."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from fixtures.launch import TINY, launch
from safetensors.torch import load_file

from emo_llama.config import RECIPES
from emo_llama.features.synthetic import synthetic_features
from emo_llama.model import EmoLlama, EmoLlamaConfig
from emo_llama.model.parts.prompting import IGNORE_INDEX
from emo_llama.train.items import TrainItem
from emo_llama.train.loop import accumulate_gradients

SMALL = TINY | {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "vision_dropout": 0.0}
QUESTION = "What emotion? Options: a, b, c."
ANSWERS = ("a", "sad", "the brows are lowered and drawn together", "b")   # unequal lengths (byte tokenizer)


def tiny_model(loss_mean: str) -> EmoLlama:
    torch.manual_seed(0)
    return EmoLlama(EmoLlamaConfig(stack="tiny", stack_options={"encoders": False}, loss_mean=loss_mean, **SMALL))


def features(i: int):
    return synthetic_features(i % 3, i, frames=1 + i % 2)


def means_by_hand(model: EmoLlama, batch: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(token mean, sample mean, answer tokens) of next-token cross-entropy at the labelled positions."""
    logits = model.logits(batch)
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets.clamp(min=0), reduction="none") * keep
    return per_token.sum() / keep.sum(), (per_token.sum(1) / keep.sum(1)).mean(), int(keep.sum())


def test_token_mean_is_the_mean_over_all_answer_tokens_and_not_the_sample_mean():
    model = tiny_model("token").eval()
    batch = model.make_batch([features(i) for i in range(4)], [[(QUESTION, a)] for a in ANSWERS])
    token, sample, count = means_by_hand(model, batch)
    with torch.no_grad():
        assert torch.allclose(model(batch), token, atol=1e-5)
        assert torch.allclose(model(batch, reduction="sample"), sample, atol=1e-5)
        assert torch.allclose(model(batch, reduction="sum"), token * count, rtol=1e-5)
    assert abs(float(token) - float(sample)) > 1e-2   # unequal answer lengths: the two means differ
    assert RECIPES["paper"]["loss_mean"] == "token" and EmoLlamaConfig().loss_mean == "sample"


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


def step(loss_mean: str, grad_accum: int, per_device: int, accelerator) -> tuple[float, dict[str, torch.Tensor]]:
    """One global batch (the four ANSWERS) through `accumulate_gradients`: its loss and the gradients."""
    model = tiny_model(loss_mean).train()
    items = [TrainItem(str(i), [(QUESTION, a)], "a") for i, a in enumerate(ANSWERS)]
    loss = accumulate_gradients(model, model, items, lambda media: features(int(media)), grad_accum, per_device,
                                accelerator)
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_a_global_batch_split_into_micro_steps_has_the_loss_and_gradient_of_the_whole(accelerator):
    whole_loss, whole = step("token", 1, 4, accelerator)
    model = tiny_model("token").eval()
    token, sample, _ = means_by_hand(model, model.make_batch([features(i) for i in range(4)],
                                                             [[(QUESTION, a)] for a in ANSWERS]))
    assert abs(whole_loss - float(token)) < 1e-5
    for grad_accum, per_device in ((2, 2), (4, 1)):
        loss, grads = step("token", grad_accum, per_device, accelerator)
        assert abs(loss - whole_loss) < 1e-5, (grad_accum, loss, whole_loss)
        assert grads.keys() == whole.keys()
        for name, grad in grads.items():
            assert torch.allclose(grad, whole[name], atol=1e-6, rtol=1e-4), (grad_accum, name)
    # The sample mean, split the same way, is the sample mean: another loss and another gradient.
    sample_loss, sample_grads = step("sample", 4, 1, accelerator)
    assert abs(sample_loss - float(sample)) < 1e-5 and abs(sample_loss - whole_loss) > 1e-2
    assert not all(torch.allclose(sample_grads[n], whole[n], atol=1e-6, rtol=1e-4) for n in whole)


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_token_mean(tmp_path):
    """DDP over 2 processes x 2 micro-steps: the answer-token count is summed over both, so each step's loss and
    the trained weights are those of one process (dropout off: each process draws its own masks)."""
    args = ["--dataset", "synthetic", "--stack", "tiny", "--stack_options", '{"encoders": false}',
            "--model_options", json.dumps(TINY | {"lora_dropout": 0.0}), "--vision_dropout", "0",
            "--lora_r", "4", "--batch_size", "4",
            "--grad_accum", "2", "--loss_mean", "token", "--conversation_share", "0.5", "--lr", "3e-3",
            "--max_steps", "3", "--progress", "false", "--zero_shot", "false", "--max_new_tokens", "2",
            "--device", "cpu", "--seed", "3", "--eval_limit", "2", "--align_steps", "0", "--real_faces", "false"]
    two = launch(args, tmp_path / "two", "ddp")
    assert two.returncode == 0, two.stderr[-3000:]
    one = launch(args, tmp_path / "one", "one")
    assert one.returncode == 0, one.stderr[-3000:]
    m_one, m_two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert m_two["processes"] == 2 and m_one["processes"] == 1 and m_one["config"]["loss_mean"] == "token"
    assert len(m_one["train_loss"]) == 3
    assert all(abs(x - y) < 1e-4 for x, y in zip(m_one["train_loss"], m_two["train_loss"]))
    a, b = (load_file(str(tmp_path / d / "model" / "trainable.safetensors")) for d in ("one", "two"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), k
