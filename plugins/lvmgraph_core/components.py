"""Core neural-network components: an MLP and DCGAN-style convolutional encoder/decoder.

Axis legend: b batch, c channels, h w spatial, d features (flattened), f hidden features.

The trunks (``mlp_stack``, ``ConvDownTrunk``, ``ConvUpTrunk``) are plain modules on flat
vectors or image tensors so other plugins (e.g. the VAE encoders and decoders) can reuse them
and put their own heads on top.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Sequence

import torch
from einops import rearrange
from pydantic import Field, PositiveInt, field_validator, model_validator
from torch import nn

from lvmgraph import Params, check_shape, hookimpl

Activation = Literal["relu", "leaky_relu", "elu", "tanh", "silu"]
OutActivation = Literal["none", "sigmoid", "tanh"]

#: a per-sample shape such as [1, 28, 28] or [2]
Shape = Annotated[list[PositiveInt], Field(min_length=1)]
ImageShape = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]
Widths = Annotated[list[PositiveInt], Field(min_length=1)]

LEAKY_SLOPE = 0.2  # the usual GAN/AAE slope; also used by the conv encoder
KERNEL, STRIDE, PADDING = 4, 2, 1  # each (de)convolution halves (doubles) h and w


# ----------------------------------------------------------------------------- building blocks

def make_activation(name: str) -> nn.Module:
    """Activation name -> a fresh module (``leaky_relu`` uses slope 0.2)."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    if name == "elu":
        return nn.ELU()
    if name == "tanh":
        return nn.Tanh()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown activation {name!r}; choose one of relu, leaky_relu, elu, tanh, silu")


def make_out_activation(name: str) -> nn.Module:
    """Output activation name -> module; ``none`` is the identity (raw logits / means)."""
    if name == "none":
        return nn.Identity()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown out_activation {name!r}; choose one of none, sigmoid, tanh")


def _maybe_spectral_norm(layer: nn.Module, enabled: bool) -> nn.Module:
    # spectral norm bounds each layer's Lipschitz constant (stabilises critics/discriminators)
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


def mlp_stack(*, in_features: int, hidden: Sequence[int], out_features: int,
              activation: str = "relu", batch_norm: bool = False, dropout: float = 0.0,
              spectral_norm: bool = False) -> nn.Sequential:
    """(b d_in) -> (b d_out): Linear [-> BatchNorm] -> activation [-> Dropout] per hidden width, then a Linear."""
    layers: list[nn.Module] = []
    width = in_features
    for f in hidden:
        layers.append(_maybe_spectral_norm(nn.Linear(width, f), spectral_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(f))
        layers.append(make_activation(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = f
    layers.append(_maybe_spectral_norm(nn.Linear(width, out_features), spectral_norm))
    return nn.Sequential(*layers)


def _halved(size: int) -> int:
    """Spatial size after one 4x4, stride-2, padding-1 convolution (floor(size / 2))."""
    return (size + 2 * PADDING - KERNEL) // STRIDE + 1


def downsampled_size(in_shape: Sequence[int], n_layers: int) -> tuple[int, int]:
    """(h, w) after ``n_layers`` halving convs, or raise ValueError naming the fix."""
    if len(in_shape) != 3:
        raise ValueError(f"in_shape must be an image shape [c, h, w], got {list(in_shape)}")
    _, h, w = (int(s) for s in in_shape)
    for _ in range(n_layers):
        h, w = _halved(h), _halved(w)
    if h < 1 or w < 1:
        raise ValueError(
            f"in_shape {list(in_shape)} is too small for {n_layers} stride-2 convolutions "
            f"(one per entry of `channels`); use fewer `channels` or larger images")
    return h, w


class ConvDownTrunk(nn.Module):
    """x (b c h w) -> features (b c' h' w'): stride-2 4x4 convs, each halving h and w, LeakyReLU 0.2.

    ``out_features`` is the flattened feature size c' * h' * w', known at construction.
    """

    def __init__(self, *, in_shape: Sequence[int], channels: Sequence[int],
                 batch_norm: bool = False, spectral_norm: bool = False):
        super().__init__()
        h, w = downsampled_size(in_shape, len(channels))
        c = int(in_shape[0])
        layers: list[nn.Module] = []
        for i, c_out in enumerate(channels):
            layers.append(_maybe_spectral_norm(
                nn.Conv2d(c, c_out, KERNEL, stride=STRIDE, padding=PADDING), spectral_norm))
            # no batch norm on the first conv: it would normalise away the raw pixel statistics
            if batch_norm and i > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(LEAKY_SLOPE))
            c = c_out
        self.net = nn.Sequential(*layers)
        self.out_shape = (c, h, w)
        self.out_features = c * h * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _max_doublings(h: int, w: int) -> int:
    """The largest n with 2**n dividing both h and w."""
    n = 0
    while h % 2 ** (n + 1) == 0 and w % 2 ** (n + 1) == 0:
        n += 1
    return n


def check_upsampling(out_shape: Sequence[int], n_layers: int) -> tuple[int, int]:
    """Return the starting (h0, w0) of an upsampling trunk, or raise ValueError naming the fix."""
    if len(out_shape) != 3:
        raise ValueError(f"out_shape must be an image shape [c, h, w], got {list(out_shape)}")
    _, h, w = (int(s) for s in out_shape)
    factor = 2 ** n_layers
    if h % factor or w % factor:
        fix = f"use `channels` of length {_max_doublings(h, w)} or less, or pad the data"
        if _max_doublings(h, w) == 0:
            fix = "pad the data to an even size or use an mlp decoder"
        raise ValueError(
            f"out_shape {list(out_shape)} needs h and w divisible by {factor} "
            f"(2 ** len(channels), channels {n_layers} long); {fix}")
    return h // factor, w // factor


class ConvUpTrunk(nn.Module):
    """features (b d) -> (b c h w) pre-activation: Linear to (channels[0], h0, w0), then transposed convs.

    One 4x4 stride-2 transposed conv per entry of ``channels`` doubles h and w; the last one
    produces the ``c`` output channels. ReLU (and optional batch norm) between layers, none on the output.
    """

    def __init__(self, *, in_features: int, out_shape: Sequence[int], channels: Sequence[int],
                 batch_norm: bool = False):
        super().__init__()
        c_img = int(out_shape[0])
        h0, w0 = check_upsampling(out_shape, len(channels))
        self.start_shape = (int(channels[0]), h0, w0)
        self.project = nn.Linear(in_features, math.prod(self.start_shape))
        self.project_act = nn.Sequential(
            *([nn.BatchNorm2d(channels[0])] if batch_norm else []), nn.ReLU())
        layers: list[nn.Module] = []
        widths = list(channels) + [c_img]
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.ConvTranspose2d(c_in, c_out, KERNEL, stride=STRIDE, padding=PADDING))
            is_last = i == len(channels) - 1
            if not is_last:
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, h, w = self.start_shape
        x = rearrange(self.project(z), "b (c h w) -> b c h w", c=c, h=h, w=w)
        return self.net(self.project_act(x))


# ----------------------------------------------------------------------------- components

class MLPParams(Params):
    in_shape: Shape = Field(description="per-sample input shape, e.g. [2] or [1, 28, 28]; inputs are flattened")
    out_shape: Shape = Field(description="per-sample output shape, e.g. [784] or [1, 28, 28]")
    hidden: list[PositiveInt] = Field(default=[256, 256], description="widths of the hidden layers (empty = linear map)")
    activation: Activation = Field(default="relu", description="hidden activation (leaky_relu uses slope 0.2)")
    out_activation: OutActivation = Field(default="none", description="activation on the output")
    batch_norm: bool = Field(default=False, description="BatchNorm1d after each hidden linear layer")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="dropout probability after each hidden activation")
    spectral_norm: bool = Field(default=False, description="spectral normalisation on every linear layer (for critics)")


