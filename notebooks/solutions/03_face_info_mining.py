"""Worked solutions to the exercises at the end of notebook 03 (Face Info Mining).

    python notebooks/solutions/03_face_info_mining.py

No trained model is needed: each exercise builds a small `FaceInfoMining` module (random weights, width 16,
2 heads) and feeds it the synthetic frozen features the `tiny` training tests use
(`emo_llama.features.synthetic`: 16 visual tokens, a 4 x 4 face-token grid, 5 AU regions). What the exercises
check - how attention weights are formed, and what the module does with degenerate inputs - holds for any
weights, trained or not. Runs in about a second; tests/test_solutions.py runs `solve`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emo_llama.features.synthetic import synthetic_features
from emo_llama.model.parts.face_info_mining import FaceInfoMining, FIMConfig


def build(seed: int = 0) -> tuple[FaceInfoMining, object]:
    """(FIM with random weights that records its attention maps, one frame of synthetic features)."""
    torch.manual_seed(seed)
    feats = synthetic_features(label_index=1, seed=seed)  # vision (1, 16, 32), face (1, 16, 16), masks (1, 5, 16)
    fim = FaceInfoMining(vision_dim=feats.vision_tokens.shape[-1], face_dim=feats.face_tokens.shape[-1],
                         cfg=FIMConfig(dim=16, heads=2)).eval()
    fim.record = True  # keep the attention weights in fim.attention
    return fim, feats


def exercise_1(head: int = 1, seed: int = 0) -> dict:
    """Exercise 1: compute one head's Global Face Attention map by hand and compare it with the one the module records.

    Answer: GFAttn is `nn.MultiheadAttention` with the visual tokens (after self-attention) as queries and the
    projected face tokens as keys. Its packed `in_proj_weight` holds W_Q, W_K, W_V stacked; head h uses columns
    h*d_h ... (h+1)*d_h of Q and K (d_h = dim / heads = 8). The map is softmax(Q_h K_h^T / sqrt(d_h)): one row
    per visual token (16), one column per face token (16), each row summing to 1. A forward pre-hook on
    `global_attn` hands you the exact query and key inputs; the hand-computed map then matches the recorded
    one to float precision (about 1e-8).
    """
    fim, feats = build(seed)
    seen = {}
    hook = fim.global_attn.register_forward_pre_hook(lambda module, args: seen.update(query=args[0], key=args[1]))
    with torch.no_grad():
        fim(feats.vision_tokens, feats.face_tokens, feats.au_masks)
        hook.remove()
        attn, d = fim.global_attn, fim.cfg.dim
        d_h = d // fim.cfg.heads
        q = seen["query"] @ attn.in_proj_weight[:d].T + attn.in_proj_bias[:d]
        k = seen["key"] @ attn.in_proj_weight[d:2 * d].T + attn.in_proj_bias[d:2 * d]
        cols = slice(head * d_h, (head + 1) * d_h)
        by_hand = torch.softmax(q[..., cols] @ k[..., cols].transpose(-1, -2) / math.sqrt(d_h), dim=-1)
    recorded = fim.attention["global"][:, head]  # (frames, visual tokens, face tokens)
    diff = float((by_hand - recorded).abs().max())
    print(f"head {head}: map {tuple(by_hand.shape[1:])}, largest |by hand - recorded| = {diff:.1e}")
    return {"shape": tuple(by_hand.shape[1:]), "max_abs_diff": diff,
            "row_sums": by_hand.sum(-1).flatten().tolist()}


def exercise_2(seed: int = 0) -> dict:
    """Exercise 2: set every face token to zero. Predict the Global and Local Face Attention maps. Is the result
    the same as the `use_face_embedding=False` arm of Tab. 5?

    Answer: all keys become the same vector (the bias of `face_in`), so every score in a row is equal and
    Global Face Attention is exactly uniform: 1/16 for each face token, whatever the query. Local Face
    Attention pools equal vectors in every region, so all non-empty regions get the same weight (only the
    learned null key can differ). The face branch now carries no information about the face - but it is not
    the no-face arm: it still adds one fixed vector (the attention over identical values) to every visual
    token, so the output differs from the real-face output, from what a constant other than zero gives, and
    from the same weights with the face branch switched off. "Zeroing the input" and "removing the
    branch" are different ablations.
    """
    fim, feats = build(seed)
    zeros = torch.zeros_like(feats.face_tokens)
    with torch.no_grad():
        real = fim(feats.vision_tokens, feats.face_tokens, feats.au_masks)
        zeroed = fim(feats.vision_tokens, zeros, feats.au_masks)
        global_map, local_map = fim.attention["global"], fim.attention["local"]
        threes = fim(feats.vision_tokens, torch.full_like(zeros, 3.0), feats.au_masks)
        no_face = FaceInfoMining(feats.vision_tokens.shape[-1], feats.face_tokens.shape[-1],
                                 FIMConfig(dim=16, heads=2, use_face_embedding=False)).eval()
        no_face.load_state_dict(fim.state_dict(), strict=False)  # the same weights, minus the face branch
        arm = no_face(feats.vision_tokens)
    n_face = feats.face_tokens.shape[1]
    regions = local_map[..., 1:]  # column 0 is the null key
    found = {"global_min": float(global_map.min()), "global_max": float(global_map.max()), "uniform": 1 / n_face,
             "local_region_spread": float(regions.max(-1).values.sub(regions.min(-1).values).max()),
             "change_vs_real": float((zeroed - real).abs().max()),
             "change_zero_vs_three": float((threes - zeroed).abs().max()),
             "change_vs_no_face_arm": float((arm - zeroed).abs().max())}
    print(found)
    return found


def exercise_3(seed: int = 0) -> dict:
    """Exercise 3: give a frame no Action-Unit region at all (every mask False, as for a frame without a face).
    Will Local Face Attention produce NaN?

    Answer: no. The keys are [null, region 1, ..., region R]; empty regions are masked out, so the softmax runs
    over the null key alone and gives it weight exactly 1, and the output stays finite. Without the null key
    every key would be masked and the softmax would be 0/0: plain `nn.MultiheadAttention` with every key padded
    returns NaN, which would then flow into the LLM's input. (The landmark code never leaves a region empty on a
    real face - see notebook 02's exercise 3 - so the null key matters for padded or face-less frames.)
    """
    fim, feats = build(seed)
    empty = torch.zeros_like(feats.au_masks)
    with torch.no_grad():
        out = fim(feats.vision_tokens, feats.face_tokens, empty)
        weights = fim.attention["local"]
        plain = nn.MultiheadAttention(16, 2, batch_first=True).eval()
        x = torch.randn(1, 4, 16)
        all_padded = torch.ones(1, 4, dtype=torch.bool)
        no_null, _ = plain(x, x, x, key_padding_mask=all_padded)
    found = {"null_weight_min": float(weights[..., 0].min()), "region_weight_max": float(weights[..., 1:].max()),
             "output_finite": bool(torch.isfinite(out).all()), "without_null_is_nan": bool(torch.isnan(no_null).all())}
    print(found)
    return found


def solve(seed: int = 0) -> dict:
    torch.set_num_threads(1)
    return {"exercise_1": exercise_1(seed=seed), "exercise_2": exercise_2(seed), "exercise_3": exercise_3(seed)}


if __name__ == "__main__":
    solve()
