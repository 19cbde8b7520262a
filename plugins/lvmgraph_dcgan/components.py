"""DCGAN generator and discriminator (Radford, Metz & Chintala, ICLR 2016).

Axis legend: b batch, c channels, h w spatial, d latent / flattened features.

The paper's architecture guidelines, as built here:

- no pooling: strided convolutions in the discriminator, fractionally-strided (transposed)
  convolutions in the generator, 4x4 kernels with stride 2 and padding 1, so each layer
  halves (doubles) h and w;
- batch norm in both networks, except on the generator's output and the discriminator's input layer;
- ReLU in the generator with tanh on the output; LeakyReLU (slope 0.2) in the discriminator;
- the generator starts with a "project and reshape" linear layer from z to a small feature
  map; the discriminator ends with a linear logit on the flattened last feature map;
- every conv / linear weight drawn from N(0, 0.02), batch-norm scales from N(1, 0.02),
  biases 0 (``dcgan_init``, applied at construction, after the seeded construction RNG).

Sizes are parameterised by ``out_shape`` / ``in_shape`` and ``channels``: 32x32 with three
layers (4 -> 8 -> 16 -> 32), 28x28 with two (7 -> 14 -> 28), 8x8 digits with two (2 -> 4 -> 8).

The discriminator can return named outputs from one shared trunk (``heads``, optionally
behind a per-head hidden layer, ``head_hidden``) and the trunk's features (``features``), so
InfoGAN's Q network (or an auxiliary classifier) shares the discriminator's convolutions.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Sequence

import torch
from einops import rearrange
from pydantic import Field, PositiveInt, field_validator, model_validator
from torch import nn
from torch.nn.utils import parametrize

from lvmgraph import Params, check_shape, hookimpl

Shape = Annotated[list[PositiveInt], Field(min_length=1)]
ImageShape = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]
Widths = Annotated[list[PositiveInt], Field(min_length=1)]
OutActivation = Literal["tanh", "sigmoid", "none"]

KERNEL, STRIDE, PADDING = 4, 2, 1  # each (transposed) conv halves (doubles) h and w
LEAKY_SLOPE = 0.2
INIT_STD = 0.02


# ----------------------------------------------------------------------------- initialisation

def _init_weight(module: nn.Module) -> torch.Tensor | None:
    """The tensor holding a layer's weights: the unnormalised original under spectral norm."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return getattr(module, "weight", None)


@torch.no_grad()
def dcgan_init(net: nn.Module, std: float = INIT_STD) -> nn.Module:
    """In place: conv/linear weights ~ N(0, std), batch-norm weights ~ N(1, std), all biases 0.

    Uses torch's global RNG (seeded per run before components are built). Layers under
    spectral norm get their original weight initialised; their power-iteration vectors are
    then re-estimated so the first forward pass already divides by the right norm.
    """
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            _init_weight(m).normal_(0.0, std)
            if m.bias is not None:
                m.bias.zero_()
            if parametrize.is_parametrized(m, "weight"):
                _refresh_spectral_norm(m)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.weight.normal_(1.0, std)
            m.bias.zero_()
    return net


def _refresh_spectral_norm(module: nn.Module, iterations: int = 15) -> None:
    """Re-run spectral norm's power iteration on the (re-initialised) original weight."""
    for p in module.parametrizations.weight:
        if hasattr(p, "_power_method"):  # torch.nn.utils.parametrizations._SpectralNorm
            p._power_method(p._reshape_weight_to_matrix(module.parametrizations.weight.original), iterations)


def _sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


# ----------------------------------------------------------------------------- sizes

def start_size(out_shape: Sequence[int], n_layers: int) -> tuple[int, int]:
    """(h0, w0) of the generator's first feature map, or ValueError naming the fix."""
    if len(out_shape) != 3:
        raise ValueError(f"out_shape must be an image shape [c, h, w], got {list(out_shape)}")
    _, h, w = (int(s) for s in out_shape)
    factor = 2 ** n_layers
    if h % factor or w % factor:
        fits = [n for n in range(1, n_layers + 1) if h % 2 ** n == 0 and w % 2 ** n == 0]
        fix = (f"use {max(fits)} entr{'y' if max(fits) == 1 else 'ies'} in `channels` or pad the data"
               if fits else "pad the data to an even size (data.pad_to)")
        raise ValueError(f"out_shape {list(out_shape)}: h and w must be divisible by {factor} "
                         f"(2 ** len(channels) for {n_layers} transposed convs); {fix}")
    return h // factor, w // factor


