"""Projectors into the LLM's embedding space (paper Eq. 5) and the landmark token MLP^L."""

from __future__ import annotations

import torch
from torch import nn


def mlp_projector(in_dim: int, out_dim: int, hidden: int | None = None, out_rms: float | None = None) -> nn.Sequential:
    """2-layer GELU MLP, as LLaVA-1.5's projector.

    `out_rms`: end with a LayerNorm whose gain starts at the LLM's own token-embedding RMS. Without a
    projector pre-training stage (LLaVA's stage 1), fresh projectors emit tokens several times larger
    than word embeddings, which the LLM then treats as noise; matching the scale lets a few hundred
    CPU steps learn to read them.
    """
    hidden = hidden or out_dim
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)]
    if out_rms is not None:
        norm = nn.LayerNorm(out_dim)
        nn.init.constant_(norm.weight, out_rms)
        layers.append(norm)
    return nn.Sequential(*layers)


def normalise_landmarks(landmarks_68: torch.Tensor) -> torch.Tensor:
    """Remove position and scale of the face: centre on the mean point, divide by the RMS radius.

    What is left is the shape of the face (expression, pose), which is what MLP^L should see.
    """
    centred = landmarks_68 - landmarks_68.mean(dim=-2, keepdim=True)
    scale = centred.pow(2).sum(-1).mean(-1, keepdim=True).sqrt().clamp(min=1e-6)
    return centred / scale.unsqueeze(-1)


class LandmarkEncoder(nn.Module):
    """MLP^L: normalised 68 x 2 landmarks -> one token in the LLM's embedding space."""

    def __init__(self, out_dim: int, hidden: int = 256, points: int = 68, out_rms: float | None = None):
        super().__init__()
        self.mlp = mlp_projector(points * 2, out_dim, hidden, out_rms)
        self.standardise = FeatureStandardiser(points * 2)

    def forward(self, landmarks_68: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.standardise(normalise_landmarks(landmarks_68).flatten(-2)))


class AudioToken(nn.Module):
    """That second's sound -> one token per frame in the LLM's embedding space (Emotion-LLaMA's audio branch:
    an encoder's features through their own projector, one projector per modality).

    The encoder's features are standardised with training-set statistics (eGeMAPS mixes Hz, dB and rates), then a
    2-layer MLP maps them into the LLM's space. A window without sound (an image, a clip without an audio track,
    a silent track, past the end of the sound: `valid` False) gets a learned "no sound" embedding instead, so
    the model is told that nothing was heard, never shown zeros as if they were a voice.
    """

    def __init__(self, audio_dim: int, out_dim: int, hidden: int = 256, out_rms: float | None = None):
        super().__init__()
        self.standardise = FeatureStandardiser(audio_dim)
        self.mlp = mlp_projector(audio_dim, out_dim, hidden, out_rms)
        self.no_sound = nn.Parameter(torch.randn(out_dim) * (out_rms or 0.02))

    def forward(self, audio: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        tokens = self.mlp(self.standardise(audio))
        return torch.where(valid.bool().unsqueeze(-1), tokens, self.no_sound.to(tokens.dtype).expand_as(tokens))


def moments(samples: torch.Tensor) -> torch.Tensor:
    """(3, C) float64: the count (in every column), the sums and the sums of squares over all but the last dim.

    Moments add up, so statistics over a dataset come from one streaming pass (and a sum over processes).
    """
    flat = samples.reshape(-1, samples.shape[-1]).double()
    return torch.stack([torch.full_like(flat[0], flat.shape[0]), flat.sum(0), (flat * flat).sum(0)])


class FeatureStandardiser(nn.Module):
    """Per-channel z-score of a frozen feature with statistics of the training set (identity until fitted).

    Frozen encoders give features whose differences between faces are small next to their common
    offset (e.g. landmark shapes differ by a few percent between expressions). Standardising them
    with training-set statistics is free at run time and saved with the model (buffers).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, samples: torch.Tensor) -> None:
        self.fit_moments(moments(samples))

    @torch.no_grad()
    def fit_moments(self, m: torch.Tensor) -> None:
        """Set mean/std (unbiased) from `moments` (count, sums, sums of squares), e.g. summed over processes."""
        n, total, squares = m[0, 0], m[1], m[2]
        mean = total / n
        std = ((squares - n * mean * mean).clamp(min=0) / (n - 1).clamp(min=1)).sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(std.float().clamp(min=1e-3 * float(std.mean()) + 1e-8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def word_embeddings(embedding: torch.Tensor, tokenizer, words) -> torch.Tensor:
    """(K, D): the mean input embedding of each word's tokens, spelt as an answer spells it (no leading space)."""
    rows = []
    for word in words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"word {word!r} tokenises to nothing")
        rows.append(embedding[ids].detach().float().mean(0))
    return torch.stack(rows)


class ExpressionEncoder(nn.Module):
    """The expert's expression reading (K probabilities per frame) -> one token in the LLM's embedding space.

    The token starts as what the reading says in the LLM's own words: sum_k p_k * E(word_k), with E the LLM's
    (frozen) input embedding of the class names the expert reads ("happiness", ...). A trained MLP over the
    log-probabilities is added to it; its last layer starts at zero, so training begins from the reading
    itself and learns only what mini shows it should add. Why: mini is synthetic, and a projector trained
    from scratch on it learns mini's mapping from the reading to the label, which need not be the mapping on
    real faces; starting from the words keeps "the expert says happiness" meaning happiness.
    """

    LOG_FLOOR = 1e-4  # log-probabilities below log(1e-4) carry no information worth learning from

    def __init__(self, words: torch.Tensor, hidden: int = 128, residual: bool = True):
        super().__init__()
        self.register_buffer("words", words.float(), persistent=False)  # rebuilt from the LLM at every load
        self.residual = mlp_projector(words.shape[0], words.shape[1], hidden) if residual else None
        if self.residual is not None:
            nn.init.zeros_(self.residual[-1].weight)
            nn.init.zeros_(self.residual[-1].bias)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        probs = probs.to(self.words.dtype)
        token = probs @ self.words
        if self.residual is not None:
            token = token + self.residual(probs.clamp(min=self.LOG_FLOOR).log())
        return token
