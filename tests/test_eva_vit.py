"""EVA-G (EVA-CLIP ViT-g/14 as LAVIS / LLaMA-VID build it): strict loading of a SYNTHETIC tiny checkpoint written
in LAVIS's key layout (random weights), the forward pass against the official formula written out here, the
token count and the preprocessing. No real weights, no download."""

from __future__ import annotations

import pytest
import torch

from emo_llama.model.backbones import eva_vit
from emo_llama.model.backbones.eva_vit import EVAViTConfig, load_eva
from emo_llama.model.backbones.vision import EVAVision

CFG = EVAViTConfig.tiny(width=24, depth=2, heads=4)


def lavis_state(cfg: EVAViTConfig, blocks: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """LAVIS `eva_vit_g.pth` key names and shapes, written out independently: `blocks` may exceed the depth
    (the real file has 40 blocks, the tower keeps 39)."""
    g = torch.Generator().manual_seed(seed)
    c, h, p = cfg.width, cfg.mlp_hidden, cfg.patch_size

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    s = {"cls_token": r(1, 1, c), "pos_embed": r(1, 1 + (cfg.image_size // p) ** 2, c),
         "patch_embed.proj.weight": r(c, 3, p, p), "patch_embed.proj.bias": r(c)}
    for i in range(blocks):
        b = f"blocks.{i}."
        s |= {b + "norm1.weight": 1 + r(c), b + "norm1.bias": r(c), b + "attn.qkv.weight": r(3 * c, c),
              b + "attn.q_bias": r(c), b + "attn.v_bias": r(c), b + "attn.proj.weight": r(c, c),
              b + "attn.proj.bias": r(c), b + "norm2.weight": 1 + r(c), b + "norm2.bias": r(c),
              b + "mlp.fc1.weight": r(h, c), b + "mlp.fc1.bias": r(h), b + "mlp.fc2.weight": r(c, h),
              b + "mlp.fc2.bias": r(c)}
    return s


def reference_forward(s: dict, cfg: EVAViTConfig, pixels: torch.Tensor) -> torch.Tensor:
    """LAVIS's VisionTransformer.forward_features on the raw tensors (q and v biases, no k bias, q scaled)."""
    ln = torch.nn.functional.layer_norm
    x = torch.nn.functional.conv2d(pixels, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"],
                                   stride=cfg.patch_size).flatten(2).transpose(1, 2)
    x = torch.cat([s["cls_token"].expand(x.shape[0], -1, -1), x], 1) + s["pos_embed"]
    heads, c = cfg.heads, cfg.width
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        y = ln(x, (c,), s[b + "norm1.weight"], s[b + "norm1.bias"], eps=1e-6)
        bias = torch.cat([s[b + "attn.q_bias"], torch.zeros(c), s[b + "attn.v_bias"]])
        qkv = (y @ s[b + "attn.qkv.weight"].T + bias).reshape(*y.shape[:2], 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1)).softmax(-1) @ v
        x = x + a.transpose(1, 2).reshape(*y.shape[:2], c) @ s[b + "attn.proj.weight"].T + s[b + "attn.proj.bias"]
        y = ln(x, (c,), s[b + "norm2.weight"], s[b + "norm2.bias"], eps=1e-6)
        y = torch.nn.functional.gelu(y @ s[b + "mlp.fc1.weight"].T + s[b + "mlp.fc1.bias"])
        x = x + y @ s[b + "mlp.fc2.weight"].T + s[b + "mlp.fc2.bias"]
    return x


def test_full_size_config_matches_lavis_eva_vit_g():
    cfg = EVAViTConfig()
    assert (cfg.width, cfg.depth, cfg.heads, cfg.patch_size, cfg.image_size) == (1408, 39, 16, 14, 224)
    assert cfg.mlp_hidden == int(1408 * 4.3637) and cfg.num_tokens == 257
    with torch.device("meta"):
        net = eva_vit.EVAViT(cfg)
    names = set(net.state_dict())
    assert not any(".attn.k_bias" in n or n.endswith("qkv.bias") or n.startswith(("norm.", "head.")) for n in names)
    assert {"blocks.38.attn.q_bias", "blocks.38.attn.v_bias", "pos_embed"} <= names and "blocks.39.norm1.weight" not in names


def test_synthetic_lavis_checkpoint_loads_strictly_and_matches_the_formula(tmp_path, capsys):
    state = lavis_state(CFG, blocks=CFG.depth + 1)     # one block more, as eva_vit_g.pth (40 for 39)
    path = tmp_path / "eva_vit_g.pth"
    torch.save(state, path)
    net = load_eva(eva_vit.read_state(path), CFG)
    assert f"blocks [{CFG.depth}] not used" in capsys.readouterr().out
    own = net.state_dict()
    assert set(own) == {k for k in state if not k.startswith(f"blocks.{CFG.depth}.")}   # every key used
    for k, v in own.items():                                                             # every parameter filled
        assert not v.is_meta and torch.equal(v, state[k]), k
    pixels = torch.randn(2, 3, CFG.image_size, CFG.image_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(pixels)
    assert out.shape == (2, 1 + (CFG.image_size // 14) ** 2, CFG.width)          # CLS + patches
    torch.testing.assert_close(out, reference_forward(state, CFG, pixels), rtol=1e-4, atol=1e-4)


def test_bad_keys_are_named(tmp_path):
    state = lavis_state(CFG, blocks=CFG.depth)
    with pytest.raises(KeyError, match=r"blocks\.0\.attn\.k_bias"):
        load_eva(state | {"blocks.0.attn.k_bias": torch.zeros(CFG.width)}, CFG)
    with pytest.raises(KeyError, match=r"blocks\.1\.mlp\.fc2\.bias"):
        load_eva({k: v for k, v in state.items() if k != "blocks.1.mlp.fc2.bias"}, CFG)
    with pytest.raises(KeyError, match=r"blocks\.0\.attn\.q_bias \(7,\)"):
        load_eva(state | {"blocks.0.attn.q_bias": torch.zeros(7)}, CFG)
    with pytest.raises(FileNotFoundError, match="eva_vit_g.pth"):
        eva_vit.read_state(tmp_path / "missing.pth")


def test_llamavid_prefix_and_position_table_resize(tmp_path):
    from safetensors.torch import save_file

    state = lavis_state(CFG, blocks=CFG.depth)
    path = tmp_path / "llamavid.safetensors"
    save_file({eva_vit.LLAMAVID_TOWER_PREFIX + k: v for k, v in state.items()}
              | {"model.mm_projector.0.weight": torch.zeros(2, 2)}, str(path))
    read = eva_vit.read_state(path)
    assert set(read) == set(state)
    big = EVAViTConfig.tiny(width=24, depth=2, heads=4, image_size=42)   # 3x3 grid: the 2x2 table is resized
    net = load_eva(read, big)
    assert net.pos_embed.shape == (1, 10, 24)
    torch.testing.assert_close(net.pos_embed[:, 0], state["pos_embed"][:, 0])          # CLS row kept
    torch.testing.assert_close(net.pos_embed[:, 1:].mean(), state["pos_embed"][:, 1:].mean(), rtol=0.3, atol=0.05)


def test_vision_encoder_preprocesses_like_llamavid():
    enc = EVAVision.from_state(lavis_state(CFG, blocks=CFG.depth), CFG).freeze()
    assert enc.has_cls and enc.interpolation == "bicubic" and enc.token_dim == CFG.width
    assert enc.mean == (0.48145466, 0.4578275, 0.40821073) and enc.std == (0.26862954, 0.26130258, 0.27577711)
    images = torch.rand(3, 3, 56, 56, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        tokens = enc(images)
        resized = torch.nn.functional.interpolate(images, size=(28, 28), mode="bicubic", antialias=True)
        mean, std = torch.tensor(enc.mean).view(1, 3, 1, 1), torch.tensor(enc.std).view(1, 3, 1, 1)
        expected = enc.net((resized - mean) / std)
    assert tokens.shape == (3, enc.num_tokens, CFG.width) == (3, 5, 24)
    torch.testing.assert_close(tokens, expected)