def trunk_size(in_shape: Sequence[int], n_layers: int) -> tuple[int, int]:
    """(h, w) after ``n_layers`` stride-2 convs, or ValueError naming the fix."""
    if len(in_shape) != 3:
        raise ValueError(f"in_shape must be an image shape [c, h, w], got {list(in_shape)}")
    _, h, w = (int(s) for s in in_shape)
    for _ in range(n_layers):
        h, w = (h + 2 * PADDING - KERNEL) // STRIDE + 1, (w + 2 * PADDING - KERNEL) // STRIDE + 1
    if h < 1 or w < 1:
        raise ValueError(f"in_shape {list(in_shape)} is too small for {n_layers} stride-2 convs "
                         f"(one per entry of `channels`); use fewer channels")
    return h, w


# ----------------------------------------------------------------------------- generator

class GeneratorParams(Params):
    in_shape: Shape = Field(description="per-sample shape of the generator input, e.g. [100] "
                                        "(InfoGAN: noise and codes concatenated, e.g. [74])")
    out_shape: ImageShape = Field(description="image shape [c, h, w]; h and w divisible by 2 ** len(channels)")
    channels: Widths = Field(default=[256, 128, 64],
                             description="channels entering each stride-2 transposed conv, widest first; "
                                         "the first is the projected map's depth. [256, 128, 64] turns "
                                         "4x4 into 32x32; [128, 64] turns 7x7 into 28x28")
    hidden: list[PositiveInt] = Field(default=[], description="fully connected layers (Linear-BN-ReLU) before "
                                                              "the projection (InfoGAN's MNIST G uses [1024])")
    batch_norm: bool = Field(default=True, description="batch norm after every layer but the output")
    out_activation: OutActivation = Field(default="tanh", description="tanh (data in [-1, 1]), sigmoid ([0, 1]) "
                                                                       "or none")

    @model_validator(mode="after")
    def _fits(self):
        start_size(self.out_shape, len(self.channels))
        return self


class DCGANGenerator(nn.Module):
    """z (b, *in_shape) -> x (b c h w): project-and-reshape, then 4x4 stride-2 transposed convs.

    [Linear-BN-ReLU per ``hidden``] -> Linear to (channels[0], h0, w0) -> BN -> ReLU ->
    one transposed conv per entry of ``channels`` (BN + ReLU between them, none after the
    last, which makes the ``c`` image channels) -> tanh. DCGAN init at construction.
    """

    def __init__(self, *, in_shape: Sequence[int], out_shape: Sequence[int],
                 channels: Sequence[int] = (256, 128, 64), hidden: Sequence[int] = (),
                 batch_norm: bool = True, out_activation: str = "tanh"):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        h0, w0 = start_size(self.out_shape, len(channels))
        self.start_shape = (int(channels[0]), h0, w0)
        fc: list[nn.Module] = []
        width = math.prod(self.in_shape)
        for f in hidden:  # a layer followed by batch norm needs no bias
            fc += [nn.Linear(width, f, bias=not batch_norm), *([nn.BatchNorm1d(f)] if batch_norm else []), nn.ReLU()]
            width = f
        fc.append(nn.Linear(width, math.prod(self.start_shape), bias=not batch_norm))
        self.project = nn.Sequential(*fc)
        self.project_act = nn.Sequential(*([nn.BatchNorm2d(channels[0])] if batch_norm else []), nn.ReLU())
        layers: list[nn.Module] = []
        widths = [int(c) for c in channels] + [self.out_shape[0]]
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(channels) - 1
            layers.append(nn.ConvTranspose2d(c_in, c_out, KERNEL, STRIDE, PADDING, bias=last or not batch_norm))
            if not last:  # no batch norm on the output layer (the paper's guideline)
                layers += [*([nn.BatchNorm2d(c_out)] if batch_norm else []), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out_act = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "none": nn.Identity()}[out_activation]
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_shape(z, self.in_shape, what="dcgan_generator 'in_shape'", setting="in_shape")
        c, h, w = self.start_shape
        x = rearrange(self.project(z.flatten(1)), "b (c h w) -> b c h w", c=c, h=h, w=w)
        return self.out_act(self.net(self.project_act(x)))


# ----------------------------------------------------------------------------- discriminator

