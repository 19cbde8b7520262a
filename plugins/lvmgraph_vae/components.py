"""VAE building blocks: encoders that return q(z|x) and decoders that return p(x|z) as distributions.

Axis legend: b batch, c channels, h w spatial, d latent.

Each component is a trunk from ``lvmgraph_core.components`` (an MLP or a conv stack) with
a distribution head, so a spec can write ``q: encoder(x)`` then ``z: q.rsample()`` and
``rec: -p_x.log_prob(x).mean()``.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.distributions as D
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from lvmgraph import Params, check_shape, hookimpl
from lvmgraph_core.components import (
    Activation, ConvDownTrunk, ConvUpTrunk, OutActivation, Shape, Widths, check_upsampling,
    downsampled_size, make_out_activation, mlp_stack)

Trunk = Literal["mlp", "conv"]


def _check_image_trunk(trunk: str, shape: Sequence[int], key: str) -> None:
    if trunk == "conv" and len(shape) != 3:
        raise ValueError(f"trunk 'conv' needs {key} [c, h, w], got {list(shape)}; use trunk 'mlp' for vectors")


# ----------------------------------------------------------------------------- encoder

class GaussianEncoderParams(Params):
    in_shape: Shape = Field(description="per-sample input shape, e.g. [1, 28, 28] or [2]")
    latent_dim: PositiveInt = Field(description="dimension d of z")
    trunk: Trunk = Field(default="mlp", description="mlp on the flattened input, or conv (stride-2 convs) for images")
    hidden: list[PositiveInt] = Field(default=[512, 256], description="hidden widths of the mlp trunk")
    channels: Widths = Field(default=[32, 64], description="channels of the conv trunk's stride-2 convs")
    activation: Activation = Field(default="relu", description="hidden activation of the mlp trunk")
    min_std: float = Field(default=1e-4, ge=0, description="floor added to the softplus std (keeps log q finite)")

    @model_validator(mode="after")
    def _fits(self):
        _check_image_trunk(self.trunk, self.in_shape, "in_shape")
        if self.trunk == "conv":
            downsampled_size(self.in_shape, len(self.channels))
        return self


def _features_trunk(*, in_shape, out_features, trunk, hidden, channels, activation) -> nn.Module:
    """(b, *in_shape) -> (b out_features) through an mlp or a conv stack plus a linear head."""
    if trunk == "mlp":
        return nn.Sequential(nn.Flatten(1), mlp_stack(in_features=math.prod(in_shape), hidden=hidden,
                                                      out_features=out_features, activation=activation))
    _check_image_trunk(trunk, in_shape, "in_shape")
    convs = ConvDownTrunk(in_shape=in_shape, channels=channels)
    return nn.Sequential(convs, nn.Flatten(1), nn.Linear(convs.out_features, out_features))


class GaussianEncoder(nn.Module):
    """x (b, *in_shape) -> q(z|x), a diagonal Normal over (b d).

    Returns ``Independent(Normal(mu, std), 1)`` with std = softplus(raw) + min_std, so
    ``q.rsample()`` is reparameterised and ``q.log_prob(z)`` is (b,).
    """

    def __init__(self, *, in_shape: Sequence[int], latent_dim: int, trunk: str = "mlp",
                 hidden: Sequence[int] = (512, 256), channels: Sequence[int] = (32, 64),
                 activation: str = "relu", min_std: float = 1e-4):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.latent_dim = int(latent_dim)
        self.min_std = float(min_std)
        self.net = _features_trunk(in_shape=self.in_shape, out_features=2 * self.latent_dim,
                                   trunk=trunk, hidden=hidden, channels=channels, activation=activation)

    def forward(self, x: torch.Tensor) -> D.Distribution:
        check_shape(x, self.in_shape, what="gaussian_encoder 'in_shape'", setting="in_shape")
        mu, raw = self.net(x).chunk(2, dim=1)
        return D.Independent(D.Normal(mu, F.softplus(raw) + self.min_std), 1)


# ----------------------------------------------------------------------------- decoders

class _DecoderParams(Params):
    latent_dim: PositiveInt = Field(description="dimension d of z")
    out_shape: Shape = Field(description="per-sample shape of x, e.g. [1, 28, 28] or [2]")
    trunk: Trunk = Field(default="mlp", description="mlp reshaped to out_shape, or conv (transposed convs) for images")
    hidden: list[PositiveInt] = Field(default=[256, 512], description="hidden widths of the mlp trunk")
    channels: Widths = Field(default=[64, 32], description="channels of the conv trunk's transposed convs")
    activation: Activation = Field(default="relu", description="hidden activation of the mlp trunk")

    @model_validator(mode="after")
    def _fits(self):
        _check_image_trunk(self.trunk, self.out_shape, "out_shape")
        if self.trunk == "conv":
            check_upsampling(self.out_shape, len(self.channels))
        return self


class _Decoder(nn.Module):
    """z (b d) -> pre-activation output (b, *out_shape) through an mlp or transposed-conv trunk."""

    name = "decoder"

    def __init__(self, *, latent_dim, out_shape, trunk, hidden, channels, activation):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.out_shape = tuple(int(s) for s in out_shape)
        if trunk == "mlp":
            self.net = mlp_stack(in_features=self.latent_dim, hidden=hidden,
                                 out_features=math.prod(self.out_shape), activation=activation)
        else:
            _check_image_trunk(trunk, self.out_shape, "out_shape")
            self.net = ConvUpTrunk(in_features=self.latent_dim, out_shape=self.out_shape, channels=channels)

    def raw_output(self, z: torch.Tensor) -> torch.Tensor:
        check_shape(z, [self.latent_dim], what=f"{self.name} 'latent_dim'", setting="latent_dim")
        return self.net(z).reshape(z.shape[0], *self.out_shape)


class BernoulliDecoderParams(_DecoderParams):
    pass


class BernoulliDecoder(_Decoder):
    """z (b d) -> p(x|z), independent Bernoullis over (b, *out_shape) given by logits.

    ``validate_args`` is off so grey-level targets in [0, 1] are accepted, as in most VAE code:
    ``p.log_prob(x)`` is then minus the binary cross-entropy summed over each sample, and
    ``p.mean`` is sigmoid(logits).
    """

    name = "bernoulli_decoder"

    def __init__(self, *, latent_dim: int, out_shape: Sequence[int], trunk: str = "mlp",
                 hidden: Sequence[int] = (256, 512), channels: Sequence[int] = (64, 32),
                 activation: str = "relu"):
        super().__init__(latent_dim=latent_dim, out_shape=out_shape, trunk=trunk, hidden=hidden,
                         channels=channels, activation=activation)

    def forward(self, z: torch.Tensor) -> D.Distribution:
        logits = self.raw_output(z)
        return D.Independent(D.Bernoulli(logits=logits, validate_args=False), len(self.out_shape))


class GaussianDecoderParams(_DecoderParams):
    std: float | None = Field(default=None, gt=0,
                              description="fixed observation std; null = a learned std per output dimension")
    mean_activation: OutActivation = Field(default="none", description="activation on the mean (sigmoid for images in [0, 1])")


class GaussianDecoder(_Decoder):
    """z (b d) -> p(x|z), a diagonal Normal over (b, *out_shape).

    The std is ``std`` when given, otherwise exp of a learned log-std per output dimension
    (initialised to 0, i.e. std 1) shared across the batch.
    """

    name = "gaussian_decoder"

    def __init__(self, *, latent_dim: int, out_shape: Sequence[int], trunk: str = "mlp",
                 hidden: Sequence[int] = (256, 512), channels: Sequence[int] = (64, 32),
                 activation: str = "relu", std: float | None = None, mean_activation: str = "none"):
        super().__init__(latent_dim=latent_dim, out_shape=out_shape, trunk=trunk, hidden=hidden,
                         channels=channels, activation=activation)
        self.mean_act = make_out_activation(mean_activation)
        self.fixed_std = None if std is None else float(std)
        if self.fixed_std is None:
            self.log_std = nn.Parameter(torch.zeros(self.out_shape))

    def forward(self, z: torch.Tensor) -> D.Distribution:
        mean = self.mean_act(self.raw_output(z))
        if self.fixed_std is None:
            std = self.log_std.exp().expand_as(mean)
        else:
            std = torch.full_like(mean, self.fixed_std)
        return D.Independent(D.Normal(mean, std), len(self.out_shape))


@hookimpl
def register_components(register):
    register("gaussian_encoder", GaussianEncoder, params=GaussianEncoderParams)
    register("bernoulli_decoder", BernoulliDecoder, params=BernoulliDecoderParams)
    register("gaussian_decoder", GaussianDecoder, params=GaussianDecoderParams)
