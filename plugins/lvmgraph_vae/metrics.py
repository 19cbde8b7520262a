"""Likelihood metrics for models with an encoder q(z|x), a decoder p(x|z) and a prior p(z).

Axis legend: b batch, k importance samples, d latent (any shape after b), data axes after b.
All results are in nats per example.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from einops import rearrange, repeat
from pydantic import Field, model_validator
from torch.distributions import Distribution, Independent

from lvmgraph import Params, hookimpl
from lvmgraph.eval.stats import log_mean_exp, rng_from, take_examples

MAX_K = 5000


class LatentModelParams(Params):
    posterior: str = Field("q", description="graph value holding the encoder's distribution q(z|x)")
    likelihood: str = Field("p_x", description="graph value holding the decoder's distribution p(x|z)")
    latent: str = Field("z", description="graph value the posterior's sample feeds (overridden with "
                                         "the metric's own samples)")
    prior: str = Field("prior", description="component holding the prior p(z) (an lvmgraph.Prior)")
    data: str = Field("x", description="data field the likelihood scores")
    split: Literal["train", "test"] = Field("test", description="data split to evaluate on")
    n: int = Field(1000, gt=0, description="number of data points (fewer if the split is smaller)")
    batch_size: int = Field(100, gt=0, description="data points per encoder call")


class ElboParams(LatentModelParams):
    pass


class IwaeParams(LatentModelParams):
    k: int = Field(1000, gt=0, le=MAX_K, description="importance samples per data point")
    chunk: int = Field(100, gt=0, description="importance samples per decoder call (bounds memory: "
                                              "each call sees chunk × batch_size latents)")

    @model_validator(mode="after")
    def _chunk_at_most_k(self):
        self.chunk = min(self.chunk, self.k)
        return self


# ----------------------------------------------------------------------------- helpers

def per_example(dist: Distribution) -> Distribution:
    """A distribution with batch shape (b, ...) -> one whose log_prob gives one number per b.

    Decoders and encoders often return factorised ``Normal``/``Bernoulli`` objects with the
    data axes as batch axes; the log-density of an example is the sum over those axes.
    """
    extra = len(dist.batch_shape) - 1
    return Independent(dist, extra) if extra > 0 else dist


def graph_distribution(ctx, name: str, inputs: dict, setting: str) -> Distribution:
    value = ctx.evaluate([name], inputs)[name]
    if not isinstance(value, Distribution):
        raise TypeError(f"graph value {name!r} is a {type(value).__name__}, not a distribution; "
                        f"set `{setting}:` to a value built by a probabilistic encoder/decoder")
    return per_example(value)


def prior_component(ctx, name: str):
    prior = ctx.components.get(name)
    if prior is None or not hasattr(prior, "log_prob"):
        available = sorted(n for n, c in ctx.components.items() if hasattr(c, "log_prob"))
        raise KeyError(f"no prior component {name!r} with a log_prob; set `prior:` to one of {available}")
    return prior


def prior_log_prob(prior, z: torch.Tensor) -> torch.Tensor:
    """z (b, *shape) -> log p(z) (b,), summing any per-axis densities a prior returns."""
    lp = prior.log_prob(z)
    return lp.reshape(lp.shape[0], -1).sum(dim=1) if lp.dim() > 1 else lp


def repeat_batch(batch: dict[str, torch.Tensor], times: int) -> dict[str, torch.Tensor]:
    """Every field (b ...) -> ((times b) ...), matching latents flattened as 'k b d -> (k b) d'."""
    return {name: repeat(value, "b ... -> (k b) ...", k=times) for name, value in batch.items()}


def log_importance_weights(ctx, s: IwaeParams, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """A data batch -> log w (k b) = log p(x|z) + log p(z) − log q(z|x) for k draws z ~ q(z|x)."""
    x = batch[s.data]
    b = x.shape[0]
    q = graph_distribution(ctx, s.posterior, dict(batch), "posterior")
    prior = prior_component(ctx, s.prior)
    z = q.sample((k,))  # (k b ...)
    log_q = q.log_prob(z)  # (k b)
    log_pz = rearrange(prior_log_prob(prior, rearrange(z, "k b ... -> (k b) ...")), "(k b) -> k b", k=k)
    log_px = []
    for start in range(0, k, s.chunk):
        z_chunk = z[start:start + s.chunk]
        c = z_chunk.shape[0]
        # the likelihood scores the data it was computed for, so x is repeated alongside z
        inputs = repeat_batch(batch, c)
        inputs[s.latent] = rearrange(z_chunk, "c b ... -> (c b) ...")
        p_x = graph_distribution(ctx, s.likelihood, inputs, "likelihood")
        log_px.append(rearrange(p_x.log_prob(inputs[s.data]), "(c b) -> c b", c=c, b=b))
    return torch.cat(log_px) + log_pz - log_q


def _check_data_field(batch: dict, field: str) -> None:
    if field not in batch:
        raise KeyError(f"data has no field {field!r} (fields: {sorted(batch)}); set `data:`")


# ----------------------------------------------------------------------------- metrics

def iwae_nll(ctx, **settings) -> dict:
    """Data x -> importance-weighted estimate of −log p(x) in nats per example (Burda et al. 2016).

    For each x draws k latents z ~ q(z|x) and scores log w = log p(x|z) + log p(z) − log q(z|x);
    −log p(x) ≈ −(logsumexp_k log w − log k), an upper bound on the true NLL that tightens as
    k grows and is exact when q is the true posterior. Also reports ``elbo`` (mean of log w:
    the k = 1 bound, estimated with all k draws), ``nll_k1`` = −elbo, the ``gap`` between the
    two bounds (≥ 0 by Jensen's inequality on the same draws) and the standard error of
    ``nll`` across data points. Latents are sampled with the evaluation seed.
    """
    s = IwaeParams(**settings)
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        iwae_bounds, mean_log_w = [], []
        for batch in take_examples(ctx.batches(s.split, s.batch_size, s.n), s.n):
            _check_data_field(batch, s.data)
            log_w = log_importance_weights(ctx, s, batch, s.k).double()
            iwae_bounds.append(log_mean_exp(log_w, dim=0))
            mean_log_w.append(log_w.mean(dim=0))
    if not iwae_bounds:
        raise ValueError(f"the {s.split!r} split is empty")
    log_px, elbo = torch.cat(iwae_bounds), torch.cat(mean_log_w)
    count = log_px.shape[0]
    stderr = log_px.std().item() / math.sqrt(count) if count > 1 else float("nan")
    return {
        "nll": -log_px.mean().item(),
        "nll_stderr": stderr,
        "elbo": elbo.mean().item(),
        "nll_k1": -elbo.mean().item(),
        "gap": (log_px - elbo).mean().item(),
        "protocol": {"split": s.split, "n": count, "k": s.k, "estimator": "iwae",
                     "units": "nats per example", "posterior": s.posterior,
                     "likelihood": s.likelihood, "prior": s.prior, "seed": seed},
    }


def _kl_to_prior(q: Distribution, z: torch.Tensor, prior) -> tuple[torch.Tensor, str]:
    """q (batch b), one draw z (b ...) -> KL(q ‖ p) per example (b,), and how it was computed.

    Analytic when the prior has a torch distribution and torch knows the pair's KL; otherwise
    the single-sample estimate log q(z|x) − log p(z).
    """
    try:
        kl = torch.distributions.kl_divergence(q, prior.distribution())
        if kl.shape == z.shape[:1]:
            return kl, "analytic"
    except (NotImplementedError, ValueError, RuntimeError):
        pass  # no torch equivalent, no registered KL for the pair, or shapes that don't pair up
    return q.log_prob(z) - prior_log_prob(prior, z), "single-sample"


def elbo(ctx, **settings) -> dict:
    """Data x -> the evidence lower bound E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)), nats per example.

    One latent z ~ q(z|x) per data point scores the reconstruction term; the KL is analytic
    when available (see ``protocol.kl``), else single-sample. Also reports both terms
    (``reconstruction`` = mean log p(x|z), ``kl``).
    """
    s = ElboParams(**settings)
    rec_total = kl_total = 0.0
    count = 0
    kl_kinds = set()
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        prior = prior_component(ctx, s.prior)
        for batch in take_examples(ctx.batches(s.split, s.batch_size, s.n), s.n):
            _check_data_field(batch, s.data)
            q = graph_distribution(ctx, s.posterior, dict(batch), "posterior")
            z = q.sample()
            p_x = graph_distribution(ctx, s.likelihood, {**batch, s.latent: z}, "likelihood")
            kl, kind = _kl_to_prior(q, z, prior)
            kl_kinds.add(kind)
            rec_total += p_x.log_prob(batch[s.data]).double().sum().item()
            kl_total += kl.double().sum().item()
            count += z.shape[0]
    if count == 0:
        raise ValueError(f"the {s.split!r} split is empty")
    rec, kl = rec_total / count, kl_total / count
    return {
        "elbo": rec - kl,
        "reconstruction": rec,
        "kl": kl,
        "protocol": {"split": s.split, "n": count, "latent_samples": 1,
                     "kl": "/".join(sorted(kl_kinds)), "units": "nats per example",
                     "posterior": s.posterior, "likelihood": s.likelihood, "prior": s.prior,
                     "seed": seed},
    }


@hookimpl
def register_metrics(register):
    register("iwae_nll", iwae_nll, params=IwaeParams)
    register("elbo", elbo, params=ElboParams)