class MLP(nn.Module):
    """x (b, *in_shape) -> (b, *out_shape): a multilayer perceptron on the flattened input.

    Hidden layers are Linear [-> BatchNorm] -> activation [-> Dropout]; the output layer is
    linear followed by ``out_activation``.
    """

    def __init__(self, *, in_shape: Sequence[int], out_shape: Sequence[int],
                 hidden: Sequence[int] = (256, 256), activation: str = "relu",
                 out_activation: str = "none", batch_norm: bool = False, dropout: float = 0.0,
                 spectral_norm: bool = False):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.net = mlp_stack(in_features=math.prod(self.in_shape), hidden=hidden,
                             out_features=math.prod(self.out_shape), activation=activation,
                             batch_norm=batch_norm, dropout=dropout, spectral_norm=spectral_norm)
        self.out_act = make_out_activation(out_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, self.in_shape, what="mlp 'in_shape'", setting="in_shape")
        y = self.out_act(self.net(x.flatten(1)))
        return y.reshape(x.shape[0], *self.out_shape)


class MultiHeadMLPParams(Params):
    in_shape: Shape = Field(description="per-sample input shape; inputs are flattened")
    heads: dict[str, Shape] = Field(min_length=1, description="named outputs and their per-sample shapes, "
                                    "e.g. {logit: [1], cls: [10]}; read in the graph as critic(x).logit")
    hidden: list[PositiveInt] = Field(default=[256, 256], description="widths of the shared trunk's layers")
    activation: Activation = Field(default="leaky_relu", description="trunk activation (leaky_relu uses slope 0.2)")
    batch_norm: bool = Field(default=False, description="BatchNorm1d after each trunk layer")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="dropout after each trunk activation")
    spectral_norm: bool = Field(default=False, description="spectral normalisation on every linear layer")

    @field_validator("heads")
    @classmethod
    def _identifier_names(cls, heads):
        bad = [name for name in heads if not name.isidentifier()]
        if bad:
            raise ValueError(f"head names must be identifiers (used as critic(x).name): {bad}")
        return heads


