"""Clue Aggregator: an instruction-aware Q-Former plus the LLaMA-VID context token (paper Eq. 2).

The Q-Former itself is transformers' `InstructBlipQFormerModel` (BERT layers with cross-attention);
its learnable queries read the instruction (through the Q-Former's own tokenizer) and cross-attend to
the general visual tokens X^V concatenated with the face tokens X^F. Eq. 2 then turns the M query
outputs into one context token:

    H^T = Pool_M( Softmax( Q K(X^V)^T / sqrt(d) ) V(X^V) )

Softmax over the N visual tokens, mean-pool over the M queries. As LLaMA-VID computes it
(`token_generation` in its `llamavid_arch.py`): the scores use the key width d, the softmax weights
average the raw visual tokens, and the value map V is applied after pooling (the same function, since V
is affine and the weights sum to one). With a LLaMA-VID checkpoint Q = `vlm_att_projector` (768 -> 1408),
K = `vlm_att_key_projector` (1408 -> 1408), V = `vlm_att_val_projector` (1408 -> LLM width), the queries
are `vlm_att_query` and the Q-Former's memory is LayerNorm-ed by `vlm_att_ln` (`vision_norm`).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ContextAttention(nn.Module):
    """Eq. 2 alone (kept separate so a test can compare it with a direct computation)."""

    def __init__(self, query_dim: int, vision_dim: int, context_dim: int, key_dim: int | None = None):
        super().__init__()
        key_dim = key_dim or context_dim
        self.query_proj = nn.Linear(query_dim, key_dim)
        self.key_proj = nn.Linear(vision_dim, key_dim)
        self.value_proj = nn.Linear(vision_dim, context_dim)
        self.last_weights: torch.Tensor | None = None  # (F, M, N), for plots
        self.record = False

    def forward(self, queries: torch.Tensor, vision_tokens: torch.Tensor) -> torch.Tensor:
        q = self.query_proj(queries)                         # (F, M, d)
        k = self.key_proj(vision_tokens)                     # (F, N, d)
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)  # over N
        if self.record:
            self.last_weights = weights.detach()
        pooled = (weights @ vision_tokens).mean(dim=1)      # Pool over M of the weighted raw tokens
        return self.value_proj(pooled)                       # V after pooling (LLaMA-VID) -> (F, context_dim)


class ClueAggregator(nn.Module):
    """Q-Former queries x (instruction, X^V, X^F) -> context token (F, context_dim)."""

    def __init__(self, qformer: nn.Module, vision_dim: int, face_dim: int, num_queries: int = 32,
                 context_dim: int = 256, use_face_embedding: bool = True, key_dim: int | None = None,
                 vision_norm: bool = False):
        super().__init__()
        self.qformer = qformer
        hidden = qformer.config.hidden_size
        if qformer.config.encoder_hidden_size != vision_dim:
            raise ValueError(f"Q-Former encoder_hidden_size {qformer.config.encoder_hidden_size} != vision dim {vision_dim}")
        self.queries = nn.Parameter(torch.randn(1, num_queries, hidden) * 0.02)
        # Face tokens join the Q-Former's cross-attention memory, so they must share the vision width.
        self.face_to_vision = nn.Linear(face_dim, vision_dim) if use_face_embedding else None
        self.context = ContextAttention(hidden, vision_dim, context_dim, key_dim)
        # LLaMA-VID LayerNorms the visual tokens before its Q-Former reads them (`vlm_att_ln`).
        self.vision_norm = nn.LayerNorm(vision_dim) if vision_norm else None
        self.num_queries = num_queries

    def query_states(self, vision_tokens: torch.Tensor, face_tokens: torch.Tensor | None,
                     instruction_ids: torch.Tensor, instruction_mask: torch.Tensor) -> torch.Tensor:
        """The M instruction-aware query outputs Q_t (F, M, hidden)."""
        memory = self.vision_norm(vision_tokens) if self.vision_norm is not None else vision_tokens
        if self.face_to_vision is not None and face_tokens is not None:
            memory = torch.cat([memory, self.face_to_vision(face_tokens)], dim=1)
        frames = vision_tokens.shape[0]
        queries = self.queries.expand(frames, -1, -1)
        query_mask = torch.ones(frames, self.num_queries, dtype=instruction_mask.dtype, device=instruction_mask.device)
        out = self.qformer(
            input_ids=instruction_ids,
            attention_mask=torch.cat([query_mask, instruction_mask], dim=1),
            query_embeds=queries,
            encoder_hidden_states=memory,
        )
        return out.last_hidden_state[:, : self.num_queries]

    def forward(self, vision_tokens: torch.Tensor, face_tokens: torch.Tensor | None,
                instruction_ids: torch.Tensor, instruction_mask: torch.Tensor,
                patch_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """`patch_tokens`: the visual tokens Eq. 2 attends over when they differ from the Q-Former's memory
        (LLaMA-VID with EVA-G: the Q-Former reads CLS + patches, Eq. 2 the patches alone)."""
        queries = self.query_states(vision_tokens, face_tokens, instruction_ids, instruction_mask)
        return self.context(queries, vision_tokens if patch_tokens is None else patch_tokens)
