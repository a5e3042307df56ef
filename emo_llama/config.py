"""The configs, declared once: `EmoLlamaConfig` (the model), the training recipes by name, and `TrainConfig`
(every user-facing training parameter) with its other faces.

The command line (`parse_args`: one flag per field), notebook 05's parameters cell (`parameters_cell`, checked by
tests/test_config_drift.py; `config_from_parameters` reads papermill's plain values back) and the model's
`EmoLlamaConfig` (`TrainConfig.model_config`) all derive from the dataclass below: its fields, defaults and the
comment on each field's line. `emo_llama.train` re-exports TrainConfig, parse_args and the notebook helpers.

This module sits at the bottom of the package (it imports only `emo_llama.prompts`), so every layer can read a
config without importing the layers that use it.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import tokenize
import typing
from dataclasses import MISSING, dataclass, field, fields

from emo_llama.prompts import DEFAULT_SYSTEM_PROMPT


@dataclass
class EmoLlamaConfig:
    stack: str = "offline"
    stack_options: dict = field(default_factory=dict)
    num_queries: int = 32              # M (paper)
    context_dim: int = 256             # width of Eq. 2's Q/K/V before MLP^T
    fim_dim: int = 256
    fim_heads: int = 4
    fim_ffn_mult: int = 2
    landmark_hidden: int = 256
    dropout: float = 0.0
    # Ablation arms (paper Tab. 5 and 7): each one flag.
    fim_mode: str = "fim"              # "fim" | "pool_concat" | "mean" (LLaMA-VID's content token)
    use_face_embedding: bool = True
    use_landmarks: bool = True         # landmark token per frame (AU regions are used either way)
    use_agr: bool = True
    # The expert's own expression reading as one more token per frame (an expert trained for expression, the
    # role FaceXFormer plays in the paper). None: when the stack's expert gives one (offline yes, paper no).
    use_expression: bool | None = None
    expression_residual: bool = False   # add a trained MLP to the expression token (default: the reading's words only)
    vision_dropout: float = 0.5         # training only: share of frames whose vision tokens are set to their mean
    use_vision: bool = True             # the frame's context and visual tokens (False with use_audio: audio only)
    # Emotion-LLaMA's audio branch: one token per frame from that second's sound (the stack's audio encoder)
    use_audio: bool = False
    audio_dropout: float = 0.0          # training only: share of frames whose sound is replaced by "no sound"
    # LoRA (paper: r=128, alpha=256 as LLaVA-1.5); CPU default smaller.
    lora_r: int = 16
    lora_alpha: int | None = None      # None: 2 * lora_r
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] | None = None   # None: the stack's default
    train_qformer_base: bool = False   # also train the BERT layers copied from MiniLM / BERT
    match_embedding_scale: bool = True  # projector outputs start at the LLM's token-embedding scale
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_instruction_tokens: int = 64
    loss_mean: str = "sample"           # Eq. 6: "token" (over the batch's answer tokens: paper, LLaVA) | "sample"
    # Set by a pretrained initialisation (LLaMA-VID, via the stack's `config_overrides`):
    context_key_dim: int | None = None  # width of Eq. 2's Q/K (None: context_dim)
    qformer_vision_norm: bool = False   # LayerNorm on the visual tokens the Q-Former reads (vlm_att_ln)
    context_projector: str = "mlp"      # "mlp" (MLP^T) | "none" (Eq. 2's V already maps into the LLM)
    standardise_features: bool = True   # z-score frozen vision/face features (off for pretrained projectors)
    vision_cls_token: bool = False      # first visual token is a CLS (EVA-G): the Q-Former reads all tokens,
                                        # Eq. 2's values and FIM the patch tokens only (LLaMA-VID)

    @property
    def tokens_per_frame(self) -> int:
        return 2 * int(self.use_vision) + int(self.use_landmarks) + int(bool(self.use_expression)) + int(self.use_audio)

    @classmethod
    def from_dict(cls, d: dict) -> EmoLlamaConfig:
        known = {f.name for f in fields(cls)}
        d = {k: (tuple(v) if k == "lora_targets" and v is not None else v) for k, v in d.items() if k in known}
        return cls(**d)



# Training recipes by name. A recipe gives a value to each field below that the user left unset (None): the
# config is merged once, when it is made (`TrainConfig.__post_init__`), so a value the user gave always wins, even
# one equal to another recipe's. `cpu`: mini on 2 cores. `paper`: the paper's settings (LLaVA-1.5's LoRA recipe):
# r=128 (alpha 2r = 256), lr 2e-4 for LoRA and every new module, one epoch, no label-word alignment, gradient
# checkpointing, Eq. 6 averaged over the batch's answer tokens; bf16 comes with CUDA (make_accelerator).
RECIPES: dict[str, dict] = {
    "cpu": {"lora_r": 16, "lr": 5e-4, "new_module_lr": 3e-3, "epochs": 1.0, "max_steps": 150, "resample": True,
            "batch_size": 4, "grad_accum": 1, "warmup_ratio": 0.1, "weight_decay": 0.0, "conversation_share": 0.1,
            "conversation_turns": 1, "align_steps": 100, "freeze_after_align": True, "gradient_checkpointing": False,
            "loss_mean": "sample", "vision_dropout": 0.5},
    "paper": {"lora_r": 128, "lr": 2e-4, "new_module_lr": 2e-4, "epochs": 1.0, "max_steps": 0, "resample": True,
              "batch_size": 128, "grad_accum": 8, "warmup_ratio": 0.03, "weight_decay": 0.0,
              "conversation_share": 0.5, "conversation_turns": 3, "align_steps": 0, "freeze_after_align": False,
              "gradient_checkpointing": True, "loss_mean": "token", "vision_dropout": 0.0},
}
DEFAULT_RECIPE = {"paper": "paper"}                      # stack -> recipe when recipe="auto" (else "cpu")


def recipe_name(recipe: str, stack: str) -> str:
    """The recipe `recipe` names for `stack` ("auto": the stack's default); an unknown name raises."""
    name = DEFAULT_RECIPE.get(stack, "cpu") if recipe == "auto" else recipe
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)} or 'auto'")
    return name


