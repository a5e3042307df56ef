"""LLaMA-VID initialisation and the Vicuna v1 conversation, with a SYNTHETIC tiny checkpoint (random weights)
written in LLaMA-VID's official key layout; no hub, no real weights."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from emo_llama.features.synthetic import synthetic_features
from emo_llama.model import EmoLlama, EmoLlamaConfig, get_stack
from emo_llama.model.backbones.llm import byte_tokenizer, with_conversation_format
from emo_llama.model.parts.prompting import IGNORE_INDEX, build_messages, encode_messages
from emo_llama.prompts import VICUNA_SYSTEM

VISION, HIDDEN, LAYERS, FFN, LLM = 24, 32, 4, 64, 64
SMALL = {"fim_heads": 2, "landmark_hidden": 16, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "emotion", "options", "which", "?", ",", ".",
              ":"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]


def official_llamavid_state(llm_state: dict, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """LLaMA-VID's key names and shapes, written out here (BLIP-2 Q-Former, cross-attention on even layers)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    b = "model.vlm_att_encoder.bert."
    s = {"model.vlm_att_query": r(1, 32, HIDDEN), "model.vlm_att_ln.weight": 1 + r(VISION),
         "model.vlm_att_ln.bias": r(VISION), b + "embeddings.word_embeddings.weight": r(vocab, HIDDEN),
         b + "embeddings.position_embeddings.weight": r(512, HIDDEN), b + "embeddings.LayerNorm.weight": 1 + r(HIDDEN),
         b + "embeddings.LayerNorm.bias": r(HIDDEN), b + "embeddings.position_ids": torch.arange(512)[None]}
    for i in range(LAYERS):
        p = f"{b}encoder.layer.{i}."
        blocks = ["attention"] + (["crossattention"] if i % 2 == 0 else [])
        for blk in blocks:
            kv = VISION if blk == "crossattention" else HIDDEN
            s |= {f"{p}{blk}.self.query.weight": r(HIDDEN, HIDDEN), f"{p}{blk}.self.query.bias": r(HIDDEN),
                  f"{p}{blk}.self.key.weight": r(HIDDEN, kv), f"{p}{blk}.self.key.bias": r(HIDDEN),
                  f"{p}{blk}.self.value.weight": r(HIDDEN, kv), f"{p}{blk}.self.value.bias": r(HIDDEN),
                  f"{p}{blk}.output.dense.weight": r(HIDDEN, HIDDEN), f"{p}{blk}.output.dense.bias": r(HIDDEN),
                  f"{p}{blk}.output.LayerNorm.weight": 1 + r(HIDDEN), f"{p}{blk}.output.LayerNorm.bias": r(HIDDEN)}
        for ffn in ("", "_query"):
            s |= {f"{p}intermediate{ffn}.dense.weight": r(FFN, HIDDEN), f"{p}intermediate{ffn}.dense.bias": r(FFN),
                  f"{p}output{ffn}.dense.weight": r(HIDDEN, FFN), f"{p}output{ffn}.dense.bias": r(HIDDEN),
                  f"{p}output{ffn}.LayerNorm.weight": 1 + r(HIDDEN), f"{p}output{ffn}.LayerNorm.bias": r(HIDDEN)}
    s |= {"model.vlm_att_projector.weight": r(VISION, HIDDEN), "model.vlm_att_projector.bias": r(VISION),
          "model.vlm_att_key_projector.weight": r(VISION, VISION), "model.vlm_att_key_projector.bias": r(VISION),
          "model.vlm_att_val_projector.weight": r(LLM, VISION), "model.vlm_att_val_projector.bias": r(LLM),
          "model.mm_projector.0.weight": r(LLM, VISION), "model.mm_projector.0.bias": r(LLM),
          "model.mm_projector.2.weight": r(LLM, LLM), "model.mm_projector.2.bias": r(LLM)}
    return s | llm_state


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("llamavid")
    bert = root / "bert-base-uncased"
    bert.mkdir()
    (bert / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
    ckpt = root / "llama-vid-tiny"
    tok = byte_tokenizer("vicuna")
    tok.save_pretrained(ckpt)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=LLM, intermediate_size=2 * LLM, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False,
                         eos_token_id=0, bos_token_id=1, pad_token_id=2)
    torch.manual_seed(0)
    llm_state = LlamaForCausalLM(config).state_dict()
    state = official_llamavid_state(llm_state, len(BERT_VOCAB) + 1)
    fields = config.to_dict() | {"model_type": "llava", "mm_hidden_size": VISION, "num_query": 32}
    (ckpt / "config.json").write_text(json.dumps(fields))
    keys = sorted(state)
    save_file({k: state[k].contiguous() for k in keys[::2]}, str(ckpt / "model-00001-of-00002.safetensors"))
    save_file({k: state[k].contiguous() for k in keys[1::2]}, str(ckpt / "model-00002-of-00002.safetensors"))
    return ckpt, bert, state


def build(folders, **overrides):
    ckpt, bert, _ = folders
    stack = get_stack("paper", tiny_configs=True, encoders=False, llamavid_path=str(ckpt), qformer_bert=str(bert),
                      tiny_vision_dim=VISION)
    return EmoLlama(EmoLlamaConfig(stack="paper", **(SMALL | overrides)), stack)


def test_synthetic_llamavid_checkpoint_fills_the_model_strictly(folders):
    _, _, state = folders
    model = build(folders)
    agg, q = model.clue_aggregator, model.clue_aggregator.qformer
    assert model.config.num_queries == 32 and model.config.context_projector == "none"
    torch.testing.assert_close(agg.queries.data, state["model.vlm_att_query"])
    torch.testing.assert_close(agg.vision_norm.weight.data, state["model.vlm_att_ln.weight"])
    torch.testing.assert_close(q.encoder.layer[2].crossattention.attention.key.weight.data,
                               state["model.vlm_att_encoder.bert.encoder.layer.2.crossattention.self.key.weight"])
    torch.testing.assert_close(q.encoder.layer[3].output_query.LayerNorm.bias.data,
                               state["model.vlm_att_encoder.bert.encoder.layer.3.output_query.LayerNorm.bias"])
    torch.testing.assert_close(model.visual_projector[2].weight.data, state["model.mm_projector.2.weight"])
    base = model.llm.get_base_model()
    torch.testing.assert_close(base.model.layers[1].mlp.down_proj.base_layer.weight.data
                               if hasattr(base.model.layers[1].mlp.down_proj, "base_layer")
                               else base.model.layers[1].mlp.down_proj.weight.data,
                               state["model.layers.1.mlp.down_proj.weight"])
    assert not hasattr(q.encoder.layer[1], "crossattention") or q.encoder.layer[1].has_cross_attention is False
    trainable = {n for n, p in q.named_parameters() if p.requires_grad}
    assert trainable and all(".crossattention." in n for n in trainable)   # BERT layers frozen, as in the paper
    assert len(model.qformer_tokenizer) == len(BERT_VOCAB) + 1             # bert vocab + [DEC], no hub


def test_context_token_equals_llamavids_formula(folders):
    _, _, s = folders
    model = build(folders)
    agg = model.clue_aggregator
    g = torch.Generator().manual_seed(3)
    vision = torch.randn(2, 9, VISION, generator=g)
    enc = model.qformer_tokenizer(["what emotion ?", "which"], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        context = agg(vision, None, ids, mask)
        query_out = agg.query_states(vision, None, ids, mask)
        # the Q-Former reads vlm_att_ln(X^V), with the 32 queries prepended to the instruction
        normed = F.layer_norm(vision, (VISION,), s["model.vlm_att_ln.weight"], s["model.vlm_att_ln.bias"])
        direct_q = agg.qformer(input_ids=ids, attention_mask=torch.cat([torch.ones(2, 32, dtype=mask.dtype), mask], 1),
                               query_embeds=s["model.vlm_att_query"].expand(2, -1, -1),
                               encoder_hidden_states=normed).last_hidden_state[:, :32]
        # LLaMA-VID's token_generation, written out on the checkpoint's own tensors
        text_q = query_out @ s["model.vlm_att_projector.weight"].T + s["model.vlm_att_projector.bias"]
        ctx = vision @ s["model.vlm_att_key_projector.weight"].T + s["model.vlm_att_key_projector.bias"]
        ctx = text_q @ ctx.transpose(-1, -2) / math.sqrt(vision.shape[-1])
        ctx = (ctx.softmax(-1) @ vision).mean(1)
        expected = ctx @ s["model.vlm_att_val_projector.weight"].T + s["model.vlm_att_val_projector.bias"]
    torch.testing.assert_close(query_out, direct_q)
    torch.testing.assert_close(context, expected, rtol=1e-5, atol=1e-5)
    assert context.shape == (2, LLM)


def test_mismatched_checkpoints_fail_clearly(folders, tmp_path):
    from safetensors.torch import save_file

    ckpt, bert, state = folders
    with pytest.raises(ValueError, match="EVA-G"):
        get_stack("paper", tiny_configs=True, encoders=False, llamavid_path=str(ckpt), qformer_bert=str(bert),
                  tiny_vision_dim=VISION + 8)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "config.json").write_text((ckpt / "config.json").read_text())
    save_file(state | {"model.vlm_att_mystery.weight": torch.zeros(2)}, str(extra / "model.safetensors"))
    with pytest.raises(KeyError, match="vlm_att_mystery"):
        get_stack("paper", tiny_configs=True, encoders=False, llamavid_path=str(extra), qformer_bert=str(bert),
                  tiny_vision_dim=VISION)
    with pytest.raises(FileNotFoundError, match="llamavid_path"):
        get_stack("paper", tiny_configs=True, encoders=False, llamavid_path=str(tmp_path / "none"))


