"""Prompt assembly: the LLM's own chat template, the AGR sentence, frame tokens spliced via inputs_embeds.

Layout of one conversation (SmolLM2's ChatML shown; any tokenizer chat template works):

    <|im_start|>system\n{system prompt}<|im_end|>
    <|im_start|>user\n{AGR sentence}\n<image>\n{question}<|im_end|>
    <|im_start|>assistant\n{answer}<|im_end|>        <- the only tokens with a loss (Eq. 6)
    ... further turns ...

Vicuna v1 (the paper stack; `prompts.VICUNA_TEMPLATE`), after the tokenizer's own `<s>`:

    {system} USER: {AGR sentence}\n<image>\n{question} ASSISTANT: {answer}</s>USER: ... ASSISTANT:

`<image>`/`<video>` becomes `frames x tokens_per_frame` positions whose embeddings are replaced by the
projected [context, visual, landmark] tokens of each frame, in time order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from emo_llama.prompts import DEFAULT_SYSTEM_PROMPT, IMAGE_PLACEHOLDER, strip_placeholders

IGNORE_INDEX = -100


@dataclass
class EncodedPrompt:
    input_ids: list[int]
    labels: list[int]         # IGNORE_INDEX everywhere except answer tokens
    media_mask: list[bool]    # True at the positions that receive frame tokens


def build_messages(turns: list[tuple[str, str | None]], system: str = DEFAULT_SYSTEM_PROMPT,
                   agr: str | None = None, placeholder: str = IMAGE_PLACEHOLDER) -> list[dict]:
    """Chat messages for (question, answer) turns; an answer of None ends the list (for generation)."""
    messages = [{"role": "system", "content": system}] if system else []
    for i, (question, answer) in enumerate(turns):
        question = strip_placeholders(question)
        if i == 0:
            head = f"{agr}\n" if agr else ""
            question = f"{head}{placeholder}\n{question}"
        messages.append({"role": "user", "content": question})
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
    return messages


def _render(tokenizer, messages: list[dict], generation: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def answer_spans(tokenizer, messages: list[dict], full: str) -> list[tuple[int, int]]:
    """Character spans of every assistant answer (content + end-of-turn token) inside `full`."""
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _render(tokenizer, messages[:k], generation=True)
        upto = _render(tokenizer, messages[: k + 1], generation=False)
        if not (full.startswith(upto) and upto.startswith(prefix)):
            raise ValueError("chat template is not prefix-stable; cannot locate answer tokens")
        spans.append((len(prefix), len(upto.rstrip())))  # trailing newline after <|im_end|> carries no loss
    return spans


def encode_messages(tokenizer, messages: list[dict], media_tokens: int, generation: bool = False,
                    placeholder: str = IMAGE_PLACEHOLDER) -> EncodedPrompt:
    """Tokenise the whole conversation once; answer tokens and media positions come from the token offsets.

    One pass over the full text gives the ids the LLM was trained on: a SentencePiece tokenizer (LLaMA,
    Vicuna) prepends "▁" to every separately tokenised piece, so cutting the text first would add tokens
    that the full conversation does not have. The tokenizer adds its own `<s>` (as LLaVA/LLaMA-VID tokenise
    their prompts) unless the chat template already wrote it. The tokens that overlap the placeholder give
    way to `media_tokens` frame positions; the tokens that overlap an answer (its text and end-of-turn
    token, `answer_spans`) are the labels.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"{type(tokenizer).__name__} is a slow tokenizer: building the label mask needs token "
                        "offsets; load the tokenizer with use_fast=True")
    full = _render(tokenizer, messages, generation)
    answers = answer_spans(tokenizer, messages, full)
    at = full.find(placeholder)
    if at < 0:
        raise ValueError(f"no {placeholder} in the prompt")
    media_span = (at, at + len(placeholder))
    adds_bos = not (tokenizer.bos_token and full.startswith(tokenizer.bos_token))
    enc = tokenizer(full, add_special_tokens=adds_bos, return_offsets_mapping=True)

    ids: list[int] = []
    labels: list[int] = []
    media: list[bool] = []
    placed = False
    for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        if _overlaps(start, end, media_span):
            _check_inside(full, start, end, media_span, "the media placeholder")
            if not placed:  # one run of frame positions, whatever number of tokens the placeholder took
                placed = True
                ids += [tokenizer.pad_token_id] * media_tokens
                labels += [IGNORE_INDEX] * media_tokens
                media += [True] * media_tokens
            continue
        answer = next((span for span in answers if _overlaps(start, end, span)), None)
        if answer is not None:
            _check_inside(full, start, end, answer, "an answer")
        ids.append(token_id)
        labels.append(token_id if answer is not None else IGNORE_INDEX)
        media.append(False)
    return EncodedPrompt(ids, labels, media)


