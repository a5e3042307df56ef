"""FaceXFormer expert: strict loading of a synthetic checkpoint in the official key layout, heads, AGR with race.

All weights here are RANDOM (tiny configuration, or a full-size model that is only inspected for key names
and shapes). The real checkpoint is never needed.
"""

import pytest
import torch

from emo_llama.expert import get_expert
from emo_llama.expert.facexformer.expert import (
    FaceXFormerConfig,
    FaceXFormerExpert,
    FaceXFormerNet,
    load_checkpoint,
)
from emo_llama.expert.facexformer.swin import relative_position_index


def torchvision_swin_keys(cfg: FaceXFormerConfig) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of torchvision's swin `features` + final norm, written out independently here."""
    c, w = cfg.embed_dim, cfg.window
    keys = {"backbone.0.0.0.weight": (c, 3, 4, 4), "backbone.0.0.0.bias": (c,), "backbone.0.0.2.weight": (c,),
            "backbone.0.0.2.bias": (c,)}
    for s, (depth, heads) in enumerate(zip(cfg.depths, cfg.heads)):
        dim = c * 2 ** s
        for b in range(depth):
            p = f"backbone.0.{2 * s + 1}.{b}."
            keys |= {p + "norm1.weight": (dim,), p + "norm1.bias": (dim,), p + "attn.qkv.weight": (3 * dim, dim),
                     p + "attn.qkv.bias": (3 * dim,), p + "attn.proj.weight": (dim, dim), p + "attn.proj.bias": (dim,),
                     p + "attn.relative_position_bias_table": ((2 * w - 1) ** 2, heads),
                     p + "attn.relative_position_index": (w ** 4,), p + "norm2.weight": (dim,),
                     p + "norm2.bias": (dim,), p + "mlp.0.weight": (4 * dim, dim), p + "mlp.0.bias": (4 * dim,),
                     p + "mlp.3.weight": (dim, 4 * dim), p + "mlp.3.bias": (dim,)}
        if s < len(cfg.depths) - 1:
            p = f"backbone.0.{2 * s + 2}."
            keys |= {p + "reduction.weight": (2 * dim, 4 * dim), p + "norm.weight": (4 * dim,),
                     p + "norm.bias": (4 * dim,)}
    top = c * 2 ** (len(cfg.depths) - 1)
    return keys | {"backbone.1.weight": (top,), "backbone.1.bias": (top,)}


