"""Adversarial losses and critic regularisers: least squares, hinge, Wasserstein, WGAN-GP, R1, drift.

Axis legend: b batch, d features (any per-sample shape ``...``).

The losses take the discriminator's raw outputs (unbounded scores: no sigmoid) and return a
scalar to *minimise*. The non-saturating and minimax GAN
losses live in the core plugin (``gan_discriminator_loss``, ``gan_generator_loss``,
``gan_minimax_generator_loss``).

The penalties (``gradient_penalty``, ``r1_penalty``) take the critic itself as their first
argument, called from a spec as ``gradient_penalty(critic, x, x_fake)``: they need to run the
critic on new inputs and differentiate its output with respect to those inputs.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lvmgraph import hookimpl


# ---------------------------------------------------------------- least squares (Mao et al., 2017)

def lsgan_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """real D(x), fake D(G(z)) (b, ...) -> (): ½·E[(D(x) − 1)²] + ½·E[D(G(z))²].

    Least-squares GAN (Mao et al., 2017) with the 0-1 coding a = 0 (fake), b = 1 (real);
    the outputs are raw (no sigmoid).
    """
    return 0.5 * (real - 1).pow(2).mean() + 0.5 * fake.pow(2).mean()


def lsgan_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """fake D(G(z)) (b, ...) -> (): ½·E[(D(G(z)) − 1)²] (LSGAN, c = 1: the fakes aim at the real label)."""
    return 0.5 * (fake - 1).pow(2).mean()


# ---------------------------------------------------------------- hinge (Lim & Ye 2017; Miyato et al. 2018)

def hinge_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """real D(x), fake D(G(z)) (b, ...) -> (): E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """fake D(G(z)) (b, ...) -> (): −E[D(G(z))] (the generator side of the hinge GAN)."""
    return -fake.mean()


# ---------------------------------------------------------------- Wasserstein (Arjovsky et al., 2017)

def wgan_critic_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """real D(x), fake D(G(z)) (b, ...) -> (): E[D(G(z))] − E[D(x)].

    Minimising it maximises E[D(x)] − E[D(G(z))], the Kantorovich–Rubinstein estimate of the
    Wasserstein-1 distance when D is 1-Lipschitz — enforce that with ``gradient_penalty``
    (WGAN-GP), spectral normalisation or weight clipping.
    """
    return fake.mean() - real.mean()


def wgan_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """fake D(G(z)) (b, ...) -> (): −E[D(G(z))]."""
    return -fake.mean()


# ---------------------------------------------------------------- gradient penalties

def _scores(critic: Callable, x: torch.Tensor, output: str | None) -> torch.Tensor:
    """The critic's output on x, picking the named output of a multi-head critic."""
    out = critic(x)
    if isinstance(out, dict):
        if output is None:
            raise ValueError(f"the critic returns named outputs {sorted(out)}; say which one to "
                             f"differentiate with output=..., e.g. output='{sorted(out)[0]}'")
        if output not in out:
            raise KeyError(f"the critic has no output named '{output}'; its outputs are {sorted(out)}")
        return out[output]
    if output is not None:
        raise ValueError(f"output='{output}' was given but the critic returns a single tensor, not named outputs")
    return out


def _input_gradient(critic: Callable, x: torch.Tensor, output: str | None) -> torch.Tensor:
    """∇ₓ Σ D(x) for each row of x -> (b, ...): the per-sample gradient of the critic at x.

    x is made a fresh leaf that requires grad, so this works whatever autograd state its
    source had (the framework hands a critic phase real data and generator outputs computed
    without grad). The gradient is built with ``create_graph=True`` when grad mode is on, so
    a penalty on it can be back-propagated into the critic's parameters (double backward);
    under ``no_grad`` (logging, metrics) it is computed anyway and returned detached.
    """
    keep_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        scores = _scores(critic, leaf, output)
        # rows are independent samples (no batch norm in a penalised critic), so the gradient
        # of the sum w.r.t. each row is that row's own gradient
        (grad,) = torch.autograd.grad(scores.sum(), leaf, create_graph=keep_graph)
    return grad if keep_graph else grad.detach()


def _check_pair(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} must have "
                         "the same shape (one interpolate per pair of rows)")


def gradient_penalty(critic: Callable, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0,
                     target: float = 1.0, output: str | None = None) -> torch.Tensor:
    """critic, real x (b, ...), fake G(z) (b, ...) -> (): λ·E[(‖∇D(x̂)‖₂ − target)²] (WGAN-GP).

    Gulrajani et al. (2017): x̂ = ε·x + (1 − ε)·G(z) with one ε ~ U[0, 1] per sample; the
    norm is over all of a sample's coordinates; λ = ``weight`` (10 in the paper), ``target``
    the Lipschitz constant aimed at (1). x̂ is detached from the generator and made a leaf
    that requires grad, and the gradient is taken with ``create_graph=True``, so the penalty
    trains the critic. ``output`` names the output to differentiate when the critic returns
    several (``multi_head_mlp``). Spec use: ``gp: gradient_penalty(critic, x, x_fake)``,
    minimised together with ``wgan_critic_loss`` in the critic's phase.
    """
    _check_pair(real, fake)
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = eps * real.detach() + (1 - eps) * fake.detach()
    grad = _input_gradient(critic, mixed, output)
    norms = grad.flatten(1).norm(2, dim=1)
    return weight * (norms - target).pow(2).mean()


def r1_penalty(critic: Callable, real: torch.Tensor, weight: float = 10.0,
               output: str | None = None) -> torch.Tensor:
    """critic, real x (b, ...) -> (): ½·γ·E[‖∇D(x)‖₂²] on real data only (Mescheder et al., 2018).

    γ = ``weight``. Penalises the critic's gradient at the data, which makes simultaneous
    gradient descent converge locally for the non-saturating GAN. Spec use:
    ``r1: r1_penalty(critic, x)`` in the discriminator's phase.
    """
    grad = _input_gradient(critic, real, output)
    return 0.5 * weight * grad.flatten(1).pow(2).sum(dim=1).mean()


def drift_penalty(real_scores: torch.Tensor, weight: float = 0.001) -> torch.Tensor:
    """real D(x) (b, ...) -> (): ε·E[D(x)²] (Progressive GAN's drift term, ε = 0.001).

    Keeps the WGAN critic's values from drifting far from zero.
    """
    return weight * real_scores.pow(2).mean()


LOSSES = {
    "lsgan_discriminator_loss": lsgan_discriminator_loss,
    "lsgan_generator_loss": lsgan_generator_loss,
    "hinge_discriminator_loss": hinge_discriminator_loss,
    "hinge_generator_loss": hinge_generator_loss,
    "wgan_critic_loss": wgan_critic_loss,
    "wgan_generator_loss": wgan_generator_loss,
    "gradient_penalty": gradient_penalty,
    "r1_penalty": r1_penalty,
    "drift_penalty": drift_penalty,
}


@hookimpl
def register_losses(register):
    for name, fn in LOSSES.items():
        register(name, fn)
