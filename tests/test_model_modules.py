"""EMO-LLaMA's parts on the `tiny` stack: shapes, Eq. 2, Local Face Attention masking, label mask, save/load."""

from __future__ import annotations

import math

import pytest
import torch

from emo_llama.features.synthetic import synthetic_features
from emo_llama.model import EmoLlama, EmoLlamaConfig, get_stack
from emo_llama.model.backbones.llm import byte_tokenizer
from emo_llama.model.parts.clue_aggregator import ContextAttention
from emo_llama.model.parts.face_info_mining import FaceInfoMining, FIMConfig, PoolConcat
from emo_llama.model.parts.projectors import LandmarkEncoder, normalise_landmarks
from emo_llama.model.parts.prompting import IGNORE_INDEX, build_messages, encode_messages

SMALL = {"context_dim": 16, "fim_dim": 16, "fim_heads": 2, "landmark_hidden": 16, "num_queries": 4,
         "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
QUESTION = "What emotion? Options: a, b, c."


def tiny_model(**overrides) -> EmoLlama:
    torch.manual_seed(0)
    cfg = EmoLlamaConfig(stack="tiny", stack_options={"encoders": False}, **(SMALL | overrides))
    return EmoLlama(cfg)


def test_frame_tokens_shapes_for_every_arm():
    feats = [synthetic_features(0, 1), synthetic_features(1, 2, frames=3)]
    for arm, per_frame in [({}, 4), ({"use_landmarks": False}, 3), ({"fim_mode": "pool_concat"}, 4),
                           ({"use_face_embedding": False}, 4), ({"use_expression": False}, 3),
                           ({"use_expression": False, "use_landmarks": False}, 2)]:
        model = tiny_model(**arm)
        batch = model.make_batch(feats, [[(QUESTION, "a")]] * 2)
        tokens = model.frame_tokens(batch)
        assert tokens.shape == (4, per_frame, 64), arm  # 1 + 3 frames, tiny LLM width 64
        assert len(model.frame_token_names) == per_frame
        assert int(batch["media_mask"].sum()) == 4 * per_frame
        assert torch.isfinite(model(batch))


def test_module_shapes():
    cfg = FIMConfig(dim=16, heads=2)
    fim = FaceInfoMining(32, 8, cfg)
    out = fim(torch.randn(5, 10, 32), torch.randn(5, 9, 8), torch.rand(5, 4, 9) > 0.5)
    assert out.shape == (5, 16)
    assert PoolConcat(32, 8, cfg)(torch.randn(5, 10, 32), torch.randn(5, 9, 8)).shape == (5, 16)
    assert LandmarkEncoder(24, 16)(torch.rand(5, 68, 2)).shape == (5, 24)
    model = tiny_model()
    batch = model.make_batch([synthetic_features(0, 1)], [[(QUESTION, "a")]])
    queries = model.clue_aggregator.query_states(batch["vision_tokens"], batch["face_tokens"],
                                                 batch["instruction_ids"], batch["instruction_mask"])
    assert queries.shape == (1, 4, 32)


def test_context_token_matches_eq2_direct_computation():
    torch.manual_seed(0)
    ctx = ContextAttention(query_dim=12, vision_dim=20, context_dim=8)
    q, xv = torch.randn(3, 5, 12), torch.randn(3, 7, 20)
    expected = torch.empty(3, 8)
    for f in range(3):  # one frame at a time, written out: Pool_M(Softmax_N(Q K^T / sqrt d) V)
        Q = q[f] @ ctx.query_proj.weight.T + ctx.query_proj.bias
        K = xv[f] @ ctx.key_proj.weight.T + ctx.key_proj.bias
        V = xv[f] @ ctx.value_proj.weight.T + ctx.value_proj.bias
        scores = torch.exp(Q @ K.T / math.sqrt(8))
        expected[f] = ((scores / scores.sum(1, keepdim=True)) @ V).mean(0)
    assert torch.allclose(ctx(q, xv), expected, atol=1e-5)


def test_local_face_attention_only_sees_inside_the_regions():
    torch.manual_seed(0)
    fim = FaceInfoMining(32, 8, FIMConfig(dim=16, heads=2)).eval()
    x = fim.vision_in(torch.randn(2, 10, 32))
    faces = torch.randn(2, 9, 16)
    masks = torch.zeros(2, 3, 9, dtype=torch.bool)
    masks[:, 0, :2] = masks[:, 1, 4] = True  # tokens 2,3,5..8 lie outside every region; region 2 empty
    base = fim.local_branch(x, faces, masks)
    outside = faces.clone()
    outside[:, [2, 3, 5, 6, 7, 8]] += 10 * torch.randn(2, 6, 16)
    assert torch.allclose(fim.local_branch(x, outside, masks), base, atol=1e-6)
    inside = faces.clone()
    inside[:, 4] += 1.0
    assert not torch.allclose(fim.local_branch(x, inside, masks), base, atol=1e-4)
    fim.record = True
    fim(torch.randn(2, 10, 32), torch.randn(2, 9, 8), masks)
    weights = fim.attention["local"]            # (F, heads, N, 1 + R): null key + regions
    assert weights.shape == (2, 2, 10, 4)
    assert torch.all(weights[..., 3] == 0)      # the empty region gets no attention
    assert fim.attention["global"].shape == (2, 2, 10, 9)


def test_no_face_frame_stays_finite():
    fim = FaceInfoMining(32, 8, FIMConfig(dim=16, heads=2))
    out = fim(torch.randn(1, 10, 32), torch.randn(1, 9, 8), torch.zeros(1, 3, 9, dtype=torch.bool))
    assert torch.isfinite(out).all()


def test_landmark_normalisation_removes_position_and_scale():
    pts = torch.rand(2, 68, 2)
    moved = pts * 0.5 + 0.2
    assert torch.allclose(normalise_landmarks(pts), normalise_landmarks(moved), atol=1e-5)


def test_label_mask_token_by_token():
    tok = byte_tokenizer()
    messages = build_messages([("<image>\nWhat?", "Sad."), ("Why?", "Brows.")], system="S", agr="AGR")
    enc = encode_messages(tok, messages, media_tokens=6)
    ids, labels, media = enc.input_ids, enc.labels, enc.media_mask
    assert len(ids) == len(labels) == len(media) and sum(media) == 6
    text = tok.apply_chat_template(messages, tokenize=False)
    pieces = text.split("<image>")
    assert tok.decode(ids[: len(tok(pieces[0])["input_ids"])]) == pieces[0]
    labelled = [i for i, lab in enumerate(labels) if lab != IGNORE_INDEX]
    # Exactly the answers and their end-of-turn tokens, nothing else.
    expected = tok("Sad.<|im_end|>", add_special_tokens=False)["input_ids"] + \
        tok("Brows.<|im_end|>", add_special_tokens=False)["input_ids"]
    assert [ids[i] for i in labelled] == expected
    assert all(labels[i] == ids[i] for i in labelled)
    answer_text = tok.decode([ids[i] for i in labelled])
    assert answer_text == "Sad.<|im_end|>Brows.<|im_end|>"
    # The token before each labelled run is the "\n" after "<|im_start|>assistant".
    runs = [i for i in labelled if labels[i - 1] == IGNORE_INDEX]
    assert all(tok.decode(ids[i - 10: i]).endswith("assistant\n") for i in runs)
    gen = encode_messages(tok, build_messages([("Q", None)]), media_tokens=3, generation=True)
    assert all(lab == IGNORE_INDEX for lab in gen.labels)
    assert tok.decode(gen.input_ids).endswith("<|im_start|>assistant\n")


def test_loss_ignores_everything_but_answers():
    # Eq. 6 computed by hand from the full logits: next-token cross-entropy at the answer positions only,
    # mean per sample, then over samples. (Two samples of different lengths: padding must not count either.)
    model = tiny_model().eval()
    feats = [synthetic_features(0, 1), synthetic_features(1, 2, frames=2)]
    batch = model.make_batch(feats, [[(QUESTION, "abc")], [(QUESTION + " Be brief.", "b")]])
    with torch.no_grad():
        loss, logits = model(batch), model.logits(batch)
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    per_token = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets.clamp(min=0),
                                                  reduction="none")
    expected = ((per_token * keep).sum(1) / keep.sum(1)).mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    # The same formula over every real (non-padding) token would be a different number: the mask matters.
    real = batch["attention_mask"][:, 1:].bool()
    every = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2).float(), batch["input_ids"][:, 1:],
                                              reduction="none")
    assert not torch.allclose(loss, ((every * real).sum(1) / real.sum(1)).mean(), atol=1e-3)
    assert keep.sum(1).tolist() == [len(model.tokenizer("abc<|im_end|>", add_special_tokens=False)["input_ids"]),
                                    len(model.tokenizer("b<|im_end|>", add_special_tokens=False)["input_ids"])]
    labels = batch["labels"].clone()
    labels[labels != IGNORE_INDEX] = IGNORE_INDEX
    with torch.no_grad():
        assert float(model(batch | {"labels": labels})) == 0.0  # no answer tokens -> no loss


