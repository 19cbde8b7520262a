"""Core priors: distributions over latent codes that a spec samples with ``prior.sample(like=z)``.

Axis legend: b batch (n samples), d latent, k mixture component.

Samples are created on the prior's device and in its floating dtype (both follow
``prior.to(...)``), so a prior moved with the model never needs a manual ``.to``.
"""
from __future__ import annotations

import math
from typing import Annotated, Sequence

import torch
import torch.distributions as D
from pydantic import Field, PositiveInt, field_validator, model_validator

from lvmgraph import Params, Prior, hookimpl

Shape = Annotated[list[PositiveInt], Field(min_length=1)]


class _FloatPrior(Prior):
    """A Prior whose samples use the dtype of its buffers (float32 unless moved with ``.to``)."""

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def _full(self, value: float) -> torch.Tensor:
        """A constant tensor of the prior's shape on its device and dtype."""
        return torch.full(self.shape, float(value), device=self.device, dtype=self.dtype)


# ----------------------------------------------------------------------------- normal

class NormalParams(Params):
    shape: Shape = Field(description="per-sample shape of z, e.g. [8]")
    loc: float = Field(default=0.0, description="mean of every coordinate")
    scale: float = Field(default=1.0, gt=0, description="standard deviation of every coordinate")


class NormalPrior(_FloatPrior):
    """n -> z (n, *shape): independent Normal(loc, scale) coordinates (the standard VAE prior)."""

    def __init__(self, *, shape: Sequence[int], loc: float = 0.0, scale: float = 1.0):
        super().__init__(shape)
        self.loc, self.scale = float(loc), float(scale)

    def _sample(self, n: int) -> torch.Tensor:
        eps = torch.randn(n, *self.shape, device=self.device, dtype=self.dtype)
        return self.loc + self.scale * eps

    def distribution(self) -> D.Distribution:
        return D.Independent(D.Normal(self._full(self.loc), self._full(self.scale)), len(self.shape))


# ----------------------------------------------------------------------------- uniform

class UniformParams(Params):
    shape: Shape = Field(description="per-sample shape of z, e.g. [2]")
    low: float = Field(default=-1.0, description="lower bound of every coordinate")
    high: float = Field(default=1.0, description="upper bound of every coordinate (must exceed low)")

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"uniform prior needs low < high, got low={self.low}, high={self.high}")
        return self


class UniformPrior(_FloatPrior):
    """n -> z (n, *shape): independent Uniform(low, high) coordinates."""

    def __init__(self, *, shape: Sequence[int], low: float = -1.0, high: float = 1.0):
        super().__init__(shape)
        if not low < high:
            raise ValueError(f"uniform prior needs low < high, got low={low}, high={high}")
        self.low, self.high = float(low), float(high)

    def _sample(self, n: int) -> torch.Tensor:
        u = torch.rand(n, *self.shape, device=self.device, dtype=self.dtype)
        return self.low + (self.high - self.low) * u

    def distribution(self) -> D.Distribution:
        # validate_args off: points exactly on `high` (or outside) get -inf instead of an exception
        base = D.Uniform(self._full(self.low), self._full(self.high), validate_args=False)
        return D.Independent(base, len(self.shape))


# ----------------------------------------------------------------------------- mixture of Gaussians

class MixtureOfGaussiansParams(Params):
    shape: Annotated[list[PositiveInt], Field(min_length=1, max_length=1)] = Field(
        description="[d] with d >= 2; the components lie on a circle in the first two dimensions")
    n_components: PositiveInt = Field(default=10, description="number of Gaussian components (e.g. one per class)")
    radius: float = Field(default=4.0, gt=0, description="radius of the circle the component means sit on")
    std: float = Field(default=0.5, gt=0, description="isotropic standard deviation of each component")

    @field_validator("shape")
    @classmethod
    def _at_least_2d(cls, shape):
        if shape[0] < 2:
            raise ValueError(f"mixture_of_gaussians needs shape [d] with d >= 2, got {shape}")
        return shape


def circle_means(n_components: int, d: int, radius: float) -> torch.Tensor:
    """(k d) means equally spaced on a circle of ``radius`` in dims 0 and 1, zero elsewhere."""
    angle = 2 * math.pi * torch.arange(n_components, dtype=torch.float64) / n_components
    means = torch.zeros(n_components, d, dtype=torch.float64)
    means[:, 0] = radius * torch.cos(angle)
    means[:, 1] = radius * torch.sin(angle)
    return means.float()