class DiscriminatorParams(Params):
    in_shape: ImageShape = Field(description="image shape [c, h, w]")
    channels: Widths = Field(default=[64, 128, 256],
                             description="output channels of each stride-2 conv (each halves h and w); "
                                         "[64, 128, 256] takes 32x32 to 4x4, [64, 128] takes 28x28 to 7x7")
    hidden: list[PositiveInt] = Field(default=[], description="fully connected layers (Linear-BN-LeakyReLU) on "
                                                              "the flattened conv features, shared by all heads "
                                                              "(InfoGAN's MNIST D uses [1024])")
    heads: dict[str, Shape] | None = Field(
        default=None, description="named outputs of the shared trunk, e.g. {logit: [1], c_logits: [10], "
                                  "u_mean: [2]}, read as discriminator(x).c_logits; unset: one logit (b, 1)")
    head_hidden: dict[str, PositiveInt] = Field(
        default={}, description="heads that get their own Linear-BN-LeakyReLU layer of this width before "
                                "their output (InfoGAN's Q: {c_logits: 128, u_mean: 128})")
    features: bool = Field(default=False, description="also return the shared trunk's features (b, d) as "
                                                      "output 'features' (for a separate head component)")
    batch_norm: bool = Field(default=True, description="batch norm after every layer except the input conv")
    spectral_norm: bool = Field(default=False, description="spectral normalisation on every conv and linear layer")

    @field_validator("heads")
    @classmethod
    def _identifier_names(cls, heads):
        if heads is None:
            return heads
        bad = [name for name in heads if not name.isidentifier() or name == "features"]
        if bad:
            raise ValueError(f"head names must be identifiers other than 'features' "
                             f"(read as discriminator(x).name): {bad}")
        return heads

    @model_validator(mode="after")
    def _consistent(self):
        trunk_size(self.in_shape, len(self.channels))
        names = set(self.heads or {"logit": [1]})
        unknown = sorted(set(self.head_hidden) - names)
        if unknown:
            raise ValueError(f"head_hidden names {unknown}, which are not heads; heads: {sorted(names)}")
        return self


class DCGANDiscriminator(nn.Module):
    """x (b c h w) -> logit (b, 1), or {head: (b, *shape)} (+ 'features' (b, d)) with ``heads`` / ``features``.

    Stride-2 4x4 convs with LeakyReLU 0.2 and batch norm (none on the input layer) ->
    flatten -> [Linear-BN-LeakyReLU per ``hidden``] = the shared trunk -> one linear layer
    per head (behind a Linear-BN-LeakyReLU of width ``head_hidden[name]`` if given).
    DCGAN init at construction; ``spectral_norm`` wraps every conv and linear layer.
    """

    def __init__(self, *, in_shape: Sequence[int], channels: Sequence[int] = (64, 128, 256),
                 hidden: Sequence[int] = (), heads: dict[str, Sequence[int]] | None = None,
                 head_hidden: dict[str, int] | None = None, features: bool = False,
                 batch_norm: bool = True, spectral_norm: bool = False):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.named = heads is not None or features
        self.return_features = features
        head_shapes = heads if heads is not None else {"logit": [1]}
        self.head_shapes = {name: tuple(int(s) for s in shape) for name, shape in head_shapes.items()}
        head_hidden = dict(head_hidden or {})
        unknown = sorted(set(head_hidden) - set(self.head_shapes))
        if unknown:
            raise ValueError(f"head_hidden names {unknown}, which are not heads; heads: {sorted(self.head_shapes)}")

        h, w = trunk_size(self.in_shape, len(channels))
        c = self.in_shape[0]
        convs: list[nn.Module] = []
        for i, c_out in enumerate(channels):
            bn = batch_norm and i > 0  # never on the input layer
            convs.append(_sn(nn.Conv2d(c, c_out, KERNEL, STRIDE, PADDING, bias=not bn), spectral_norm))
            convs += [*([nn.BatchNorm2d(c_out)] if bn else []), nn.LeakyReLU(LEAKY_SLOPE)]
            c = int(c_out)
        self.convs = nn.Sequential(*convs)
        width = c * h * w
        fc: list[nn.Module] = []
        for f in hidden:
            fc += self._dense(width, f, batch_norm, spectral_norm)
            width = f
        self.fc = nn.Sequential(*fc)
        self.feature_dim = width
        self.heads = nn.ModuleDict()
        for name, shape in self.head_shapes.items():
            layers, w_in = [], width
            if name in head_hidden:
                layers += self._dense(width, head_hidden[name], batch_norm, spectral_norm)
                w_in = head_hidden[name]
            layers.append(_sn(nn.Linear(w_in, math.prod(shape)), spectral_norm))
            self.heads[name] = nn.Sequential(*layers)
        dcgan_init(self)

    @staticmethod
    def _dense(w_in: int, w_out: int, batch_norm: bool, spectral_norm: bool) -> list[nn.Module]:
        return [_sn(nn.Linear(w_in, w_out, bias=not batch_norm), spectral_norm),
                *([nn.BatchNorm1d(w_out)] if batch_norm else []), nn.LeakyReLU(LEAKY_SLOPE)]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """x (b c h w) -> shared features (b d), d = ``feature_dim``."""
        check_shape(x, self.in_shape, what="dcgan_discriminator 'in_shape'", setting="in_shape")
        return self.fc(self.convs(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        h = self.trunk(x)
        out = {name: head(h).reshape(x.shape[0], *self.head_shapes[name]) for name, head in self.heads.items()}
        if not self.named:
            return out["logit"]
        if self.return_features:
            out["features"] = h
        return out


@hookimpl
def register_components(register):
    register("dcgan_generator", DCGANGenerator, params=GeneratorParams)
    register("dcgan_discriminator", DCGANDiscriminator, params=DiscriminatorParams)
