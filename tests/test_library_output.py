"""What the libraries print into a notebook when the package loads and wraps models: no stuck "Loading weights"
bar (emo_llama.progress.without_weight_loading_bar), no FutureWarning about peft's `is_gradient_checkpointing`
call (emo_llama.utils.without_is_gradient_checkpointing_warning)."""

from __future__ import annotations

import warnings

import pytest

from emo_llama.progress import WEIGHT_LOADING_BAR, without_weight_loading_bar
from emo_llama.utils import without_is_gradient_checkpointing_warning


def _tiny_llama():
    from emo_llama.model.backbones.llm import tiny_llama

    return tiny_llama(vocab_size=64, hidden=16, layers=1, heads=2)


def _checkpoint_warnings(call) -> list[str]:
    """The `is_gradient_checkpointing` warnings `call` emits; "always" goes last, so a filter set before wins."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", append=True)
        call()
    return [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_weight_loading_bar_is_drawn_outside_the_block_only(tmp_path, capfd):
    from transformers import AutoModelForCausalLM

    _tiny_llama().save_pretrained(tmp_path)
    capfd.readouterr()
    AutoModelForCausalLM.from_pretrained(tmp_path)
    assert WEIGHT_LOADING_BAR in "".join(capfd.readouterr())  # the bar the block is for is still transformers'
    with without_weight_loading_bar():
        AutoModelForCausalLM.from_pretrained(tmp_path)
    assert WEIGHT_LOADING_BAR not in "".join(capfd.readouterr())
    AutoModelForCausalLM.from_pretrained(tmp_path)
    assert WEIGHT_LOADING_BAR in "".join(capfd.readouterr())  # the block leaves transformers as it was


@pytest.mark.slow
def test_loading_the_offline_llm_draws_no_weight_loading_bar(capfd):
    from emo_llama.model.backbones.llm import load_smollm2

    load_smollm2()
    printed = "".join(capfd.readouterr())
    assert WEIGHT_LOADING_BAR not in printed, printed[-300:]


def test_checkpointing_warning_is_ignored_inside_the_block_only():
    from peft import LoraConfig, get_peft_model

    def wrap():
        get_peft_model(_tiny_llama(), LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))

    assert _checkpoint_warnings(wrap)  # peft still asks: the block below has something to ignore
    with without_is_gradient_checkpointing_warning():
        assert _checkpoint_warnings(wrap) == []
        # The same words from another module still show: the filter names transformers' module.
        assert _checkpoint_warnings(lambda: warnings.warn("`is_gradient_checkpointing` is deprecated", FutureWarning,
                                                          stacklevel=1))
    assert _checkpoint_warnings(wrap)


def test_the_package_adds_lora_without_the_checkpointing_warning():
    from emo_llama.model.backbones.llm import add_lora

    assert _checkpoint_warnings(lambda: add_lora(_tiny_llama(), 2, 4, 0.0, ("q_proj",))) == []
