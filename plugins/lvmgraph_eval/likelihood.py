"""Parzen-window log-likelihood of test data under a model's samples (GAN / AAE papers).

Axis legend: N generated samples (kernel centres), n data points, D flattened data values, s σ grid.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import Field, PositiveFloat

from lvmgraph import Params
from lvmgraph.eval.stats import parzen_log_likelihood, parzen_select_sigma, rng_from

from .features import generate, real_subset, split_field

#: the GAN paper's code (parzen_ll.py) searches σ over logspace(-1, 0, 10)
SIGMA_GRID = [float(s) for s in np.logspace(-1.0, 0.0, 10)]


class ParzenParams(Params):
    data: str = Field("x", description="data field the likelihood scores")
    n_samples: int = Field(10000, gt=0, description="generated samples used as kernel centres")
    n_valid: int = Field(1000, gt=0, description="validation points for choosing σ: the last n_valid "
                                                 "examples of the train split (clipped to its size)")
    n_test: int = Field(10000, gt=0, description="test points scored (clipped to the test split)")
    sigmas: list[PositiveFloat] = Field(SIGMA_GRID, min_length=1,
                                        description="σ grid searched on the validation points")
    batch_size: int = Field(100, gt=0, description="points per distance block and per generator call")


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).to("cpu", torch.float64)


def parzen_ll(ctx, **settings) -> dict:
    """Mean Parzen-window log-likelihood of the test split under the model's samples, in nats.

    The protocol of Goodfellow et al. (2014) and Makhzani et al. (2016) (after Breuleux et
    al. 2011): place an isotropic Gaussian of width σ on each of 10,000 generated samples
    (flattened values in the dataset's own format and range, see ``protocol.value_range``),
    choose σ from a grid (default logspace(−1, 0, 10), as the GAN code) by the highest mean
    log-likelihood on validation data (the last 1,000 train examples), then report the mean
    log-likelihood of the test examples, ``log_likelihood``, and its standard error
    ``stderr`` = std (ddof 0) / √n. ``sigma_at_grid_edge`` warns that the best σ may lie
    outside the grid. A crude estimate that is known to be poor in high dimension; use it
    to compare with the published tables, not to rank good models.
    """
    s = ParzenParams(**settings)
    train = split_field(ctx, "train", s.data)
    test = split_field(ctx, "test", s.data)
    n_valid = min(s.n_valid, train.shape[0])
    n_test = min(s.n_test, test.shape[0])
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        centres = torch.cat([flat(x) for x in generate(ctx, s.n_samples, s.batch_size, like=test)])
    valid = flat(train[train.shape[0] - n_valid:])
    points = flat(real_subset(ctx, "test", s.data, n_test))
    sigma, valid_means = parzen_select_sigma(centres, valid, s.sigmas, s.batch_size)
    ll = parzen_log_likelihood(centres, points, sigma, s.batch_size)
    return {
        "log_likelihood": ll.mean().item(),
        "stderr": ll.std(unbiased=False).item() / math.sqrt(ll.shape[0]),
        "sigma": sigma,
        "sigma_at_grid_edge": sigma in (min(s.sigmas), max(s.sigmas)),
        "validation": {f"{g:.6g}": v for g, v in zip(s.sigmas, valid_means)},
        "protocol": {"n_samples": s.n_samples, "n_valid": n_valid, "n_test": n_test,
                     "validation": "last n_valid examples of the train split",
                     "test": "the whole test split, or a seeded random subset of n_test",
                     "sigmas": list(s.sigmas), "kernel": "isotropic Gaussian on flattened values",
                     "dimensions": int(centres.shape[1]), "value_range": ctx.data.info.get("value_range"),
                     "units": "nats per example", "data": s.data, "seed": seed},
    }
