"""StarGAN's generator G(x, c) (Choi et al., CVPR 2018, appendix, table 4): one network for every domain.

Axis legend: b batch, c channels, h w spatial, k label width (domains or attributes).

x (b c h w), c (b k) -> y (b c h w). The target label c is spatially replicated to (b k h w) and
concatenated to the image along the channels, then (n = ``width``, "IN" instance norm):

    conv 7x7 s1 p3 -> n, IN, ReLU
    conv 4x4 s2 p1 -> 2n, IN, ReLU    (n_downsampling times, doubling)
    residual blocks x n_blocks: x + [conv 3x3 p1, IN, ReLU, conv 3x3 p1, IN](x)
    transposed conv 4x4 s2 p1 -> n/2, IN, ReLU    (n_downsampling times, halving)
    conv 7x7 s1 p3 -> c, tanh

with zero padding and no biases before a norm, as in the authors' code. Instance norm has a learnt
scale and shift but no running statistics, so training and sampling normalise alike.

Why not CycleGAN's ``resnet_generator(concat(x, spatial_tile(c, x)))``, which has the same
outline: its reflection padding makes the label disappear. A constant channel, reflection-padded
and convolved, is a constant map, and the instance norm right after the first conv subtracts
every channel's mean, so G(x, c) would not depend on c at all (``tests/test_stargan.py`` shows
it). With zero padding, the label's contribution differs near the border, which the norm does not
remove; that is how the paper's G sees c. The other reasons for a component of its own: the label
width is a named, validated setting (``c_dim``), a wrong label (class indices, the wrong width)
fails with a message naming ``c_dim`` and ``one_hot``, and the graph reads like the paper,
``generator(x, c_trg)``.

``condition: adain`` (conditional instance norm, Dumoulin et al., ICLR 2017; the label-driven
scale and shift of AdaIN, Huang & Belongie 2017) is the alternative to reaching G through the
border: the label is not concatenated; every instance norm instead takes its scale and shift from
the label, ``IN(h) * (1 + W_s c) + W_b c`` with one (channels x k) matrix pair per norm, so each
target domain has its own per-channel statistics at every layer, everywhere on the image. With a
one-hot c that is one learnt (scale, shift) row per domain; with multi-hot attributes the rows add.
"""
from __future__ import annotations

from typing import Annotated, Literal, Sequence

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from lvmgraph import Params, ShapeMismatch, check_shape
from lvmgraph_cyclegan.layers import Norm, OutActivation, make_out_activation
from lvmgraph_cyclegan.layers import make_norm as cyclegan_norm

ImageShape = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]
Condition = Literal["concat", "adain"]

STEM_KERNEL, STEM_PADDING = 7, 3
MIN_BOTTLENECK = 2  # instance norm needs more than one position per map


