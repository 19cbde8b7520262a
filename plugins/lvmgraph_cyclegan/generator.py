"""The ResNet generator of CycleGAN (Zhu et al. 2017, appendix 7.2; after Johnson et al. 2016).

Axis legend: b batch, c channels, h w spatial.

x (b c h w) -> y (b c' h w), in the paper's notation (k = ``width``, 2 downsamplings):

    c7s1-k  d2k  d4k  R4k x n_blocks  u2k  uk  c7s1-c'  tanh

- c7s1-k: reflection pad 3, 7x7 conv (stride 1) to k channels, norm, ReLU;
- dk: 3x3 conv, stride 2, padding 1 (halves h and w), norm, ReLU;
- Rk: residual block x + [pad 1, 3x3 conv, norm, ReLU, pad 1, 3x3 conv, norm](x), reflection padding;
- uk: 3x3 transposed conv, stride 2, padding 1, output padding 1 (doubles h and w), norm, ReLU;
- the last c7s1 layer has no norm; ``out_activation`` (tanh for data in [-1, 1]) follows it.

The paper uses k = 64 with 6 blocks at 128 px and 9 at 256 px; CPU-sized specs at 28-32 px
use k = 16-32 and 2-4 blocks. h and w must be divisible by 2 ** n_downsampling so the
upsampling path lands back on the input size: 28 -> 14 -> 7 -> 14 -> 28. The channel
counts of input and output may differ (grey -> RGB); the spatial size may not.
Weights ~ N(0, 0.02), biases 0 (the reference code's init), drawn at construction.
"""
from __future__ import annotations

from typing import Annotated, Sequence

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from lvmgraph import Params, ShapeMismatch, check_shape

from .layers import Norm, OutActivation, conv, init_norms, make_norm, make_out_activation

ImageShape = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]

STEM_KERNEL = 7  # c7s1 layers
MIN_BOTTLENECK = 2  # reflection padding 1 and instance norm need more than one position per axis


def bottleneck_size(in_shape: Sequence[int], out_shape: Sequence[int], n_downsampling: int) -> tuple[int, int]:
    """(h, w) of the residual blocks' maps, or ShapeMismatch naming the setting to change."""
    if len(in_shape) != 3 or len(out_shape) != 3:
        raise ShapeMismatch(f"in_shape and out_shape must be image shapes [c, h, w], "
                            f"got {list(in_shape)} and {list(out_shape)}")
    _, h, w = (int(s) for s in in_shape)
    if tuple(out_shape[1:]) != (h, w):
        raise ShapeMismatch(f"out_shape {list(out_shape)} must have the h and w of in_shape {list(in_shape)}: "
                            f"the resnet generator translates an image at its own size (only the channel "
                            f"count may differ); set out_shape to [{out_shape[0]}, {h}, {w}]")
    factor = 2 ** n_downsampling
    if h % factor or w % factor:
        padded = -(-max(h, w) // factor) * factor
        fits = max(n for n in range(n_downsampling + 1) if h % 2 ** n == 0 and w % 2 ** n == 0)
        raise ShapeMismatch(
            f"in_shape {list(in_shape)}: h and w must be divisible by {factor} (2 ** n_downsampling, "
            f"n_downsampling={n_downsampling}) so the transposed convs restore the input size; "
            f"pad the data to {padded}x{padded} (data.pad_to: {padded}) or set n_downsampling: {fits}")
    bh, bw = h // factor, w // factor
    if min(bh, bw) < MIN_BOTTLENECK or min(h, w) <= STEM_KERNEL // 2:
        raise ShapeMismatch(
            f"in_shape {list(in_shape)} is too small for n_downsampling={n_downsampling}: the residual "
            f"blocks would see {bh}x{bw} maps (reflection padding and instance norm need at least "
            f"{MIN_BOTTLENECK}x{MIN_BOTTLENECK}); lower n_downsampling or pad the data")
    return bh, bw


class ResnetGeneratorParams(Params):
    in_shape: ImageShape = Field(description="input image shape [c, h, w]; h and w divisible by 2 ** n_downsampling")
    out_shape: ImageShape = Field(description="output image shape [c', h, w]: the same h and w, any channel "
                                              "count (e.g. [3, 32, 32] for grey -> RGB)")
    width: PositiveInt = Field(default=64, description="channels of the first layer (ngf, k in c7s1-k); each "
                                                        "downsampling doubles it. 64 in the paper, 16-32 on a CPU")
    n_blocks: int = Field(default=6, ge=0, description="residual blocks at the bottleneck: 6 at 128 px and 9 at "
                                                        "256 px in the paper, 2-4 for 28-32 px images")
    n_downsampling: int = Field(default=2, ge=0, description="stride-2 convs before the blocks (and transposed "
                                                              "convs after them); 2 in the paper")
    norm: Norm = Field(default="instance", description="instance (the paper), batch or none, after every conv "
                                                        "but the output layer")
    out_activation: OutActivation = Field(default="tanh", description="tanh (data in [-1, 1]), sigmoid ([0, 1]) "
                                                                       "or none")

    @model_validator(mode="after")
    def _fits(self):
        bottleneck_size(self.in_shape, self.out_shape, self.n_downsampling)
        return self


class ResidualBlock(nn.Module):
    """x (b c h w) -> x + f(x) (b c h w), f = [pad, 3x3 conv, norm, ReLU, pad, 3x3 conv, norm]."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        bias = norm == "none"  # a bias before a norm is subtracted away again
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), conv(nn.Conv2d(channels, channels, 3, bias=bias)), make_norm(norm, channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1), conv(nn.Conv2d(channels, channels, 3, bias=bias)), make_norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """x (b c h w) -> y (b c' h w): c7s1-k, stride-2 convs, residual blocks, transposed convs, c7s1-c'.

    See the module docstring for the layers; ``stages`` lists (name, channels, h, w) of every map.
    """

    def __init__(self, *, in_shape: Sequence[int], out_shape: Sequence[int], width: int = 64, n_blocks: int = 6,
                 n_downsampling: int = 2, norm: str = "instance", out_activation: str = "tanh"):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        bh, bw = bottleneck_size(self.in_shape, self.out_shape, n_downsampling)
        c_in, h, w = self.in_shape
        bias = norm == "none"
        pad = STEM_KERNEL // 2
        layers: list[nn.Module] = [nn.ReflectionPad2d(pad), conv(nn.Conv2d(c_in, width, STEM_KERNEL, bias=bias)),
                                   make_norm(norm, width), nn.ReLU()]
        self.stages = [("c7s1", width, h, w)]
        c = width
        for _ in range(n_downsampling):
            layers += [conv(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias)), make_norm(norm, 2 * c), nn.ReLU()]
            c, h, w = 2 * c, h // 2, w // 2
            self.stages.append(("down", c, h, w))
        layers += [ResidualBlock(c, norm) for _ in range(n_blocks)]
        self.stages += [("residual", c, bh, bw)] * n_blocks
        for _ in range(n_downsampling):
            layers += [conv(nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)),
                       make_norm(norm, c // 2), nn.ReLU()]
            c, h, w = c // 2, h * 2, w * 2
            self.stages.append(("up", c, h, w))
        layers += [nn.ReflectionPad2d(pad), conv(nn.Conv2d(c, self.out_shape[0], STEM_KERNEL))]
        self.stages.append(("c7s1", self.out_shape[0], h, w))
        self.net = nn.Sequential(*layers)
        self.out_act = make_out_activation(out_activation)
        init_norms(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, self.in_shape, what="resnet_generator 'in_shape'", setting="in_shape")
        return self.out_act(self.net(x))