def test_frozen_new_modules_get_no_gradient():
    # new_modules_frozen (the LoRA stage after alignment): backward stops at the LLM's input, so the new
    # modules get no gradient (none is clipped together with LoRA's) while LoRA still learns.
    model = tiny_model()
    batch = model.make_batch([synthetic_features(0, 1)], [[(QUESTION, "a")]])
    new = model.new_module_parameters()
    lora = [p for p in model.llm.parameters() if p.requires_grad]
    for frozen in (True, False):
        model.zero_grad(set_to_none=True)
        model.new_modules_frozen = frozen
        model(batch).backward()
        assert all((p.grad is None) == frozen for p in new)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)


def test_save_load_identical_logits(tmp_path):
    model = tiny_model()
    with torch.no_grad():  # make the trained parts differ from a fresh init
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    batch = model.make_batch([synthetic_features(2, 5, frames=2)], [[(QUESTION, "c")]])
    before = model.eval().logits(batch)
    model.save_pretrained(tmp_path)
    torch.manual_seed(123)  # a different RNG state must not matter
    loaded = EmoLlama.from_pretrained(tmp_path, device="cpu")
    assert torch.equal(loaded.logits(batch), before)
    assert (tmp_path / "adapter" / "adapter_config.json").exists()


def test_generate_batched_equals_single():
    model = tiny_model().eval()
    with torch.no_grad():
        model.llm.get_base_model().lm_head.weight.mul_(20)  # peaky logits so greedy text is non-trivial
    feats = [synthetic_features(0, 1), synthetic_features(1, 2, frames=2)]
    questions = ["What emotion?", "Which expression fits best here?"]
    batched = model.generate(feats, questions, max_new_tokens=4)
    single = [model.generate([f], [q], max_new_tokens=4)[0] for f, q in zip(feats, questions)]
    assert batched == single


