"""PuzzleGAN's generator: a part encoder shared by all patches, then a mask branch and an image branch.

Axis legend: b batch, K patches per image, c channels, p patch side, d part features,
z noise dimensions, h w image size, C_i decoder widths, s_i = h / 2^(n - i) decoder map sides.

Lee et al. (ECCV 2018) split the generator into a *part encoding network* (one encoder with
shared weights applied to every patch), a *mask prediction network* that decodes the combined
part features into a mask of where the patches belong, and an *image generation network* that
decodes the same features plus noise z into the complete image, reading the mask network's
feature maps at every resolution. As built here:

    part_encoder:      patches (b K c p p) -> rearrange to ((b K) c p p) -> stride-2 4x4 convs
                       (LeakyReLU 0.2, batch norm after the first) -> flatten -> linear -> (b K d)
                       -> sum over K (the authors' code sums the part encodings; ``combine:
                       mean`` or ``max`` are the other order-invariant choices) -> (b d)
    puzzle_generator:  mask branch   d -> linear -> (C_0 s_0 s_0) -> up-convs -> 1 channel: mask logits
                       image branch  [d, z] -> linear -> (C_0 s_0 s_0), then before every up-conv
                       the mask branch's map of the same size is concatenated -> c channels, tanh

Up-convs are DCGAN's 4x4 stride-2 transposed convs (each doubles h and w) with batch norm and
ReLU. The mask branch does not see z: where the parts go is a function of the parts alone,
while z only varies the rest of the image. Every permutation of the K patches gives the same
output (the sum is order-invariant), and K need not be fixed: the encoder takes any number of
patches of its ``patch_shape``. The authors' encoders take patches resized to the image size
and feed U-net skips from every encoder level; at 8-12 px patches there is nothing to skip
spatially (the patch positions are exactly what is unknown), so the parts meet the decoders
only through the combined feature vector.
"""
from __future__ import annotations

from typing import Annotated, Literal, Sequence

import torch
from einops import rearrange
from lvmgraph_dcgan.components import dcgan_init
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from lvmgraph import Params, ShapeMismatch, check_shape

ImageShape = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]
Widths = Annotated[list[PositiveInt], Field(min_length=1)]
Combine = Literal["sum", "mean", "max"]
OutActivation = Literal["tanh", "sigmoid", "none"]

KERNEL, STRIDE, PADDING = 4, 2, 1
LEAKY_SLOPE = 0.2


def encoder_map_size(patch_shape: Sequence[int], n_convs: int) -> int:
    """Side of the encoder's last map for square p x p patches, or ShapeMismatch naming the fix."""
    _, p, q = (int(s) for s in patch_shape)
    if p != q:
        raise ShapeMismatch(f"patch_shape {list(patch_shape)}: patches must be square (p x p)")
    side = p
    for i in range(n_convs):
        side = (side + 2 * PADDING - KERNEL) // STRIDE + 1
        if side < 1:
            raise ShapeMismatch(f"patch_shape {list(patch_shape)} is too small for {n_convs} stride-2 convs "
                                f"(one per entry of `channels`); give `channels` at most {i} entries")
    return side


def decoder_start(out_shape: Sequence[int], n_ups: int) -> int:
    """s_0, the side of the decoders' first map, or ShapeMismatch naming the fix."""
    _, h, w = (int(s) for s in out_shape)
    factor = 2 ** n_ups
    if h != w or h % factor:
        raise ShapeMismatch(f"out_shape {list(out_shape)}: images must be square with a side divisible by "
                            f"{factor} (2 ** len(channels)); pad the data (data.pad_to) or use fewer channels")
    return h // factor


class PartEncoderParams(Params):
    patch_shape: ImageShape = Field(description="shape of one patch [c, p, p], e.g. [1, 10, 10]")
    features: PositiveInt = Field(default=128, description="d: features per patch and of their combination")
    channels: Widths = Field(default=[32, 64], description="output channels of each stride-2 conv (each halves "
                                                           "the patch side): [32, 64] takes 10 px to 2 px")
    combine: Combine = Field(default="sum", description="how the K part features become one vector: sum (the "
                                                        "authors' code), mean or max; all order-invariant")
    batch_norm: bool = Field(default=True, description="batch norm after every conv but the first")

    @model_validator(mode="after")
    def _fits(self):
        encoder_map_size(self.patch_shape, len(self.channels))
        return self


