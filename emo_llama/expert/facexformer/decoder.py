"""FaceXFormer's decoder: task tokens read the fused face map through a SAM-style two-way transformer.

Written from the published architecture (Narayan et al., FaceXFormer; the two-way transformer is SAM's).
Attribute names follow the official checkpoint's key layout (`face_decoder.*`, `pe_layer.*`) so that
its weights load without renaming. Shapes for the released model: width 256, depth 2, 8 heads, MLP 2048,
attention inside the cross-attentions downsampled to 128.

Task tokens, in the order the transformer sees them: landmarks, pose, attribute, visibility, age, gender,
race, then 11 parsing-mask tokens. Each task token's output goes through a 3-layer ReLU MLP head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (token attribute, head attribute, output size) in token order.
TASKS = (
    ("landmarks_token", "landmarks_prediction_head", 136),   # 68 x (x, y) in [-1, 1]
    ("pose_token", "pose_prediction_head", 3),               # pitch, yaw, roll (radians)
    ("attribute_token", "attribute_prediction_head", 40),    # CelebA attributes (sigmoid)
    ("visibility_token", "visibility_prediction_head", 29),  # landmark visibility (sigmoid)
    ("age_token", "age_prediction_head", 8),                 # age bins (softmax)
    ("gender_token", "gender_prediction_head", 2),
    ("race_token", "race_prediction_head", 5),
)
PARSING_CLASSES = 11


class HeadMLP(nn.Module):
    """`layers` linear maps with ReLU between them (keys `layers.<i>.weight`)."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, layers: int = 3):
        super().__init__()
        sizes = [dim_in] + [hidden] * (layers - 1) + [dim_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map (eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (x - mean) / torch.sqrt(var + self.eps) + self.bias[:, None, None]


class DownsampledAttention(nn.Module):
    """Multi-head attention whose q/k/v live in `dim // downsample` channels."""

    def __init__(self, dim: int, heads: int, downsample: int = 1):
        super().__init__()
        inner = dim // downsample
        if inner % heads:
            raise ValueError(f"{heads} heads do not divide the attention width {inner}")
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        out = (weights @ v).transpose(1, 2).flatten(2)
        return self.out_proj(out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    """Tokens self-attend, tokens read the image, token MLP, the image reads the tokens (post-norm)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, downsample: int, skip_first_pe: bool):
        super().__init__()
        self.self_attn = DownsampledAttention(dim, heads)
        self.cross_attn_token_to_image = DownsampledAttention(dim, heads, downsample)
        self.cross_attn_image_to_token = DownsampledAttention(dim, heads, downsample)
        self.mlp = FeedForward(dim, mlp_dim)
        self.norm1, self.norm2, self.norm3, self.norm4 = (nn.LayerNorm(dim) for _ in range(4))
        self.skip_first_pe = skip_first_pe

    def forward(self, tokens, image, token_pe, image_pe):
        if self.skip_first_pe:
            tokens = self.self_attn(tokens, tokens, tokens)
        else:
            q = tokens + token_pe
            tokens = tokens + self.self_attn(q, q, tokens)
        tokens = self.norm1(tokens)
        tokens = self.norm2(tokens + self.cross_attn_token_to_image(tokens + token_pe, image + image_pe, image))
        tokens = self.norm3(tokens + self.mlp(tokens))
        image = self.norm4(image + self.cross_attn_image_to_token(image + image_pe, tokens + token_pe, tokens))
        return tokens, image


class TwoWayTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, downsample: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, downsample, skip_first_pe=i == 0)
                                    for i in range(depth))
        self.final_attn_token_to_image = DownsampledAttention(dim, heads, downsample)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor):
        """image, image_pe: (B, C, H, W); tokens: (B, T, C) -> (tokens (B, T, C), image (B, HW, C))."""
        image = image.flatten(2).transpose(1, 2)
        image_pe = image_pe.flatten(2).transpose(1, 2)
        queries, keys = tokens, image
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, image_pe)
        queries = queries + self.final_attn_token_to_image(queries + tokens, keys + image_pe, keys)
        return self.norm_final_attn(queries), keys


class RandomFourierPositions(nn.Module):
    """SAM's positional encoding: a random Gaussian (2, C/2) matrix (a buffer that comes from the checkpoint)."""

    def __init__(self, half_dim: int):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, half_dim))

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """(C, H, W) encoding of the cell centres of an H x W grid."""
        h, w = size
        matrix = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(h, device=matrix.device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=matrix.device, dtype=torch.float32) + 0.5) / w
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        coords = (2 * torch.stack([xx, yy], dim=-1) - 1) @ matrix.float()
        coords = 2 * math.pi * coords
        return torch.cat([coords.sin(), coords.cos()], dim=-1).permute(2, 0, 1)


class FaceDecoder(nn.Module):
    """Task tokens + two-way transformer + heads; also the 11-class parsing map (hypernetwork, x4 upscaling)."""

    def __init__(self, dim: int = 256, depth: int = 2, heads: int = 8, mlp_dim: int = 2048, downsample: int = 2):
        super().__init__()
        self.transformer = TwoWayTransformer(dim, depth, heads, mlp_dim, downsample)
        for token, head, size in TASKS:
            setattr(self, token, nn.Embedding(1, dim))
            setattr(self, head, HeadMLP(dim, dim, size))
        self.mask_tokens = nn.Embedding(PARSING_CLASSES, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2), LayerNorm2d(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2), nn.GELU(),
        )
        self.output_hypernetwork_mlps = HeadMLP(dim, dim, dim // 8)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor) -> dict[str, torch.Tensor]:
        """image: (B, C, H, W) fused map; image_pe: (C, H, W). Returns raw head outputs by task name."""
        b, c, h, w = image.shape
        tokens = torch.cat([getattr(self, t).weight for t, _, _ in TASKS] + [self.mask_tokens.weight], dim=0)
        tokens = tokens.unsqueeze(0).expand(b, -1, -1)
        hs, keys = self.transformer(image, image_pe.unsqueeze(0).expand(b, -1, -1, -1), tokens)
        out = {head.removesuffix("_prediction_head"): getattr(self, head)(hs[:, i]) for i, (_, head, _) in
               enumerate(TASKS)}
        upscaled = self.output_upscaling(keys.transpose(1, 2).reshape(b, c, h, w))
        hyper = self.output_hypernetwork_mlps(hs[:, len(TASKS):])
        out["parsing"] = (hyper @ upscaled.flatten(2)).view(b, -1, *upscaled.shape[-2:])
        return out
