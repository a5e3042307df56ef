"""Frozen per-frame features (visual tokens, face tokens, 68 landmarks, AU regions, AGR), cached on disk.

Everything before the Clue Aggregator is frozen, so it is computed once per media file and stored as
safetensors under `$EMO_LLAMA_MODEL_CACHE/features/<stack>/<key>.safetensors`. The key hashes the
media bytes, the stack name and options, a fingerprint of the frozen encoders' weights and the frame/crop
settings: edit any of them and the cache misses. Training runs read the sharded on-disk store instead
(`emo_llama.features.store`); this per-media cache serves single media (`EmoLlama.answer`, notebooks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from emo_llama.faces import FaceCropper
from emo_llama.faces.video import IMAGE_SUFFIXES, MediaError, load_frames
from emo_llama.progress import progress as progress_bar
from emo_llama.prompts import agr_from_expert
from emo_llama.utils import atomic_path, model_cache_dir, natural_key, resolve_device

# 2: AU masks follow the expert's token centres; 3: frames keep their aspect (square_frame);
# 4: the expert's expression reading (expression_probs)
FEATURE_VERSION = "4"
DISPLAY_SIZE = 112  # face crops kept (uint8) for notebooks' attention overlays


@dataclass
class MediaFeatures:
    """Frozen features of one image (T = 1) or video (T frames at 1 FPS)."""

    vision_tokens: torch.Tensor   # (T, N, C_v)
    face_tokens: torch.Tensor     # (T, N_F, C_F)
    landmarks_68: torch.Tensor    # (T, 68, 2) in [0, 1] of the crop
    au_masks: torch.Tensor        # (T, R, N_F) bool
    face_found: torch.Tensor      # (T,) bool
    age_years: torch.Tensor       # (T,)
    gender_probs: torch.Tensor    # (T, 2) female, male
    crops: torch.Tensor           # (T, DISPLAY_SIZE, DISPLAY_SIZE, 3) uint8
    # (T, K) the expert's own expression reading (probabilities over its expression_names); K = 0 when the
    # expert has no expression head (also what features made without one get)
    expression_probs: torch.Tensor | None = None
    agr: str = ""
    # The sound next to each frame, attached from the audio store when a model reads audio (`with_audio`; never
    # stored with the visual features): (T, D_a) encoder features, (T,) bool "this window had sound", and the
    # media's audio status (features.audio.AUDIO_STATUSES; "" when no audio was attached).
    audio: torch.Tensor | None = None
    audio_valid: torch.Tensor | None = None
    audio_status: str = ""

    # What the visual store and cache keep (the audio has its own store: features.audio.AudioExtractor)
    STORED = ("vision_tokens", "face_tokens", "landmarks_68", "au_masks", "face_found", "age_years", "gender_probs",
              "crops", "expression_probs")
    HALF = ("vision_tokens", "face_tokens")  # float16 in the store (nearly all the bytes; see features.store)

    def __post_init__(self) -> None:
        t = self.vision_tokens.shape[0]
        if self.expression_probs is None:
            self.expression_probs = torch.zeros(t, 0)
        if self.audio is None:
            self.audio = torch.zeros(t, 0)
        if self.audio_valid is None:
            self.audio_valid = torch.zeros(t, dtype=torch.bool)

    @property
    def num_frames(self) -> int:
        return self.vision_tokens.shape[0]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.STORED}

    @property
    def store_text(self) -> str:
        """The one text a store keeps next to the tensors: the AGR prompt."""
        return self.agr

    @classmethod
    def from_store(cls, tensors: dict[str, torch.Tensor], text: str) -> MediaFeatures:
        return cls(**tensors, agr=text)

    def with_audio(self, audio) -> MediaFeatures:
        """These features with one media's `features.audio.AudioFeatures` attached, one window per frame.

        Window t goes with frame t (`audio_windows` cuts them at the frames' timestamps). A media without usable
        sound (its status says why) gets zero rows with `audio_valid` False, never invented sound; so do frames
        past the end of a shorter track."""
        t, dim = self.num_frames, audio.features.shape[-1]
        rows, valid = torch.zeros(t, dim), torch.zeros(t, dtype=torch.bool)
        if audio.status == "ok":
            n = min(t, audio.features.shape[0])
            rows[:n], valid[:n] = audio.features[:n], audio.valid[:n]
        return replace(self, audio=rows, audio_valid=valid, audio_status=audio.status)

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in self.tensors().items()}, str(tmp), metadata={"agr": self.agr})

    @classmethod
    def load(cls, path: Path) -> MediaFeatures:
        with safe_open(str(path), "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            agr = (f.metadata() or {}).get("agr", "")
        return cls(**tensors, agr=agr)


def media_hash(path: Path) -> str:
    """Content hash of a file or of a folder of frames (names and bytes, natural order)."""
    digest = hashlib.sha256()
    files = sorted((p for p in path.iterdir() if p.is_file()), key=natural_key) if path.is_dir() else [path]
    for file in files:
        digest.update(file.name.encode() if path.is_dir() else b"")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


class FeatureExtractor:
    """media path -> MediaFeatures, via frames (1 FPS) -> face crops -> vision encoder + facial expert."""

    def __init__(self, vision, expert, stack_name: str, fps: float = 1.0, max_frames: int = 8,
                 margin: float = 0.5, crop_size: int = 224, cache_dir: str | Path | None = None,
                 device: str | torch.device = "auto", use_cache: bool = True, stack_options: dict | None = None):
        self.vision, self.expert, self.stack_name = vision, expert, stack_name
        self.fps, self.max_frames, self.margin, self.crop_size = fps, max_frames, margin, crop_size
        self.device = resolve_device(device)
        self.cache_dir = Path(cache_dir) if cache_dir else model_cache_dir() / "features" / stack_name
        self.use_cache = use_cache
        self.stack_options = {k: v for k, v in (stack_options or {}).items() if k != "encoders"}
        self._weights: dict | None = None
        self._cropper = None
        self.hits = self.misses = 0
        # An `features.audio.AudioExtractor`, set when the model reads audio: single media then come with their
        # sound attached (the per-media cache keeps the visual features only).
        self.audio = None

    @classmethod
    def from_stack(cls, stack, **kwargs) -> FeatureExtractor:
        if stack.vision is None or stack.expert is None:
            raise ValueError("this stack was built with encoders=False; it cannot extract features")
        kwargs.setdefault("stack_options", stack.options)
        return cls(stack.vision, stack.expert, stack.options.get("feature_name", stack.name), **kwargs)

    def weights(self) -> dict:
        """Fingerprints of the frozen vision encoder's and expert's weights (computed once)."""
        if self._weights is None:
            self._weights = {"vision_weights": module_fingerprint(self.vision),
                             "expert_weights": module_fingerprint(self.expert),
                             "vision_input_size": getattr(self.vision, "input_size", None)}
        return self._weights

    def settings(self) -> dict:
        """Everything that changes a feature: the feature caches' keys hash this."""
        options = json.loads(json.dumps(self.stack_options, sort_keys=True, default=str))
        return {"stack": self.stack_name, "fps": self.fps, "max_frames": self.max_frames, "margin": self.margin,
                "crop_size": self.crop_size, "version": FEATURE_VERSION, "stack_options": options} | self.weights()

    def cache_path(self, media: Path) -> Path:
        settings = hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:12]
        return self.cache_dir / f"{media_hash(media)}-{settings}.safetensors"

    def __call__(self, media: str | Path, box=None) -> MediaFeatures:
        """Features of one image, video or folder of frames; `MediaError` (naming the path) when unreadable."""
        media = Path(media)
        if not media.exists():
            raise MediaError(f"{media}: no such file or folder; expected an image, a video or a folder of frames")
        try:
            path = self.cache_path(media) if self.use_cache else None
        except OSError as err:
            raise MediaError(f"{media}: cannot be read ({err})") from err
        if path is not None and path.exists():
            self.hits += 1
            feats = MediaFeatures.load(path)
        else:
            self.misses += 1
            feats = self.extract_uncached(media)
            if path is not None:
                feats.save(path)
        return feats if self.audio is None else feats.with_audio(self.audio.extract_uncached(media))

    def extract_uncached(self, media: str | Path) -> MediaFeatures:
        """Decode and extract one media without touching any cache; `MediaError` when unreadable."""
        media = Path(media)
        # Extraction must leave the global RNG as it found it: otherwise a run with a cold cache would
        # train differently from the same run with a warm one (measured: UAR 0.57 vs 0.62 on mini).
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        still = media.is_file() and media.suffix.lower() in IMAGE_SUFFIXES
        with torch.random.fork_rng(devices=devices):
            return self.extract_frames(load_frames(media, fps=self.fps, max_frames=self.max_frames), still=still)

    def extract_many(self, paths, progress: bool = True, desc: str = "features",
                     errors: dict[str, str] | None = None) -> list[MediaFeatures | None]:
        """Features of every path, in order. Without `errors` the first unreadable file raises; with a dict,
        each unreadable one is recorded there (path -> message) and gets None, and the rest carry on."""
        out: list[MediaFeatures | None] = []
        for p in progress_bar(list(paths), desc=desc, disable=not progress):
            try:
                out.append(self(p))
            except (MediaError, OSError) as err:
                if errors is None:
                    raise
                errors[str(p)] = str(err)
                out.append(None)
        return out

    def crops(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Face crops (T, 3, S, S) in [0, 1] and found flags; no face -> the centre square of the frame."""
        if self._cropper is None:
            self._cropper = FaceCropper(margin=self.margin, size=self.crop_size, device=self.device)
        results = self._cropper.crop(frames)
        crops, found = [], []
        for frame, res in zip(frames, results):
            crop = res.crop if res.found else _centre_square(frame, self.crop_size)
            crops.append(torch.from_numpy(np.array(crop, copy=True)).permute(2, 0, 1).float() / 255.0)
            found.append(bool(res.found))
        return torch.stack(crops), torch.tensor(found)

    def vision_images(self, frames: list[np.ndarray], crops: torch.Tensor, still: bool = False) -> torch.Tensor:
        """What the vision encoder reads: the whole frame (the paper's X^V) made square as LLaMA-VID does
        (`square_frame`; a still image padded with the encoder's mean colour), or with the stack option
        vision_input="face" the face crop, framed like mini's images (the offline stack: see model/backbones/stacks.py)."""
        size = self.vision.input_size
        if self.stack_options.get("vision_input", "frame") == "face":
            return F.interpolate(crops, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        fill = tuple(int(m * 255) for m in self.vision.mean) if still else None
        return torch.stack([torch.from_numpy(np.array(square_frame(f, size, fill), copy=True)).permute(2, 0, 1)
                            .float() / 255.0 for f in frames])

    @torch.no_grad()
    def extract_frames(self, frames: list[np.ndarray], still: bool = False) -> MediaFeatures:
        """Features of decoded frames; `still`: they are one image file's (its frame is padded, not cropped)."""
        crops, found = self.crops(frames)
        images = self.vision_images(frames, crops, still)
        dev = self.device
        vision_tokens = self.vision.to(dev)(images.to(dev)).float().cpu()
        out = self.expert.to(dev)(crops.to(dev))
        landmarks = out.landmarks_68.float().cpu()
        masks = out.au_masks().cpu()  # the expert knows where its face tokens sit on the crop
        display = F.interpolate(crops, size=(DISPLAY_SIZE, DISPLAY_SIZE), mode="bilinear", antialias=True,
                                align_corners=False)
        age, gender = out.age_years.float().cpu(), out.gender_probs.float().cpu()
        return MediaFeatures(
            vision_tokens=vision_tokens, face_tokens=out.face_tokens.float().cpu(), landmarks_68=landmarks,
            au_masks=masks.bool(), face_found=found, age_years=age, gender_probs=gender,
            crops=(display.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous(),
            expression_probs=None if out.expression_probs is None else out.expression_probs.float().cpu(),
            agr=agr_from_expert(age, gender, found, race_probs=None if out.race_probs is None else out.race_probs.cpu(),
                                race_names=out.race_names),
        )


def module_fingerprint(module: torch.nn.Module | None) -> str:
    """sha256 over a module's class, parameter/buffer names, dtypes, shapes and bytes (its weights' identity)."""
    if module is None:
        return "none"
    digest = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def square_frame(frame: np.ndarray, size: int, fill: tuple[int, int, int] | None = None) -> np.ndarray:
    """A (size, size, 3) frame as LLaMA-VID's CLIP image processor makes it (`llamavid/processor/clip-patch14-224`:
    resize the shortest edge to `size`, bicubic, the long one to int(size * long / short), then centre-crop).
    With `fill`, a non-square frame is first padded to a square of that colour, centred (LLaMA-VID's
    `image_aspect_ratio="pad"`, used for still images; video frames are cropped), so nothing is cut off.
    Squashing the whole frame to size x size instead would stretch every face in a non-square frame."""
    h, w = frame.shape[:2]
    if fill is not None and h != w:
        side = max(h, w)
        padded = np.empty((side, side, 3), dtype=frame.dtype)
        padded[:] = fill
        top, left = (side - h) // 2, (side - w) // 2
        padded[top: top + h, left: left + w] = frame
        frame, h, w = padded, side, side
    short, long = min(h, w), max(h, w)
    long = int(size * long / short)
    new_h, new_w = (size, long) if h <= w else (long, size)
    image = Image.fromarray(frame).resize((new_w, new_h), Image.BICUBIC)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)))


def _centre_square(frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return _resize(frame[top: top + s, left: left + s], size)


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))