def test_vicuna_label_mask_token_by_token():
    tok = with_conversation_format(byte_tokenizer("vicuna"))
    messages = build_messages([("<image>\nWhich one?", "happy"), ("Why?", "smile")], system=VICUNA_SYSTEM,
                              agr="AGR.")
    enc = encode_messages(tok, messages, media_tokens=3)
    shown = []
    for token, label, media in zip(enc.input_ids, enc.labels, enc.media_mask):
        text = "<M>" if media else tok.decode([token])
        assert label in (IGNORE_INDEX, token)
        shown.append(f"[{text}]" if label != IGNORE_INDEX else text)
    answer = "".join(f"[{c}]" for c in " happy") + "[</s>]"
    answer2 = "".join(f"[{c}]" for c in " smile") + "[</s>]"
    # `<s>` first, put there by the tokenizer as LLaMA's does (LLaVA / LLaMA-VID tokenise their prompts so).
    assert "".join(shown) == (f"<s>{VICUNA_SYSTEM} USER: AGR.\n<M><M><M>\nWhich one? ASSISTANT:{answer}"
                              f"USER: Why? ASSISTANT:{answer2}")
    prompt = encode_messages(tok, build_messages([("Which one?", None)], system=VICUNA_SYSTEM), 1, generation=True)
    assert tok.decode(prompt.input_ids).endswith("Which one? ASSISTANT:")
    assert all(lab == IGNORE_INDEX for lab in prompt.labels)


def test_paper_stack_with_llamavid_trains_a_step_and_stops_at_end_of_turn(folders):
    model = build(folders)
    feats = [synthetic_features(0, 1, vision_dim=VISION, face_dim=16)]
    batch = model.make_batch(feats, [[("What emotion?", "a")]])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss = model(batch)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert model.tokenizer.decode(batch["input_ids"][0]).count("ASSISTANT:") == 1
    # an LLM whose head can only say `</s>` (all logits tie; argmax picks id 0 = `</s>`) stops after one token
    base = model.llm.get_base_model()
    with torch.no_grad():
        base.lm_head.weight.zero_()
        gen = model.make_batch(feats, [[("What emotion?", None)]], generation=True)
        out = model.llm.generate(inputs_embeds=model.embed(gen), attention_mask=gen["attention_mask"],
                                 max_new_tokens=6, do_sample=False, eos_token_id=model.tokenizer.eos_token_id,
                                 pad_token_id=model.tokenizer.pad_token_id)
    assert model.tokenizer.eos_token == "</s>" and out.shape[1] == 1 and int(out[0, 0]) == 0
    assert model.generate(feats, ["What emotion?"], max_new_tokens=3) == [""]


@pytest.fixture(scope="module")
def folders_with_tower(folders, tmp_path_factory):
    """The same synthetic LLaMA-VID checkpoint plus a tiny EVA-G tower under `model.vision_tower.vision_tower.`
    (LAVIS key names, as LLaMA-VID's DeepSpeed save would write it)."""
    from safetensors.torch import save_file
    from test_eva_vit import lavis_state  # tests/ is on sys.path (pytest prepend import mode)

    from emo_llama.model.backbones.eva_vit import EVAViTConfig

    ckpt, bert, state = folders
    tower = lavis_state(EVAViTConfig.tiny(width=VISION), blocks=2, seed=5)
    root = tmp_path_factory.mktemp("llamavid-tower") / "llama-vid-tiny"
    root.mkdir()
    for f in ckpt.iterdir():
        if f.suffix != ".safetensors":
            (root / f.name).write_bytes(f.read_bytes())
    full = state | {"model.vision_tower.vision_tower." + k: v for k, v in tower.items()}
    save_file({k: v.contiguous() for k, v in full.items()}, str(root / "model.safetensors"))
    return root, bert, state, tower


def test_llamavid_defaults_to_eva_g_filled_from_its_own_tower(folders_with_tower):
    ckpt, bert, _, tower = folders_with_tower
    stack = get_stack("paper", tiny_configs=True, llamavid_path=str(ckpt), qformer_bert=str(bert),
                      tiny_vision_dim=VISION)
    assert stack.options["vision"] == "eva_g" and stack.vision.has_cls
    assert stack.config_overrides["vision_cls_token"] is True and stack.options["feature_name"] == "paper-eva_g"
    own = stack.vision.net.state_dict()
    assert set(own) == set(tower) and all(torch.equal(own[k], tower[k]) for k in tower)   # strict, every key
    assert not any(p.requires_grad for p in stack.vision.parameters())
    with pytest.raises(KeyError, match="mystery"):   # a bad tower key is named
        from emo_llama.model.backbones.vision import EVAVision
        EVAVision.from_state(tower | {"blocks.0.mystery": torch.zeros(1)}, stack.vision.net.cfg)
    with pytest.raises(ValueError, match="eva_g"):   # CLIP with LLaMA-VID stops, naming the fix
        get_stack("paper", tiny_configs=True, encoders=False, llamavid_path=str(ckpt), qformer_bert=str(bert),
                  vision="clip", tiny_vision_dim=VISION + 8)