def _overlaps(start: int, end: int, span: tuple[int, int]) -> bool:
    return start < span[1] and end > span[0]   # a token with empty offsets (an added <s>) overlaps nothing


def _check_inside(full: str, start: int, end: int, span: tuple[int, int], what: str) -> None:
    """A token that reaches across the edge of `span` may only carry whitespace outside it (LLaMA's "▁<" before
    `<image>`): anything else would be text of the prompt trained as an answer, or lost under the frames."""
    outside = full[start: max(start, span[0])] + full[min(end, span[1]): end]
    if outside.strip():
        raise ValueError(f"the tokenizer merges {full[start:end]!r} across the edge of {what}; "
                         "cannot separate it from the rest of the prompt")


def pad_batch(prompts: list[EncodedPrompt], pad_id: int, side: str = "right") -> dict[str, torch.Tensor]:
    """Right padding for training, left padding for generation (new tokens follow the prompt directly)."""
    length = max(len(p.input_ids) for p in prompts)
    out = {"input_ids": [], "attention_mask": [], "labels": [], "media_mask": []}
    for p in prompts:
        n = length - len(p.input_ids)
        rows = (p.input_ids, [1] * len(p.input_ids), p.labels, p.media_mask)
        fills = (pad_id, 0, IGNORE_INDEX, False)
        for key, row, fill in zip(out, rows, fills):
            out[key].append(row + [fill] * n if side == "right" else [fill] * n + row)
    return {
        "input_ids": torch.tensor(out["input_ids"], dtype=torch.long),
        "attention_mask": torch.tensor(out["attention_mask"], dtype=torch.long),
        "labels": torch.tensor(out["labels"], dtype=torch.long),
        "media_mask": torch.tensor(out["media_mask"], dtype=torch.bool),
    }


def splice_media(inputs_embeds: torch.Tensor, media_mask: torch.Tensor, frame_tokens: torch.Tensor) -> torch.Tensor:
    """Put frame tokens (total_positions, D), in sample and time order, at the media positions."""
    if int(media_mask.sum()) != frame_tokens.shape[0]:
        raise ValueError(f"{int(media_mask.sum())} media positions but {frame_tokens.shape[0]} frame tokens")
    return inputs_embeds.masked_scatter(media_mask.unsqueeze(-1), frame_tokens.to(inputs_embeds.dtype))


FRAME_TOKEN_NAMES = ("context", "visual", "landmark", "expression", "audio")  # the order of EmoLlama.frame_tokens


def batch_view(tokenizer, batch: dict[str, torch.Tensor], row: int = 0,
               token_names: Sequence[str] = FRAME_TOKEN_NAMES[:3]) -> list[dict]:
    """One row of a batch as the LLM reads it, position by position (padding left out).

    `token_names`: each frame's tokens in order (`EmoLlama.frame_token_names`).
    Each entry: `pos`; `token` (the text piece, or `<F2:vis>` where frame 2's visual token is spliced in);
    `what` ("text" or e.g. "frame 2 visual"); `trained` (True where Eq. 6 computes a loss: the answer tokens).
    """
    ids, labels = batch["input_ids"][row].tolist(), batch["labels"][row].tolist()
    media, real = batch["media_mask"][row].tolist(), batch["attention_mask"][row].tolist()
    names, tokens_per_frame, k, rows = tuple(token_names), len(token_names), 0, []
    for pos, (token_id, label, is_media, keep) in enumerate(zip(ids, labels, media, real)):
        if not keep:
            continue
        if is_media:
            frame, j = divmod(k, tokens_per_frame)
            k += 1
            text, what = f"<F{frame + 1}:{names[j][:3]}>", f"frame {frame + 1} {names[j]}"
        else:
            text, what = tokenizer.decode([token_id]), "text"
        rows.append({"pos": pos, "token": text, "what": what, "trained": label != IGNORE_INDEX})
    return rows
