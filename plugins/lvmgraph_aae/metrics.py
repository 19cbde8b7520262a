"""How well encoded data match the prior: the quantity an adversarial auto-encoder trains for.

Axis legend: n encoded data points, d latent (any shape after n is flattened).
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveFloat

from lvmgraph import Params, hookimpl
from lvmgraph.eval.stats import IMQ_SCALES, ks_per_axis, mmd_imq, rng_from, take_examples


class PriorMatchParams(Params):
    latent: str = Field("z", description="graph value computed from the data: the code to compare "
                                         "(a distribution is sampled)")
    prior: str = Field("prior", description="component holding the prior (anything with .sample(n))")
    data: str = Field("x", description="data field the encoder reads")
    split: Literal["train", "test"] = Field("test", description="data split to encode")
    n: int = Field(1000, ge=2, description="number of data points to encode, and of prior samples")
    batch_size: int = Field(500, gt=0, description="data points per encoder call")


class PriorMmdParams(PriorMatchParams):
    scales: list[PositiveFloat] = Field(
        list(IMQ_SCALES), min_length=1,
        description="IMQ kernel scales s; each adds C/(C + ‖a−b‖²), C = 2·d·σ²·s")
    prior_variance: PositiveFloat | Literal["auto"] = Field(
        1.0, description="σ² in the IMQ constant C = 2·d·σ²·s: the prior's per-axis variance (1.0 for the WAE "
                         "paper's N(0, I)); auto: the mean per-axis variance of the prior sample")


class PriorKsParams(PriorMatchParams):
    pass


def encode(ctx, s: PriorMatchParams) -> torch.Tensor:
    """The first n data points of the split -> their codes (n d), flattened per point."""
    codes = []
    for batch in take_examples(ctx.batches(s.split, s.batch_size, s.n), s.n):
        if s.data not in batch:
            raise KeyError(f"data has no field {s.data!r} (fields: {sorted(batch)}); set `data:`")
        value = ctx.evaluate([s.latent], dict(batch))[s.latent]
        if isinstance(value, torch.distributions.Distribution):
            value = value.sample()  # a draw from q(z|x) is a draw from the aggregate posterior
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"graph value {s.latent!r} is a {type(value).__name__}; set `latent:` "
                            f"to a tensor or distribution computed from the data")
        codes.append(value.reshape(value.shape[0], -1))
    if not codes:
        raise ValueError(f"the {s.split!r} split is empty")
    return torch.cat(codes)


def prior_draws(ctx, name: str, n: int, like: torch.Tensor) -> torch.Tensor:
    """n samples of the prior component, flattened to (n d) on ``like``'s device and dtype."""
    prior = ctx.components.get(name)
    if prior is None or not hasattr(prior, "sample"):
        available = sorted(k for k, c in ctx.components.items() if hasattr(c, "sample"))
        raise KeyError(f"no prior component {name!r} that can sample; set `prior:` to one of {available}")
    draws = prior.sample(n)
    draws = draws.reshape(n, -1).to(device=like.device, dtype=like.dtype)
    if draws.shape[1] != like.shape[1]:
        raise ValueError(f"prior {name!r} samples have {draws.shape[1]} dimensions but the codes "
                         f"have {like.shape[1]}")
    return draws


def _encoded_and_prior(ctx, s: PriorMatchParams):
    """-> codes (n d), two independent prior samples (n d) each, and the seed used."""
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        codes = encode(ctx, s)
        n = codes.shape[0]
        reference = prior_draws(ctx, s.prior, n, codes)
        second = prior_draws(ctx, s.prior, n, codes)
    return codes.double(), reference.double(), second.double(), seed


def _protocol(s: PriorMatchParams, n: int, seed: int, **extra) -> dict:
    return {"split": s.split, "n": n, "n_prior": n, "latent": s.latent, "prior": s.prior,
            "seed": seed, **extra}


def kernel_variance(setting: float | str, prior_sample: torch.Tensor) -> float:
    """σ² of the IMQ constant: the ``prior_variance`` setting, or for "auto" the mean over axes of the
    prior sample's (n d) unbiased per-axis variance."""
    if setting == "auto":
        return prior_sample.var(dim=0).mean().item()
    return float(setting)


def prior_mmd(ctx, **settings) -> dict:
    """Encoded data (n d) vs n prior samples -> unbiased MMD² under the multi-scale IMQ kernel.

    k(a, b) = Σ_s C_s / (C_s + ‖a − b‖²), C_s = 2·d·σ²·s (WAE, Tolstikhin et al. 2018). σ² is
    ``prior_variance``: 1.0 for the paper's N(0, I) prior; a prior of another spread (a uniform
    box, a wide mixture) needs its own, else every scale sees the codes as near or far alike —
    "auto" takes the mean per-axis variance of the prior sample (e.g. 16/3 for U[−4, 4]^d).
    0 means the aggregate posterior matches the prior; ``floor`` is the same estimate between
    two independent prior samples of size n, i.e. what a perfect match scores at this n
    (the unbiased estimate fluctuates around 0 and can be slightly negative).
    """
    s = PriorMmdParams(**settings)
    codes, reference, second, seed = _encoded_and_prior(ctx, s)
    sigma2 = kernel_variance(s.prior_variance, reference)
    return {
        "mmd2": mmd_imq(codes, reference, scales=s.scales, sigma2=sigma2).item(),
        "floor": mmd_imq(second, reference, scales=s.scales, sigma2=sigma2).item(),
        "protocol": _protocol(s, codes.shape[0], seed, kernel="imq", scales=list(s.scales),
                              sigma2=sigma2, prior_variance=s.prior_variance,
                              kernel_constant="C = 2·d·sigma2·s", estimator="unbiased"),
    }


def prior_ks(ctx, **settings) -> dict:
    """Encoded data (n d) vs n prior samples -> two-sample Kolmogorov–Smirnov statistic per axis.

    Reports ``ks_max`` (worst axis), ``ks_mean`` and ``per_axis``; ``floor`` / ``floor_per_axis``
    are the same statistics between two independent prior samples of size n. Marginal tests
    only: they miss dependence between axes, which ``prior_mmd`` catches.
    """
    s = PriorKsParams(**settings)
    codes, reference, second, seed = _encoded_and_prior(ctx, s)
    per_axis = ks_per_axis(codes, reference)
    floor = ks_per_axis(second, reference)
    return {
        "ks_max": max(per_axis),
        "ks_mean": sum(per_axis) / len(per_axis),
        "per_axis": {str(i): v for i, v in enumerate(per_axis)},
        "floor": max(floor),
        "floor_per_axis": {str(i): v for i, v in enumerate(floor)},
        "protocol": _protocol(s, codes.shape[0], seed, statistic="two-sample KS, per axis"),
    }


@hookimpl
def register_metrics(register):
    register("prior_mmd", prior_mmd, params=PriorMmdParams)
    register("prior_ks", prior_ks, params=PriorKsParams)
