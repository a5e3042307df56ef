"""emo_llama: a readable reimplementation of EMO-LLaMA (facial priors + LoRA instruction tuning)."""

__version__ = "0.1.0"
