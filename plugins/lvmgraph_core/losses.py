"""Losses: ops that return a scalar tensor for a phase to minimise.

Reduction convention (the ``reduction`` argument of the elementwise losses):

- ``"mean"``: mean over all elements, PyTorch's default. Its scale does not depend on the
  data's size, which suits GANs and plain autoencoders.
- ``"sum"``: sum over the non-batch axes (one number per sample), then mean over the batch.
  This is the per-sample convention of VAE papers, and the one that keeps a reconstruction
  term on the same scale as a per-sample KL: with ``"mean"`` the KL is effectively up-weighted
  by the number of pixels.

The likelihood-based losses (``nll``, ``kl``, ``elbo``) are always per sample, averaged over
the batch.
"""
# axes: b batch, c channels, h w spatial, d latent, k samples
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, Independent, kl_divergence

from lvmgraph import Prior, hookimpl

from .ops import per_sample

Reduction = Literal["mean", "sum"]


def reduce(elementwise: torch.Tensor, reduction: str) -> torch.Tensor:
    """elementwise (b, ...) -> (): mean of all elements, or per-sample sum then batch mean."""
    if reduction == "mean":
        return elementwise.mean()
    if reduction == "sum":
        return per_sample(elementwise).mean()
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def same_shape(loss: str, a: torch.Tensor, b: torch.Tensor) -> None:
    """An elementwise loss compares values of one shape: (b, 1) against (b,) would broadcast to
    (b, b) and train on the wrong number without a word, so say which shapes differ instead."""
    if torch.is_tensor(a) and torch.is_tensor(b) and a.dim() and b.dim() and a.shape != b.shape:
        raise ValueError(f"{loss} compares values of shapes {tuple(a.shape)} and {tuple(b.shape)}; an elementwise "
                         f"loss needs one shape (reshape or flatten one of them)")


# ---------------------------------------------------------------- reconstruction

