"""Face Info Mining (paper Eq. 3, Fig. 3), its ablation arm `pool_concat` (Tab. 7), and `mean`: LLaMA-VID's own
content token (the frame's vision tokens averaged, nothing learned), for the pretrained zero-shot baseline.

    H^V = Pool( FFN(GFAttn(SAttn(X^V), X^F)) + LFAttn(SAttn(X^V), X^F, X^L) )

Dimensions (the paper's appendix is not available; chosen here, all in `FIMConfig`):
- X^V (N x C_v) and X^F (N_F x C_F) are linearly mapped to `dim` (256 by default), 4 heads.
- SAttn: self-attention over the visual tokens, residual + LayerNorm (post-norm, like BERT).
- GFAttn: visual tokens (queries) cross-attend to all N_F face tokens; residual + LayerNorm; then FFN
  (dim -> ffn_mult*dim -> dim, GELU) with residual + LayerNorm.
- LFAttn: visual tokens cross-attend to R region features, each the mean of the face tokens inside one
  Action-Unit region (regions come from the 68 landmarks); a learnable "null" key lets a frame whose
  regions are all empty (no face) attend to nothing instead of producing NaN. No residual: it is an
  additive branch in Eq. 3.
- Sum, LayerNorm, mean-pool over N -> one visual token (dim).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class FIMConfig:
    dim: int = 256
    heads: int = 4
    ffn_mult: int = 2
    dropout: float = 0.0
    mode: str = "fim"              # "fim" (Eq. 3) | "pool_concat" (Tab. 7 baseline) | "mean" (LLaMA-VID's)
    use_face_embedding: bool = True  # Tab. 5: without it, FIM reduces to SAttn + FFN + Pool on X^V


def pool_regions(face_tokens: torch.Tensor, au_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean face feature inside each AU region: (F, R, dim) and an (F, R) bool 'region is empty'."""
    weights = au_masks.to(face_tokens.dtype)                 # (F, R, N_F)
    counts = weights.sum(-1, keepdim=True)                  # (F, R, 1)
    pooled = weights @ face_tokens / counts.clamp(min=1.0)
    return pooled, counts.squeeze(-1) == 0


class FaceInfoMining(nn.Module):
    def __init__(self, vision_dim: int, face_dim: int, cfg: FIMConfig):
        super().__init__()
        self.cfg = cfg
        d, h, p = cfg.dim, cfg.heads, cfg.dropout
        self.vision_in = nn.Linear(vision_dim, d)
        self.self_attn = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        self.norm_self = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_mult * d), nn.GELU(), nn.Linear(cfg.ffn_mult * d, d))
        self.norm_ffn = nn.LayerNorm(d)
        self.norm_out = nn.LayerNorm(d)
        if cfg.use_face_embedding:
            self.face_in = nn.Linear(face_dim, d)
            self.global_attn = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
            self.norm_global = nn.LayerNorm(d)
            self.local_attn = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
            self.null_region = nn.Parameter(torch.zeros(1, 1, d))
        self.record = False  # set True to keep attention weights for plots (slower path)
        self.attention: dict[str, torch.Tensor] = {}

    def _attend(self, name: str, layer: nn.MultiheadAttention, q, kv, pad=None) -> torch.Tensor:
        out, weights = layer(q, kv, kv, key_padding_mask=pad, need_weights=self.record,
                             average_attn_weights=False)
        if self.record:
            self.attention[name] = weights.detach()  # (F, heads, N, keys)
        return out

    def forward(self, vision_tokens: torch.Tensor, face_tokens: torch.Tensor | None = None,
                au_masks: torch.Tensor | None = None) -> torch.Tensor:
        x = self.vision_in(vision_tokens)
        x = self.norm_self(x + self._attend("self", self.self_attn, x, x))
        if not self.cfg.use_face_embedding:
            return self.norm_out(self.norm_ffn(x + self.ffn(x))).mean(dim=1)
        faces = self.face_in(face_tokens)
        g = self.norm_global(x + self._attend("global", self.global_attn, x, faces))
        g = self.norm_ffn(g + self.ffn(g))
        local = self.local_branch(x, faces, au_masks)
        return self.norm_out(g + local).mean(dim=1)

    def local_branch(self, x: torch.Tensor, faces: torch.Tensor, au_masks: torch.Tensor) -> torch.Tensor:
        """LFAttn: cross-attention to region-pooled face features only (plus the null key)."""
        regions, empty = pool_regions(faces, au_masks)
        keys = torch.cat([self.null_region.expand(x.shape[0], -1, -1).to(regions.dtype), regions], dim=1)
        pad = torch.cat([torch.zeros_like(empty[:, :1]), empty], dim=1)
        return self._attend("local", self.local_attn, x, keys, pad)


class PoolConcat(nn.Module):
    """Tab. 7 baseline: pool X^V and X^F separately, concatenate, project to one token."""

    def __init__(self, vision_dim: int, face_dim: int, cfg: FIMConfig):
        super().__init__()
        self.cfg = cfg
        self.vision_in = nn.Linear(vision_dim, cfg.dim)
        self.face_in = nn.Linear(face_dim, cfg.dim) if cfg.use_face_embedding else None
        self.out = nn.Linear(cfg.dim * (2 if cfg.use_face_embedding else 1), cfg.dim)
        self.record = False
        self.attention: dict[str, torch.Tensor] = {}

    def forward(self, vision_tokens, face_tokens=None, au_masks=None) -> torch.Tensor:
        pooled = [self.vision_in(vision_tokens).mean(1)]
        if self.face_in is not None:
            pooled.append(self.face_in(face_tokens).mean(1))
        return self.out(torch.cat(pooled, dim=-1))


class MeanPool(nn.Module):
    """LLaMA-VID's content token: the mean of the frame's vision tokens, read by the pretrained content projector
    at the vision width (a linear map first only where `dim` differs, as in the tiny stack). No face tokens."""

    def __init__(self, vision_dim: int, face_dim: int, cfg: FIMConfig):
        super().__init__()
        self.cfg = cfg
        self.vision_in = nn.Identity() if vision_dim == cfg.dim else nn.Linear(vision_dim, cfg.dim)
        self.record = False
        self.attention: dict[str, torch.Tensor] = {}

    def forward(self, vision_tokens, face_tokens=None, au_masks=None) -> torch.Tensor:
        return self.vision_in(vision_tokens.mean(1))


FIM_MODES: dict[str, type[nn.Module]] = {"fim": FaceInfoMining, "pool_concat": PoolConcat, "mean": MeanPool}


def build_fim(vision_dim: int, face_dim: int, cfg: FIMConfig) -> nn.Module:
    if cfg.mode not in FIM_MODES:
        raise ValueError(f"fim_mode must be one of {sorted(FIM_MODES)}, got {cfg.mode!r}")
    return FIM_MODES[cfg.mode](vision_dim, face_dim, cfg)
