"""Optimizers: ``factory(params, **settings) -> torch.optim.Optimizer`` with validated settings.

``params`` is whatever torch accepts: an iterable of parameters, or of param-group dicts.
A spec says e.g. ``optimizer: {type: adam, lr: 2.0e-4, betas: [0.5, 0.999]}``.
"""
from __future__ import annotations

from typing import Annotated, Iterable

import torch
from pydantic import Field, model_validator

from lvmgraph import Params, hookimpl

# a momentum-like coefficient: in [0, 1)
Beta = Annotated[float, Field(ge=0, lt=1)]


class AdamParams(Params):
    lr: float = Field(1e-3, gt=0, description="learning rate")
    betas: tuple[Beta, Beta] = Field((0.9, 0.999), description="decay rates of the first and second moment estimates")
    eps: float = Field(1e-8, gt=0, description="added to the denominator for numerical stability")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty added to the gradient (coupled, unlike adamw)")
    amsgrad: bool = Field(False, description="use the AMSGrad variant (max of past second moments)")


class AdamWParams(AdamParams):
    weight_decay: float = Field(0.01, ge=0, description="decoupled weight decay, applied directly to the weights")


class SGDParams(Params):
    lr: float = Field(1e-3, gt=0, description="learning rate (torch's default)")
    momentum: float = Field(0.0, ge=0, lt=1, description="momentum factor; 0 is plain SGD")
    nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0)")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty added to the gradient")

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: true needs momentum > 0")
        return self


class RMSpropParams(Params):
    lr: float = Field(1e-2, gt=0, description="learning rate (torch's default)")
    alpha: float = Field(0.99, ge=0, lt=1, description="decay rate of the running mean of squared gradients")
    eps: float = Field(1e-8, gt=0, description="added to the denominator for numerical stability")
    momentum: float = Field(0.0, ge=0, lt=1, description="momentum factor")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty added to the gradient")


def make_adam(params: Iterable, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> torch.optim.Adam:
    """params -> torch.optim.Adam: adaptive moments, the default for VAEs and GANs (GANs often use betas [0.5, 0.999])."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps,
                            weight_decay=weight_decay, amsgrad=amsgrad)


def make_adamw(params: Iterable, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
               eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False) -> torch.optim.AdamW:
    """params -> torch.optim.AdamW: Adam with decoupled weight decay."""
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps,
                             weight_decay=weight_decay, amsgrad=amsgrad)


def make_sgd(params: Iterable, *, lr: float = 1e-3, momentum: float = 0.0, nesterov: bool = False,
             weight_decay: float = 0.0) -> torch.optim.SGD:
    """params -> torch.optim.SGD: stochastic gradient descent, optionally with (Nesterov) momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


def make_rmsprop(params: Iterable, *, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.RMSprop:
    """params -> torch.optim.RMSprop: per-weight step sizes from a running mean of squared gradients (WGAN's choice)."""
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                               weight_decay=weight_decay)


@hookimpl
def register_optimizers(register):
    register("adam", make_adam, params=AdamParams)
    register("adamw", make_adamw, params=AdamWParams)
    register("sgd", make_sgd, params=SGDParams)
    register("rmsprop", make_rmsprop, params=RMSpropParams)
