"""face-api's networks (MIT, @vladmandic/face-api 1.7.15) written as PyTorch modules.

Three small CNNs, all reading a 112 x 112 RGB face:
- `FaceLandmark68Net`: four "dense blocks" of depthwise-separable convolutions
  (112 -> 56 -> 28 -> 14 -> 7, channels 32/64/128/256), global average pool, a linear layer to
  136 numbers = 68 (x, y) pairs relative to the input square. Its last feature map (7 x 7 x 256)
  is what we use as the spatial face tokens.
- `FaceExpressionNet`: the same trunk (its own weights) with a 7-way linear head + softmax.
- `AgeGenderNet`: a tiny Xception (entry flow with two reduction blocks, two residual middle blocks,
  an exit reduction block, a 512-channel separable conv) -> global average pool -> age (one
  regression number, in years) and gender (2-way softmax, index 0 = male, index 1 = female).

Facts taken from face-api's source (we reuse no code): inputs are 0..255 RGB with the per-channel means
(122.782, 117.001, 104.298) subtracted, then divided by 255; every conv uses TF 'same' padding, which for
stride 2 on an even size pads only at the bottom/right; separable convs add one bias after the pointwise
conv; non-square inputs are zero-padded to a square (centred) before resizing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)  # on the 0..255 scale, subtracted before dividing by 255
EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
GENDER_ORDER = ("male", "female")  # face-api's softmax order; ExpertOutput reorders to (female, male)


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad like TensorFlow's 'same': out = ceil(in / stride); the odd extra pixel goes bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim (width) first
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


def preprocess(crops: torch.Tensor) -> torch.Tensor:
    """(B, 3, 112, 112) RGB in [0, 1] -> what face-api's nets were trained on: (x*255 - mean) / 255."""
    mean = torch.tensor(MEAN_RGB, dtype=crops.dtype, device=crops.device).view(1, 3, 1, 1)
    return (crops * 255.0 - mean) / 255.0


class SameConv(nn.Module):
    """A plain convolution with TF 'same' padding."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(tf_same_pad(x, self.kernel, self.stride), self.weight, self.bias, stride=self.stride)


class SeparableConv(nn.Module):
    """Depthwise 3x3 (stride s, TF 'same') then pointwise 1x1, then one bias: tf.separableConv2d + add."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        # Stride 1: TF 'same' is a symmetric 1-pixel pad, which the conv does without copying the input.
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1 if stride == 1 else 0, groups=c_in,
                                   bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(x if self.stride == 1 else tf_same_pad(x, 3, self.stride))
        return self.pointwise(x) + self.bias.view(1, -1, 1, 1)


class DenseBlock4(nn.Module):
    """Four convs with dense additive skips; the first halves the resolution.

    out1 = relu(conv0(x)); out2 = conv1(out1); out3 = conv2(relu(out1 + out2));
    out4 = conv3(relu(out1 + out2 + out3)); return relu(out1 + out2 + out3 + out4).
    """

    def __init__(self, c_in: int, c_out: int, first_layer: bool = False) -> None:
        super().__init__()
        # The very first block reads RGB with a plain conv (depthwise makes no sense on 3 channels).
        self.conv0 = SameConv(c_in, c_out, 3, 2) if first_layer else SeparableConv(c_in, c_out, 2)
        self.conv1 = SeparableConv(c_out, c_out)
        self.conv2 = SeparableConv(c_out, c_out)
        self.conv3 = SeparableConv(c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + out2 + out3))
        return F.relu(out1 + out2 + out3 + out4)


