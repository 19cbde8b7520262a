"""Two-sample statistics and numerically careful reductions used by metrics (and losses).

Axis legend: n, m sample counts, d features (anything after the first axis is flattened),
k importance samples.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterable, Iterator, Sequence

import torch
from einops import rearrange

#: the WAE paper's multi-scale IMQ kernel scales (Tolstikhin et al. 2018, appendix / code)
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _as_rows(x: torch.Tensor, what: str) -> torch.Tensor:
    """(n, ...) -> (n d): one flat row per sample."""
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{what} must have at least one sample along its first axis, "
                         f"got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1) if x.dim() != 2 else x


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x (n d), y (m d) -> (n m) squared Euclidean distances.

    Uses ‖a‖² + ‖b‖² − 2a·b so memory is O(nm), not O(nmd); clamped at 0 because the
    expansion can round to tiny negatives for identical rows.
    """
    x2 = (x * x).sum(dim=1, keepdim=True)
    y2 = (y * y).sum(dim=1, keepdim=True)
    return (x2 + rearrange(y2, "m 1 -> 1 m") - 2.0 * x @ y.T).clamp_min(0.0)


def imq_kernel(x: torch.Tensor, y: torch.Tensor, *, scales: Sequence[float] = IMQ_SCALES,
               sigma2: float = 1.0) -> torch.Tensor:
    """x (n d), y (m d) -> (n m) Gram matrix of the multi-scale inverse multiquadratic kernel.

    k(a, b) = Σ_s C_s / (C_s + ‖a − b‖²) with C_s = 2·d·sigma2·s: the kernel of the
    Wasserstein auto-encoder paper, whose base constant 2·d·σ² is the expected squared
    distance between two draws of N(0, σ²I_d). Heavy tails keep gradients alive far from
    the data, unlike an RBF kernel.
    """
    d = x.shape[1]
    dist = squared_distances(x, y)
    gram = torch.zeros_like(dist)
    for s in scales:
        c = 2.0 * d * float(sigma2) * float(s)
        gram = gram + c / (c + dist)
    return gram


def mmd_imq(x: torch.Tensor, y: torch.Tensor, *, scales: Sequence[float] = IMQ_SCALES,
            sigma2: float = 1.0, unbiased: bool = True) -> torch.Tensor:
    """x (n d), y (m d) -> scalar MMD² between the two samples under the IMQ kernel.

    MMD²(P, Q) = E k(x, x') + E k(y, y') − 2 E k(x, y) (Gretton et al. 2012). The unbiased
    U-statistic drops the i = j terms of the within-sample sums (so it can be slightly
    negative when P = Q); the biased V-statistic keeps them and is always ≥ 0. Differentiable
    in both arguments, so it doubles as the WAE-MMD penalty. Extra axes after the first
    are flattened.
    """
    x, y = _as_rows(x, "x"), _as_rows(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd_imq needs samples of the same dimension, got {x.shape[1]} and {y.shape[1]}")
    n, m = x.shape[0], y.shape[0]
    if unbiased and (n < 2 or m < 2):
        raise ValueError("the unbiased MMD estimate needs at least 2 samples on each side")
    k_xx = imq_kernel(x, x, scales=scales, sigma2=sigma2)
    k_yy = imq_kernel(y, y, scales=scales, sigma2=sigma2)
    k_xy = imq_kernel(x, y, scales=scales, sigma2=sigma2)
    if unbiased:
        within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
        within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    else:
        within_x = k_xx.mean()
        within_y = k_yy.mean()
    return within_x + within_y - 2.0 * k_xy.mean()


def ks_per_axis(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """x (n d), y (m d) -> d two-sample Kolmogorov–Smirnov statistics, one per axis.

    D = sup_t |F_x(t) − F_y(t)| with F the empirical CDFs; the supremum is attained at one
    of the pooled sample points, where both CDFs are read off by binary search in the
    sorted samples. Same value as ``scipy.stats.ks_2samp(...).statistic``.
    """
    x, y = _as_rows(x, "x").detach(), _as_rows(y, "y").detach()
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"ks_per_axis needs samples of the same dimension, "
                         f"got {x.shape[1]} and {y.shape[1]}")
    x = rearrange(x.double().cpu(), "n d -> d n").contiguous()
    y = rearrange(y.double().cpu(), "m d -> d m").contiguous()
    x_sorted, y_sorted = x.sort(dim=1).values, y.sort(dim=1).values
    pooled = torch.cat([x_sorted, y_sorted], dim=1)
    # right=True counts the points ≤ t, i.e. the right-continuous empirical CDF
    cdf_x = torch.searchsorted(x_sorted, pooled, right=True).double() / x.shape[1]
    cdf_y = torch.searchsorted(y_sorted, pooled, right=True).double() / y.shape[1]
    return (cdf_x - cdf_y).abs().max(dim=1).values.tolist()


def log_mean_exp(a: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """a (..., k, ...) -> log(mean(exp(a))) along ``dim``, without overflow or underflow.

    logsumexp shifts by the maximum before exponentiating; subtracting log k turns the
    sum into a mean (the IWAE bound is log_mean_exp of the log importance weights).
    """
    return torch.logsumexp(a, dim=dim, keepdim=keepdim) - math.log(a.shape[dim])


@contextlib.contextmanager
def rng_from(generator: torch.Generator, device: torch.device | str = "cpu") -> Iterator[int]:
    """Run the block with torch's global RNG seeded from ``generator``, then restore it.

    Metrics sample through APIs that only use the global RNG (``Distribution.sample``,
    ``prior.sample``); forking keeps evaluation from shifting the training run's random
    stream and makes a metric reproducible from the evaluation seed. Yields the seed used.
    """
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    device = torch.device(device)
    if device.type == "cpu":
        devices, kwargs = [], {}
    else:  # fork only the accelerator the model lives on
        index = device.index if device.index is not None else getattr(torch, device.type).current_device()
        devices, kwargs = [index], {"device_type": device.type}
    with torch.random.fork_rng(devices=devices, **kwargs):
        torch.manual_seed(seed)
        yield seed


def take_examples(batches: Iterable[dict[str, torch.Tensor]], n: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches (dicts of tensors sharing a first axis) -> the same batches cut to ``n`` examples in all.

    Makes a metric's "n test points" exact whatever the loader's notion of ``limit``.
    """
    left = int(n)
    for batch in batches:
        if left <= 0:
            return
        size = next(iter(batch.values())).shape[0]
        if size > left:
            batch = {name: value[:left] for name, value in batch.items()}
            size = left
        left -= size
        yield batch
