"""Building blocks shared by the CycleGAN networks: normalisation choice, the weight init, spectral norm.

Axis legend: b batch, c channels, h w spatial.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Norm = Literal["instance", "batch", "none"]
OutActivation = Literal["tanh", "sigmoid", "none"]

INIT_STD = 0.02  # the reference code's "normal" init (init_gain 0.02)


def make_norm(norm: str, channels: int, affine: bool = False) -> nn.Module:
    """(b c h w) -> (b c h w) normalised per sample and channel (instance) or per channel (batch).

    Instance norm as in the CycleGAN code: no learnt scale and shift (``affine=True`` adds them, as
    StarGAN's code does), no running statistics, so train and eval mode compute the same thing.
    """
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=affine, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; choose one of instance, batch, none")


def make_out_activation(name: str) -> nn.Module:
    table = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "none": nn.Identity}
    if name not in table:
        raise ValueError(f"unknown out_activation {name!r}; choose one of {', '.join(table)}")
    return table[name]()


@torch.no_grad()
def init_layer(layer: nn.Module, std: float = INIT_STD) -> nn.Module:
    """In place: conv weights ~ N(0, std), biases 0 (the CycleGAN code's default init).

    Uses torch's global RNG, which lvmgraph seeds before building components.
    """
    layer.weight.normal_(0.0, std)
    if layer.bias is not None:
        layer.bias.zero_()
    return layer


@torch.no_grad()
def init_norms(net: nn.Module, std: float = INIT_STD) -> nn.Module:
    """In place: batch-norm scales ~ N(1, std), shifts 0 (instance norm here has no parameters)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.normal_(1.0, std)
            m.bias.zero_()
    return net


def conv(layer: nn.Module, *, spectral_norm: bool = False) -> nn.Module:
    """An initialised layer, optionally under spectral norm.

    The init comes first, so spectral norm's power iteration (run when it is attached)
    starts from the final weights and the first forward pass already divides by their norm.
    """
    init_layer(layer)
    return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer
