"""What hosts the paper's modules: the stacks by name (`stacks`: tiny, offline, paper) and their loaders (vision
encoders, the LLM with LoRA, EVA-G, LLaMA-VID, checkpoint tensor files)."""