def test_paper_stack_builds_and_trains_a_step_with_tiny_configs():
    import emo_llama.expert  # noqa: F401
    stack = get_stack("paper", tiny_configs=True, encoders=False)
    assert type(stack.qformer).__name__ == "InstructBlipQFormerModel" and stack.qformer_pretrained
    assert type(stack.llm).__name__ == "LlamaForCausalLM"
    model = EmoLlama(EmoLlamaConfig(stack="paper", **SMALL), stack)
    frozen = [n for n, p in model.clue_aggregator.qformer.named_parameters() if not p.requires_grad]
    assert frozen and all("crossattention" not in n for n in frozen)
    feats = [synthetic_features(0, 1)]
    batch = model.make_batch(feats, [[(QUESTION, "a")]])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss = model(batch)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    from transformers import CLIPVisionConfig

    from emo_llama.model.backbones.vision import CLIPVision

    clip = CLIPVision(config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=4, image_size=56, patch_size=14))
    assert clip(torch.rand(2, 3, 80, 80)).shape == (2, 16, 32)


@pytest.mark.slow
def test_label_mask_with_smollm2_chat_template():
    """The real tokenizer and chat template from SmolLM2's GGUF (no model weights needed)."""
    from transformers import AutoTokenizer

    from emo_llama.model.backbones.llm import SMOLLM2_GGUF, smollm2_gguf_path

    tok = AutoTokenizer.from_pretrained(smollm2_gguf_path().parent, gguf_file=SMOLLM2_GGUF)
    messages = build_messages([("<image>\nWhich expression?", "My choice is: happiness")], agr="AGR: x.")
    enc = encode_messages(tok, messages, media_tokens=3)
    labelled = [i for i, lab in enumerate(enc.labels) if lab != IGNORE_INDEX]
    assert tok.decode([enc.input_ids[i] for i in labelled]) == "My choice is: happiness<|im_end|>"
    assert labelled == list(range(labelled[0], labelled[-1] + 1))  # one contiguous run
    assert tok.decode(enc.input_ids[: labelled[0]]).endswith("<|im_start|>assistant\n")
    media = [i for i, m in enumerate(enc.media_mask) if m]
    assert len(media) == 3 and tok.decode(enc.input_ids[: media[0]]).endswith("AGR: x.\n")


