"""Training recipes, looked up by name (`TrainConfig.recipe`, notebook parameter `recipe`, `--recipe`)."""

from __future__ import annotations

from dataclasses import fields, replace

# Training recipes by name. `cpu`: the TrainConfig defaults (mini on 2 cores). `paper`: the paper's settings
# (LLaVA-1.5's LoRA recipe): r=128, alpha=256, lr 2e-4 for LoRA and every new module, one epoch, no label-word
# alignment, gradient checkpointing; bf16 comes with CUDA (make_accelerator). A field the user set (on the
# command line, or to a value other than its CPU default) wins over the recipe.
RECIPES: dict[str, dict] = {
    "cpu": {},
    "paper": {"lora_r": 128, "lora_alpha": 256, "lr": 2e-4, "new_module_lr": 2e-4, "epochs": 1.0, "max_steps": 0,
              "resample": True, "batch_size": 128, "grad_accum": 8, "warmup_ratio": 0.03, "weight_decay": 0.0,
              "conversation_share": 0.5, "conversation_turns": 3, "align_steps": 0, "freeze_after_align": False,
              "gradient_checkpointing": True},
}
PAPER_DEFAULTS = RECIPES["paper"] | {"stack": "paper"}   # kept for readers of older notes
DEFAULT_RECIPE = {"paper": "paper"}                      # stack -> recipe when recipe="auto" (else "cpu")


def apply_recipe(cfg, explicit: set[str] | None = None):
    """The config with its recipe's values filled in; fields in `explicit` (default: those that differ from
    TrainConfig's defaults) keep the user's value."""
    name = DEFAULT_RECIPE.get(cfg.stack, "cpu") if cfg.recipe == "auto" else cfg.recipe
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {cfg.recipe!r}; choose one of {sorted(RECIPES)} or 'auto'")
    defaults = type(cfg)()
    if explicit is None:
        explicit = {f.name for f in fields(cfg) if getattr(cfg, f.name) != getattr(defaults, f.name)}
    values = {k: v for k, v in RECIPES[name].items() if k not in explicit}
    return replace(cfg, recipe=name, **values)
