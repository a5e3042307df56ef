"""Reading media as RGB frames: images, videos (PyAV, 1 FPS sampling) and folders of frames.

EMO-LLaMA (following LLaMA-VID) feeds a video to the model as its frames at 1 FPS; an image is a
one-frame video. `load_frames` hides which of the three a sample is stored as.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from emo_llama.utils import natural_key

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"}


class MediaError(ValueError):
    """A media file or folder that cannot be read; the message names the path and what was expected."""


def nearest_frame_indices(times: Sequence[float], fps: float = 1.0, max_frames: int | None = None) -> list[int]:
    """Indices of the frames nearest each sampling instant 0, 1/fps, 2/fps, ... (sorted `times`, seconds).

    A clip shorter than one sampling period gives its first frame. `max_frames` caps the count by
    keeping evenly spaced picks, so a long clip is still covered from start to end.
    """
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return []
    start, end = times[0], times[-1]
    # The last instant that still lies inside the clip; the frame at `end` lasts one frame period.
    period = np.median(np.diff(times)) if times.size > 1 else 0.0
    duration = end - start + period
    n_instants = max(1, int(np.ceil(duration * fps - 1e-9)))
    instants = start + np.arange(n_instants) / fps
    picks = np.abs(times[None, :] - instants[:, None]).argmin(axis=1)
    picks = list(dict.fromkeys(picks.tolist()))  # a very low frame rate can map two instants to one frame
    if max_frames is not None and len(picks) > max_frames:
        keep = np.linspace(0, len(picks) - 1, max_frames).round().astype(int)
        picks = [picks[i] for i in keep]
    return picks


# OS errors that say the storage failed this time, not that the file is bad (a network disk, a busy device):
# they pass through as OSError, which the feature store retries, instead of becoming a MediaError ("unreadable").
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE,
                              errno.ENETDOWN, errno.ENETUNREACH, errno.ECONNRESET, errno.EHOSTUNREACH})


def transient(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in TRANSIENT_ERRNOS


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (grayscale and RGBA are converted)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        if transient(err):
            raise
        raise MediaError(f"{path}: not a readable image ({err}); expected jpg/png/bmp/tif") from err


def read_video(path: str | os.PathLike, fps: float = 1.0, max_frames: int | None = None) -> list[np.ndarray]:
    """Decode a video with PyAV and return its frames sampled at `fps` (nearest frame per instant)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: zero-length file; expected a video (mp4/avi/webm)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream; expected a video (mp4/avi/webm)")
            stream = container.streams.video[0]
            # Pass 1: demux only (no decoding) to learn every frame's timestamp.
            pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0)
            if not pts:
                raise MediaError(f"{path}: the video stream holds no frames")
            base = float(stream.time_base)
            wanted = {pts[i] for i in nearest_frame_indices([t * base for t in pts], fps, max_frames)}
            # Pass 2: decode, keeping only the picked frames.
            container.seek(0, stream=stream)
            frames = {f.pts: f.to_ndarray(format="rgb24") for f in container.decode(stream) if f.pts in wanted}
    except av.error.FFmpegError as err:
        if transient(err):
            raise
        raise MediaError(f"{path}: cannot decode video ({err}); the file is corrupt or truncated") from err
    if not frames:
        raise MediaError(f"{path}: no frame could be decoded; the file is corrupt or truncated")
    return [frames[t] for t in sorted(frames)]


def read_frame_folder(path: str | os.PathLike, fps: float | None = None, max_frames: int | None = None,
                      folder_fps: float | None = None) -> list[np.ndarray]:
    """Frames stored as image files in a folder, in natural order (2.jpg before 10.jpg).

    Datasets that ship frame folders (DFEW, FERV39K, MAFW) have already chosen their frames, so by
    default all are kept; give `folder_fps` (the rate they were extracted at) to resample to `fps`.
    """
    path = Path(path)
    files = sorted((f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not files:
        raise MediaError(f"{path}: folder holds no image frames ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if folder_fps is not None and fps is not None:
        picks = nearest_frame_indices(np.arange(len(files)) / folder_fps, fps, max_frames)
    else:
        picks = list(range(len(files)))
        if max_frames is not None and len(picks) > max_frames:
            picks = np.linspace(0, len(files) - 1, max_frames).round().astype(int).tolist()
    return [read_image(files[i]) for i in picks]


def load_frames(path: str | os.PathLike, fps: float = 1.0, max_frames: int | None = None,
                folder_fps: float | None = None) -> list[np.ndarray]:
    """Any sample's media as a list of (H, W, 3) uint8 RGB frames: image -> 1 frame, video/folder -> many."""
    path = Path(path)
    if path.is_dir():
        return read_frame_folder(path, fps, max_frames, folder_fps)
    if not path.exists():
        raise MediaError(f"{path}: no such file or folder; expected an image, a video or a folder of frames")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return [read_image(path)]
    if suffix in VIDEO_SUFFIXES:
        return read_video(path, fps, max_frames)
    raise MediaError(f"{path}: unknown media type '{suffix}'; expected one of "
                     f"{sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES)} or a folder of frames")