class FaceFeatureTrunk(nn.Module):
    """The shared trunk of the landmark and expression nets: 112x112x3 -> 7x7x256."""

    def __init__(self) -> None:
        super().__init__()
        self.dense0 = DenseBlock4(3, 32, first_layer=True)
        self.dense1 = DenseBlock4(32, 64)
        self.dense2 = DenseBlock4(64, 128)
        self.dense3 = DenseBlock4(128, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense3(self.dense2(self.dense1(self.dense0(x))))


class FaceLandmark68Net(FaceFeatureTrunk):
    """Returns (feature map (B, 256, 7, 7), landmarks (B, 68, 2) as fractions of the input square)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(256, 136)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = super().forward(x)
        # avgPool 7x7 'valid' on a 7x7 map = global mean; the head outputs interleaved x0, y0, x1, y1, ...
        coords = self.fc(fmap.mean(dim=(2, 3)))
        return fmap, coords.view(-1, 68, 2)


class FaceExpressionNet(FaceFeatureTrunk):
    """Returns logits over EXPRESSIONS (face-api applies softmax on top)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(256, len(EXPRESSIONS))

    def trunk_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 256, 7, 7): the map the head reads (the `offline` expert's face tokens)."""
        return super().forward(x)

    def head(self, trunk_map: torch.Tensor) -> torch.Tensor:
        return self.fc(trunk_map.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk_map(x))


class ReductionBlock(nn.Module):
    """Xception reduction: [relu] sep-conv, relu, sep-conv, 3x3/2 max-pool, plus a strided 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, activate_input: bool = True) -> None:
        super().__init__()
        self.activate_input = activate_input
        self.separable_conv0 = SeparableConv(c_in, c_out)
        self.separable_conv1 = SeparableConv(c_out, c_out)
        self.expansion_conv = SameConv(c_in, c_out, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(x) if self.activate_input else x
        out = self.separable_conv1(F.relu(self.separable_conv0(out)))
        out = F.max_pool2d(tf_same_pad(out, 3, 2, value=float("-inf")), 3, 2)
        return out + self.expansion_conv(x)


class MainBlock(nn.Module):
    """Xception middle block: three (relu, sep-conv) and a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.separable_conv0 = SeparableConv(channels, channels)
        self.separable_conv1 = SeparableConv(channels, channels)
        self.separable_conv2 = SeparableConv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.separable_conv0(F.relu(x))
        out = self.separable_conv1(F.relu(out))
        out = self.separable_conv2(F.relu(out))
        return out + x


class _EntryFlow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_in = SameConv(3, 32, 3, 2)
        self.reduction_block_0 = ReductionBlock(32, 64, activate_input=False)
        self.reduction_block_1 = ReductionBlock(64, 128)


class _MiddleFlow(nn.Module):
    def __init__(self, blocks: int) -> None:
        super().__init__()
        for i in range(blocks):
            self.add_module(f"main_block_{i}", MainBlock(128))


class _ExitFlow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.reduction_block = ReductionBlock(128, 256)
        self.separable_conv = SeparableConv(256, 512)


class _AgeGenderHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.age = nn.Linear(512, 1)
        self.gender = nn.Linear(512, 2)


class AgeGenderNet(nn.Module):
    """Tiny Xception (2 middle blocks) + heads. Returns (age in years (B,), gender logits (B, 2) male/female)."""

    def __init__(self, middle_blocks: int = 2) -> None:
        super().__init__()
        self.entry_flow = _EntryFlow()
        self.middle_flow = _MiddleFlow(middle_blocks)
        self.exit_flow = _ExitFlow()
        self.fc = _AgeGenderHead()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = F.relu(self.entry_flow.conv_in(x))  # 56
        out = self.entry_flow.reduction_block_0(out)  # 28
        out = self.entry_flow.reduction_block_1(out)  # 14
        for block in self.middle_flow.children():
            out = block(out)
        out = self.exit_flow.reduction_block(out)  # 7
        out = F.relu(self.exit_flow.separable_conv(out))
        pooled = out.mean(dim=(2, 3))
        return self.fc.age(pooled).squeeze(-1), self.fc.gender(pooled)


def token_centres(grid: int = 7, input_size: int = INPUT_SIZE) -> torch.Tensor:
    """Receptive-field centres (N, 2) x,y in [0, 1] of the 7x7 trunk output, row-major.

    Each stride-2 3x3 conv with TF 'same' padding maps output i to input centre 2i + 1 (no top/left pad),
    so after four of them token i sits at pixel 16 i + 15 (+0.5 for the pixel centre): the map is shifted
    by about half a cell towards the bottom-right compared with an evenly divided grid.
    """
    stride = input_size // grid
    centre = (torch.arange(grid, dtype=torch.float32) * stride + (stride - 1) + 0.5) / input_size
    ys, xs = torch.meshgrid(centre, centre, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)
