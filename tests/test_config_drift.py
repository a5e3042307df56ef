"""One config: TrainConfig declares every user-facing parameter; notebook 05, the CLI and EmoLlamaConfig follow it.

Any drift (a name, a default, a type or a comment that differs) fails here.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, fields
from pathlib import Path

import nbformat
import pytest

from emo_llama.config import (
    NOTEBOOK_PARAMETERS,
    RECIPES,
    STACK_PATHS,
    TrainConfig,
    config_from_parameters,
    field_comments,
    field_help,
    parameters_cell,
    parse_args,
)
from emo_llama.model import EmoLlamaConfig

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_train.ipynb"


def _default(f):
    return f.default_factory() if f.default is MISSING else f.default


def test_every_field_is_documented():
    comments = field_comments()
    assert [f.name for f in fields(TrainConfig) if not comments.get(f.name)] == []


def test_notebook_parameters_cell_is_derived_from_train_config():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert cell.source == parameters_cell(), (
        "notebook 05's parameters cell drifted from TrainConfig: paste emo_llama.config.parameters_cell()")
    values: dict = {}
    exec(cell.source, values)  # noqa: S102  (the committed cell's own literals)
    values = {k: values[k] for k in NOTEBOOK_PARAMETERS}
    assert config_from_parameters(**values) == TrainConfig()  # its defaults are TrainConfig's
    assert set(NOTEBOOK_PARAMETERS) <= {f.name for f in fields(TrainConfig)}


def test_notebook_values_convert_like_the_cli():
    cfg = config_from_parameters(data_root=None, train_limit=None, instruction_types="category",
                                 llm_path="/w/vicuna", lr=1e-4, new_module_lr=0, use_agr=False)
    cli = parse_args(["--data_root", "none", "--train_limit", "none", "--instruction_types", "category",
                      "--llm_path", "/w/vicuna", "--lr", "1e-4", "--new_module_lr", "0", "--use_agr", "false"])
    assert cfg == cli
    assert cfg.new_module_lr == 0.0  # 0 means 0 (frozen new modules) on both, not "unset"
    assert cfg.model_config().stack_options == {"llm_path": "/w/vicuna"}
    with pytest.raises(TypeError, match="not TrainConfig fields"):
        config_from_parameters(learning_rate=1e-4)


def test_booleans_and_numbers_parse_strictly(capsys):
    for bad in (["--use_agr", "ture"], ["--max_steps", "1.5"], ["--lr", "fast"], ["--stack_options", "[1]"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert bad[0].lstrip("-") in capsys.readouterr().err
    assert parse_args(["--use_agr", "FALSE"]).use_agr is False and parse_args(["--resample", "1"]).resample is True
    for name, bad in (("use_agr", "ture"), ("use_agr", 2), ("max_steps", 1.5), ("dataset", 3)):
        with pytest.raises(ValueError, match=name):
            config_from_parameters(**{name: bad})


def test_cli_has_one_flag_per_field_with_its_comment(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    comments = field_comments()
    for f in fields(TrainConfig):
        assert f"--{f.name}" in text
        assert " ".join(comments[f.name].split())[:30] in text, f.name


def test_model_config_fields_agree_with_train_config():
    train_hints, model_hints = typing.get_type_hints(TrainConfig), typing.get_type_hints(EmoLlamaConfig)
    model_fields = {f.name: f for f in fields(EmoLlamaConfig)}
    shared = [f for f in fields(TrainConfig) if f.name in model_fields]
    assert {f.name for f in shared} >= {"stack", "fim_mode", "use_face_embedding", "use_landmarks", "use_agr",
                                        "lora_r", "lora_alpha", "stack_options"}
    recipe_fields = set(RECIPES["cpu"])
    made = TrainConfig()
    for f in shared:  # a field a recipe sets is Optional in TrainConfig (None: unset) and takes the cpu recipe's value
        expected = model_hints[f.name] | None if f.name in recipe_fields else model_hints[f.name]
        assert train_hints[f.name] == expected, f.name
        assert getattr(made, f.name) == _default(model_fields[f.name]), f.name
    # The defaults give the model's defaults (lora_alpha resolved to 2 * lora_r, as the model does).
    derived = TrainConfig().model_config()
    assert derived.lora_alpha == 2 * derived.lora_r
    for name, f in model_fields.items():
        if name != "lora_alpha":
            assert getattr(derived, name) == _default(f), name
    with pytest.raises(ValueError, match="model_options"):
        TrainConfig(model_options={"lora_r": 4}).model_config()      # set by TrainConfig itself
    with pytest.raises(ValueError, match="model_options"):
        TrainConfig(model_options={"fim_dimension": 4}).model_config()  # no such model field
    assert set(STACK_PATHS).isdisjoint(model_fields)


def test_recipes_name_only_optional_train_config_fields_and_each_names_the_same():
    hints = typing.get_type_hints(TrainConfig)
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for recipe in RECIPES.values():
        assert set(recipe) == set(RECIPES["cpu"])  # so every unset field gets a value, whichever recipe runs
        for name in recipe:
            assert type(None) in typing.get_args(hints[name]) and defaults[name] is None, name
    assert "(unset: the recipe's, cpu 5e-4, paper 2e-4)" in field_help()["lr"]
