"""The paper stack at full size with RANDOM weights (no download) on one CUDA GPU: training step, generation,
the ratio to a plain transformers+peft LoRA step, and FaceXFormer's Swin against torchvision's.

    python benchmarks/gpu_paper_stack.py                 # one H100/H200, a few minutes
    python benchmarks/gpu_paper_stack.py --vision eva_g  # EVA-G (LLaMA-VID's tower, ~1B RANDOM params) instead of CLIP
    python benchmarks/gpu_paper_stack.py --tiny          # tiny configs on the CPU (checks the code path only)

Prints: build time; encoders' frames/s (CLIP ViT-L/14 or EVA-G, + FaceXFormer-B); EmoLlama LoRA step time, tokens/s,
achieved TFLOP/s against the ~4*N*T FLOPs per step of an N-parameter LLM on T tokens (LoRA: forward 2NT,
backward through activations 2NT; the frozen weights get no gradients); peak memory and the expected-memory
estimate; the same numbers for `peft` on the same LLM and tokens (input ids, labels on the answer tokens);
generation tokens/s; and, where torchvision is installed (GPU machines only; never on the CPU path), the
largest difference between torchvision's `swin_b` stage outputs and ours on the same random weights.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch


def build(tiny: bool, device: torch.device, dtype: torch.dtype, vision_kind: str = "clip"):
    from transformers import CLIPVisionConfig, LlamaConfig, LlamaForCausalLM

    from emo_llama.expert.facexformer.expert import FaceXFormerConfig, FaceXFormerExpert, FaceXFormerNet
    from emo_llama.model import EmoLlama, EmoLlamaConfig
    from emo_llama.model.backbones.eva_vit import EVAViTConfig
    from emo_llama.model.backbones.llm import byte_tokenizer, with_conversation_format
    from emo_llama.model.backbones.stacks import Stack, qformer_from_bert
    from emo_llama.model.backbones.vision import CLIPVision, EVAVision

    tok = with_conversation_format(byte_tokenizer("vicuna"))
    if tiny:
        llm_cfg = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=4)
        clip = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                image_size=56, patch_size=14)
        bert = {"vocab_size": 512, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64,
                "max_position_embeddings": 512}
        fxf, layers = FaceXFormerConfig.tiny(), 2
        eva = EVAViTConfig.tiny(width=32)
    else:  # Vicuna-7B / CLIP ViT-L/14 / BERT-base shapes
        llm_cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                              num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
        clip = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                num_attention_heads=16, image_size=224, patch_size=14)
        bert = {"vocab_size": 30522, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
                "max_position_embeddings": 512}
        fxf, layers = FaceXFormerConfig(), 12
        eva = EVAViTConfig()  # EVA-CLIP ViT-g/14 as LLaMA-VID builds it: 39 blocks, 1408-d, 257 tokens
    with torch.device(device):
        llm = LlamaForCausalLM(llm_cfg).to(dtype)
        if vision_kind == "eva_g":  # RANDOM weights (no download)
            vision = EVAVision.random(eva).to(dtype).freeze()
        else:
            vision = CLIPVision(config=clip).to(dtype).freeze()
        expert = FaceXFormerExpert(net=FaceXFormerNet(fxf))
        qformer, _ = qformer_from_bert(None, bert, vision.token_dim, layers, 2, dropout=0.0)
    stack = Stack("paper", vision, expert, vision.token_dim, expert.token_dim, expert.grid, qformer, tok, set(),
                  llm, tok, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), dtype)
    model = EmoLlama(EmoLlamaConfig(stack="paper", lora_r=128 if not tiny else 8, lora_alpha=256 if not tiny else 16,
                                    lora_dropout=0.0, vision_cls_token=vision.has_cls), stack).to(device)
    return model


def media_features(model, frames: int, device):
    """Run the frozen encoders on random frames once (timed) and wrap them as MediaFeatures."""
    from emo_llama.features.synthetic import synthetic_features

    stack = model.stack
    images = torch.rand(frames, 3, 224, 224, device=device)
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        vision = stack.vision(images).float()
        face = stack.expert(images)
    sync(device)
    seconds = time.perf_counter() - t0
    feats = synthetic_features(0, 0, frames=1, vision_tokens=vision.shape[1], vision_dim=vision.shape[2],
                               face_grid=stack.face_grid, face_dim=stack.face_dim)
    feats.vision_tokens, feats.face_tokens = vision[:1].cpu(), face.face_tokens[:1].float().cpu()
    feats.landmarks_68, feats.au_masks = face.landmarks_68[:1].cpu(), face.au_masks()[:1].cpu()
    return feats, frames / seconds


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(step, steps: int, device) -> float:
    step()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def compare_swin_with_torchvision(device) -> None:
    if device.type != "cuda" or importlib.util.find_spec("torchvision") is None:
        print("torchvision comparison: skipped (only on a CUDA machine with torchvision installed)")
        return
    import torchvision

    from emo_llama.expert.facexformer.expert import FaceXFormerConfig, FaceXFormerNet

    torch.manual_seed(0)
    ours = FaceXFormerNet(FaceXFormerConfig()).to(device).eval()
    official = ours.official_state_dict()
    tv = torchvision.models.swin_b(weights=None).to(device).eval()
    tv_state = {("features." + k[len("backbone.0."):]) if k.startswith("backbone.0.") else "norm." + k[len("backbone.1."):]: v
                for k, v in official.items() if k.startswith("backbone.")}
    missing, unexpected = tv.load_state_dict(tv_state, strict=False)
    assert not unexpected and all(k.startswith("head.") for k in missing), (missing, unexpected)
    x = torch.randn(2, 3, 224, 224, device=device)
    with torch.no_grad():
        theirs, h = [], x
        for i, layer in enumerate(tv.features):
            h = layer(h)
            if i in (1, 3, 5, 7):
                theirs.append(h.permute(0, 3, 1, 2))
        mine = ours.features.stages(x)
    for s, (a, b) in enumerate(zip(theirs, mine)):
        print(f"swin stage {s + 1} {tuple(a.shape)}: max |torchvision - ours| = {float((a - b).abs().max()):.2e} "
              f"(max |value| {float(a.abs().max()):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="tiny configs on the CPU: checks the code path only")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--no-checkpointing", action="store_true")
    parser.add_argument("--vision", choices=("clip", "eva_g"), default="clip",
                        help="vision encoder at full size with random weights: CLIP ViT-L/14 or EVA-G (LLaMA-VID's)")
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        raise SystemExit("no CUDA device: run with --tiny on a CPU (code path only) or on a GPU machine")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batch, steps = (2, 2) if args.tiny else (args.batch, args.steps)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = build(args.tiny, device, dtype, args.vision)
    print(f"built the paper stack with {args.vision} (RANDOM weights) in {time.perf_counter() - t0:.1f} s on {device}")
    print(model.format_trainable_table())
    feats, fps = media_features(model, 8, device)
    print(f"encoders ({args.vision} -> {tuple(feats.vision_tokens.shape[1:])} tokens per frame, + FaceXFormer) "
          f"on 8 random frames: {fps:.1f} frames/s")
    base = model.llm.get_base_model()
    checkpointing = not args.no_checkpointing
    if checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # one sample = Vicuna prompt + a question padded to the wanted length (byte tokenizer: 1 token per character)
    answer = [("Which expression?", "My choice is: happiness")]
    overhead = model.make_batch([feats], [answer])["input_ids"].shape[1]
    question = "Which expression? " + "x" * max(0, args.seq - overhead)
    batch_data = model.make_batch([feats] * batch, [[(question, "My choice is: happiness")]] * batch, device=device)
    tokens = batch_data["input_ids"].numel()
    from emo_llama.train.memory import check_fits

    check_fits(model, batch, batch_data["input_ids"].shape[1], checkpointing, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    model.train()

    def ours():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(batch_data)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def plain():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model.llm(input_ids=batch_data["input_ids"], attention_mask=batch_data["attention_mask"],
                             labels=batch_data["labels"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    n_llm = sum(p.numel() for p in base.parameters())
    for name, fn in (("EmoLlama step", ours), ("plain peft step", plain)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = timed_steps(fn, steps, device)
        peak = torch.cuda.max_memory_allocated() / 1024 ** 3 if device.type == "cuda" else float("nan")
        tflops = 4 * n_llm * tokens / seconds / 1e12
        print(f"{name:<16} {seconds * 1000:8.1f} ms/step  {tokens / seconds:9.0f} tokens/s  "
              f"{tflops:7.1f} TFLOP/s by 4*N*T (N={n_llm / 1e9:.2f}B, T={tokens})  peak {peak:.1f} GiB")
        if name == "EmoLlama step":
            ours_seconds = seconds
    print(f"ratio EmoLlama / plain peft step time: {ours_seconds / seconds:.2f}")
    model.eval()
    sync(device)
    t0 = time.perf_counter()
    answers = model.generate([feats], ["Which expression?"], max_new_tokens=32)
    sync(device)
    print(f"generation: {time.perf_counter() - t0:.2f} s for up to 32 new tokens (random weights: {answers[0][:40]!r})")
    compare_swin_with_torchvision(device)


if __name__ == "__main__":
    main()
