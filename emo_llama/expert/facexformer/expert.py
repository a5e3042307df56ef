"""The paper's facial expert: FaceXFormer-B (Narayan et al.) with its official checkpoint.

    expert = get_expert("facexformer", path="ckpts/model.pt")   # the released `model.pt`
    out = expert(crops)     # face tokens (7 x 7 grid of the fused 256-ch map), 68 landmarks, age/gender/race

How a crop is read: FaceXFormer's input is the MTCNN box enlarged by a 50% margin (our FaceCropper's default
crop), resized to 224 x 224 (bicubic) and normalised with ImageNet mean/std.

Face tokens for Eq. 1: the fused (256, 56, 56) map average-pooled to a 7 x 7 grid (8 x 8 cells each):
49 tokens of 256 channels, the same grid size as the offline expert, so AU regions stay a few tokens wide.

Label orders the released code does not name (it prints class indices only) are assumptions, kept in
`FaceXFormerConfig` so they can be corrected without code changes: gender (male, female) and race
(White, Black, Asian, Indian, Others) follow UTKFace, on which FaceXFormer trained age/gender/race; the
8 age bins are taken as decades 0-9 ... 60-69, 70+ and read as their expected midpoint.

`FaceXFormerConfig.tiny()` builds the same classes at a tiny width with RANDOM WEIGHTS: unit tests only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emo_llama.expert.base import GENDERS, ExpertOutput, FacialExpert
from emo_llama.expert.facexformer.decoder import FaceDecoder, RandomFourierPositions
from emo_llama.expert.facexformer.swin import SwinFeatures, hf_to_torchvision, torchvision_to_hf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_KEY = "state_dict_backbone"   # the official file keeps the whole model's weights under this key
BACKBONE_PREFIX = "backbone"


@dataclass(frozen=True)
class FaceXFormerConfig:
    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    heads: tuple[int, ...] = (4, 8, 16, 32)
    window: int = 7
    image_size: int = 224
    dim: int = 256                      # fused map and decoder width
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp: int = 2048
    attention_downsample: int = 2
    grid: tuple[int, int] = (7, 7)      # face-token grid (adaptive average pooling of the fused map)
    gender_names: tuple[str, ...] = ("male", "female")
    race_names: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Others")
    age_bin_centres: tuple[float, ...] = (5.0, 15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 75.0)

    @classmethod
    def tiny(cls) -> FaceXFormerConfig:
        """Same classes, tiny width (random weights, tests only): 64 px input, 16 x 16 fused map."""
        return cls(embed_dim=8, depths=(2, 2, 2, 2), heads=(1, 2, 2, 4), window=2, image_size=64, dim=32,
                   decoder_depth=2, decoder_heads=2, decoder_mlp=64, grid=(4, 4))


class FaceXFormerNet(nn.Module):
    """Backbone + fusion + decoder; parameter names follow the official checkpoint except `backbone.*`."""

    def __init__(self, config: FaceXFormerConfig):
        super().__init__()
        self.config = config
        self.features = SwinFeatures(config.embed_dim, config.depths, config.heads, config.window,
                                     config.image_size, config.dim)
        self.pe_layer = RandomFourierPositions(config.dim // 2)
        self.face_decoder = FaceDecoder(config.dim, config.decoder_depth, config.decoder_heads, config.decoder_mlp,
                                        config.attention_downsample)

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        _, fused = self.features(pixels)
        out = self.face_decoder(fused, self.pe_layer(fused.shape[-2:]).to(fused.dtype))
        out["fused"] = fused
        return out

    # official key layout <-> ours: only the backbone and the fusion's place differ
    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """This model's weights under the official checkpoint's key names (for tests and comparisons)."""
        ours = self.state_dict()
        swin = {k.removeprefix("features."): v for k, v in ours.items() if k.startswith("features.swin.")}
        out = hf_to_torchvision(swin, BACKBONE_PREFIX, self.config.depths, self.config.window)
        for key, value in ours.items():
            if not key.startswith("features.swin."):
                out[key.removeprefix("features.")] = value
        return out

    def load_official(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Strict: every key of `state` is used and every parameter/buffer is filled, or a clear error."""
        state = {k.removeprefix("module."): v for k, v in state.items()}
        swin, used = torchvision_to_hf(state, BACKBONE_PREFIX, self.config.window)
        mapped = {f"features.{k}": v for k, v in swin.items()}
        for key, value in state.items():
            if key.startswith(BACKBONE_PREFIX + "."):
                continue
            target = f"features.{key}" if key.split(".")[0] in ("linear_c", "linear_fuse") else key
            mapped[target] = value
            used.add(key)
        expected = self.state_dict()
        unexpected = sorted(set(state) - used) + sorted(k for k in mapped if k not in expected)
        missing = sorted(set(expected) - set(mapped))
        wrong = sorted(k for k in mapped if k in expected and mapped[k].shape != expected[k].shape)
        if missing or unexpected or wrong:
            def show(keys):
                return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
            raise KeyError(
                f"{source} does not match FaceXFormer ({self.config.embed_dim}-d Swin, depths {self.config.depths}): "
                f"missing {len(missing)} [{show(missing)}]; unexpected {len(unexpected)} [{show(unexpected)}]; "
                f"wrong shape {len(wrong)} [{show(wrong)}]")
        self.load_state_dict(mapped, strict=True)


