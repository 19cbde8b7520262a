"""Mode coverage on the 2-D Gaussian-mixture benchmarks (ring of 8, grid of 25).

Axis legend: n generated points, d coordinates (2), m mixture modes.
"""
from __future__ import annotations

import torch
from pydantic import Field, PositiveFloat

from lvmgraph import Params
from lvmgraph.eval.stats import mode_stats, rng_from

from .features import generate


class ModeCoverageParams(Params):
    n: int = Field(2500, gt=0, description="generated points (2,500 in the PacGAN/VEEGAN protocol)")
    threshold: PositiveFloat = Field(3.0, description="a point is high quality within threshold·σ of its "
                                                      "nearest mode (3 in the protocol)")
    batch_size: int = Field(500, gt=0, description="points per generator call")


def mixture_geometry(ctx) -> tuple[torch.Tensor, float]:
    info = ctx.data.info
    if "modes" not in info or "mode_std" not in info:
        name = info.get("name", "this dataset")
        raise ValueError(f"mode_coverage needs a Gaussian-mixture dataset whose info has `modes` and "
                         f"`mode_std` (toy2d ring8 or grid25); {name!r} has neither")
    return torch.as_tensor(info["modes"]), float(info["mode_std"])


def mode_coverage(ctx, **settings) -> dict:
    """Generated 2-D points -> modes captured, % high-quality points and reverse KL (PacGAN / VEEGAN).

    Protocol of Srivastava et al. (VEEGAN, 2017) as used by Lin et al. (PacGAN, 2018): draw
    2,500 points; assign each to its nearest mode; it is *high quality* if closer than 3σ
    (σ = the dataset's ``mode_std``; strict <). A mode is captured if at least one
    high-quality point is assigned to it. Reports ``modes`` (captured, out of
    ``modes_total``), ``high_quality`` (percent of all points) and ``reverse_kl`` =
    KL(p_gen ‖ p_true) = Σ_j p_j log(m · p_j) in nats, where p_gen is the normalised
    histogram of high-quality points over modes and p_true the true uniform weights 1/m.
    No epsilon is needed in this direction (empty modes add 0·log 0 = 0; 1/m > 0); it is 0
    for an even spread over all modes, log 2 for an even spread over half of them, and NaN
    if no point is high quality. ``counts`` lists the histogram.
    """
    s = ModeCoverageParams(**settings)
    modes, std = mixture_geometry(ctx)
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        points = torch.cat([x.reshape(x.shape[0], -1).cpu() for x in generate(ctx, s.n, s.batch_size)])
    if points.shape[1] != modes.shape[1]:
        raise ValueError(f"the model generates {points.shape[1]}-D points but the mixture's modes are "
                         f"{modes.shape[1]}-D")
    stats = mode_stats(points, modes, std, threshold=s.threshold)
    return {
        "modes": stats.modes,
        "modes_total": int(modes.shape[0]),
        "high_quality": 100.0 * stats.high_quality,
        "reverse_kl": stats.reverse_kl,
        "counts": stats.counts.tolist(),
        "protocol": {"n": s.n, "threshold_sigma": s.threshold, "mode_std": std,
                     "assignment": "nearest mode, Euclidean", "high_quality": "distance < threshold·σ",
                     "reverse_kl": "KL(p_gen || uniform over modes), high-quality points only, nats",
                     "dataset": ctx.data.info.get("name"), "seed": seed},
    }
