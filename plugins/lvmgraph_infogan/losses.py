"""InfoGAN's mutual-information term (Chen et al., NeurIPS 2016).

Axis legend: b batch, k categories of the categorical code, d continuous code dimensions.

InfoGAN maximises a variational lower bound of I(c; G(z, c)):

    L_I(G, Q) = E_{c ~ p(c), x ~ G(z, c)} [log Q(c | x)] + H(c)  <=  I(c; G(z, c))

and trains min_{G,Q} max_D V(D, G) − λ·L_I. Since H(c) is a constant, the term to minimise is
the negative log-likelihood of the codes under Q's prediction from the generated image:
a cross-entropy for a categorical code and a Gaussian NLL for continuous codes. ``info_loss``
computes it; ``code_entropy`` gives H(c) so a spec can log the bound itself,
``mi_lower_bound: code_entropy(code) - info_loss(q.c_logits, c)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Distribution

from lvmgraph import Prior, hookimpl

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def categorical_code_nll(logits: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """logits (b k), c one-hot (b k) or indices (b,) -> (): −log Q(c|x), mean over the batch (nats)."""
    if c.dim() == logits.dim():
        if c.shape != logits.shape:
            raise ValueError(f"info_loss: the categorical code has shape {tuple(c.shape)} but Q's logits "
                             f"{tuple(logits.shape)}; give Q one logit per category")
        return -(c * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    if c.dim() == 1 and logits.dim() == 2:
        return F.cross_entropy(logits, c.long())
    raise ValueError(f"info_loss: categorical code of shape {tuple(c.shape)} does not fit logits "
                     f"{tuple(logits.shape)}: use one-hot rows (b k) or indices (b,)")


def gaussian_code_nll(mean: torch.Tensor, u: torch.Tensor, logstd: torch.Tensor | None = None) -> torch.Tensor:
    """mean, u, logstd (b d) -> (): −log N(u; mean, exp(logstd)²) summed over d, mean over the batch.

    Without ``logstd`` the standard deviation is fixed at 1 (the InfoGAN paper's choice, which
    makes the term a squared error plus a constant: 0.5·(u − mean)² + 0.5·log 2π per dimension).
    """
    if mean.shape != u.shape:
        raise ValueError(f"info_loss: q_u_mean has shape {tuple(mean.shape)} but the continuous code u "
                         f"{tuple(u.shape)}; give Q one output per continuous code")
    if logstd is None:
        per_dim = 0.5 * (u - mean).pow(2) + HALF_LOG_2PI
    else:
        if logstd.shape != u.shape:
            raise ValueError(f"info_loss: q_u_logstd has shape {tuple(logstd.shape)}, expected {tuple(u.shape)}")
        per_dim = 0.5 * ((u - mean) * torch.exp(-logstd)).pow(2) + logstd + HALF_LOG_2PI
    return per_dim.reshape(per_dim.shape[0], -1).sum(dim=1).mean()


def info_loss(q_c_logits: torch.Tensor | None, c: torch.Tensor | None,
              q_u_mean: torch.Tensor | None = None, u: torch.Tensor | None = None,
              q_u_logstd: torch.Tensor | None = None, weight_continuous: float = 1.0) -> torch.Tensor:
    """Q's predictions and the codes G was given -> (): InfoGAN's −L_I without H(c), to minimise.

    q_c_logits (b k) with c one-hot (b k) or indices (b,): cross-entropy −log Q(c|x).
    q_u_mean (b d) with u (b d), optional q_u_logstd (b d): Gaussian NLL of the continuous
    codes, summed over d (unit standard deviation when no logstd is given), times
    ``weight_continuous``. Each term is averaged over the batch; pass None for a code the
    model does not have (``info_loss(None, None, q.u_mean, u)`` for continuous codes only).
    """
    if (q_c_logits is None) != (c is None):
        raise ValueError("info_loss needs both q_c_logits and c for a categorical code, or neither")
    if (q_u_mean is None) != (u is None):
        raise ValueError("info_loss needs both q_u_mean and u for continuous codes, or neither")
    if q_u_logstd is not None and q_u_mean is None:
        raise ValueError("info_loss got q_u_logstd without q_u_mean and u")
    if q_c_logits is None and q_u_mean is None:
        raise ValueError("info_loss needs a categorical code (q_c_logits, c) or continuous codes (q_u_mean, u)")
    total = 0.0
    if q_c_logits is not None:
        total = total + categorical_code_nll(q_c_logits, c)
    if q_u_mean is not None:
        total = total + float(weight_continuous) * gaussian_code_nll(q_u_mean, u, q_u_logstd)
    return total


def code_entropy(prior) -> torch.Tensor:
    """prior (a Prior or torch Distribution over codes) -> (): its entropy H(c) in nats.

    For InfoGAN's uniform categorical code with k values this is log k, the most the
    categorical part of the mutual-information bound can reach.
    """
    dist = prior.distribution() if isinstance(prior, Prior) else prior
    if not isinstance(dist, Distribution):
        raise TypeError(f"code_entropy needs a prior component or a distribution, got {type(prior).__name__}")
    return dist.entropy().sum()


@hookimpl
def register_losses(register):
    register("info_loss", info_loss)


@hookimpl
def register_ops(register):
    register("code_entropy", code_entropy)
