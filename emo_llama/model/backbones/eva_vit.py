"""EVA-CLIP ViT-g/14 ("EVA-G") as BLIP-2 / LAVIS and LLaMA-VID use it: LLaMA-VID-7B's vision tower.

Facts from the public code (`salesforce/LAVIS` `lavis/models/eva_vit.py` `create_eva_vit_g`;
`dvlab-research/LLaMA-VID` `llamavid/model/multimodal_encoder/eva_vit.py` `EVAVisionTowerLavis`, `builder.py`,
`llamavid_arch.py`, `train/train.py`, `processor/clip-patch14-224/preprocessor_config.json`):
- a pre-norm ViT: patch 14 (a 14x14 conv with bias), a learnable CLS token, an absolute position embedding of
  1 + (224/14)^2 = 257 rows, width 1408, 16 heads (1408 // 88) of width 88, MLP hidden int(1408 * 4.3637) =
  6144 with exact GELU, LayerNorm eps 1e-6, no layer scale, no relative position bias, no final norm, no head;
- attention: one `qkv` Linear without bias plus separate `q_bias` and `v_bias` (the key has no bias); the scale
  is head_dim^-0.5 (a key bias would not change the softmax anyway: it adds a constant per query);
- depth 39: EVA-CLIP-g has 40 blocks and LAVIS's `eva_vit_g.pth` holds all 40, but BLIP-2 (and LLaMA-VID,
  which builds the same model) keeps 39 and drops the last (`load_state_dict(strict=False)`), so the output is
  EVA-CLIP's penultimate layer. LLaMA-VID's tower returns all 257 tokens of that layer: the Q-Former reads all
  of them (after `vlm_att_ln`); Eq. 2's values and the content token use the 256 patch tokens (CLS dropped,
  `mm_vision_select_feature == "patch"`);
- preprocessing: LLaMA-VID's `clip-patch14-224` CLIPImageProcessor: resize (shortest edge 224, bicubic),
  centre crop 224, CLIP mean/std (for still images it first pads to a square with the mean colour);
- a position table of another grid is resized bicubically (LAVIS's `interpolate_pos_embed`).

Weights: LAVIS's `eva_vit_g.pth` (a plain state dict in the key names of `EVAViT` below), or the tensors under
`model.vision_tower.vision_tower.` in a LLaMA-VID checkpoint when it carries them: LLaMA-VID registers the
EVA module as `model.vision_tower.vision_tower` and its DeepSpeed save writes the whole model's state dict,
yet its own loader never reads them (the tower is built with `delay_load=True` and then filled from
`eva_vit_g.pth`). Whether the released checkpoints hold them was not checked (no download here).

Verified only with tiny configurations and synthetic checkpoints written in these key names
(`tests/test_eva_vit.py`); numerical agreement with the official EVA-G weights is not verified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emo_llama.model.backbones.tensor_files import read_tensors

# where LLaMA-VID's state dict keeps the EVA module
LLAMAVID_TOWER_PREFIX = "model.vision_tower.vision_tower."


@dataclass(frozen=True)
class EVAViTConfig:
    image_size: int = 224
    patch_size: int = 14
    width: int = 1408
    depth: int = 39          # EVA-CLIP-g's 40 blocks minus the last (BLIP-2 / LLaMA-VID)
    heads: int = 16
    mlp_hidden: int = 6144   # int(1408 * 4.3637)
    eps: float = 1e-6

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return 1 + self.grid ** 2

    @classmethod
    def tiny(cls, width: int = 24, depth: int = 2, heads: int = 4, image_size: int = 28) -> EVAViTConfig:
        """Tests only: 28 px, patch 14 -> 4 patches + CLS."""
        return cls(image_size=image_size, patch_size=14, width=width, depth=depth, heads=heads,
                   mlp_hidden=2 * width)


class PatchEmbed(nn.Module):
    def __init__(self, cfg: EVAViTConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, cfg: EVAViTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(cfg.width))
        self.v_bias = nn.Parameter(torch.zeros(cfg.width))
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])  # no key bias
        qkv = F.linear(x, self.qkv.weight, bias).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])   # scale head_dim^-0.5
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, cfg: EVAViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_hidden)
        self.fc2 = nn.Linear(cfg.mlp_hidden, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: EVAViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.mlp = Mlp(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EVAViT(nn.Module):
    """pixels (B, 3, S, S), already normalised -> all tokens of the last kept block (B, 1 + (S/14)^2, width),
    CLS first. Parameter names are LAVIS's, so its state dict loads as is."""

    def __init__(self, cfg: EVAViTConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or EVAViTConfig()
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.width))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        if not self.cls_token.is_meta:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """EVA-G tensors from LAVIS's `eva_vit_g.pth` (or a .safetensors file), or from a LLaMA-VID checkpoint
    (file or folder) whose keys carry `model.vision_tower.vision_tower.`; returns LAVIS key names."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"EVA-G weights not found at {path}: download LAVIS's eva_vit_g.pth (https://storage.googleapis.com/"
            "sfr-vision-language-research/LAVIS/models/BLIP2/eva_vit_g.pth) and pass its path as `vision_path`")
    if path.is_dir() or path.suffix == ".safetensors":
        state = read_tensors(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if "model" in state and isinstance(state["model"], dict):  # a wrapped training checkpoint
            state = state["model"]
    return tower_state(state) or state


def tower_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The EVA tensors a LLaMA-VID state dict carries, with the prefix stripped ({} when it has none)."""
    n = len(LLAMAVID_TOWER_PREFIX)
    return {k[n:]: v for k, v in state.items() if k.startswith(LLAMAVID_TOWER_PREFIX)}