def bce(x_hat: torch.Tensor, x: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """x_hat, x (b, ...) -> (): binary cross-entropy of probabilities x_hat in [0, 1] against x in [0, 1].

    ``reduction="mean"`` averages all elements; ``"sum"`` sums each sample, then averages the batch.
    """
    same_shape("bce", x_hat, x)
    return reduce(F.binary_cross_entropy(x_hat, x, reduction="none"), reduction)


def bce_logits(logits: torch.Tensor, x: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """logits, x (b, ...) -> (): binary cross-entropy of sigmoid(logits) against x, computed stably.

    ``reduction="mean"`` averages all elements; ``"sum"`` sums each sample, then averages the batch.
    """
    same_shape("bce_logits", logits, x)
    return reduce(F.binary_cross_entropy_with_logits(logits, x, reduction="none"), reduction)


def mse(a: torch.Tensor, b: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """a, b (b, ...) -> (): squared error (a − b)².

    ``reduction="mean"`` averages all elements; ``"sum"`` sums each sample, then averages the batch.
    """
    same_shape("mse", a, b)
    return reduce((a - b).pow(2), reduction)


def l1(a: torch.Tensor, b: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """a, b (b, ...) -> (): absolute error |a − b|.

    ``reduction="mean"`` averages all elements; ``"sum"`` sums each sample, then averages the batch.
    """
    same_shape("l1", a, b)
    return reduce((a - b).abs(), reduction)


# ---------------------------------------------------------------- likelihood terms

def nll(p, x: torch.Tensor) -> torch.Tensor:
    """p over (b, ...), x (b, ...) -> (): −log p(x), summed within each sample, mean over the batch.

    ``p`` is a torch Distribution (e.g. a decoder's Bernoulli or Normal) or a Prior; axes it
    treats as batch beyond the first are summed, so a plain ``Normal`` over (b d) works too.
    """
    return -per_sample(p.log_prob(x)).mean()


def kl(q: Distribution, p, samples: int = 1) -> torch.Tensor:
    """q over (b, ...), p a Distribution or Prior -> (): KL(q ‖ p) per sample, mean over the batch.

    Analytic when torch registers a KL for the pair (a prior without a batch axis is expanded
    to q's batch), otherwise a Monte Carlo estimate E_q[log q(z) − log p(z)] from ``samples``
    reparameterised draws. A Prior is used through ``distribution()``, or through its
    ``log_prob`` (Monte Carlo) when it has no torch equivalent.
    """
    return kl_per_sample(q, p, samples=samples).mean()


def kl_per_sample(q: Distribution, p, samples: int = 1) -> torch.Tensor:
    """q over (b, ...), p a Distribution or Prior -> (b,): KL(q ‖ p) for each sample (see ``kl``)."""
    if samples < 1:
        raise ValueError(f"kl needs samples >= 1, got {samples}")
    p_dist = _as_distribution(p)
    if p_dist is not None:
        try:
            return per_sample(kl_divergence(q, _aligned_to(p_dist, q)))
        except NotImplementedError:
            pass  # no closed form for this pair
    return _monte_carlo_kl(q, p_dist if p_dist is not None else p, samples)


def _as_distribution(p) -> Distribution | None:
    """The torch Distribution behind p, or None when only ``p.log_prob`` is available."""
    if isinstance(p, Distribution):
        return p
    if isinstance(p, Prior):
        try:
            return p.distribution()
        except NotImplementedError:
            return None
    if hasattr(p, "log_prob"):
        return None
    raise TypeError(f"kl: p must be a torch Distribution or a Prior, got {type(p).__name__}")


def _aligned_to(p: Distribution, q: Distribution) -> Distribution:
    """p reshaped so its batch and event shapes line up with q's, so KL terms pair up per sample.

    A prior usually has no batch axis (batch_shape ()), and may describe one latent
    coordinate (Normal(0, 1)) where q describes the whole vector; torch's analytic KLs need
    matching shapes, so p is expanded over q's batch and, if needed, over q's event axes.
    Shapes that cannot be matched are left alone (kl_divergence or Monte Carlo then decides).
    """
    extra_event_dims = len(q.event_shape) - len(p.event_shape)
    if extra_event_dims < 0:
        return p
    target_batch = q.batch_shape + q.event_shape[:extra_event_dims]
    try:
        if p.batch_shape != target_batch:
            p = p.expand(target_batch)
        if extra_event_dims:
            p = Independent(p, extra_event_dims)
    except (NotImplementedError, RuntimeError, ValueError):
        return p
    return p


def _monte_carlo_kl(q: Distribution, p, samples: int) -> torch.Tensor:
    """(b,): mean over ``samples`` draws z ~ q of log q(z) − log p(z)."""
    total = 0.0
    for _ in range(samples):
        # rsample lets the estimate's gradient reach q's parameters through z
        z = q.rsample() if q.has_rsample else q.sample()
        total = total + per_sample(q.log_prob(z)) - per_sample(p.log_prob(z))
    return total / samples


def elbo(q: Distribution, prior, p_x, x: torch.Tensor) -> torch.Tensor:
    """q(z|x) over (b d), prior, p(x|z) over (b, ...), x (b, ...) -> (): the ELBO — HIGHER IS BETTER.

    NOT A LOSS TO MINIMISE: mean over the batch of log p(x|z) − KL(q ‖ prior), a lower bound
    on log p(x) in nats per sample, meant for reporting. ``p_x`` is the decoder's
    distribution at z ~ q. To train, minimise ``neg_elbo`` (or ``nll`` + ``kl`` as separate,
    separately weighted terms).
    """
    return (per_sample(p_x.log_prob(x)) - kl_per_sample(q, prior)).mean()


def neg_elbo(q: Distribution, prior, p_x, x: torch.Tensor) -> torch.Tensor:
    """q(z|x), prior, p(x|z), x (b, ...) -> (): −ELBO = nll + kl per sample, mean over batch; minimise this."""
    return -elbo(q, prior, p_x, x)


# ---------------------------------------------------------------- classification

def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits (b k), target (b,) class indices or (b k) probabilities/one-hot -> (): mean cross-entropy."""
    if target.dim() == logits.dim():
        return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    return F.cross_entropy(logits, target.long())


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits (b k), target (b,) or one-hot (b k) -> (): share of rows whose argmax is the target (no gradient)."""
    if target.dim() == logits.dim():
        target = target.argmax(dim=1)
    return (logits.argmax(dim=1) == target).float().mean()


# ---------------------------------------------------------------- adversarial

def gan_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """real, fake logits (b, ...) -> (): −log D(real) − log(1 − D(fake)), each term averaged.

    D = sigmoid(logit); computed as binary cross-entropy with targets 1 (real) and 0 (fake).
    """
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def gan_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """fake logits D(G(z)) (b, ...) -> (): non-saturating generator loss −log D(G(z)), averaged.

    Gives strong gradients exactly when the discriminator confidently rejects the fakes.
    """
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def gan_minimax_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """fake logits D(G(z)) (b, ...) -> (): the original minimax generator loss log(1 − D(G(z))), averaged.

    Saturates (vanishing gradient) when D rejects the fakes; prefer ``gan_generator_loss``.
    """
    # log(1 − sigmoid(l)) = −softplus(l), stable for large logits
    return -F.softplus(fake).mean()


def mode_seeking(x1: torch.Tensor, x2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
                 eps: float = 1e-5) -> torch.Tensor:
    """Two outputs of one condition from two noises -> (): 1 / (mean|x1 − x2| / mean|z1 − z2| + eps).

    The mode-seeking term of Mao et al., "Mode Seeking Generative Adversarial Networks for Diverse
    Image Synthesis" (CVPR 2019): a conditional generator that ignores its noise (one image per
    condition) makes the ratio small and this loss large, so minimising it spreads the outputs of
    one condition apart in proportion to how far apart their noises are. Distances are mean
    absolute differences per example; the ratio is averaged over the batch.
    """
    if x1.shape != x2.shape or z1.shape != z2.shape or x1.shape[0] != z1.shape[0]:
        raise ValueError(f"mode_seeking needs two outputs of one shape and their two noises of one shape, "
                         f"one per example; got outputs {tuple(x1.shape)}, {tuple(x2.shape)} and noises "
                         f"{tuple(z1.shape)}, {tuple(z2.shape)}")
    d_out = (x1 - x2).abs().flatten(1).mean(dim=1)
    d_noise = (z1 - z2).abs().flatten(1).mean(dim=1)
    return 1.0 / ((d_out / d_noise).mean() + eps)


LOSSES = {
    "bce": bce,
    "bce_logits": bce_logits,
    "mse": mse,
    "l1": l1,
    "nll": nll,
    "kl": kl,
    "elbo": elbo,
    "neg_elbo": neg_elbo,
    "cross_entropy": cross_entropy,
    "accuracy": accuracy,
    "gan_discriminator_loss": gan_discriminator_loss,
    "gan_generator_loss": gan_generator_loss,
    "gan_minimax_generator_loss": gan_minimax_generator_loss,
    "mode_seeking": mode_seeking,
}


@hookimpl
def register_losses(register):
    for name, fn in LOSSES.items():
        register(name, fn)
