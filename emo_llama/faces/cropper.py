"""Face detection and cropping with facenet-pytorch's MTCNN, the way EMO-LLaMA crops faces online.

One `FaceResult` per input frame. A frame without a face is reported (`found=False` plus a
reason), never raised from inside MTCNN and never replaced by a silent wrong crop.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from emo_llama.faces._compat import import_facenet_detect
from emo_llama.faces.video import load_frames
from emo_llama.utils import resolve_device

SELECT_MODES = ("largest", "prob", "all")
MISSING_MODES = ("skip", "whole_frame")


@dataclass
class CropConfig:
    margin: float = 0.5  # extra side length around the box (0.5 = FaceXFormer's 50% margin)
    size: int = 224  # output crops are size x size
    select: str = "largest"  # largest | prob | all  (which face a frame reports)
    min_prob: float = 0.90  # detections below this MTCNN probability are ignored
    min_face_size: int = 20  # MTCNN's smallest face, pixels
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P/R/O-Net thresholds (MTCNN defaults)
    small_side: int = 112  # frames smaller than this are upscaled and padded before detection
    on_missing: str = "skip"  # skip | whole_frame  (what a frame without a detected face gives)
    batch_size: int = 16  # frames per MTCNN call (same-size frames are batched together)
    device: str = "auto"

    def __post_init__(self):
        if self.select not in SELECT_MODES:
            raise ValueError(f"select={self.select!r}; expected one of {SELECT_MODES}")
        if self.on_missing not in MISSING_MODES:
            raise ValueError(f"on_missing={self.on_missing!r}; expected one of {MISSING_MODES}")
        if self.margin < 0 or self.size < 8:
            raise ValueError(f"margin={self.margin} must be >= 0 and size={self.size} >= 8")


@dataclass
class FaceResult:
    found: bool
    reason: str | None = None  # why nothing was found, or why a fallback crop was used
    box: np.ndarray | None = None  # (4,) x1, y1, x2, y2 in frame pixels, clipped to the frame
    landmarks_5: np.ndarray | None = None  # (5, 2) eyes (left, right of the image), nose, mouth corners
    prob: float | None = None
    crop: np.ndarray | None = None  # (size, size, 3) uint8 RGB; outside the frame is black
    crop_box: np.ndarray | None = None  # (4,) the square crop in frame pixels (may extend past borders)
    fallback: bool = False  # True when `crop` is the whole frame because no face was detected
    others: list[FaceResult] = field(default_factory=list)  # the other faces, with select="all"

    def to_frame(self, points_in_crop: np.ndarray) -> np.ndarray:
        """Map points given in [0, 1] crop coordinates back to frame pixels."""
        if self.crop_box is None:
            raise ValueError("this result has no crop")
        x1, y1, x2, y2 = self.crop_box
        return np.asarray(points_in_crop) * [x2 - x1, y2 - y1] + [x1, y1]


def to_rgb_uint8(frame) -> np.ndarray:
    """PIL image or array (H, W), (H, W, 1), (H, W, 3), (H, W, 4), uint8 or float in [0, 1] -> (H, W, 3) uint8."""
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    arr = np.asarray(frame)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise ValueError(f"frame of shape {arr.shape}: expected (H, W), (H, W, 3) or (H, W, 4) pixels")
    arr = arr[:, :, :3]  # RGBA: drop alpha
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("frame holds NaN or inf pixels")
        arr = np.clip(arr * 255.0 if arr.max() <= 1.0 else arr, 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(arr)


def square_crop(frame: np.ndarray, box: np.ndarray, margin: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square of side max(w, h) * (1 + margin) centred on `box`, resized to `size`; the part
    outside the frame is black so the face keeps its place and aspect (no shifting, no stretching)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    side_px = max(1, int(round(side)))
    h, w = frame.shape[:2]
    canvas = np.zeros((side_px, side_px, 3), dtype=np.uint8)
    sx1, sy1 = max(left, 0), max(top, 0)
    sx2, sy2 = min(left + side_px, w), min(top + side_px, h)
    if sx2 > sx1 and sy2 > sy1:
        canvas[sy1 - top:sy2 - top, sx1 - left:sx2 - left] = frame[sy1:sy2, sx1:sx2]
    crop = np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR))
    return crop, np.array([left, top, left + side_px, top + side_px])


class FaceCropper:
    """MTCNN (facenet-pytorch, real pretrained P/R/O-Nets) + square crops with a margin."""

    def __init__(self, config: CropConfig | None = None, **overrides):
        self.config = config or CropConfig(**overrides)
        if config is not None and overrides:
            raise ValueError("pass either a CropConfig or keyword overrides, not both")
        self.device = resolve_device(self.config.device)
        self._detect, pnet_cls, rnet_cls, onet_cls, weights = import_facenet_detect()
        self.nets = []
        for cls, name in ((pnet_cls, "pnet"), (rnet_cls, "rnet"), (onet_cls, "onet")):
            net = cls(pretrained=False)
            net.load_state_dict(torch.load(os.path.join(weights, f"{name}.pt"), weights_only=True))
            self.nets.append(net.to(self.device).eval())

    # -- detection ---------------------------------------------------------------------------
    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, float, int]:
        """Small frames (e.g. FERPlus 48 px) are upscaled and padded: MTCNN misses faces that fill
        the whole frame or are tiny. Returns the frame to detect on, its scale and padding."""
        h, w = frame.shape[:2]
        if min(h, w) >= self.config.small_side:
            return frame, 1.0, 0
        scale = 2 * self.config.small_side / min(h, w)
        big = np.asarray(Image.fromarray(frame).resize((round(w * scale), round(h * scale)), Image.BILINEAR))
        pad = int(0.25 * max(big.shape[:2]))
        return np.pad(big, ((pad, pad), (pad, pad), (0, 0)), mode="edge"), scale, pad

    def detect(self, frames: list[np.ndarray]) -> list[list[tuple[np.ndarray, np.ndarray, float]]]:
        """All faces per frame as (box xyxy, landmarks_5, prob) in frame pixels, above `min_prob`."""
        prepared = [self._prepare(f) for f in frames]
        by_shape = defaultdict(list)  # MTCNN batches need frames of one size
        for i, (img, _, _) in enumerate(prepared):
            by_shape[img.shape].append(i)
        found: list[list] = [[] for _ in frames]
        cfg = self.config
        for indices in by_shape.values():
            for start in range(0, len(indices), cfg.batch_size):
                chunk = indices[start:start + cfg.batch_size]
                batch = np.stack([prepared[i][0] for i in chunk])
                with torch.inference_mode():
                    boxes, points = self._detect(batch, cfg.min_face_size, *self.nets,
                                                 list(cfg.thresholds), 0.709, self.device)
                for i, b, p in zip(chunk, boxes, points):
                    # numpy 2: facenet returns object arrays; make them plain floats.
                    b = np.asarray(b, dtype=np.float64).reshape(-1, 5)
                    p = np.asarray(p, dtype=np.float64).reshape(-1, 5, 2)
                    _, scale, pad = prepared[i]
                    h, w = frames[i].shape[:2]
                    for box, pts in zip(b, p):
                        if box[4] < cfg.min_prob:
                            continue
                        xyxy = (box[:4] - pad) / scale
                        xyxy = np.clip(xyxy, 0, [w, h, w, h])
                        if xyxy[2] - xyxy[0] < 2 or xyxy[3] - xyxy[1] < 2:
                            continue  # a box that lies (almost) entirely outside the frame
                        found[i].append((xyxy, (pts - pad) / scale, float(box[4])))
        return found

    # -- cropping ----------------------------------------------------------------------------
    def _result(self, frame: np.ndarray, face: tuple) -> FaceResult:
        box, landmarks, prob = face
        crop, crop_box = square_crop(frame, box, self.config.margin, self.config.size)
        return FaceResult(True, None, box, landmarks, prob, crop, crop_box)

    def _missing(self, frame: np.ndarray) -> FaceResult:
        reason = f"no face detected with probability >= {self.config.min_prob}"
        if self.config.on_missing == "skip":
            return FaceResult(False, reason)
        # The caller declared the frames pre-cropped (FERPlus, RAF-DB aligned): use the whole frame.
        h, w = frame.shape[:2]
        crop, crop_box = square_crop(frame, np.array([0, 0, w, h]), 0.0, self.config.size)
        return FaceResult(False, reason + "; using the whole frame (on_missing='whole_frame')",
                          crop=crop, crop_box=crop_box, fallback=True)

    def crop(self, inputs) -> list[FaceResult]:
        """One FaceResult per frame. `inputs`: a PIL image, an array, a path (image, video or frame
        folder: videos are sampled at 1 FPS), or a list of images/arrays."""
        if isinstance(inputs, (str, os.PathLike)):
            inputs = load_frames(inputs)
        elif not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        frames = [to_rgb_uint8(f) for f in inputs]
        if not frames:
            return []
        results = []
        for frame, faces in zip(frames, self.detect(frames)):
            if not faces:
                results.append(self._missing(frame))
                continue
            if self.config.select == "prob":
                faces.sort(key=lambda f: -f[2])
            else:  # largest first (also the order for "all")
                faces.sort(key=lambda f: -(f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))
            best = self._result(frame, faces[0])
            if self.config.select == "all":
                best.others = [self._result(frame, f) for f in faces[1:]]
            results.append(best)
        return results