def fit_state(model: EVAViT, state: dict[str, torch.Tensor], source: str = "EVA-G checkpoint") -> dict:
    """The checkpoint's tensors as `model` needs them, checked strictly: blocks past the model's depth are
    dropped (BLIP-2's last-layer removal, reported), a position table of another grid is resized; any other
    missing, unexpected or misshapen key stops with its name."""
    depth = model.cfg.depth
    extra_blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("blocks.")
                           and k.split(".")[1].isdigit() and int(k.split(".")[1]) >= depth})
    state = {k: v for k, v in state.items()
             if not (k.startswith("blocks.") and k.split(".")[1].isdigit() and int(k.split(".")[1]) >= depth)}
    if extra_blocks:
        print(f"{source}: blocks {extra_blocks} not used (the tower keeps {depth} blocks: EVA-CLIP's "
              "penultimate layer, as BLIP-2 and LLaMA-VID)")
    expected = model.state_dict()
    if "pos_embed" in state and state["pos_embed"].shape != expected["pos_embed"].shape:
        state = state | {"pos_embed": resize_pos_embed(state["pos_embed"], model.cfg.grid)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                   for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise KeyError(f"{source} does not fit EVA-G ({model.cfg}): {len(missing)} missing {missing[:6]}, "
                       f"{len(unexpected)} unexpected {unexpected[:6]}, {len(wrong)} wrong shape {wrong[:6]}")
    return state


def resize_pos_embed(table: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + g*g, C) -> (1, 1 + grid*grid, C): the CLS row kept, the patch rows resized bicubically."""
    old = int(math.isqrt(table.shape[1] - 1))
    if old * old != table.shape[1] - 1:
        raise KeyError(f"pos_embed {tuple(table.shape)} is not 1 + a square grid")
    patches = table[:, 1:].float().reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([table[:, :1].float(), patches.permute(0, 2, 3, 1).flatten(1, 2)], dim=1).to(table.dtype)


def load_eva(state: dict[str, torch.Tensor], cfg: EVAViTConfig | None = None, dtype: torch.dtype = torch.float32,
             source: str = "EVA-G checkpoint") -> EVAViT:
    """EVAViT filled strictly from `state` (LAVIS key names), built on the meta device (no random init)."""
    with torch.device("meta"):
        model = EVAViT(cfg)
    state = fit_state(model, state, source)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    return model.eval()
