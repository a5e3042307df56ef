"""Instruction data: category records (`instructions`), conversations (`conversations`) and the LLaVA /
LLaMA-VID JSON they are written in (`llava_json`). The prompt texts themselves live in `emo_llama.prompts`."""