def bottleneck_size(in_shape: Sequence[int], n_downsampling: int) -> tuple[int, int]:
    """(h, w) of the residual blocks' maps, or ShapeMismatch naming the setting to change."""
    if len(in_shape) != 3:
        raise ShapeMismatch(f"in_shape must be an image shape [c, h, w], got {list(in_shape)}")
    _, h, w = (int(s) for s in in_shape)
    factor = 2 ** n_downsampling
    if h % factor or w % factor:
        padded = -(-max(h, w) // factor) * factor
        fits = max(n for n in range(n_downsampling + 1) if h % 2 ** n == 0 and w % 2 ** n == 0)
        raise ShapeMismatch(
            f"in_shape {list(in_shape)}: h and w must be divisible by {factor} (2 ** n_downsampling, "
            f"n_downsampling={n_downsampling}) so the transposed convs restore the input size; "
            f"pad the data to {padded}x{padded} (data.pad_to: {padded}) or set n_downsampling: {fits}")
    bh, bw = h // factor, w // factor
    if min(bh, bw) < MIN_BOTTLENECK:
        raise ShapeMismatch(f"in_shape {list(in_shape)} is too small for n_downsampling={n_downsampling}: the "
                            f"residual blocks would see {bh}x{bw} maps (instance norm needs at least "
                            f"{MIN_BOTTLENECK}x{MIN_BOTTLENECK}); lower n_downsampling or pad the data")
    return bh, bw


def make_norm(norm: str, channels: int) -> nn.Module:
    """(b c h w) -> (b c h w): CycleGAN's norm layer, instance norm with learnt scale and shift (the authors' choice)."""
    return cyclegan_norm(norm, channels, affine=True)


def tile_label(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """c (b k), x (b c h w) -> (b k h w): each label entry as a constant channel over x's grid."""
    return c[:, :, None, None].expand(-1, -1, x.shape[-2], x.shape[-1])


def check_label(c: torch.Tensor, x: torch.Tensor, c_dim: int) -> None:
    """Raise ShapeMismatch unless c is a float (b, c_dim) label for x's batch, saying how to fix it."""
    if not isinstance(c, torch.Tensor):
        raise TypeError(f"stargan_generator: the label must be a tensor (b, {c_dim}), got {type(c).__name__}")
    if c.dim() == 1 or not c.is_floating_point():
        raise ShapeMismatch(f"stargan_generator: the label has shape {tuple(c.shape)} and dtype {c.dtype}; it "
                            f"needs one-hot or multi-hot float rows (b, {c_dim}): turn class indices into "
                            f"rows with one_hot(domain, {c_dim})")
    if c.dim() != 2 or c.shape[1] != c_dim:
        raise ShapeMismatch(f"stargan_generator: the label has shape {tuple(c.shape)} but c_dim is {c_dim}; "
                            f"give rows of length {c_dim} or change `c_dim` to {c.shape[-1]}")
    if c.shape[0] != x.shape[0]:
        raise ShapeMismatch(f"stargan_generator: {c.shape[0]} labels for {x.shape[0]} images; "
                            f"give one label row per image")


class StarGANGeneratorParams(Params):
    in_shape: ImageShape = Field(description="image shape [c, h, w] (input and output); h and w divisible by "
                                             "2 ** n_downsampling")
    c_dim: PositiveInt = Field(description="label width k: the number of domains (one-hot labels) or of binary "
                                           "attributes (multi-hot labels), e.g. 5 for the paper's CelebA setting")
    width: PositiveInt = Field(default=64, description="channels of the first conv; each downsampling doubles "
                                                        "them. 64 in the paper, 16-32 on a CPU")
    n_blocks: int = Field(default=6, ge=0, description="residual blocks at the bottleneck: 6 in the paper, "
                                                        "2-3 for 32 px images on a CPU")
    n_downsampling: int = Field(default=2, ge=0, description="stride-2 convs before the blocks (and transposed "
                                                              "convs after them); 2 in the paper")
    norm: Norm = Field(default="instance", description="instance (the paper, with learnt scale and shift), "
                                                        "batch or none; after every conv but the output conv")
    out_activation: OutActivation = Field(default="tanh", description="tanh (data in [-1, 1], the paper), "
                                                                       "sigmoid ([0, 1]) or none")
    condition: Condition = Field(default="concat", description="how c reaches G: concat (the paper: replicated "
                                                                "and concatenated to the image) or adain (every "
                                                                "instance norm's scale and shift computed from c)")

    @model_validator(mode="after")
    def _fits(self):
        bottleneck_size(self.in_shape, self.n_downsampling)
        if self.condition == "adain" and self.norm != "instance":
            raise ValueError(f"condition: adain modulates the instance norms, but norm is {self.norm!r}; "
                             f"set norm: instance or condition: concat")
        return self


class ConditionalInstanceNorm(nn.Module):
    """h (b n h w), c (b k) -> IN(h) * (1 + W_s c) + W_b c: instance norm whose scale and shift come from c."""

    def __init__(self, channels: int, c_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
        self.scale = nn.Linear(c_dim, channels, bias=False)  # default init: U(+-1/sqrt(k)), so labels differ at once
        self.shift = nn.Linear(c_dim, channels, bias=False)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.norm(h) * (1 + self.scale(c))[:, :, None, None] + self.shift(c)[:, :, None, None]


def norm_layer(norm: str, channels: int, c_dim: int | None) -> nn.Module:
    """The norm after a conv: label-conditioned when c_dim is given (condition: adain), else make_norm's."""
    return ConditionalInstanceNorm(channels, c_dim) if c_dim else make_norm(norm, channels)


def run_layers(layers: nn.Module, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """h through each layer in turn, handing c to the layers that take it (conditional norms, blocks)."""
    for layer in layers:
        h = layer(h, c) if isinstance(layer, (ConditionalInstanceNorm, ResidualBlock)) else layer(h)
    return h


class ResidualBlock(nn.Module):
    """x (b c h w) -> x + f(x) (b c h w), f = [conv 3x3, norm, ReLU, conv 3x3, norm], zero padding."""

    def __init__(self, channels: int, norm: str, c_dim: int | None = None):
        super().__init__()
        bias = norm == "none"  # a bias before a norm is subtracted away again
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias), norm_layer(norm, channels, c_dim), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias), norm_layer(norm, channels, c_dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return x + run_layers(self.body, x, c)


class StarGANGenerator(nn.Module):
    """x (b c h w), c (b k) -> G(x, c) (b c h w): x translated to the domain (or attributes) c.

    ``c_dim`` is k; ``stages`` lists (name, channels, h, w) of every map, as in the paper's table;
    ``condition`` says how c enters (module docstring).
    """

    def __init__(self, *, in_shape: Sequence[int], c_dim: int, width: int = 64, n_blocks: int = 6,
                 n_downsampling: int = 2, norm: str = "instance", out_activation: str = "tanh",
                 condition: str = "concat"):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.c_dim = int(c_dim)
        self.condition = condition
        bh, bw = bottleneck_size(self.in_shape, n_downsampling)
        c_img, h, w = self.in_shape
        bias = norm == "none"
        label_channels = self.c_dim if condition == "concat" else 0
        norm_c_dim = self.c_dim if condition == "adain" else None

        layers: list[nn.Module] = [
            nn.Conv2d(c_img + label_channels, width, STEM_KERNEL, padding=STEM_PADDING, bias=bias),
            norm_layer(norm, width, norm_c_dim), nn.ReLU()]
        self.stages = [("stem", width, h, w)]
        c = width
        for _ in range(n_downsampling):
            layers += [nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=bias), norm_layer(norm, 2 * c, norm_c_dim),
                       nn.ReLU()]
            c, h, w = 2 * c, h // 2, w // 2
            self.stages.append(("down", c, h, w))
        layers += [ResidualBlock(c, norm, norm_c_dim) for _ in range(n_blocks)]
        self.stages += [("residual", c, bh, bw)] * n_blocks
        for _ in range(n_downsampling):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=bias), norm_layer(norm, c // 2, norm_c_dim),
                       nn.ReLU()]
            c, h, w = c // 2, h * 2, w * 2
            self.stages.append(("up", c, h, w))
        layers += [nn.Conv2d(c, c_img, STEM_KERNEL, padding=STEM_PADDING, bias=False), make_out_activation(out_activation)]
        self.stages.append(("out", c_img, h, w))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        check_shape(x, self.in_shape, what="stargan_generator 'in_shape'", setting="in_shape")
        check_label(c, x, self.c_dim)
        c = c.to(x.dtype)
        if self.condition == "concat":
            return self.net(torch.cat([x, tile_label(c, x)], dim=1))
        return run_layers(self.net, x, c)
