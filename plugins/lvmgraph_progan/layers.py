"""Progressive GAN building blocks (Karras, Aila, Laine & Lehtinen, ICLR 2018).

Axis legend: b batch, c channels, h w spatial, d features.

- Equalised learning rate (section 4.1): weights are drawn from N(0, 1) and multiplied at run
  time by He's constant gain / sqrt(fan_in), so Adam's per-weight step sizes see every layer at
  the same scale; biases start at 0.
- Pixel-wise feature normalisation (section 4.2): each pixel's feature vector divided by its
  root mean square over channels.
- Minibatch standard deviation (section 3): the standard deviation of every feature over a
  group of samples, averaged to one number per group and appended as a constant feature map.
- Resizing: nearest-neighbour doubling and 2x2 average pooling, as the paper's code does.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HE_GAIN = math.sqrt(2.0)  # for layers followed by a (leaky) ReLU
LEAKY_SLOPE = 0.2
EPS = 1e-8


class EqualizedLinear(nn.Module):
    """x (b d_in) -> (b d_out); weight ~ N(0, 1) scaled by gain / sqrt(d_in) on every call."""

    def __init__(self, d_in: int, d_out: int, *, gain: float = HE_GAIN):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(d_out))
        self.scale = gain / math.sqrt(d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """x (b c_in h w) -> (b c_out h w): a 'same' convolution with the equalised-learning-rate scale."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, gain: float = HE_GAIN):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """x (b c ...) -> x / sqrt(mean over c of x² + 1e-8): unit RMS feature vector per pixel."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + EPS)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_norm(x)


def group_size_for(batch: int, group_size: int) -> int:
    """The largest group size <= group_size that divides the batch (the paper's code needs a divisor)."""
    g = max(1, min(group_size, batch))
    while batch % g:
        g -= 1
    return g


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """x (b c h w) -> (b c+1 h w): append the mean standard deviation of each sample's group.

    Samples i and j share a group when i ≡ j (mod b / g), as in the paper's code (a reshape to
    (g, b/g, ...)); within a group the std of every feature and pixel is taken, then averaged to
    one value that becomes the extra feature map of the group's samples.
    """
    b, _, h, w = x.shape
    g = group_size_for(b, group_size)
    y = x.reshape(g, b // g, *x.shape[1:]).float()
    std = (y - y.mean(dim=0)).pow(2).mean(dim=0).add(EPS).sqrt()  # (b/g, c, h, w)
    per_group = std.mean(dim=(1, 2, 3)).to(x.dtype)  # (b/g,)
    extra = per_group.repeat(g).reshape(b, 1, 1, 1).expand(b, 1, h, w)
    return torch.cat([x, extra], dim=1)


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """(b c h w) -> (b c 2h 2w), each pixel repeated 2x2 (nearest neighbour)."""
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def upsample_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """(b c r r) -> (b c size size) by pixel repetition; size a multiple of r."""
    factor = size // x.shape[-1]
    if factor == 1:
        return x
    return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def downsample_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """(b c H H) -> (b c size size) by averaging factor x factor blocks; H a multiple of size."""
    factor = x.shape[-1] // size
    return x if factor == 1 else F.avg_pool2d(x, factor)


def leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE)
