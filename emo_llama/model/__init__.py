"""EMO-LLaMA's model (notebooks 03 and 05): the paper's parts apart from the backbones that host them.

- `emo_llama`: `EmoLlama`, frozen features -> Clue Aggregator + Face Info Mining + landmark MLP -> projectors -> LLM;
- `parts/`: the paper's modules, one file each: `clue_aggregator` (Eq. 2), `face_info_mining` (Eq. 3), `projectors`
  (Eq. 5 and the landmark MLP), `prompting` (chat template, frame-token splicing, answer-only labels),
  `attention_maps` (notebook 03's figures);
- `backbones/`: the stacks by name (`tiny`, `offline`, `paper`) and their loaders: vision encoders, the LLM with
  LoRA, EVA-G and LLaMA-VID;
- `answers`: what `EmoLlama.answer` returns (an answer, or why there is none).
"""

from emo_llama.config import EmoLlamaConfig
from emo_llama.model.backbones.stacks import STACKS, Stack, get_stack
from emo_llama.model.emo_llama import EmoLlama

__all__ = ["STACKS", "EmoLlama", "EmoLlamaConfig", "Stack", "get_stack"]