def test_batch_view_marks_frame_tokens_and_the_label_mask():
    from emo_llama.model.parts.prompting import batch_view

    model = tiny_model()
    feats = [synthetic_features(0, 1, frames=2), synthetic_features(1, 2)]
    batch = model.make_batch(feats, [[(QUESTION, "abc")], [(QUESTION, "b")]])
    names = model.frame_token_names
    assert names == ("context", "visual", "landmark", "expression")
    view = batch_view(model.tokenizer, batch, row=1, token_names=names)  # the shorter row: no right padding
    assert len(view) == int(batch["attention_mask"][1].sum())
    frames = [r["token"] for r in view if r["what"] != "text"]
    assert frames == ["<F1:con>", "<F1:vis>", "<F1:lan>", "<F1:exp>"]
    assert "".join(r["token"] for r in view if r["trained"]) == "b<|im_end|>"
    text = "".join(r["token"] for r in batch_view(model.tokenizer, batch, row=0, token_names=names))
    assert "<F1:con><F1:vis><F1:lan><F1:exp><F2:con><F2:vis><F2:lan><F2:exp>" in text and "age: about 30 years" in text


def test_expression_token_starts_as_the_readings_words_and_needs_a_reading():
    """The expression token begins as sum_k p_k E(word_k): a reading of 'happiness' is the LLM's own embedding
    of the word (the residual MLP starts at zero); features without a reading of the right width are refused."""
    from emo_llama.model.parts.projectors import word_embeddings

    model = tiny_model()
    names = model.expression_names
    words = word_embeddings(model.llm.get_input_embeddings().weight, model.tokenizer, names)
    one_hot = torch.zeros(1, len(names))
    one_hot[0, names.index("happiness")] = 1.0
    torch.testing.assert_close(model.expression_encoder(one_hot)[0], words[names.index("happiness")])
    feats = synthetic_features(0, 1)
    feats.expression_probs = feats.expression_probs[:, :3]  # another expert's reading
    with pytest.raises(ValueError, match="expression reading of width 3"):
        model.make_batch([feats], [[(QUESTION, "a")]])
    assert tiny_model(use_expression=False).expression_encoder is None


def test_use_expression_unset_follows_the_stack_and_true_without_a_reading_raises():
    from emo_llama.model.backbones.stacks import get_stack

    stack = get_stack("tiny", encoders=False)
    assert EmoLlama(EmoLlamaConfig(stack="tiny", **SMALL), stack).config.use_expression is True
    stack.expression_names = ()
    assert EmoLlama(EmoLlamaConfig(stack="tiny", **SMALL), stack).config.use_expression is False
    with pytest.raises(ValueError, match="gives no expression reading"):
        EmoLlama(EmoLlamaConfig(stack="tiny", use_expression=True, **SMALL), stack)


def test_vision_dropout_blanks_whole_frames_in_training_only():
    """vision_dropout sets a training frame's standardised vision tokens to 0 (their training mean) for a share
    of frames: the frame's context/visual tokens then come from the face tokens alone. Evaluation sees all."""
    feats = [synthetic_features(0, 1, frames=3), synthetic_features(1, 2, frames=3)]
    model = tiny_model(vision_dropout=1.0)
    batch = model.make_batch(feats, [[(QUESTION, "a")]] * 2)
    blank = dict(batch, vision_tokens=torch.zeros_like(batch["vision_tokens"]) + model.vision_standardise.mean)
    model.eval()
    with torch.no_grad():
        seen, blanked = model.frame_tokens(batch), model.frame_tokens(blank)
        model.train()
        dropped = model.frame_tokens(batch)
    assert not torch.allclose(seen, blanked)
    torch.testing.assert_close(dropped[:, :2], blanked[:, :2])  # every frame blanked at share 1
    model_half = tiny_model(vision_dropout=0.5).train()
    torch.manual_seed(0)
    expected_kept = (torch.rand(6) >= 0.5).tolist()  # the draw frame_tokens makes (one number per frame)
    assert 0 < sum(expected_kept) < 6
    torch.manual_seed(0)
    with torch.no_grad():
        half = model_half.frame_tokens(batch)
        kept = model_half.eval().frame_tokens(batch)
        gone = model_half.frame_tokens(blank)
    for i, keep in enumerate(expected_kept):
        torch.testing.assert_close(half[i], kept[i] if keep else gone[i])