def test_eva_g_paper_stack_routes_cls_trains_a_step_and_answers(folders_with_tower):
    ckpt, bert, s, _ = folders_with_tower
    stack = get_stack("paper", tiny_configs=True, llamavid_path=str(ckpt), qformer_bert=str(bert),
                      tiny_vision_dim=VISION)
    model = EmoLlama(EmoLlamaConfig(stack="paper", **SMALL), stack)
    assert model.config.vision_cls_token
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        tokens = stack.vision(images)
        face = stack.expert(images)
    assert tokens.shape == (2, 5, VISION)                       # CLS + 2x2 patches of the tiny 28 px EVA
    feats = synthetic_features(0, 1, frames=2, vision_tokens=5, vision_dim=VISION, face_grid=stack.face_grid,
                               face_dim=stack.face_dim)
    feats.vision_tokens, feats.face_tokens = tokens, face.face_tokens.float()
    feats.landmarks_68, feats.au_masks = face.landmarks_68.float(), face.au_masks()
    # Eq. 2 as LLaMA-VID computes it: the Q-Former reads vlm_att_ln of all 5 tokens, the values are the 4 patches
    agg = model.clue_aggregator
    enc = model.qformer_tokenizer(["what emotion ?"] * 2, padding=True, return_tensors="pt")
    with torch.no_grad():
        context = agg(tokens, None, enc["input_ids"], enc["attention_mask"], patch_tokens=tokens[:, 1:])
        q = agg.query_states(tokens, None, enc["input_ids"], enc["attention_mask"])
        text_q = q @ s["model.vlm_att_projector.weight"].T + s["model.vlm_att_projector.bias"]
        v = tokens[:, 1:]
        k = v @ s["model.vlm_att_key_projector.weight"].T + s["model.vlm_att_key_projector.bias"]
        pooled = ((text_q @ k.transpose(-1, -2) / math.sqrt(VISION)).softmax(-1) @ v).mean(1)
        expected = pooled @ s["model.vlm_att_val_projector.weight"].T + s["model.vlm_att_val_projector.bias"]
        with_cls = agg(tokens, None, enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(context, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(with_cls, expected, atol=1e-4)   # the CLS row would change it
    batch = model.make_batch([feats], [[("What emotion?", "a")]])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    before = model.face_info_mining.vision_in.weight.detach().clone()
    loss = model(batch)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.face_info_mining.vision_in.weight)
    answers = model.generate([feats], ["What emotion?"], max_new_tokens=3)
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_qformer_memory_is_normed_also_with_face_tokens(folders):
    model = build(folders)
    agg = model.clue_aggregator
    g = torch.Generator().manual_seed(6)
    vision, face = torch.randn(1, 5, VISION, generator=g) * 3 + 1, torch.randn(1, 4, 16, generator=g)
    enc = model.qformer_tokenizer(["what emotion ?"], return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        got = agg.query_states(vision, face, ids, mask)
        memory = torch.cat([agg.vision_norm(vision), agg.face_to_vision(face)], dim=1)
        want = agg.qformer(input_ids=ids, attention_mask=torch.cat([torch.ones(1, 32, dtype=mask.dtype), mask], 1),
                           query_embeds=agg.queries, encoder_hidden_states=memory).last_hidden_state[:, :32]
    torch.testing.assert_close(got, want)


def test_pretrained_baseline_content_token_is_llamavids_mean_pool(folders):
    # `python -m emo_llama.evaluate --model pretrained`: no EMO-LLaMA module, LLaMA-VID's content token
    from emo_llama.evaluate.protocol import NO_NEW_MODULES

    _, _, s = folders
    model = build(folders, **NO_NEW_MODULES).eval()
    assert model.frame_token_names == ("context", "visual")
    patches = torch.randn(3, 9, VISION, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        content = model.visual_projector(model.face_info_mining(patches))
        pooled = patches.mean(1)  # LLaMA-VID: the frame's visual tokens averaged, then mm_projector
        hidden = F.gelu(pooled @ s["model.mm_projector.0.weight"].T + s["model.mm_projector.0.bias"])
        expected = hidden @ s["model.mm_projector.2.weight"].T + s["model.mm_projector.2.bias"]
    torch.testing.assert_close(content, expected, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in model.face_info_mining.parameters())  # nothing to learn there