STACK_PATHS = ("llm_path", "vision_path", "expert_path", "llamavid_path", "qformer_bert", "audio_path")  # -> stack_options


@dataclass
class TrainConfig:
    # data
    dataset: str = "mini"                  # mini | rafdb | affectnet | ferplus | dfew | ferv39k | mafw
    data_root: str | None = None           # folder of a downloaded benchmark (unset: the default; mini needs none)
    fold: int = 1                          # DFEW / MAFW / RAF-DB fold
    datasets: tuple[str, ...] = ()         # train on several at once, each a name or name and folder (empty: dataset)
    dataset_weights: tuple[float, ...] = ()  # share of category draws per dataset in `datasets` (empty: by size)
    train_kinds: tuple[str, ...] = ("image", "video")  # media kinds trained on (Tab. 2/3: one kind, scored on the other)
    eval_datasets: tuple[str, ...] = ()    # also score the trained model on these datasets' test splits (as datasets)
    instruction_types: tuple[str, ...] = ("category", "conversation")  # Tab. 6
    instruction_files: tuple[str, ...] = ()  # LLaVA / LLaMA-VID-style JSON records to train on as well
    instruction_root: str | None = None    # folder their media paths are relative to (unset: each file's folder)
    instruction_strict: bool = False       # a bad instruction record stops the run (else it is named and counted)
    conversation_share: float | None = None  # share of training draws that are conversations (rest: category)
    conversation_turns: int | None = None  # turns per conversation (3 = the generator's full dialogue)
    choice_share: float = 0.0              # category questions ending with the zero-shot guard / "My choice is:"
    descriptive_text: bool = False         # Tab. 8: add the dataset's caption to category questions
    resample: bool | None = None           # Tab. 9: inverse-frequency sampling of category data
    max_frames: int = 8                    # video frames at 1 FPS
    train_limit: int | None = None         # cap on training samples, a seeded stratified draw (unset or 0: all)
    eval_limit: int | None = None          # cap on test samples, a seeded stratified draw (unset or 0: all)
    limit_seed: int = 0                    # seed of those draws (fixed, so training seeds share one subset)
    # model (EmoLlamaConfig fields of the same name; any other one through model_options)
    stack: str = "offline"                 # tiny | offline | paper
    fim_mode: str = "fim"                  # "fim" (Eq. 3) | "pool_concat" (Tab. 7) | "mean" (LLaMA-VID's)
    use_face_embedding: bool = True        # Tab. 5: the facial expert's face tokens
    use_landmarks: bool = True             # Tab. 5: the landmark token
    use_agr: bool = True                   # Tab. 5: the AGR prompt
    use_expression: bool | None = None     # Tab. 5: the expert's expression reading as a token (unset: if it has one)
    use_vision: bool = True                # the frames' context and visual tokens (off with use_audio: audio only)
    use_audio: bool = False                # Emotion-LLaMA: a token per frame from its second of sound
    use_text: bool = False                 # Emotion-LLaMA: the words spoken (subtitle) in the question
    vision_dropout: float | None = None    # share of training frames whose vision tokens are blanked (mini's artefacts)
    loss_mean: str | None = None           # Eq. 6: "token" (over the batch's answer tokens: paper, LLaVA) | "sample"
    lora_r: int | None = None              # LoRA rank
    lora_alpha: int | None = None          # LoRA alpha (unset: 2 * lora_r, as LLaVA-1.5)
    stack_options: dict = field(default_factory=dict)  # get_stack keyword arguments (JSON on the command line)
    model_options: dict = field(default_factory=dict)  # any other EmoLlamaConfig field (dims, dropout)
    # the paper stack's weights (stack_options keys; unset: the stack's default)
    llm_path: str | None = None            # paper stack: LLM folder or hub id (unset: lmsys/vicuna-7b-v1.5)
    vision_path: str | None = None         # paper stack: CLIP folder/hub id, or eva_vit_g.pth with llamavid_path
    expert_path: str | None = None         # paper stack: FaceXFormer's model.pt
    llamavid_path: str | None = None       # paper stack: LLaMA-VID-7B folder (Q-Former, projectors, LLM)
    qformer_bert: str | None = None        # paper stack: bert-base-uncased folder (unset: the hub id)
    audio_path: str | None = None          # paper stack: a local HuBERT / wav2vec2 folder (the audio encoder)
    # optimisation
    epochs: float | None = None            # used when max_steps is 0
    max_steps: int | None = None           # optimizer steps; > 0 overrides epochs
    batch_size: int | None = None          # global batch per optimizer step
    grad_accum: int | None = None          # micro-steps per optimizer step
    lr: float | None = None                # LoRA learning rate
    new_module_lr: float | None = None     # Q-Former/FIM/projectors when trained with LoRA (0: frozen)
    weight_decay: float | None = None      # AdamW
    warmup_ratio: float | None = None      # linear warmup share of the steps, then cosine decay
    max_grad_norm: float = 1.0             # gradient clipping (0: off)
    recipe: str = "auto"                   # cpu | paper | auto (paper for the paper stack): fills unset fields
    gradient_checkpointing: bool | None = None  # recompute the LLM's activations in backward
    check_memory: bool = True              # print expected memory, refuse runs that cannot fit the device
    # label-word alignment of the new modules before LoRA tuning (emo_llama.train.align; not in the paper)
    align_steps: int | None = None         # label-word alignment before LoRA (0: off, as in the paper)
    align_lr: float = 5e-3                 # its learning rate
    align_batch_size: int = 16             # its class-balanced batch
    freeze_after_align: bool | None = None  # keep the aligned new modules fixed while LoRA trains (no backward)
    # evaluation
    zero_shot: bool = True                 # score the untrained model with the paper's zero-shot prompt first
    real_faces: bool = True                # end with the real-face check set (emo_llama.evaluate.real_faces)
    eval_batch_size: int = 16              # answers generated per batch
    max_new_tokens: int = 12               # answer length
    # bookkeeping
    output_dir: str = "runs/05_train"      # adapter, metrics.json and plots go here
    checkpoint_every: int = -1             # steps between checkpoints (-1: auto, off on mini, else 500; 0: off)
    checkpoint_minutes: float = 30.0       # also checkpoint after this many minutes (while checkpointing is on)
    resume: bool = True                    # continue a killed run from output_dir (checkpoint, saved eval batches)
    seed: int = 0                          # one seed for everything
    device: str = "auto"                   # auto | cpu | cuda | mps
    progress: bool = True                  # progress bars / lines

    def __post_init__(self):
        """Merge the recipe, once: each field the user left unset (None) takes the recipe's value, and `recipe`
        becomes the name that was used. A config made from a merged one (`dataclasses.replace`) keeps its values."""
        self.recipe = recipe_name(self.recipe, self.stack)
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def model_config(self) -> EmoLlamaConfig:
        """The model's config: the fields both dataclasses declare, the paper paths, then `model_options`."""
        model_fields = {f.name for f in fields(EmoLlamaConfig)}
        shared = {f.name: getattr(self, f.name) for f in fields(self) if f.name in model_fields}
        clash = sorted((set(self.model_options) & set(shared)) | (set(self.model_options) - model_fields))
        if clash:
            raise ValueError(f"model_options {clash}: not an EmoLlamaConfig field, or one TrainConfig sets itself")
        paths = {k: getattr(self, k) for k in STACK_PATHS if getattr(self, k)}
        shared |= {"stack_options": paths | dict(self.stack_options), "lora_alpha": self.lora_alpha or 2 * self.lora_r}
        return EmoLlamaConfig(**shared, **self.model_options)


