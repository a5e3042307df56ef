"""EMO-LLaMA: frozen features -> Clue Aggregator + Face Info Mining + landmark MLP -> projectors -> LLM (LoRA).

The model consumes *frozen per-frame features* (`emo_llama.features.extractor.MediaFeatures`: visual tokens, face
tokens, 68 landmarks, AU-region masks, AGR) so that the encoders run once and are cached on disk; the
trained parts run every step. `EmoLlama.from_pretrained(folder)` reloads a trained model in one call and
`answer(media, question)` runs the whole pipeline (frames -> face crops -> encoders -> generate) and
returns `Answer`s: strings that also say whether a face was found and which files could not be read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.tensor import DTensor

from emo_llama.config import EmoLlamaConfig
from emo_llama.features.audio import AudioExtractor
from emo_llama.features.extractor import FeatureExtractor
from emo_llama.model.answers import NO_FACE_TEXT, Answer, face_summary, unreadable
from emo_llama.model.backbones.llm import add_lora
from emo_llama.model.backbones.stacks import Stack, get_stack
from emo_llama.model.parts.clue_aggregator import ClueAggregator
from emo_llama.model.parts.face_info_mining import FIMConfig, build_fim
from emo_llama.model.parts.projectors import (
    AudioToken,
    ExpressionEncoder,
    FeatureStandardiser,
    LandmarkEncoder,
    mlp_projector,
    moments,
    normalise_landmarks,
    word_embeddings,
)
from emo_llama.model.parts.prompting import (
    FRAME_TOKEN_NAMES,
    IGNORE_INDEX,
    build_messages,
    encode_messages,
    pad_batch,
    splice_media,
)
from emo_llama.prompts import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER, strip_placeholders
from emo_llama.utils import resolve_device


class EmoLlama(nn.Module):
    def __init__(self, config: EmoLlamaConfig, stack: Stack | None = None):
        super().__init__()
        stack = stack or get_stack(config.stack, **config.stack_options)
        if stack.config_overrides:  # what a pretrained initialisation (LLaMA-VID) needs to host its weights
            config = replace(config, **stack.config_overrides)
        if config.use_expression is None:  # unset: the expression token exactly when the expert reads expressions
            config = replace(config, use_expression=bool(stack.expression_names))
        elif config.use_expression and not stack.expression_names:
            raise ValueError(f"use_expression=True, but the {stack.name} stack's facial expert gives no expression "
                             "reading (FaceXFormer's released heads have none): set use_expression=False")
        self.config = config
        self.stack = stack          # plain attribute: holds the frozen encoders, not saved with the model
        llm_dim = stack.llm.get_input_embeddings().weight.shape[1]
        self.tokenizer, self.qformer_tokenizer = stack.tokenizer, stack.qformer_tokenizer
        self.clue_aggregator = ClueAggregator(stack.qformer, stack.vision_dim, stack.face_dim, config.num_queries,
                                              config.context_dim, config.use_face_embedding,
                                              config.context_key_dim, config.qformer_vision_norm)
        for name, p in self.clue_aggregator.qformer.named_parameters():
            p.requires_grad_(config.train_qformer_base or name not in stack.qformer_pretrained)
        fim_cfg = FIMConfig(config.fim_dim, config.fim_heads, config.fim_ffn_mult, config.dropout, config.fim_mode,
                            config.use_face_embedding)
        self.face_info_mining = build_fim(stack.vision_dim, stack.face_dim, fim_cfg)
        rms = None
        if config.match_embedding_scale:
            rms = float(stack.llm.get_input_embeddings().weight.detach().float().pow(2).mean().sqrt())
        self.context_projector = (nn.Identity() if config.context_projector == "none"           # MLP^T
                                  else mlp_projector(config.context_dim, llm_dim, out_rms=rms))
        self.visual_projector = mlp_projector(config.fim_dim, llm_dim, out_rms=rms)          # MLP^V
        self.landmark_encoder = (LandmarkEncoder(llm_dim, config.landmark_hidden, out_rms=rms)  # MLP^L
                                 if config.use_landmarks else None)
        self.expression_names = stack.expression_names
        self.expression_encoder = (ExpressionEncoder(word_embeddings(stack.llm.get_input_embeddings().weight,
                                                                     stack.tokenizer, stack.expression_names),
                                                     residual=config.expression_residual)
                                   if config.use_expression else None)
        # Emotion-LLaMA's audio branch: the stack's audio encoder (features, frozen, in the audio store) -> a token
        self.audio_token = AudioToken(stack.audio_encoder().dim, llm_dim, out_rms=rms) if config.use_audio else None
        if not (config.use_vision or config.use_landmarks or config.use_expression or config.use_audio):
            raise ValueError("every frame token is switched off (use_vision, use_landmarks, use_expression, use_audio)")
        # Frozen features are standardised with training-set statistics (`fit_feature_statistics`).
        self.vision_standardise = FeatureStandardiser(stack.vision_dim)
        self.face_standardise = FeatureStandardiser(stack.face_dim)
        targets = config.lora_targets or stack.lora_targets
        self.llm = add_lora(stack.llm, config.lora_r, config.lora_alpha or 2 * config.lora_r, config.lora_dropout, targets)
        # True while a training stage keeps the new modules fixed (emo_llama.train.loop sets it): their
        # tokens are then computed without autograd, so backward stops at the LLM's input.
        self.new_modules_frozen = False
        if stack.init_state:
            self._load_init_state(stack.init_state)

    def _load_init_state(self, state: dict[str, torch.Tensor]) -> None:
        """Fill new modules from a pretrained initialisation (EmoLlama names), every tensor checked."""
        own = dict(self.named_parameters()) | dict(self.named_buffers())
        bad = [k for k in state if k not in own or own[k].shape != state[k].shape]
        if bad:
            raise KeyError(f"initial weights do not fit the model: {[(k, tuple(state[k].shape)) for k in bad[:4]]}")
        with torch.no_grad():
            for key, value in state.items():
                own[key].copy_(value)

    # ----- frame tokens ---------------------------------------------------------------------------
    def frame_tokens(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """(F, tokens_per_frame, D): per frame [context, visual, landmark, expression, audio] in the LLM's embedding
        space (each when its switch is on)."""
        tokens = []
        if self.config.use_vision:
            tokens += self._vision_tokens(feats)
        if self.landmark_encoder is not None:
            tokens.append(self.landmark_encoder(feats["landmarks_68"]))
        if self.expression_encoder is not None:
            tokens.append(self.expression_encoder(feats["expression_probs"]))
        if self.audio_token is not None:
            valid = feats["audio_valid"]
            if self.training and self.config.audio_dropout > 0:  # modality dropout: this second was not heard
                valid = valid & (torch.rand(valid.shape, device=valid.device) >= self.config.audio_dropout)
            tokens.append(self.audio_token(feats["audio"], valid))
        dtype = tokens[0].dtype
        return torch.stack([t.to(dtype) for t in tokens], dim=1)

    def _vision_tokens(self, feats: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The context token (Clue Aggregator, Eq. 2) and the visual token (Face Info Mining, Eq. 3) per frame."""
        vision = self.vision_standardise(feats["vision_tokens"])
        if self.training and self.config.vision_dropout > 0:  # standardised: 0 is the training mean
            keep = torch.rand(vision.shape[0], device=vision.device) >= self.config.vision_dropout
            vision = vision * keep.view(-1, 1, 1).to(vision.dtype)
        face = self.face_standardise(feats["face_tokens"]) if self.config.use_face_embedding else None
        patches = vision[:, 1:] if self.config.vision_cls_token else vision   # CLS dropped (LLaMA-VID)
        context = self.clue_aggregator(vision, face, feats["instruction_ids"], feats["instruction_mask"],
                                       patch_tokens=patches)
        visual = self.face_info_mining(patches, face, feats["au_masks"])
        return [self.context_projector(context), self.visual_projector(visual)]

    @property
    def frame_token_names(self) -> tuple[str, ...]:
        """Each frame's tokens, in `frame_tokens`' order (for `prompting.batch_view`)."""
        vision = self.config.use_vision
        switches = (vision, vision, self.landmark_encoder is not None, self.expression_encoder is not None,
                    self.audio_token is not None)
        return tuple(name for name, on in zip(FRAME_TOKEN_NAMES, switches) if on)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        embeds = self.llm.get_input_embeddings()(batch["input_ids"])
        with torch.no_grad() if self.new_modules_frozen else nullcontext():
            frames = self.frame_tokens(batch)
        return splice_media(embeds, batch["media_mask"], frames.flatten(0, 1))

    # ----- training ------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], reduction: str | None = None) -> torch.Tensor:
        """Eq. 6 loss: next-token cross-entropy on the answer tokens, averaged as `config.loss_mean` says.

        "token" (the paper's Eq. 6, LLaVA's loss): the mean over all answer tokens of the batch, so a long
        answer weighs more than a short one. "sample": the mean per sample, then over samples, so every
        answer weighs the same. `reduction="sum"`: the summed token losses, for a caller that divides by
        the answer tokens of a larger batch (`emo_llama.train.loop.accumulate_gradients`: a global batch
        split into micro-steps and processes).
        The vocabulary projection runs only where there is a label (it is ~20% of SmolLM2's compute).
        """
        reduction = reduction or self.config.loss_mean
        embeds = self.embed(batch)
        base = self.llm.get_base_model()
        hidden = base.base_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state
        targets = batch["labels"][:, 1:]
        keep = self.loss_positions(batch["labels"])
        logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
        token_loss = F.cross_entropy(logits, targets[keep], reduction="none")
        if reduction == "sum":
            return token_loss.sum()
        if reduction == "token":
            return token_loss.sum() / keep.sum().clamp(min=1)
        if reduction != "sample":
            raise ValueError(f"loss reduction {reduction!r}: expected 'token', 'sample' or 'sum'")
        rows = keep.nonzero()[:, 0]
        per_sample = torch.zeros(targets.shape[0], device=token_loss.device).index_add_(0, rows, token_loss)
        counts = keep.sum(1).clamp(min=1)
        return (per_sample / counts).mean()

    @staticmethod
    def loss_positions(labels: torch.Tensor) -> torch.Tensor:
        """(B, L - 1) bool: the positions whose next token is an answer token (where Eq. 6 has a loss term)."""
        return labels[:, 1:] != IGNORE_INDEX

    @torch.no_grad()
    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.llm(inputs_embeds=self.embed(batch), attention_mask=batch["attention_mask"]).logits

    # ----- batching -----------------------------------------------------------------------------
    def make_batch(self, media: list, conversations: list[list[tuple[str, str | None]]],
                   generation: bool = False, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Collate MediaFeatures + (question, answer) turns into model inputs (frames flattened in order)."""
        prompts, instructions = [], []
        for feats, turns in zip(media, conversations):
            placeholder = VIDEO_PLACEHOLDER if feats.num_frames > 1 else IMAGE_PLACEHOLDER
            agr = feats.agr if self.config.use_agr else None
            messages = build_messages(turns, self.config.system_prompt, agr, placeholder)
            n_tokens = feats.num_frames * self.config.tokens_per_frame
            prompts.append(encode_messages(self.tokenizer, messages, n_tokens, generation, placeholder))
            instructions += [strip_placeholders(turns[0][0])] * feats.num_frames
        batch = pad_batch(prompts, self.tokenizer.pad_token_id, side="left" if generation else "right")
        q = self.qformer_tokenizer(instructions, padding=True, truncation=True,
                                   max_length=self.config.max_instruction_tokens, return_tensors="pt")
        batch["instruction_ids"], batch["instruction_mask"] = q["input_ids"], q["attention_mask"]
        for key in ("vision_tokens", "face_tokens", "landmarks_68", "au_masks"):
            batch[key] = torch.cat([getattr(f, key) for f in media], dim=0)
        if self.expression_encoder is not None:
            batch["expression_probs"] = torch.cat([self._expression_probs(f) for f in media], dim=0)
        if self.audio_token is not None:
            batch["audio"] = torch.cat([self._audio(f) for f in media], dim=0)
            batch["audio_valid"] = torch.cat([f.audio_valid for f in media], dim=0)
        return {k: v.to(device) for k, v in batch.items()}

    def _audio(self, feats) -> torch.Tensor:
        width = self.audio_token.standardise.mean.shape[0]
        if feats.audio.shape[-1] != width:
            raise ValueError(f"the features carry audio of width {feats.audio.shape[-1]}, the model hears {width}-d "
                             f"{self.stack.audio} features: attach the sound with the stack's audio encoder "
                             "(features.WithAudio / FeatureExtractor.audio)")
        return feats.audio

    def _expression_probs(self, feats) -> torch.Tensor:
        probs = feats.expression_probs
        if probs.shape[-1] != len(self.expression_names):
            raise ValueError(f"the features hold an expression reading of width {probs.shape[-1]}, the model expects "
                             f"{len(self.expression_names)} ({', '.join(self.expression_names)}): features from "
                             "another expert; extract them with this model's stack")
        return probs

    # ----- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, media: list, questions: list[str], max_new_tokens: int = 16, require_face: bool = True,
                 paths: list | None = None, **kwargs) -> list[Answer]:
        """Greedy (default) answers for a batch of (MediaFeatures, question), one `Answer` per item.

        An item where MTCNN found no face in any frame is not put to the LLM when `require_face`
        (the default): its answer says that no face was found (`answered=False`). With
        `require_face=False` (scoring a dataset of faces) it is answered and still flagged
        (`face_found=False`). Frames without a face inside a video are counted per item either way.
        """
        paths = [None] * len(media) if paths is None else [None if p is None else str(p) for p in paths]
        facts = [face_summary(f.face_found, p) for f, p in zip(media, paths)]
        ask = [i for i, fact in enumerate(facts) if fact["face_found"] or not require_face]
        texts = self._generate_text([media[i] for i in ask], [questions[i] for i in ask], max_new_tokens,
                                    **kwargs) if ask else []
        answers = [Answer(NO_FACE_TEXT, answered=False, **fact) for fact in facts]
        for i, text in zip(ask, texts):
            answers[i] = Answer(text, **facts[i])
        return answers

    def _generate_text(self, media: list, questions: list[str], max_new_tokens: int, **kwargs) -> list[str]:
        batch = self.make_batch(media, [[(q, None)] for q in questions], generation=True, device=self.device)
        embeds = self.embed(batch)
        kwargs.setdefault("do_sample", False)
        out = self.llm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                                max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                eos_token_id=self.tokenizer.eos_token_id, **kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def answer(self, media_paths: list, questions: list[str], extractor=None, require_face: bool = True,
               **kwargs) -> list[Answer]:
        """Images or videos by path -> answers (frames, face crops and encoders run here, cached on disk).

        One unreadable or missing file does not stop the batch: its `Answer` has `answered=False` and an
        `error` that names the path; the other items are answered. See `generate` for media without a face.
        """
        extractor = extractor or self.feature_extractor()
        errors: dict[str, str] = {}
        feats = extractor.extract_many(media_paths, progress=False, errors=errors)
        readable = [i for i, f in enumerate(feats) if f is not None]
        answered = self.generate([feats[i] for i in readable], [questions[i] for i in readable],
                                 require_face=require_face, paths=[media_paths[i] for i in readable],
                                 **kwargs) if readable else []
        answers = [unreadable(p, errors.get(str(p), "could not be read")) for p in media_paths]
        for i, a in zip(readable, answered):
            answers[i] = a
        return answers

    def feature_extractor(self, **kwargs) -> FeatureExtractor:
        """The stack's feature extractor for single media; with the sound attached when the model hears."""
        extractor = FeatureExtractor.from_stack(self.stack, device=kwargs.pop("device", self.device), **kwargs)
        if self.audio_token is not None:
            extractor.audio = AudioExtractor(self.stack.audio_encoder(), max_frames=extractor.max_frames)
        return extractor

    @property
    def device(self) -> torch.device:
        return self.visual_projector[0].weight.device

    @torch.no_grad()
    def fit_feature_statistics(self, media) -> None:
        """Set the standardisers from training features (frames of all media pooled), in one streaming pass:
        `media` may be any iterable (e.g. read lazily from the feature store); nothing is concatenated."""
        self.set_feature_statistics(self.feature_moments(media))

    @torch.no_grad()
    def feature_moments(self, media) -> dict[str, torch.Tensor]:
        """Per standardiser, the float64 moments (count, sums, sums of squares) of `media`; they add up over
        shards and processes (`set_feature_statistics` of the sum = fitting on all media at once)."""
        out: dict[str, torch.Tensor] = {}

        def add(name: str, x: torch.Tensor) -> None:
            m = moments(x)
            out[name] = out[name] + m if name in out else m

        for m in media:
            if self.config.standardise_features:  # off when the projectors come pretrained on raw features
                add("vision", m.vision_tokens)
                add("face", m.face_tokens)
            if self.landmark_encoder is not None:
                add("landmarks", normalise_landmarks(m.landmarks_68).flatten(-2))
            if self.audio_token is not None and bool(m.audio_valid.any()):  # windows with sound only
                add("audio", self._audio(m)[m.audio_valid.bool()])
        return out

    def set_feature_statistics(self, stats: dict[str, torch.Tensor]) -> None:
        if "vision" in stats:
            self.vision_standardise.fit_moments(stats["vision"])
            self.face_standardise.fit_moments(stats["face"])
        if "landmarks" in stats and self.landmark_encoder is not None:
            self.landmark_encoder.standardise.fit_moments(stats["landmarks"])
        if self.audio_token is not None:
            if "audio" not in stats:
                raise ValueError("use_audio: not one training window has sound (every media is an image, has no audio "
                                 "track or is silent); there is nothing to hear")
            self.audio_token.standardise.fit_moments(stats["audio"])

    # ----- parameters, saving, loading ----------------------------------------------------------
    def trained_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """What a checkpoint holds: the trainable parameters and the fitted feature statistics (buffers)."""
        yield from ((n, p) for n, p in self.named_parameters() if p.requires_grad)
        yield from ((n, b) for n, b in self.named_buffers() if "standardise" in n)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """`trained_tensors` as plain CPU tensors. Sharded by FSDP2 (DTensors), each is all-gathered: then every
        process must call this (`emo_llama.train.distributed`)."""
        return {n: (t.full_tensor() if isinstance(t, DTensor) else t).detach().cpu().contiguous()
                for n, t in self.trained_tensors()}

    def new_module_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters outside the LLM: Q-Former queries/cross-attention, FIM, projectors, MLP^L."""
        return [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("llm.")]

    def trainable_table(self) -> list[tuple[str, int, int]]:
        """(part, trainable, total) per top-level part; the frozen encoders are listed for scale."""
        rows = []
        for name, module in self.named_children():
            total = sum(p.numel() for p in module.parameters())
            rows.append((name, sum(p.numel() for p in module.parameters() if p.requires_grad), total))
        for name in ("vision", "expert"):
            module = getattr(self.stack, name)
            if module is not None:
                rows.append((f"{name} (frozen)", 0, sum(p.numel() for p in module.parameters())))
        return rows

    def format_trainable_table(self) -> str:
        rows = self.trainable_table()
        lines = [f"{'part':<26}{'trainable':>14}{'total':>14}"]
        lines += [f"{n:<26}{t:>14,}{a:>14,}" for n, t, a in rows]
        lines.append(f"{'all':<26}{sum(r[1] for r in rows):>14,}{sum(r[2] for r in rows):>14,}")
        return "\n".join(lines)

    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + trained weights (safetensors) + the peft adapter folder (for use elsewhere)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "emo_llama_config.json").write_text(json.dumps(asdict(self.config), indent=2))
        save_file(self.trainable_state_dict(), str(folder / "trainable.safetensors"))
        self.llm.save_pretrained(folder / "adapter")

    def load_trainable(self, path: str | Path) -> None:
        self.load_trained_state(load_file(str(path)))

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load `trainable_state_dict()`'s content; raises when it does not name exactly the trained tensors."""
        expected = {n for n, _ in self.trained_tensors()}
        if set(state) != expected:
            raise KeyError(f"checkpoint does not match the model: missing {sorted(expected - set(state))[:3]}, "
                           f"unexpected {sorted(set(state) - expected)[:3]}")
        self.load_state_dict(state, strict=False)

    @classmethod
    def from_pretrained(cls, folder: str | Path, stack: Stack | None = None,
                        device: str | torch.device = "auto") -> EmoLlama:
        folder = Path(folder)
        config = EmoLlamaConfig.from_dict(json.loads((folder / "emo_llama_config.json").read_text()))
        model = cls(config, stack)
        model.load_trainable(folder / "trainable.safetensors")
        return model.to(resolve_device(device)).eval()