class MultiHeadMLP(nn.Module):
    """x (b, *in_shape) -> {head: (b, *shape)}: one shared MLP trunk, several named linear heads.

    A discriminator with a real/fake head and an auxiliary classifier (StarGAN), or InfoGAN's
    Q network sharing the discriminator's trunk, is one component called once.
    """

    def __init__(self, *, in_shape: Sequence[int], heads: dict[str, Sequence[int]],
                 hidden: Sequence[int] = (256, 256), activation: str = "leaky_relu",
                 batch_norm: bool = False, dropout: float = 0.0, spectral_norm: bool = False):
        super().__init__()
        if not hidden:
            raise ValueError("multi_head_mlp needs at least one hidden layer to share")
        self.in_shape = tuple(int(s) for s in in_shape)
        self.head_shapes = {name: tuple(int(s) for s in shape) for name, shape in heads.items()}
        stack = mlp_stack(in_features=math.prod(self.in_shape), hidden=hidden[:-1], out_features=hidden[-1],
                          activation=activation, batch_norm=batch_norm, dropout=dropout,
                          spectral_norm=spectral_norm)
        self.trunk = nn.Sequential(stack, make_activation(activation))
        self.heads = nn.ModuleDict({name: _maybe_spectral_norm(nn.Linear(hidden[-1], math.prod(shape)), spectral_norm)
                                    for name, shape in self.head_shapes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_shape(x, self.in_shape, what="multi_head_mlp 'in_shape'", setting="in_shape")
        h = self.trunk(x.flatten(1))
        return {name: head(h).reshape(x.shape[0], *self.head_shapes[name]) for name, head in self.heads.items()}


class ConvEncoderParams(Params):
    in_shape: ImageShape = Field(description="image shape [c, h, w]")
    out_shape: Shape = Field(description="per-sample output shape, usually [d]")
    channels: Widths = Field(default=[32, 64], description="output channels of each stride-2 conv; each halves h and w")
    batch_norm: bool = Field(default=False, description="BatchNorm2d after every conv except the first")
    spectral_norm: bool = Field(default=False, description="spectral normalisation on every conv and linear layer (for critics)")
    out_activation: OutActivation = Field(default="none", description="activation on the output")

    @model_validator(mode="after")
    def _fits(self):
        downsampled_size(self.in_shape, len(self.channels))  # raises with a clear message
        return self


class ConvEncoder(nn.Module):
    """x (b c h w) -> (b, *out_shape): stride-2 4x4 convs with LeakyReLU 0.2, then flatten and a linear layer."""

    def __init__(self, *, in_shape: Sequence[int], out_shape: Sequence[int],
                 channels: Sequence[int] = (32, 64), batch_norm: bool = False,
                 spectral_norm: bool = False, out_activation: str = "none"):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.trunk = ConvDownTrunk(in_shape=self.in_shape, channels=channels,
                                   batch_norm=batch_norm, spectral_norm=spectral_norm)
        self.head = _maybe_spectral_norm(
            nn.Linear(self.trunk.out_features, math.prod(self.out_shape)), spectral_norm)
        self.out_act = make_out_activation(out_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, self.in_shape, what="conv_encoder 'in_shape'", setting="in_shape")
        y = self.out_act(self.head(self.trunk(x).flatten(1)))
        return y.reshape(x.shape[0], *self.out_shape)


class ConvDecoderParams(Params):
    in_shape: Shape = Field(description="per-sample input shape, usually [d]; inputs are flattened")
    out_shape: ImageShape = Field(description="image shape [c, h, w]; h and w must be divisible by 2 ** len(channels)")
    channels: Widths = Field(default=[64, 32], description="input channels of each stride-2 transposed conv; each doubles h and w")
    batch_norm: bool = Field(default=False, description="BatchNorm2d on every hidden layer (never on the output)")
    out_activation: OutActivation = Field(default="sigmoid", description="activation on the output (sigmoid for images in [0, 1])")

    @model_validator(mode="after")
    def _divisible(self):
        check_upsampling(self.out_shape, len(self.channels))
        return self


class ConvDecoder(nn.Module):
    """z (b, *in_shape) -> x (b c h w): linear to a small feature map, then 4x4 stride-2 transposed convs.

    The map starts at (channels[0], h / 2**len(channels), w / 2**len(channels)); ReLU between
    layers, ``out_activation`` (default sigmoid) on the output.
    """

    def __init__(self, *, in_shape: Sequence[int], out_shape: Sequence[int],
                 channels: Sequence[int] = (64, 32), batch_norm: bool = False,
                 out_activation: str = "sigmoid"):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.trunk = ConvUpTrunk(in_features=math.prod(self.in_shape), out_shape=self.out_shape,
                                 channels=channels, batch_norm=batch_norm)
        self.out_act = make_out_activation(out_activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_shape(z, self.in_shape, what="conv_decoder 'in_shape'", setting="in_shape")
        return self.out_act(self.trunk(z.flatten(1)))


@hookimpl
def register_components(register):
    register("mlp", MLP, params=MLPParams)
    register("multi_head_mlp", MultiHeadMLP, params=MultiHeadMLPParams)
    register("conv_encoder", ConvEncoder, params=ConvEncoderParams)
    register("conv_decoder", ConvDecoder, params=ConvDecoderParams)
