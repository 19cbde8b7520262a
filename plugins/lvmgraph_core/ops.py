"""Graph operations: plain functions called from spec expressions, e.g. ``h: concat(z, one_hot(y, 10))``.

Each op has an explicit signature (no ``**kwargs`` catch-alls) because the graph compiler
checks every call in a spec against ``inspect.signature`` before anything runs.
"""
# axes: b batch, c channels, h w spatial, d latent, k classes / condition features
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch.distributions import Distribution

from lvmgraph import hookimpl


# ---------------------------------------------------------------- shaping

def concat(*xs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """xs (b, n_i, ...) -> (b, sum n_i, ...): tensors joined along ``dim`` (features by default)."""
    if not xs:
        raise ValueError("concat needs at least one tensor")
    return torch.cat(xs, dim=dim)


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """y int (b,) -> (b, num_classes) float: 1 at each row's class, 0 elsewhere."""
    return F.one_hot(y.long(), int(num_classes)).to(torch.get_default_dtype())


def flatten(x: torch.Tensor) -> torch.Tensor:
    """x (b, ...) -> (b, n): every non-batch axis folded into one."""
    return rearrange(x, "b ... -> b (...)")


def reshape(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """x (b, ...) -> (b, *shape): ``shape`` is per sample, the batch axis is kept."""
    return x.reshape(x.shape[0], *(int(s) for s in shape))


def spatial_tile(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """c (b k), like (b ... h w) -> (b k h w): c repeated over like's grid (label-conditioned convnets)."""
    return repeat(c, "b k -> b k h w", h=like.shape[-2], w=like.shape[-1])


# ---------------------------------------------------------------- gradients and sampling

def detach(x: torch.Tensor) -> torch.Tensor:
    """x (any) -> x (same shape) cut from the autograd graph: no gradient flows back through it."""
    return x.detach()


def rsample(dist: Distribution) -> torch.Tensor:
    """dist over (b, ...) -> a reparameterised draw (b, ...): gradients reach dist's parameters."""
    if not dist.has_rsample:
        raise ValueError(f"{type(dist).__name__} has no reparameterised sampler; use sample(...) instead")
    return dist.rsample()


def sample(dist: Distribution) -> torch.Tensor:
    """dist over (b, ...) -> a draw (b, ...) with no gradient to dist's parameters."""
    with torch.no_grad():
        return dist.sample()


def randn_like(x: torch.Tensor) -> torch.Tensor:
    """x (any) -> standard normal noise of x's shape, dtype and device."""
    return torch.randn_like(x)


def noise(like: torch.Tensor, std: float = 1.0) -> torch.Tensor:
    """like (any) -> gaussian noise of like's shape with standard deviation ``std``."""
    return torch.randn_like(like) * std


def add_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    """x (any) -> x + N(0, std²) noise of the same shape (instance noise, denoising inputs)."""
    return x + torch.randn_like(x) * std


def shuffle(x: torch.Tensor) -> torch.Tensor:
    """x (b, ...) -> (b, ...) rows in a random order (torch's global RNG), e.g. mismatched image/label pairs."""
    order = torch.randperm(x.shape[0], device=x.device)
    return x[order]


def log_prob(dist, x: torch.Tensor) -> torch.Tensor:
    """dist over (b, ...), x (b, ...) -> (b,): log density of each sample.

    ``dist`` is a torch Distribution or anything with ``log_prob`` (e.g. a Prior). Axes the
    distribution treats as batch beyond the first (a plain ``Normal`` over (b d)) are summed,
    so the result is always one number per sample.
    """
    return per_sample(dist.log_prob(x))


def per_sample(values: torch.Tensor) -> torch.Tensor:
    """values (b, ...) -> (b,): summed over every axis but the first."""
    if values.dim() <= 1:
        return values
    return values.reshape(values.shape[0], -1).sum(dim=1)


# ---------------------------------------------------------------- reductions and elementwise maps

def reduce_mean(x) -> torch.Tensor:
    """x (any) -> () mean of all elements; a Distribution -> its ``.mean`` (same shape as a sample)."""
    if isinstance(x, Distribution):
        return x.mean
    return x.mean()


def reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """x (any) -> () sum of all elements."""
    return x.sum()


def clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """x (any) -> x with every element limited to [low, high]."""
    return x.clamp(low, high)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """x (any) -> 1 / (1 + e^-x), elementwise, in (0, 1)."""
    return torch.sigmoid(x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """x (any) -> tanh(x), elementwise, in (-1, 1)."""
    return torch.tanh(x)


def softmax(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """x (b, k, ...) -> same shape, normalised to sum to 1 along ``dim`` (classes by default)."""
    return torch.softmax(x, dim=dim)


def lerp(a: torch.Tensor, b: torch.Tensor, weight) -> torch.Tensor:
    """a, b (b, ...), weight number or (b,) -> a + weight·(b − a), same shape as a.

    A per-sample weight (b,) or (b, 1) is broadcast over the remaining axes, which is what
    gradient-penalty interpolation and ProGAN fade-in need.
    """
    if isinstance(weight, torch.Tensor) and weight.dim() >= 1 and weight.dim() < a.dim():
        weight = weight.reshape(weight.shape[0], *([1] * (a.dim() - 1)))
    return a + weight * (b - a)


OPS = {
    "concat": concat,
    "one_hot": one_hot,
    "flatten": flatten,
    "reshape": reshape,
    "detach": detach,
    "rsample": rsample,
    "sample": sample,
    "mean": reduce_mean,
    "sum": reduce_sum,
    "shuffle": shuffle,
    "randn_like": randn_like,
    "noise": noise,
    "add_noise": add_noise,
    "clamp": clamp,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "lerp": lerp,
    "spatial_tile": spatial_tile,
    "log_prob": log_prob,
}


@hookimpl
def register_ops(register):
    for name, fn in OPS.items():
        register(name, fn)
