"""Progressive GAN generator and discriminator (Karras et al., ICLR 2018, table 2), built to grow.

Axis legend: b batch, c channels (image channels c_img), h w spatial, d latent; r the current
resolution, H the full one.

Sizes: the full image shape [c, H, H] is G's ``out_shape`` / D's ``in_shape``, which a spec may
leave to the data (``lvmgraph.data.fill``; the stage plan must then end at the data's size, which
``stage_plan_problems`` checks), and the widths per level are a list or ``WidthRule``, the paper's
nf(r) = min(fmap_base / (r / 2), fmap_max), so one spec fits any image size.

Both networks are built at full size, one level per resolution 4, 8, ..., H, and keep their
stage in two persistent buffers, ``resolution`` and ``alpha`` (the full resolution and 1 until a
stage plan sets them). They implement the trainer's ``Growable`` protocol: ``set_stage``,
``stage_parameters`` and ``resolutions``. Images always cross their boundary at full size, as in
the paper's code: the generator's r x r output is repeated up to H x H, the discriminator
averages its H x H input down to r x r, so shapes never change while the network grows.

Fade-in (paper figure 2): during a stage's fade-in the newest level's output is blended with the
previous level's, alpha from 0 to 1:

    G: img = lerp(upsample(toRGB_{r/2}(h_{r/2})), toRGB_r(block_r(h_{r/2})), alpha)
    D: h   = lerp(fromRGB_{r/2}(avgpool(x_r)), block_r(fromRGB_r(x_r)), alpha)
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Sequence, Union

import torch
from pydantic import Discriminator, Field, PositiveInt, Tag, model_validator
from torch import nn

from lvmgraph import Params, ShapeMismatch, check_shape, from_data

from .layers import (EqualizedConv2d, EqualizedLinear, PixelNorm, downsample_to, leaky, minibatch_stddev,
                     pixel_norm, upsample2, upsample_to)

Shape = Annotated[list[PositiveInt], Field(min_length=1)]
ImageShape = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]
Widths = Annotated[list[PositiveInt], Field(min_length=1)]
FIRST = 4  # the first level's resolution
IMAGE_HELP = ("full image shape [c, H, H], H a power of 2 >= 4 (e.g. [1, 32, 32]); unset: the data's images' shape, "
              "so the network grows to the data's size (the stage plan must end there)")


class WidthRule(Params):
    """The paper's widths (its code's ``nf``): at resolution r, min(fmap_base / (r / 2), fmap_max)
    feature maps, at least fmap_min, i.e. fmap_max up to where the halving starts, then halved at
    every doubling."""

    fmap_base: PositiveInt = Field(8192, description="width scale: fmap_base / (r / 2) feature maps at resolution r "
                                                     "before the caps (the paper: 8192)")
    fmap_max: PositiveInt = Field(512, description="the most feature maps at any resolution (the paper: 512)")
    fmap_min: PositiveInt = Field(1, description="the fewest feature maps at any resolution")

    def widths(self, resolutions: Sequence[int]) -> list[int]:
        return [max(self.fmap_min, min(self.fmap_base * 2 // r, self.fmap_max)) for r in resolutions]


def _channels_kind(value) -> str:  # a mapping is a rule, anything else must be a list (one error, not two)
    return "rule" if isinstance(value, (dict, WidthRule)) else "list"


Channels = Annotated[Union[Annotated[Widths, Tag("list")], Annotated[WidthRule, Tag("rule")]],
                     Discriminator(_channels_kind)]
CHANNELS_HELP = ("feature maps per resolution 4, 8, ..., H: a list with one entry each (smallest resolution "
                 "first), or a rule {fmap_base, fmap_max, fmap_min} giving min(fmap_base / (r / 2), fmap_max) "
                 "at resolution r, at least fmap_min, so the widths follow the image size (default {}: the "
                 "rule with the paper's fmap_base 8192, fmap_max 512, fmap_min 1: 512 up to 32 px, halved at "
                 "every doubling after)")


def ladder(image_shape: Sequence[int], channels: Sequence[int] | WidthRule | dict, setting: str) -> tuple[int, ...]:
    """The resolutions 4, 8, ..., H of a square image shape [c, H, H], one per entry of ``channels``
    when it is a list; ShapeMismatch naming the setting and the fix otherwise."""
    _, h, w = (int(s) for s in image_shape)
    if h != w or h < FIRST or h & (h - 1):
        raise ShapeMismatch(f"{setting} {list(image_shape)}: images must be square with a side that is a power of "
                            f"2 and at least {FIRST} (e.g. [1, 32, 32]); pad or resize the data (data.pad_to, "
                            f"data.size)")
    sizes = tuple(FIRST * 2 ** i for i in range(int(math.log2(h // FIRST)) + 1))
    if not isinstance(channels, (WidthRule, dict)) and len(channels) != len(sizes):
        raise ShapeMismatch(f"channels has {len(channels)} entries but {setting} {list(image_shape)} needs "
                            f"{len(sizes)}, one per resolution {', '.join(map(str, sizes))}; or give a rule "
                            f"{{fmap_base: ..., fmap_max: ...}} that fits any size")
    return sizes


def widths_at(channels: Sequence[int] | WidthRule | dict, resolutions: Sequence[int]) -> list[int]:
    """Feature maps per resolution: the list as given, or the rule applied."""
    if isinstance(channels, dict):
        channels = WidthRule(**channels)
    return channels.widths(resolutions) if isinstance(channels, WidthRule) else [int(c) for c in channels]


def image_shape_of(shape: Sequence[int] | None, setting: str) -> tuple[int, ...]:
    if shape is None:  # a spec fills it from the data (lvmgraph.data.fill); Python callers give it
        raise ValueError(f"{setting}: the full image shape [c, H, H] is needed, e.g. [1, 32, 32]")
    return tuple(int(s) for s in shape)


class _Growing(nn.Module):
    """The stage state and the ``Growable`` protocol shared by both networks."""

    def _init_stages(self, resolutions: tuple[int, ...]) -> None:
        self.resolutions = resolutions
        self.full = resolutions[-1]
        # buffers: saved with the weights, so a checkpoint samples at the stage it reached
        self.register_buffer("resolution", torch.tensor(self.full, dtype=torch.long))
        self.register_buffer("alpha", torch.tensor(1.0))

    def set_stage(self, resolution: int, alpha: float) -> None:
        if resolution not in self.resolutions:
            raise ValueError(f"resolution {resolution} is not one of {list(self.resolutions)}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.resolution.fill_(int(resolution))
        self.alpha.fill_(float(alpha))

    def stage_parameters(self, resolution: int) -> list[nn.Parameter]:
        """The parameters of every level up to ``resolution`` (what a stage there trains)."""
        top = self.resolutions.index(resolution)
        return [p for level in range(top + 1) for p in self.level_parameters(level)]

    def level_parameters(self, level: int) -> list[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stage(self) -> tuple[int, float]:
        """(level index, alpha) of the current stage; alpha only matters above level 0."""
        level = self.resolutions.index(int(self.resolution))
        return level, (float(self.alpha) if level > 0 else 1.0)


# ----------------------------------------------------------------------------- generator

class GeneratorParams(Params):
    in_shape: Shape = Field(description="per-sample shape of the latent input, e.g. [128] (the paper: [512])")
    out_shape: ImageShape | None = from_data("image_shape", description=IMAGE_HELP)
    channels: Channels = Field(default_factory=WidthRule, description=CHANNELS_HELP)
    normalize_latent: bool = Field(True, description="pixel-normalise z before the first layer (the paper's code)")
    out_activation: Literal["none", "tanh"] = Field("none", description="none (the paper: a linear toRGB) or tanh")

    @model_validator(mode="after")
    def _fits(self):
        if self.out_shape is not None:
            ladder(self.out_shape, self.channels, "out_shape")
        return self


class ProGANGenerator(_Growing):
    """z (b, *in_shape) -> x (b c H W), drawn at the current stage's resolution r and repeated up to H.

    Level 0 (4x4): pixel-normalised z -> dense to 4x4 maps (gain sqrt(2)/4, as the paper's code) ->
    LeakyReLU -> pixel norm -> conv 3x3 -> LeakyReLU -> pixel norm. Each further level: double
    (nearest) -> two conv 3x3, each followed by LeakyReLU 0.2 and pixel norm. toRGB: a 1x1 conv
    per level (gain 1, linear). Every layer has an equalised learning rate.
    """

    def __init__(self, *, in_shape: Sequence[int], out_shape: Sequence[int], channels: Sequence[int] | WidthRule
                 = WidthRule(), normalize_latent: bool = True, out_activation: str = "none"):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = image_shape_of(out_shape, "out_shape")
        self._init_stages(ladder(self.out_shape, channels, "out_shape"))
        self.normalize_latent = normalize_latent
        widths = widths_at(channels, self.resolutions)
        c_img = self.out_shape[0]
        self.first = EqualizedLinear(math.prod(self.in_shape), widths[0] * FIRST * FIRST, gain=math.sqrt(2) / 4)
        blocks = [nn.Sequential(EqualizedConv2d(widths[0], widths[0], 3), nn.LeakyReLU(0.2), PixelNorm())]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks.append(nn.Sequential(
                EqualizedConv2d(c_in, c_out, 3), nn.LeakyReLU(0.2), PixelNorm(),
                EqualizedConv2d(c_out, c_out, 3), nn.LeakyReLU(0.2), PixelNorm()))
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList(EqualizedConv2d(c, c_img, 1, gain=1.0) for c in widths)
        self.widths = widths
        self.out_act = nn.Tanh() if out_activation == "tanh" else nn.Identity()

    def level_parameters(self, level: int) -> list[nn.Parameter]:
        first = list(self.first.parameters()) if level == 0 else []
        return first + list(self.blocks[level].parameters()) + list(self.to_rgb[level].parameters())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_shape(z, self.in_shape, what="progan_generator 'in_shape'", setting="in_shape")
        level, alpha = self._stage()
        x = z.flatten(1)
        if self.normalize_latent:
            x = pixel_norm(x)
        h = pixel_norm(leaky(self.first(x).reshape(x.shape[0], self.widths[0], FIRST, FIRST)))
        h = self.blocks[0](h)
        old = None
        for i in range(1, level + 1):
            if i == level and alpha < 1.0:  # fading in: the previous level's picture, doubled
                old = upsample2(self.to_rgb[i - 1](h))
            h = self.blocks[i](upsample2(h))
        img = self.to_rgb[level](h)
        if old is not None:
            img = torch.lerp(old, img, alpha)
        return upsample_to(self.out_act(img), self.full)


# ----------------------------------------------------------------------------- discriminator

class DiscriminatorParams(Params):
    in_shape: ImageShape | None = from_data("image_shape", description=IMAGE_HELP)
    channels: Channels = Field(default_factory=WidthRule, description=CHANNELS_HELP)
    mbstd_group: int = Field(4, ge=0, description="group size of the minibatch standard deviation feature before "
                                                  "the last conv (the paper: 4); 0 leaves it out")

    @model_validator(mode="after")
    def _fits(self):
        if self.in_shape is not None:
            ladder(self.in_shape, self.channels, "in_shape")
        return self


class ProGANDiscriminator(_Growing):
    """x (b c H W) -> score (b, 1): a Wasserstein critic's raw score, averaged down to the stage's r x r.

    fromRGB per level: 1x1 conv + LeakyReLU. Each level above 4x4: two conv 3x3 with LeakyReLU 0.2
    (the second to the next level's width), then 2x2 average pooling. Level 0 (4x4): minibatch
    standard deviation (one more feature map) -> conv 3x3 -> LeakyReLU -> dense to the 4x4 width ->
    LeakyReLU -> dense to 1 (gain 1). No normalisation (a WGAN-GP critic); equalised learning rate.
    """

    def __init__(self, *, in_shape: Sequence[int], channels: Sequence[int] | WidthRule = WidthRule(),
                 mbstd_group: int = 4):
        super().__init__()
        self.in_shape = image_shape_of(in_shape, "in_shape")
        self._init_stages(ladder(self.in_shape, channels, "in_shape"))
        self.mbstd_group = int(mbstd_group)
        widths = widths_at(channels, self.resolutions)
        c_img = self.in_shape[0]
        self.from_rgb = nn.ModuleList(nn.Sequential(EqualizedConv2d(c_img, c, 1), nn.LeakyReLU(0.2)) for c in widths)
        blocks = [nn.Sequential(  # level 0 (4x4), applied after the minibatch-stddev feature
            EqualizedConv2d(widths[0] + (1 if self.mbstd_group else 0), widths[0], 3), nn.LeakyReLU(0.2),
            nn.Flatten(), EqualizedLinear(widths[0] * FIRST * FIRST, widths[0]), nn.LeakyReLU(0.2),
            EqualizedLinear(widths[0], 1, gain=1.0))]
        for c_low, c in zip(widths[:-1], widths[1:]):
            blocks.append(nn.Sequential(
                EqualizedConv2d(c, c, 3), nn.LeakyReLU(0.2),
                EqualizedConv2d(c, c_low, 3), nn.LeakyReLU(0.2), nn.AvgPool2d(2)))
        self.blocks = nn.ModuleList(blocks)
        self.widths = widths

    def level_parameters(self, level: int) -> list[nn.Parameter]:
        return list(self.from_rgb[level].parameters()) + list(self.blocks[level].parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, self.in_shape, what="progan_discriminator 'in_shape'", setting="in_shape")
        level, alpha = self._stage()
        x_r = downsample_to(x, self.resolutions[level])
        h = self.from_rgb[level](x_r)
        for i in range(level, 0, -1):
            h = self.blocks[i](h)
            if i == level and alpha < 1.0:  # fading in: the previous level's view of the halved image
                h = torch.lerp(self.from_rgb[i - 1](downsample_to(x_r, x_r.shape[-1] // 2)), h, alpha)
        if self.mbstd_group:
            h = minibatch_stddev(h, self.mbstd_group)
        return self.blocks[0](h)