def load_checkpoint(path: str | Path, config: FaceXFormerConfig | None = None) -> FaceXFormerNet:
    """The official `model.pt` (a dict with 'state_dict_backbone') -> FaceXFormerNet, strictly."""
    path = Path(path).expanduser()
    if not str(path) or not path.is_file():
        raise FileNotFoundError(
            f"FaceXFormer checkpoint not found at {path}. Download `ckpts/model.pt` from the Hugging Face repo "
            "kartiknarayan/facexformer (see the FaceXFormer README) and pass its path "
            "(`get_expert('facexformer', path=...)`, notebook parameter `expert_path`).")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    state = blob.get(CHECKPOINT_KEY, blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict (expected a dict with key {CHECKPOINT_KEY!r})")
    net = FaceXFormerNet(config or FaceXFormerConfig())
    net.load_official(state, source=str(path.name))
    return net


class FaceXFormerExpert(FacialExpert):
    """FaceXFormer behind the shared expert interface (frozen, eval mode)."""

    name = "facexformer"

    def __init__(self, path: str | Path | None = None, config: FaceXFormerConfig | None = None,
                 net: FaceXFormerNet | None = None):
        super().__init__()
        if net is None:
            net = load_checkpoint("" if path is None else path, config)
        self.net = net
        cfg = net.config
        self.input_size, self.token_dim, self.grid = cfg.image_size, cfg.dim, tuple(cfg.grid)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    @classmethod
    def tiny(cls, seed: int = 0) -> FaceXFormerExpert:
        """Tiny config, RANDOM WEIGHTS (tests only)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return cls(net=FaceXFormerNet(FaceXFormerConfig.tiny()))

    def _run(self, crops: torch.Tensor) -> ExpertOutput:
        cfg = self.net.config
        side = cfg.image_size
        x = F.interpolate(crops, size=(side, side), mode="bicubic", align_corners=False).clamp(0, 1)
        out = self.net((x - self.mean) / self.std)
        tokens = F.adaptive_avg_pool2d(out["fused"], cfg.grid).flatten(2).transpose(1, 2)
        # [-1, 1] of the input -> pixel index ((p + 1) * side - 1) / 2 (the official denorm) -> (p + 1) / 2 of the crop
        landmarks = (out["landmarks"].view(-1, 68, 2) + 1) / 2
        gender_theirs = out["gender"].softmax(-1)
        order = [cfg.gender_names.index(g) for g in GENDERS]
        age_probs = out["age"].softmax(-1)
        centres = torch.tensor(cfg.age_bin_centres, device=age_probs.device, dtype=age_probs.dtype)
        return ExpertOutput(
            face_tokens=tokens, grid=self.grid, landmarks_68=landmarks.clamp(0, 1),
            age_years=age_probs @ centres, gender_probs=gender_theirs[:, order],
            race_probs=out["race"].softmax(-1), race_names=tuple(cfg.race_names),
            token_centres=self.default_token_centres().to(crops.device),
            age_scheme=f"expected value over {len(centres)} age bins (centres {cfg.age_bin_centres})",
            backend=self.name,
            extras={"pose_radians": out["pose"], "attributes": out["attribute"].sigmoid(),
                    "visibility": out["visibility"].sigmoid(), "age_bin_probs": age_probs,
                    "parsing_logits": out["parsing"], "fused_map": out["fused"]},
        )
