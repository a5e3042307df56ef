"""Label-word alignment (emo_llama.train.align) on the `tiny` stack (random weights) with synthetic features."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emo_llama.features.synthetic import synthetic_features
from emo_llama.model import EmoLlama, EmoLlamaConfig
from emo_llama.train.align import align_to_label_words, alignment_loss, class_word_embeddings

CLASSES = ("happiness", "sadness", "surprise")
QUESTION = "Which emotion? Options: happiness, sadness, surprise."


def tiny_model(**overrides) -> EmoLlama:
    torch.manual_seed(0)
    dims = {"context_dim": 16, "fim_dim": 16, "fim_heads": 2, "landmark_hidden": 16, "num_queries": 4, "lora_r": 4}
    return EmoLlama(EmoLlamaConfig(stack="tiny", stack_options={"encoders": False}, **(dims | overrides)))


def synthetic_set(n: int = 24):
    media = [synthetic_features(i % 3, 100 + i, frames=1 + (i % 4 == 0)) for i in range(n)]
    return media, [CLASSES[i % 3] for i in range(n)], [QUESTION] * n


def test_alignment_loss_matches_a_direct_computation():
    torch.manual_seed(0)
    tokens, words = torch.randn(3, 2, 8), torch.randn(3, 8)  # sample 0: 1 frame, sample 1: 2 frames
    targets = torch.tensor([2, 0])
    got = alignment_loss(tokens, [1, 2], targets, words, temperature=0.5)
    cos = F.normalize(tokens, dim=-1) @ F.normalize(words, dim=-1).T / 0.5
    first = F.cross_entropy(cos[0], torch.tensor([2, 2]))               # one frame: each position
    second = F.cross_entropy(cos[1:].mean(0), torch.tensor([0, 0]))     # a clip: frames vote first
    assert torch.allclose(got, (first + second) / 2, atol=1e-6)


def test_class_words_come_from_the_llm_input_embeddings():
    model = tiny_model()
    words = class_word_embeddings(model, CLASSES)
    table = model.llm.get_input_embeddings().weight
    ids = model.tokenizer("sadness", add_special_tokens=False)["input_ids"]
    assert words.shape == (3, table.shape[1]) and torch.allclose(words[1], table[ids].mean(0))


def test_alignment_lowers_its_loss_and_trains_only_the_new_modules():
    model = tiny_model()
    media, labels, questions = synthetic_set()
    model.fit_feature_statistics(media)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = align_to_label_words(model, media, labels, questions, CLASSES, steps=30, batch_size=6, lr=1e-2)
    assert len(losses) == 30 and sum(losses[-5:]) < 0.7 * sum(losses[:5])
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(not n.startswith("llm.") for n in changed)  # LoRA and the LLM are untouched
    assert any(n.startswith("landmark_encoder.") for n in changed)
    assert any(n.startswith("face_info_mining.") for n in changed)


def test_alignment_is_deterministic():
    media, labels, questions = synthetic_set()
    runs = []
    for _ in range(2):
        model = tiny_model(dropout=0.1)
        model.fit_feature_statistics(media)
        torch.manual_seed(5)
        runs.append(align_to_label_words(model, media, labels, questions, CLASSES, steps=5, batch_size=4, seed=1))
    assert runs[0] == runs[1]


def test_unknown_label_is_a_clear_error():
    model = tiny_model()
    media, labels, questions = synthetic_set(6)
    labels[2] = "contempt"
    with pytest.raises(ValueError, match="contempt"):
        align_to_label_words(model, media, labels, questions, CLASSES, steps=2)
