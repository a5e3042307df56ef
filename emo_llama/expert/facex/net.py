"""facex's 7-class facial-expression network, a Keras MobileNetV2 (width 1.0) at 200 x 200, in PyTorch.

Source: `facex/assets/model_optimized.tflite` in the PyPI package `facex` 1.1.0 (MIT, Hasby Fahrudin,
https://github.com/hfahrudin/facex). Its graph (read with `scripts/convert_facex.py`) is Keras's
`mobilenetv2_1.00_224` applied to a 200 x 200 x 3 input, BatchNorm folded into the convolution biases,
then `Flatten` of the last 6 x 6 x 1280 map and one Dense layer to 7 classes with softmax. No global
pooling: each of the 36 positions of the map has its own weights in the classifier, so the map is a
grid of spatial tokens the classifier reads position by position (the role FaceXFormer's face embedding
plays in the paper, Eq. 1).

Layout (the standard MobileNetV2 plan, expansion t, channels c, repeats n, first stride s):
stem 3x3/2 conv to 32; (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1)
(6,160,3,2) (6,320,1,1); 1x1 conv to 1280. Every block: 1x1 expand + ReLU6 (not when t = 1),
3x3 depthwise + ReLU6, 1x1 linear projection, plus the input when the stride is 1 and the channels
match. Padding as Keras writes it into the graph: stride-2 layers pad one row/column at the bottom and
right only (`ZeroPadding2D` then 'valid'), stride-1 layers pad one on every side ('same').
Spatial sizes: 200 -> 100 -> 50 -> 25 -> 12 -> 6.

Input (facex's own pipeline, `facex/core.py` and `utils.py`): an OpenCV Haar-cascade face box cut from
the grayscale frame, resized to 200 x 200 with scikit-image (values in [0, 1]), the gray value copied to
the three channels. No mean/std normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 200
GRID = (6, 6)
FEATURE_DIM = 1280
# facex's category list (`facex/core.py`), in its output order
FACEX_LABELS = ("anger", "disgust", "fear", "happy", "neutral", "sadness", "surprised")
FACEX_CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")  # canonical names
BLOCK_PLAN = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
              (6, 320, 1, 1))


class ConvUnit(nn.Module):
    """A convolution (BatchNorm already folded into its bias) with Keras's padding and an optional ReLU6."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, depthwise: bool = False,
                 relu6: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, groups=c_in if depthwise else 1, bias=True)
        self.stride, self.relu6 = stride, relu6
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel > 1:
            # stride 2: Keras's ZeroPadding2D((0, 1), (0, 1)) + 'valid'; stride 1: 'same' (1 on each side)
            x = F.pad(x, (0, 1, 0, 1) if self.stride == 2 else (1, 1, 1, 1))
        x = self.conv(x)
        return F.relu6(x) if self.relu6 else x


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.expand = ConvUnit(c_in, hidden, 1) if expansion != 1 else None
        self.depthwise = ConvUnit(hidden, hidden, 3, stride=stride, depthwise=True)
        self.project = ConvUnit(hidden, c_out, 1, relu6=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class FacexNet(nn.Module):
    """(B, 3, 200, 200) gray-in-RGB in [0, 1] -> (feature map (B, 1280, 6, 6), logits (B, 7))."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvUnit(3, 32, 3, stride=2)
        blocks, c_in = [], 32
        for expansion, c_out, repeats, stride in BLOCK_PLAN:
            for k in range(repeats):
                blocks.append(InvertedResidual(c_in, c_out, expansion, stride if k == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvUnit(c_in, FEATURE_DIM, 1)
        self.classifier = nn.Linear(FEATURE_DIM * GRID[0] * GRID[1], len(FACEX_LABELS))

    def conv_units(self) -> list[ConvUnit]:
        """Every convolution in the order the TFLite graph runs them (the converter fills them in this order)."""
        return [m for m in self.modules() if isinstance(m, ConvUnit)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.head(self.blocks(self.stem(x)))
        # Keras's Flatten reads the map in (row, column, channel) order
        logits = self.classifier(fmap.permute(0, 2, 3, 1).flatten(1))
        return fmap, logits


def token_centres() -> torch.Tensor:
    """(36, 2) x,y in [0, 1] of the net input: the receptive-field centre of each map position, row-major.

    A 3x3 stride-2 layer padded only at the bottom/right centres output pixel o on input pixel 2o + 1,
    a stride-1 'same' or 1x1 layer on o; after the five stride-2 layers, o sits on 32o + 31 (pixel
    index), i.e. (32o + 31.5) / 200 in [0, 1] coordinates: the grid leans to the bottom-right."""
    centres = (torch.arange(GRID[0], dtype=torch.float32) * 32 + 31.5) / INPUT_SIZE
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)