class PartEncoder(nn.Module):
    """patches (b K c p p) -> (b d): one shared conv encoder per patch, features combined over K."""

    def __init__(self, *, patch_shape: Sequence[int], features: int = 128, channels: Sequence[int] = (32, 64),
                 combine: str = "sum", batch_norm: bool = True):
        super().__init__()
        self.patch_shape = tuple(int(s) for s in patch_shape)
        self.combine = combine
        side = encoder_map_size(self.patch_shape, len(channels))
        layers: list[nn.Module] = []
        c = self.patch_shape[0]
        for i, c_out in enumerate(channels):
            bn = batch_norm and i > 0
            layers += [nn.Conv2d(c, c_out, KERNEL, STRIDE, PADDING, bias=not bn),
                       *([nn.BatchNorm2d(c_out)] if bn else []), nn.LeakyReLU(LEAKY_SLOPE)]
            c = int(c_out)
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(c * side * side, features)
        dcgan_init(self)

    def parts(self, patches: torch.Tensor) -> torch.Tensor:
        """patches (b K c p p) -> per-patch features (b K d), before combining."""
        if patches.dim() != 5:
            raise ShapeMismatch(f"part_encoder expects patches (batch, K, {', '.join(map(str, self.patch_shape))}) "
                                f"but got a tensor of shape {tuple(patches.shape)}")
        b = patches.shape[0]
        flat = rearrange(patches, "b k c p q -> (b k) c p q")
        check_shape(flat, self.patch_shape, what="part_encoder 'patch_shape'", setting="patch_shape")
        feats = self.out(self.convs(flat).flatten(1))
        return rearrange(feats, "(b k) d -> b k d", b=b)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        parts = self.parts(patches)
        if self.combine == "sum":
            return parts.sum(dim=1)
        if self.combine == "mean":
            return parts.mean(dim=1)
        return parts.amax(dim=1)


class PuzzleGeneratorParams(Params):
    in_features: PositiveInt = Field(description="d: width of the combined part features (part_encoder's features)")
    noise_dim: int = Field(default=32, ge=0, description="z: noise dimensions the image branch reads (0: none)")
    out_shape: ImageShape = Field(description="image shape [c, h, w]; square, side divisible by 2 ** len(channels)")
    channels: Widths = Field(default=[128, 64, 32], description="channels entering each up-conv, widest first; "
                                                                "[128, 64, 32] turns 4x4 into 32x32")
    batch_norm: bool = Field(default=True, description="batch norm after every layer but the outputs")
    out_activation: OutActivation = Field(default="tanh", description="of the image: tanh (data in [-1, 1]), "
                                                                      "sigmoid ([0, 1]) or none")

    @model_validator(mode="after")
    def _fits(self):
        decoder_start(self.out_shape, len(self.channels))
        return self


def _norm_relu(c: int, batch_norm: bool) -> list[nn.Module]:
    return [*([nn.BatchNorm2d(c)] if batch_norm else []), nn.ReLU()]


def _up(c_in: int, c_out: int, bias: bool) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, KERNEL, STRIDE, PADDING, bias=bias)


class PuzzleGenerator(nn.Module):
    """features (b d), z (b z) -> {image (b c h w), mask (b 1 h w) in (0, 1), mask_logit (b 1 h w)}.

    See the module docstring: a mask branch from the features alone, and an image branch from
    [features, z] that concatenates the mask branch's map before each of its up-convs.
    """

    def __init__(self, *, in_features: int, out_shape: Sequence[int], noise_dim: int = 32,
                 channels: Sequence[int] = (128, 64, 32), batch_norm: bool = True, out_activation: str = "tanh"):
        super().__init__()
        self.in_features, self.noise_dim = int(in_features), int(noise_dim)
        self.out_shape = tuple(int(s) for s in out_shape)
        widths = [int(c) for c in channels]
        self.start = decoder_start(self.out_shape, len(widths))
        area = self.start ** 2
        bias = not batch_norm
        self.mask_in = nn.Sequential(nn.Linear(self.in_features, widths[0] * area, bias=bias))
        self.image_in = nn.Sequential(nn.Linear(self.in_features + self.noise_dim, widths[0] * area, bias=bias))
        self.mask_in_act = nn.Sequential(*_norm_relu(widths[0], batch_norm))
        self.image_in_act = nn.Sequential(*_norm_relu(widths[0], batch_norm))
        self.mask_ups, self.image_ups = nn.ModuleList(), nn.ModuleList()
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            self.mask_ups.append(nn.Sequential(_up(c_in, c_out, bias), *_norm_relu(c_out, batch_norm)))
            self.image_ups.append(nn.Sequential(_up(2 * c_in, c_out, bias), *_norm_relu(c_out, batch_norm)))
        self.mask_out = _up(widths[-1], 1, True)
        self.image_out = _up(2 * widths[-1], self.out_shape[0], True)
        self.out_act = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "none": nn.Identity()}[out_activation]
        self.widths = widths
        dcgan_init(self)

    def forward(self, features: torch.Tensor, z: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        check_shape(features, (self.in_features,), what="puzzle_generator 'in_features'", setting="in_features")
        b = features.shape[0]
        if self.noise_dim:
            if z is None:
                raise ValueError(f"puzzle_generator has noise_dim={self.noise_dim}: call it as generator(features, z)")
            check_shape(z, (self.noise_dim,), what="puzzle_generator 'noise_dim'", setting="noise_dim")
            image_in = torch.cat([features, z], dim=1)
        elif z is not None:
            raise ValueError("puzzle_generator got z but has noise_dim 0; set noise_dim to z's width")
        else:
            image_in = features
        shape = (b, self.widths[0], self.start, self.start)
        m = self.mask_in_act(self.mask_in(features).reshape(shape))
        g = self.image_in_act(self.image_in(image_in).reshape(shape))
        for mask_up, image_up in zip(self.mask_ups, self.image_ups):
            g = image_up(torch.cat([g, m], dim=1))
            m = mask_up(m)
        logit = self.mask_out(m)
        image = self.out_act(self.image_out(torch.cat([g, m], dim=1)))
        return {"image": image, "mask": torch.sigmoid(logit), "mask_logit": logit}
