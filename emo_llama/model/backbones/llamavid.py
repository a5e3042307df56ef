"""LLaMA-VID-7B as EMO-LLaMA's initialisation: its checkpoint fills the Clue Aggregator, the content projector
and the LLM (the paper starts from LLaMA-VID).

Key layout of a LLaMA-VID checkpoint (`dvlab-research/LLaMA-VID`, `llamavid_arch.py`), all under `model.`:
`vlm_att_query` (1, 32, 768), `vlm_att_ln` (LayerNorm on the visual tokens), `vlm_att_encoder.bert.*` (a BLIP-2
Q-Former: BERT whose even layers have cross-attention, with separate query FFNs), `vlm_att_projector`,
`vlm_att_key_projector`, `vlm_att_val_projector` (Eq. 2), `mm_projector.0/.2` (the content token's MLP), and
the LLaMA weights (`model.embed_tokens`, `model.layers.*`, `model.norm`, `lm_head`).

Where the weights go (EmoLlama names): Q-Former -> `transformers`' InstructBlipQFormerModel (same function:
word + position embeddings, LayerNorm, queries prepended, cross-attention on layers i % 2 == 0, query FFNs);
`vlm_att_query` -> `clue_aggregator.queries`; `vlm_att_ln` -> `clue_aggregator.vision_norm`; the three
attention projectors -> `clue_aggregator.context.{query,key,value}_proj`; `mm_projector` -> `visual_projector`
(MLP^V of Eq. 5, which then reads FIM's output at the vision width). The context token needs no MLP^T: its
value projector already maps into the LLM's space.

The Q-Former's BERT config is read off the tensors' shapes (heads: hidden / 64, BERT's convention, unless
given), so no hub access is needed for it; its WordPiece tokenizer comes from `qformer_bert` (a local
bert-base-uncased folder, or a hub id), plus LLaMA-VID's added `[DEC]` token (vocabulary 30523).
LLaMA-VID's vision-side weights (`vlm_att_ln`, the key projector, `mm_projector.0`, the Q-Former's cross-attention
keys/values) expect EVA-G's 1408-d tokens (`emo_llama.model.backbones.eva_vit`, the paper stack's `vision="eva_g"`).
LLaMA-VID's own loader takes EVA-G from LAVIS's `eva_vit_g.pth`; a checkpoint saved by its DeepSpeed trainer can
also carry the tower under `model.vision_tower.vision_tower.` (LAVIS key names): those tensors are returned as
`vision_state` (whether the released checkpoints carry them was not checked).

Verified only with tiny synthetic checkpoints written in this key layout (`tests/test_llamavid.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from emo_llama.model.backbones.eva_vit import LLAMAVID_TOWER_PREFIX
from emo_llama.model.backbones.tensor_files import read_tensors

PREFIX = "model."
BERT = "model.vlm_att_encoder.bert."
LLM_PREFIXES = ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.")
TOWER_PREFIX = LLAMAVID_TOWER_PREFIX   # EVA-G, when a checkpoint carries it (LAVIS key names)

# EmoLlama name <- LLaMA-VID name (without the `model.` prefix)
HEAD_MAP = {
    "clue_aggregator.queries": "vlm_att_query",
    "clue_aggregator.vision_norm.weight": "vlm_att_ln.weight",
    "clue_aggregator.vision_norm.bias": "vlm_att_ln.bias",
    "clue_aggregator.context.query_proj.weight": "vlm_att_projector.weight",
    "clue_aggregator.context.query_proj.bias": "vlm_att_projector.bias",
    "clue_aggregator.context.key_proj.weight": "vlm_att_key_projector.weight",
    "clue_aggregator.context.key_proj.bias": "vlm_att_key_projector.bias",
    "clue_aggregator.context.value_proj.weight": "vlm_att_val_projector.weight",
    "clue_aggregator.context.value_proj.bias": "vlm_att_val_projector.bias",
    "visual_projector.0.weight": "mm_projector.0.weight",
    "visual_projector.0.bias": "mm_projector.0.bias",
    "visual_projector.2.weight": "mm_projector.2.weight",
    "visual_projector.2.bias": "mm_projector.2.bias",
}


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (safetensors shards, else .bin shards) or of one file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"LLaMA-VID checkpoint not found at {path}: download e.g. "
                                "YanweiLi/llama-vid-7b-full-224-video-fps-1 and pass its folder as `llamavid_path`")
    return read_tensors(path)


def qformer_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], set[str]]:
    """BLIP-2/LAVIS BERT names -> InstructBlipQFormerModel names; returns (state, consumed source keys)."""
    out, used = {}, set()
    for key, value in state.items():
        if not key.startswith(BERT):
            continue
        name = key[len(BERT):]
        used.add(key)
        if name == "embeddings.position_ids":
            continue  # a constant arange buffer
        name = name.replace("embeddings.LayerNorm.", "embeddings.layernorm.")
        name = name.replace(".attention.self.", ".attention.attention.").replace(
            ".crossattention.self.", ".crossattention.attention.")
        out[name] = value
    return out, used


def qformer_config(state: dict[str, torch.Tensor], vision_dim: int, heads: int | None = None,
                   pad_token_id: int = 0):
    """InstructBlipQFormerConfig from the tensors' shapes (no hub)."""
    from transformers import InstructBlipQFormerConfig

    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    cross = sorted({int(k.split(".")[2]) for k in state if ".crossattention." in k})
    frequency = cross[1] - cross[0] if len(cross) > 1 else layers
    if cross[0] != 0 or cross != list(range(0, layers, frequency)):
        raise ValueError(f"cross-attention on layers {cross}: expected every {frequency}th layer from 0")
    kv_in = state[f"encoder.layer.{cross[0]}.crossattention.attention.key.weight"].shape[1]
    if kv_in != vision_dim:
        raise ValueError(
            f"the LLaMA-VID Q-Former cross-attends to {kv_in}-d visual tokens but the vision encoder gives "
            f"{vision_dim}-d ones: LLaMA-VID's vision-side weights need its EVA-G tower ({kv_in}-d): use the "
            "paper stack's `vision=\"eva_g\"` (the default with `llamavid_path`) or leave `llamavid_path` unset")
    return InstructBlipQFormerConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads or max(1, hidden // 64),
        intermediate_size=state["encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state["embeddings.position_embeddings.weight"].shape[0],
        cross_attention_frequency=frequency, encoder_hidden_size=vision_dim, pad_token_id=pad_token_id,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12)


def load_llamavid(path: str | Path, vision_dim: int, qformer_heads: int | None = None,
                  llm_dtype: torch.dtype = torch.float32) -> dict:
    """Read a LLaMA-VID checkpoint strictly. Returns qformer, qformer_pretrained, init_state (EmoLlama names),
    llm (LlamaForCausalLM, weights filled), the config overrides EmoLlama needs to host these weights, and
    vision_state: the EVA-G tensors under `model.vision_tower.vision_tower.` in LAVIS key names ({} if none)."""
    from transformers import InstructBlipQFormerModel

    state = read_state(path)
    qstate, used = qformer_state(state)
    config = qformer_config(qstate, vision_dim, qformer_heads)
    qformer = InstructBlipQFormerModel(config)
    _load_strict(qformer, qstate, "LLaMA-VID Q-Former (model.vlm_att_encoder.bert.*)")
    pretrained = {n for n in qstate if ".crossattention." not in n}  # frozen, as BERT's layers in the paper
    init_state = {}
    for ours, theirs in HEAD_MAP.items():
        if PREFIX + theirs not in state:
            raise KeyError(f"LLaMA-VID checkpoint {path} has no {PREFIX + theirs}")
        init_state[ours] = state[PREFIX + theirs]
        used.add(PREFIX + theirs)
    llm_state = {k: v for k, v in state.items() if k.startswith(LLM_PREFIXES)}
    used |= set(llm_state)
    tower = {k: v for k, v in state.items() if k.startswith(TOWER_PREFIX)}
    used |= set(tower)
    unexpected = sorted(set(state) - used)
    if unexpected:
        raise KeyError(f"LLaMA-VID checkpoint {path}: {len(unexpected)} unexpected keys {unexpected[:6]}")
    llm = build_llm(Path(path), llm_state, llm_dtype)
    key_dim = init_state["clue_aggregator.context.key_proj.weight"].shape[0]
    overrides = {"num_queries": init_state["clue_aggregator.queries"].shape[1],
                 "context_dim": init_state["clue_aggregator.context.value_proj.weight"].shape[0],
                 "context_key_dim": key_dim, "qformer_vision_norm": True, "context_projector": "none",
                 "fim_dim": init_state["visual_projector.0.weight"].shape[1], "match_embedding_scale": False,
                 "standardise_features": False}
    vision_state = {k[len(TOWER_PREFIX):]: v for k, v in tower.items()}
    return {"qformer": qformer, "qformer_pretrained": pretrained, "init_state": init_state, "llm": llm,
            "config_overrides": overrides, "vision_state": vision_state}


def build_llm(folder: Path, llm_state: dict[str, torch.Tensor], dtype: torch.dtype):
    """LlamaForCausalLM from the folder's config.json (LLaMA-VID's own model_type is not registered in
    transformers), filled strictly from the checkpoint's LLaMA tensors."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config_file = (folder if folder.is_dir() else folder.parent) / "config.json"
    fields = json.loads(config_file.read_text())
    for extra in ("model_type", "architectures", "auto_map"):
        fields.pop(extra, None)
    config = LlamaConfig(**fields)
    with torch.device("meta"):
        llm = LlamaForCausalLM(config)
    if config.tie_word_embeddings and "lm_head.weight" not in llm_state:
        llm_state = llm_state | {"lm_head.weight": llm_state["model.embed_tokens.weight"]}
    _load_strict(llm, {k: v.to(dtype) for k, v in llm_state.items()}, "LLaMA-VID LLM", assign=True)
    if config.tie_word_embeddings:
        llm.tie_weights()
    # the rotary inverse frequencies are non-persistent buffers: rebuild that module off the meta device
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    llm.model.rotary_emb = LlamaRotaryEmbedding(config)
    still_meta = [n for n, t in list(llm.named_parameters()) + list(llm.named_buffers()) if t.is_meta]
    if still_meta:
        raise RuntimeError(f"LLaMA-VID LLM: tensors left unfilled {still_meta[:6]}")
    return llm.eval()


def _load_strict(module: torch.nn.Module, state: dict, what: str, assign: bool = False) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in state if k in expected and state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise KeyError(f"{what}: missing {missing[:6]}, unexpected {unexpected[:6]}, wrong shape {wrong[:6]}")
    module.load_state_dict(state, strict=True, assign=assign)


def qformer_tokenizer(name_or_path: str, vocab_size: int):
    """bert-base-uncased's WordPiece tokenizer (local folder or hub id) + LLaMA-VID's `[DEC]` token."""
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(name_or_path, truncation_side="left")
    tok.add_special_tokens({"bos_token": "[DEC]"})
    if len(tok) != vocab_size:
        raise ValueError(f"Q-Former tokenizer from {name_or_path} has {len(tok)} tokens with [DEC]; the "
                         f"checkpoint's word embeddings have {vocab_size} rows")
    return tok