class MixtureOfGaussiansPrior(_FloatPrior):
    """n -> z (n d): an equal-weight mixture of isotropic Gaussians on a circle (the AAE paper's 2-D prior).

    ``component_means`` (k d) is a buffer; ``sample_with_components(n)`` also returns which
    component (n,) drew each row, for label-conditioned adversarial training.
    """

    def __init__(self, *, shape: Sequence[int], n_components: int = 10, radius: float = 4.0,
                 std: float = 0.5):
        super().__init__(shape)
        if len(self.shape) != 1 or self.shape[0] < 2:
            raise ValueError(f"mixture_of_gaussians needs shape [d] with d >= 2, got {list(shape)}")
        self.n_components, self.radius, self.std = int(n_components), float(radius), float(std)
        self.register_buffer("component_means", circle_means(self.n_components, self.shape[0], radius))

    def sample_with_components(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n -> (z (n d), component index (n,) int64)."""
        k = torch.randint(self.n_components, (n,), device=self.device)
        eps = torch.randn(n, *self.shape, device=self.device, dtype=self.dtype)
        return self.component_means[k].to(self.dtype) + self.std * eps, k

    def _sample(self, n: int) -> torch.Tensor:
        return self.sample_with_components(n)[0]

    def distribution(self) -> D.Distribution:
        means = self.component_means.to(self.dtype)
        weights = D.Categorical(logits=torch.zeros(self.n_components, device=self.device, dtype=self.dtype))
        components = D.Independent(D.Normal(means, torch.full_like(means, self.std)), 1)
        return D.MixtureSameFamily(weights, components)


# ----------------------------------------------------------------------------- categorical

class CategoricalParams(Params):
    n_classes: PositiveInt = Field(description="number of categories; samples are one-hot rows of this length")
    probs: list[float] | None = Field(default=None, description="class probabilities (sum to 1); default uniform")

    @model_validator(mode="after")
    def _valid_probs(self):
        if self.probs is not None:
            check_probs(self.probs, self.n_classes)
        return self


def check_probs(probs: Sequence[float], n_classes: int) -> None:
    """Raise ValueError unless ``probs`` is a probability vector of length ``n_classes``."""
    if len(probs) != n_classes:
        raise ValueError(f"probs has {len(probs)} entries but n_classes is {n_classes}")
    if any(p < 0 for p in probs):
        raise ValueError(f"probs must be non-negative, got {list(probs)}")
    if abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(f"probs must sum to 1 (within 1e-6), got sum {sum(probs)}")


class CategoricalPrior(_FloatPrior):
    """n -> y (n, n_classes): one-hot float rows drawn with ``probs`` (uniform by default)."""

    def __init__(self, *, n_classes: int, probs: Sequence[float] | None = None):
        super().__init__([n_classes])
        if probs is None:
            probs = [1.0 / n_classes] * n_classes
        check_probs(probs, n_classes)
        self.n_classes = int(n_classes)
        self.register_buffer("probs", torch.tensor([float(p) for p in probs]))

    def _sample(self, n: int) -> torch.Tensor:
        idx = torch.multinomial(self.probs.float(), n, replacement=True)
        return torch.nn.functional.one_hot(idx, self.n_classes).to(self.dtype)

    def distribution(self) -> D.Distribution:
        return D.OneHotCategorical(probs=self.probs.to(self.dtype))


# ----------------------------------------------------------------------------- swiss roll

class SwissRollParams(Params):
    shape: list[PositiveInt] = Field(default=[2], description="must be [2]: the roll is a 2-D curve")
    noise: float = Field(default=0.05, ge=0, description="std of Gaussian noise added to each point, in units of `scale`")
    scale: float = Field(default=1.0, gt=0, description="the roll fits roughly in [-scale, scale]^2")

    @field_validator("shape")
    @classmethod
    def _two_d(cls, shape):
        if shape != [2]:
            raise ValueError(f"swiss_roll is 2-D: shape must be [2], got {shape}")
        return shape


SWISS_T_MIN, SWISS_T_MAX = 1.5 * math.pi, 4.5 * math.pi


class SwissRollPrior(_FloatPrior):
    """n -> z (n 2): noisy points on a 2-D swiss-roll spiral scaled into about [-scale, scale]^2.

    Samples only: there is no closed-form density, so use it where samples suffice
    (e.g. as the target of an adversarial prior).
    """

    def __init__(self, *, shape: Sequence[int] = (2,), noise: float = 0.05, scale: float = 1.0):
        super().__init__(shape)
        if self.shape != (2,):
            raise ValueError(f"swiss_roll is 2-D: shape must be [2], got {list(shape)}")
        self.noise, self.scale = float(noise), float(scale)

    def _sample(self, n: int) -> torch.Tensor:
        t = SWISS_T_MIN + (SWISS_T_MAX - SWISS_T_MIN) * torch.rand(n, device=self.device, dtype=self.dtype)
        # |t| <= T_MAX so dividing by it keeps the noiseless roll inside the unit square
        roll = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / SWISS_T_MAX
        return self.scale * (roll + self.noise * torch.randn_like(roll))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(self._no_density())

    def distribution(self) -> D.Distribution:
        raise NotImplementedError(self._no_density())

    @staticmethod
    def _no_density() -> str:
        return ("swiss_roll has no closed-form density; use it only where samples suffice, "
                "e.g. an adversarial prior")


@hookimpl
def register_priors(register):
    register("normal", NormalPrior, params=NormalParams)
    register("uniform", UniformPrior, params=UniformParams)
    register("mixture_of_gaussians", MixtureOfGaussiansPrior, params=MixtureOfGaussiansParams)
    register("categorical", CategoricalPrior, params=CategoricalParams)
    register("swiss_roll", SwissRollPrior, params=SwissRollParams)