def synthetic_official_state(cfg: FaceXFormerConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the official names: backbone from the list above, the rest from our decoder."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_swin_keys(cfg).items():
        if key.endswith("relative_position_index"):
            state[key] = relative_position_index(cfg.window)
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    for key, value in FaceXFormerNet(cfg).official_state_dict().items():
        if not key.startswith("backbone."):
            state[key] = torch.randn(value.shape, generator=g) * 0.1
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = FaceXFormerConfig.tiny()
    state = synthetic_official_state(cfg)
    path = tmp_path_factory.mktemp("fxf") / "model.pt"
    torch.save({"state_dict_backbone": state}, path)
    return cfg, state, path


def test_full_size_official_layout_matches_torchvision_swin_b():
    cfg = FaceXFormerConfig()
    ours = {k: tuple(v.shape) for k, v in FaceXFormerNet(cfg).official_state_dict().items()}
    backbone = {k: v for k, v in ours.items() if k.startswith("backbone.")}
    assert backbone == torchvision_swin_keys(cfg)
    assert ours["backbone.0.5.17.attn.qkv.weight"] == (1536, 512) and ours["backbone.1.weight"] == (1024,)
    assert ours["linear_c.3.proj.weight"] == (256, 1024) and ours["linear_fuse.weight"] == (256, 1024, 1, 1)
    assert ours["pe_layer.positional_encoding_gaussian_matrix"] == (2, 128)
    assert ours["face_decoder.mask_tokens.weight"] == (11, 256)
    assert ours["face_decoder.race_prediction_head.layers.2.weight"] == (5, 256)
    assert ours["face_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"] == (128, 256)


def test_synthetic_official_checkpoint_loads_strictly(checkpoint):
    cfg, state, path = checkpoint
    net = load_checkpoint(path, cfg)
    ours = net.state_dict()
    qkv = state["backbone.0.3.1.attn.qkv.weight"]
    dim = qkv.shape[1]
    torch.testing.assert_close(ours["features.swin.encoder.layers.1.blocks.1.attention.k_proj.weight"],
                               qkv[dim:2 * dim])
    torch.testing.assert_close(ours["features.swin.encoder.layers.1.blocks.1.layernorm_after.bias"],
                               state["backbone.0.3.1.norm2.bias"])
    torch.testing.assert_close(ours["features.swin.encoder.layers.2.downsample.reduction.weight"],
                               state["backbone.0.6.reduction.weight"])
    torch.testing.assert_close(ours["features.linear_fuse.weight"], state["linear_fuse.weight"])
    torch.testing.assert_close(ours["pe_layer.positional_encoding_gaussian_matrix"],
                               state["pe_layer.positional_encoding_gaussian_matrix"])
    # every parameter was filled from the file: a second load of other values changes all of them
    other = FaceXFormerNet(cfg)
    other.load_official(synthetic_official_state(cfg, seed=1))
    for key, value in other.state_dict().items():
        if value.is_floating_point():
            assert not torch.equal(value, ours[key]), key


def test_missing_unexpected_and_misshapen_keys_are_named(checkpoint):
    cfg, state, _ = checkpoint
    net = FaceXFormerNet(cfg)
    broken = dict(state)
    broken.pop("backbone.0.5.0.attn.proj.weight")
    broken["face_decoder.expression_token.weight"] = torch.zeros(1, 32)
    with pytest.raises(KeyError) as info:
        net.load_official(broken)
    text = str(info.value)
    assert "missing 1" in text and "layers.2.blocks.0.attention.o_proj.weight" in text
    assert "face_decoder.expression_token.weight" in text
    misshapen = dict(state)
    misshapen["linear_fuse.weight"] = torch.zeros(32, 64, 1, 1)
    with pytest.raises(KeyError, match="wrong shape 1 .*linear_fuse.weight"):
        net.load_official(misshapen)
    bad_index = dict(state)
    bad_index["backbone.0.1.0.attn.relative_position_index"] = torch.zeros(16, dtype=torch.long)
    with pytest.raises(ValueError, match="relative_position_index"):
        net.load_official(bad_index)


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="kartiknarayan/facexformer"):
        get_expert("facexformer", path=tmp_path / "nope.pt", device="cpu")


def test_heads_shapes_ranges_and_agr_with_race(checkpoint):
    cfg, _, path = checkpoint
    expert = get_expert("facexformer", path=path, config=cfg, device="cpu")
    assert isinstance(expert, FaceXFormerExpert) and not expert.training
    assert not any(p.requires_grad for p in expert.parameters())
    out = expert(torch.rand(3, 3, 90, 70, generator=torch.Generator().manual_seed(0)))
    assert out.face_tokens.shape == (3, 16, 32) and out.grid == (4, 4)
    assert out.landmarks_68.shape == (3, 68, 2) and 0 <= float(out.landmarks_68.min()) <= float(
        out.landmarks_68.max()) <= 1
    torch.testing.assert_close(out.gender_probs.sum(-1), torch.ones(3))
    assert out.race_probs.shape == (3, 5) and out.race_names == cfg.race_names
    assert ((out.age_years >= 5) & (out.age_years <= 75)).all()
    ex = out.extras
    assert ex["pose_radians"].shape == (3, 3) and ex["attributes"].shape == (3, 40)
    assert ex["visibility"].shape == (3, 29) and float(ex["attributes"].min()) >= 0 and float(ex["attributes"].max()) <= 1
    assert ex["parsing_logits"].shape == (3, 11, 64, 64)
    # face tokens are the fused map pooled to the grid (4 x 4 cells of the 16 x 16 map)
    fused = ex["fused_map"]
    torch.testing.assert_close(out.face_tokens[:, 0], fused[:, :, :4, :4].mean(dim=(2, 3)))
    race, _ = out.race(0)
    assert f"race: {race}." in out.agr_text(0) and "gender:" in out.agr_text(0)
    assert out.au_masks().shape[::2] == (3, 16)


def test_tiny_facexformer_is_deterministic():
    crops = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    a = get_expert("facexformer", tiny=True, device="cpu")(crops)
    b = get_expert("facexformer", tiny=True, device="cpu")(crops)
    torch.testing.assert_close(a.face_tokens, b.face_tokens)
    assert "RANDOM WEIGHTS" in FaceXFormerExpert.tiny.__doc__.upper()