# ----- the config's other faces: field help, notebook 05's parameters cell, the command line -----

def field_comments(cls=TrainConfig) -> dict[str, str]:
    """The trailing comment of each field's line in the dataclass source (its documentation)."""
    source = inspect.getsource(cls)
    names = {f.name for f in fields(cls)}
    comments, line_name = {}, {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names:
            line_name.setdefault(tok.start[0], tok.string)
        elif tok.type == tokenize.COMMENT and tok.start[0] in line_name:
            comments[line_name[tok.start[0]]] = tok.string.lstrip("#").strip()
    return comments


def field_help() -> dict[str, str]:
    """Each TrainConfig field's comment; a field a recipe sets also names each recipe's value."""
    helps = field_comments()
    for name in helps:
        by_recipe = [f"{recipe} {_literal(values[name])}" for recipe, values in RECIPES.items() if name in values]
        if by_recipe:
            helps[name] += f" (unset: the recipe's, {', '.join(by_recipe)})"
    return helps


def _literal(value) -> str:
    """A short Python literal: 5e-4, not 0.0005."""
    if isinstance(value, float) and value and abs(value) < 1e-2:
        return f"{value:.0e}".replace("e-0", "e-")
    return repr(value)


# Notebook 05's parameters: the same names, defaults and comments. An unset field is None there too
# (`papermill -p lr None`), so notebook and command line read every value alike (`coerce`).
NOTEBOOK_PARAMETERS = (
    "dataset", "data_root", "fold", "datasets", "dataset_weights", "train_kinds", "eval_datasets", "instruction_files",
    "instruction_root", "stack", "recipe", *STACK_PATHS, "max_steps", "epochs", "batch_size", "lr",
    "new_module_lr", "align_steps", "freeze_after_align", "lora_r", "fim_mode", "use_face_embedding",
    "use_expression", "use_landmarks", "use_agr", "use_vision", "use_audio", "use_text", "resample", "instruction_types", "conversation_share", "descriptive_text",
    "train_limit", "eval_limit", "limit_seed", "output_dir", "checkpoint_every", "checkpoint_minutes", "resume",
    "seed", "device",
)


def _notebook_value(kind, value) -> tuple[str, str]:
    """(type name, Python literal) of a field's default as a notebook parameter."""
    if typing.get_origin(kind) is tuple:
        return "str", json.dumps(",".join(value))
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    base = args[0] if args else kind
    # The plain type even where None is allowed (PEP 484's implicit Optional): papermill's --help-notebook reads
    # `name: type = value` with a bare type name only, and the header line says what None means.
    return base.__name__, json.dumps(value) if isinstance(value, str) else _literal(value)


def parameters_cell(names: tuple[str, ...] = NOTEBOOK_PARAMETERS) -> str:
    """Notebook 05's `parameters` cell, written from TrainConfig's fields, defaults and comments."""
    hints, helps = typing.get_type_hints(TrainConfig), field_help()
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    rows = [(f"{n}: {t} = {v}", helps.get(n, "")) for n in names
            for t, v in [_notebook_value(hints[n], defaults[n])]]
    width = max(len(code) for code, _ in rows) + 2
    lines = ["# Parameters (papermill overrides these; TrainConfig in emo_llama/config.py documents each).",
             "# None: unset (the recipe's value, or the default the comment names)."]
    lines += [f"{code:<{width}}# {comment}" if comment else code for code, comment in rows]
    return "\n".join(lines)


TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def coerce(kind, value, name: str = "value"):
    """`value` (command-line text, or a notebook's Python value) as a value of type `kind`; anything that is not
    clearly one (`ture` for a bool, `1.5` for an int) raises ValueError naming the field."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    optional = type(None) in typing.get_args(kind)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", ""))):
        return None
    base = kind if typing.get_origin(kind) is tuple or not args else args[0]
    text = value.strip() if isinstance(value, str) else None
    if base is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text is not None and text.lstrip("+-").isdigit():
            return int(text)
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            if text is not None:
                return float(text)
        except ValueError:
            pass
    elif base is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(base) is tuple:
        item = typing.get_args(base)[0]
        parts = [x.strip() for x in text.split(",") if x.strip()] if text is not None else value
        if isinstance(parts, (list, tuple)):
            return tuple(coerce(item, x, name) for x in parts)
    elif base is dict:
        parsed = json.loads(text) if text is not None else value
        if isinstance(parsed, dict):
            return parsed
    raise ValueError(f"{name}: {value!r} is not a {getattr(base, '__name__', base)}")


def config_from_parameters(**values) -> TrainConfig:
    """A TrainConfig from notebook values (None: unset; a comma list for a tuple); unknown names raise TypeError,
    values of the wrong type ValueError."""
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise TypeError(f"not TrainConfig fields: {unknown}")
    return TrainConfig(**{name: coerce(hints[name], value, name) for name, value in values.items()})


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """One flag per TrainConfig field (`none` for an optional one, comma lists for tuples, JSON for dicts).

    Only the flags given reach TrainConfig, which merges its recipe into the rest. argparse stays the parser:
    `transformers.HfArgumentParser` reads a tuple field as a tuple of characters and a dict field not at all."""
    hints, helps = typing.get_type_hints(TrainConfig), field_help()
    parser = argparse.ArgumentParser(description="LoRA instruction tuning of EMO-LLaMA",
                                     argument_default=argparse.SUPPRESS)
    for f in fields(TrainConfig):
        default = f.default_factory() if f.default is MISSING else f.default
        parser.add_argument(f"--{f.name}", type=_flag_type(hints[f.name], f.name), metavar=f.name.upper(),
                            help=f"{helps.get(f.name, '')} (default: {default})")
    return TrainConfig(**vars(parser.parse_args(argv)))


def _flag_type(kind, name: str):
    def convert(text: str):
        try:
            return coerce(kind, text, name)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return convert
