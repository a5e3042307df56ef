"""Label-word alignment: a cheap warm-up of the new modules before LoRA instruction tuning (LLM not run).

Why it exists. The paper starts from LLaMA-VID, whose projectors were already aligned to the LLM's
word-embedding space by image-caption pre-training; our `offline` stack starts from random projectors,
and a few hundred CPU steps of Eq. 6 are not enough for the LLM to learn to read random tokens (it
falls back to the class prior). This stage gives the new modules that missing alignment (about 2 minutes on 2 CPU cores):
each frame token (context, visual, landmark) is pulled towards the LLM's own input embedding of the
sample's class word ("happiness", "anger", ...) by a cosine-softmax loss over the class words, using
training labels only.
The LLM then sees tokens that already *mean* an emotion word, and LoRA tuning (Eq. 6) takes it from there.

It is an addition to the paper: on by default for the CPU-sized runs (`TrainConfig.align_steps`),
off in the paper recipe (`emo_llama.config.RECIPES["paper"]`); `papermill notebooks/05_train.ipynb out.ipynb -p align_steps 0` measures
the model without it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from emo_llama.model.parts.projectors import word_embeddings
from emo_llama.progress import progress as progress_bar


def class_word_embeddings(model, classes: Sequence[str]) -> torch.Tensor:
    """(C, D): mean input embedding of each class word's tokens, as the answer spells it (no leading space)."""
    return word_embeddings(model.llm.get_input_embeddings().weight, model.tokenizer, classes)


def class_word_cosines(frame_tokens: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
    """(frames, positions, C): cosine of every frame token with every class word."""
    tokens = F.normalize(frame_tokens.float(), dim=-1)
    return tokens @ F.normalize(word_embeddings.to(tokens.device), dim=-1).T


def alignment_loss(frame_tokens: torch.Tensor, frames_per_sample: Sequence[int], targets: torch.Tensor,
                   word_embeddings: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Cosine-softmax cross-entropy of each token position against the class words, mean over positions.

    frame_tokens (sum(frames), tokens_per_frame, D); targets (B,) class indices. A video's cosine logits are
    averaged over its frames before the softmax: its label holds for the clip, not for every frame (a clip
    may start and end on a neutral face), so one expressive frame may carry the vote.
    """
    logits = class_word_cosines(frame_tokens, word_embeddings) / temperature     # (frames, positions, C)
    device = logits.device
    counts = torch.tensor(list(frames_per_sample), device=device)
    rows = torch.repeat_interleave(torch.arange(len(counts), device=device), counts)
    per_sample = torch.zeros(len(counts), *logits.shape[1:], device=device).index_add_(0, rows, logits)
    per_sample = per_sample / counts.view(-1, 1, 1)                    # (B, positions, C)
    positions = per_sample.shape[1]
    return F.cross_entropy(per_sample.flatten(0, 1), targets.to(device).repeat_interleave(positions))


def align_to_label_words(model, media: Sequence, labels: Sequence[str], questions: Sequence[str],
                         classes: Sequence[str], steps: int, batch_size: int = 16, lr: float = 3e-3,
                         seed: int = 0, device: torch.device | str = "cpu", progress: bool = False) -> list[float]:
    """Train the new modules (not LoRA, not the LLM) for `steps` batches; returns the loss per step.

    Batches are drawn class-balanced (each step cycles through shuffled per-class queues), so the
    alignment does not inherit the training set's class prior. Deterministic for a given seed.
    """
    if steps <= 0:
        return []
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({lab for lab in labels if lab not in index})
    if unknown:
        raise ValueError(f"labels {unknown} are not in the class list {list(classes)}")
    words = class_word_embeddings(model, classes).to(device)
    params = model.new_module_parameters()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = random.Random(seed)
    queues: dict[str, list[int]] = {}
    by_class = {c: [i for i, lab in enumerate(labels) if lab == c] for c in classes}
    present = [c for c in classes if by_class[c]]
    losses = []
    model.train()
    bar = progress_bar(range(steps), desc="label-word alignment", disable=not progress)
    for step in bar:
        chosen = []
        for k in range(batch_size):
            c = present[(step * batch_size + k) % len(present)]
            if not queues.get(c):
                queues[c] = rng.sample(by_class[c], len(by_class[c]))
            chosen.append(queues[c].pop())
        batch = model.make_batch([media[i] for i in chosen], [[(questions[i], None)] for i in chosen],
                                 generation=True, device=device)
        tokens = model.frame_tokens(batch)
        targets = torch.tensor([index[labels[i]] for i in chosen])
        loss = alignment_loss(tokens, [media[i].num_frames for i in chosen], targets, words)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses
