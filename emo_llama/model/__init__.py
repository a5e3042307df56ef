"""EMO-LLaMA's parts, one file each, named after the paper (Clue Aggregator, Face Info Mining, projectors)."""

from emo_llama.model.emo_llama import EmoLlama, EmoLlamaConfig
from emo_llama.model.stacks import STACKS, Stack, get_stack

__all__ = ["STACKS", "EmoLlama", "EmoLlamaConfig", "Stack", "get_stack"]
