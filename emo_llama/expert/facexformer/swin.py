"""FaceXFormer's backbone: Swin-B from `transformers` (no torchvision), read at four scales, fused to one map.

The official model wraps torchvision's `swin_b` (`backbone.0` = its `features`, `backbone.1` = its final
LayerNorm) and takes the outputs of `features[1, 3, 5, 7]` (the four stages, before patch merging).
`transformers`' `SwinModel` computes the same function (same window partition, shift, -100 mask, relative
position bias, patch-merging order); only the key names and the fused `qkv` differ, which
`torchvision_to_hf` maps. `benchmarks/gpu_paper_stack.py` compares the two numerically where torchvision
is installed (GPU machines); the CPU path never imports torchvision.

Fusion (keys `linear_c.<i>.proj`, `linear_fuse`): each stage -> Linear to 256 channels -> bilinear
upsampling to the first stage's size -> concatenated deepest first -> 1x1 conv without bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def swin_config(embed_dim: int, depths, heads, window: int, image_size: int):
    from transformers import SwinConfig

    return SwinConfig(image_size=image_size, patch_size=4, embed_dim=embed_dim, depths=list(depths),
                      num_heads=list(heads), window_size=window, mlp_ratio=4.0, qkv_bias=True,
                      drop_path_rate=0.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                      layer_norm_eps=1e-5, use_absolute_embeddings=False)


class FusionLinear(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        b, _, h, w = fmap.shape
        return self.proj(fmap.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)


class SwinFeatures(nn.Module):
    """Swin stages as (B, C_s, H_s, W_s) maps + the fused (B, fuse_dim, H_0, W_0) map."""

    def __init__(self, embed_dim: int, depths, heads, window: int, image_size: int, fuse_dim: int):
        super().__init__()
        from transformers import SwinModel

        self.swin = SwinModel(swin_config(embed_dim, depths, heads, window, image_size), add_pooling_layer=False)
        widths = [embed_dim * 2 ** i for i in range(len(depths))]
        self.linear_c = nn.ModuleList(FusionLinear(c, fuse_dim) for c in widths)
        self.linear_fuse = nn.Conv2d(fuse_dim * len(widths), fuse_dim, kernel_size=1, bias=False)

    def stages(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        hidden, dims = self.swin.embeddings(pixels)
        maps = []
        for stage in self.swin.encoder.layers:
            hidden, before, _ = stage(hidden, dims, output_hidden_states_before_downsampling=True)
            maps.append(before)
            if stage.downsample is not None:
                dims = ((dims[0] + 1) // 2, (dims[1] + 1) // 2)
        return maps

    def forward(self, pixels: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        maps = self.stages(pixels)
        size = maps[0].shape[-2:]
        scaled = [F.interpolate(mlp(m), size=size, mode="bilinear", align_corners=False)
                  for m, mlp in zip(maps, self.linear_c)]
        return maps, self.linear_fuse(torch.cat(scaled[::-1], dim=1))


# ----- torchvision swin_b key names -> transformers' SwinModel -----------------------------------------

def relative_position_index(window: int) -> torch.Tensor:
    """torchvision's (and Swin's) flat relative-position index for a window x window window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return (rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]).flatten()


_BLOCK_MAP = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.o_proj",
              "mlp.0": "mlp.fc1", "mlp.3": "mlp.fc2"}
_TABLE = ("attn.relative_position_bias_table", "attention.relative_position_bias.relative_position_bias_table")


def torchvision_to_hf(state: dict[str, torch.Tensor], prefix: str, window: int) -> tuple[dict, set[str]]:
    """Map `prefix.0.*` (torchvision `features`) and `prefix.1.*` (final norm) to `swin.*` names.

    Returns (mapped tensors, source keys consumed). The fused `attn.qkv` is split into q/k/v (that order);
    `relative_position_index` buffers are checked against the index Swin computes (and consumed).
    Keys that match no rule are left out of `consumed`, so the caller reports them as unexpected.
    """
    out, used = {}, set()
    for key, value in state.items():
        if not key.startswith(prefix + "."):
            continue
        parts = key[len(prefix) + 1:].split(".")
        dst = None
        if parts[0] == "1" and len(parts) == 2:                          # final LayerNorm
            dst = f"swin.layernorm.{parts[1]}"
        elif parts[:2] == ["0", "0"] and len(parts) == 4:                # patch embedding conv + norm
            dst = {"0": "swin.embeddings.patch_embeddings.projection", "2": "swin.embeddings.norm"}.get(parts[2])
            dst = dst and f"{dst}.{parts[3]}"
        elif parts[0] == "0" and parts[1].isdigit() and int(parts[1]) >= 1:
            index = int(parts[1])
            stage = (index - 1) // 2
            if index % 2 == 0:                                           # patch merging after stage
                dst = f"swin.encoder.layers.{stage}.downsample.{'.'.join(parts[2:])}"
            else:
                base = f"swin.encoder.layers.{stage}.blocks.{parts[2]}."
                module, _, kind = ".".join(parts[3:]).rpartition(".")
                if module == "attn.qkv":
                    for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                        out[f"{base}attention.{name}.{kind}"] = chunk.clone()
                    used.add(key)
                    continue
                if module == "attn" and kind == "relative_position_index":
                    if not torch.equal(value.flatten().long(), relative_position_index(window)):
                        raise ValueError(f"{key} differs from the index of a {window} x {window} window")
                    used.add(key)
                    continue
                if f"{module}.{kind}" == _TABLE[0]:
                    dst = base + _TABLE[1]
                elif module in _BLOCK_MAP:
                    dst = f"{base}{_BLOCK_MAP[module]}.{kind}"
        if dst:
            out[dst] = value
            used.add(key)
    return out, used


def hf_to_torchvision(state: dict[str, torch.Tensor], prefix: str, depths, window: int) -> dict[str, torch.Tensor]:
    """The inverse map (for synthetic checkpoints in tests and the GPU comparison with torchvision)."""
    out = {}
    inverse = {v: k for k, v in _BLOCK_MAP.items()}
    for key, value in state.items():
        if key.startswith("swin.layernorm."):
            out[f"{prefix}.1.{key.rsplit('.', 1)[1]}"] = value
        elif key.startswith("swin.embeddings."):
            part = "0" if "projection" in key else "2"
            out[f"{prefix}.0.0.{part}.{key.rsplit('.', 1)[1]}"] = value
    for s, depth in enumerate(depths):
        base = f"swin.encoder.layers.{s}."
        for b in range(depth):
            blk, dst = f"{base}blocks.{b}.", f"{prefix}.0.{2 * s + 1}.{b}."
            for kind in ("weight", "bias"):
                out[f"{dst}attn.qkv.{kind}"] = torch.cat(
                    [state[f"{blk}attention.{n}.{kind}"] for n in ("q_proj", "k_proj", "v_proj")])
            out[f"{dst}attn.relative_position_index"] = relative_position_index(window)
            out[f"{dst}{_TABLE[0]}"] = state[f"{blk}{_TABLE[1]}"]
            for hf_name, tv_name in inverse.items():
                for kind in ("weight", "bias"):
                    if f"{blk}{hf_name}.{kind}" in state:
                        out[f"{dst}{tv_name}.{kind}"] = state[f"{blk}{hf_name}.{kind}"]
        for key in (k for k in state if k.startswith(f"{base}downsample.")):
            out[f"{prefix}.0.{2 * s + 2}.{key.removeprefix(base + 'downsample.')}"] = state[key]
    return out
