"""The paper stack's prompts as a real SentencePiece LLaMA tokenizer reads them (issue 22, item 1).

A tiny SentencePiece BPE model is trained here (byte fallback, no normalisation, LLaMA's `<unk>`/`<s>`/`</s>` ids)
and wrapped in transformers' own `LlamaTokenizer`, as a Vicuna / LLaMA-VID `tokenizer.model` is loaded: it adds
`<s>` first and "▁" before the first word of every separately tokenised text, as LLaMA's does.
"""

from __future__ import annotations

import io
import types

import pytest

from emo_llama.model.backbones.llm import with_conversation_format
from emo_llama.model.parts.prompting import IGNORE_INDEX, build_messages, encode_messages
from emo_llama.prompts import CATEGORY_QUESTIONS, VICUNA_SYSTEM, agr_prompt

QUESTION = "Which facial expression does the person show?"
ANSWERS = ("happy", "the brows are raised")


@pytest.fixture(scope="module")
def sentencepiece_model():
    import sentencepiece as spm

    corpus = [VICUNA_SYSTEM, f"USER: <image>\n{QUESTION} ASSISTANT: happy", agr_prompt(31, "female"),
              *CATEGORY_QUESTIONS, "neutral happiness sadness surprise fear disgust anger", "Why? the brows are raised"]
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 10), model_writer=proto, vocab_size=600, model_type="bpe", minloglevel=2,
        byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True)
    return spm.SentencePieceProcessor(model_proto=proto.getvalue())


@pytest.fixture(scope="module")
def llama_tokenizer(sentencepiece_model):
    """transformers' LlamaTokenizer over the SentencePiece vocabulary; merges ranked by the pieces' scores."""
    from transformers import LlamaTokenizer

    sp = sentencepiece_model
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    scored = []
    for piece, i in vocab.items():
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)):
            scored += [(sp.get_score(i), piece[:k], piece[k:]) for k in range(1, len(piece))
                       if piece[:k] in vocab and piece[k:] in vocab]
    merges = [(left, right) for _, left, right in sorted(scored, key=lambda m: -m[0])]
    tok = LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False)
    return with_conversation_format(tok)


def test_the_test_tokenizer_tokenises_like_sentencepiece(llama_tokenizer, sentencepiece_model):
    for text in (VICUNA_SYSTEM, f"USER: <image>\n{QUESTION} ASSISTANT: happy", "x  y\n\n12 é"):
        assert llama_tokenizer(text)["input_ids"] == sentencepiece_model.encode(text, add_bos=True), text


def _media_run(enc) -> tuple[int, int]:
    first = enc.media_mask.index(True)
    return first, first + sum(enc.media_mask)


def _check_against_full_string(tok, messages, enc, media_tokens: int, generation: bool = False) -> list[str]:
    """The ids equal those of the whole rendered conversation, tokenised once with the tokenizer's own specials,
    except where the placeholder's tokens gave way to the frame positions; returns the full string's tokens."""
    full = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    expected = tok(full)["input_ids"]
    start, end = _media_run(enc)
    assert end - start == media_tokens and not any(enc.media_mask[end:])
    tail = len(enc.input_ids) - end
    assert enc.input_ids[:start] == expected[:start]
    assert enc.input_ids[end:] == expected[len(expected) - tail:]
    assert tok.decode(expected[start: len(expected) - tail]).strip() == "<image>"
    assert enc.input_ids[0] == tok.bos_token_id and enc.input_ids.count(tok.bos_token_id) == 1
    return tok.convert_ids_to_tokens(expected)


@pytest.mark.parametrize("agr", [agr_prompt(31, "female"), None])
def test_vicuna_prompt_ids_are_the_whole_conversations_and_labels_cover_exactly_the_answers(
        llama_tokenizer, sentencepiece_model, agr):
    tok, sp = llama_tokenizer, sentencepiece_model
    turns = [(f"<image>\n{QUESTION}", ANSWERS[0]), ("Why?", ANSWERS[1])]
    messages = build_messages(turns, system=VICUNA_SYSTEM, agr=agr)
    enc = encode_messages(tok, messages, media_tokens=6)
    tokens = _check_against_full_string(tok, messages, enc, 6)
    if agr is None:  # "USER: <image>": LLaMA merges the space with "<"; that token gives way to the frames too
        assert "▁<" in tokens
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(enc.input_ids, enc.labels))
    labelled = [i for i, label in enumerate(enc.labels) if label != IGNORE_INDEX]
    runs, run = [], [labelled[0]]
    for i in labelled[1:]:
        if i != run[-1] + 1:
            runs.append(run)
            run = []
        run.append(i)
    runs.append(run)
    # Each answer as SentencePiece itself splits it after "ASSISTANT:" (no stray "▁"), then `</s>`; nothing else.
    assert [[enc.input_ids[i] for i in r] for r in runs] == [sp.encode(a) + [tok.eos_token_id] for a in ANSWERS]
    assert all(tok.convert_ids_to_tokens(enc.input_ids[r[0] - 1]) == ":" for r in runs)


def test_vicuna_generation_prompt_is_the_whole_conversations_ids(llama_tokenizer):
    messages = build_messages([(QUESTION, None)], system=VICUNA_SYSTEM, agr=agr_prompt(40, "male"))
    enc = encode_messages(llama_tokenizer, messages, media_tokens=3, generation=True)
    tokens = _check_against_full_string(llama_tokenizer, messages, enc, 3, generation=True)
    assert all(label == IGNORE_INDEX for label in enc.labels)
    assert "".join(tokens[-4:]).endswith("ANT:") and tokens[-1] == ":"


def test_a_slow_tokenizer_is_refused_with_a_clear_error():
    slow = types.SimpleNamespace(is_fast=False)
    with pytest.raises(TypeError, match="use_fast=True"):
        encode_messages(slow, build_messages([(QUESTION, "happy")]), media_tokens=3)


def test_a_token_across_the_edge_of_an_answer_is_an_error_not_a_silent_label():
    """A tokenizer that merges the prompt's last character with the answer's first (here ":" + "h" under a
    template without a space after "assistant:") cannot give an exact label mask: refuse, name the token."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    chars = ["\n", *map(chr, range(32, 127))]
    vocab = {token: i for i, token in enumerate(["<pad>", *chars, ":h"])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[(":", "h")]))   # no pre-tokenizer: one character a token
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>")
    assert tok.convert_ids_to_tokens(tok("a:happy")["input_ids"]) == ["a", ":h", "a", "p", "p", "y"]
    tok.chat_template = ("{% for m in messages %}{{ m['role'] + ':' + m['content'] + '|' }}{% endfor %}"
                         "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}")
    with pytest.raises(ValueError, match="':h'"):
        encode_messages(tok, build_messages([("<image>\nWhat?", "happy")], system=""), media_tokens=2)
    assert encode_messages(tok, build_messages([("<image>\nWhat?", "sad")], system=""), media_tokens=2).labels
