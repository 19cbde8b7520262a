"""Base classes that plugin components build on.

Axis legend used across lvmgraph: b batch, c channels, h w spatial, d latent, k samples.
"""
from __future__ import annotations

from typing import Sequence

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn


class Params(BaseModel):
    """Base for every parameter model: unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ShapeMismatch(ValueError):
    """A component received an input whose per-sample shape is not the one it was built for.

    Raised by ``check_shape`` it also carries ``expected`` and ``got`` (per-sample shapes) and
    ``setting`` (the component's key that sets ``expected``); the executor adds ``component``, the
    spec name of the component called. The dry run uses them to tell a user whose data does not
    fit the components which data setting to change (``lvmgraph.data.fit``).
    """

    def __init__(self, message: str, *, expected: Sequence[int] | None = None, got: Sequence[int] | None = None,
                 setting: str | None = None):
        super().__init__(message)
        self.expected = tuple(expected) if expected is not None else None
        self.got = tuple(got) if got is not None else None
        self.setting = setting
        self.component: str | None = None


def check_shape(x: torch.Tensor, expected: Sequence[int], *, what: str, setting: str) -> None:
    """Raise ShapeMismatch unless ``x`` is (b, *expected). ``setting`` names the spec key to change."""
    expected = tuple(int(s) for s in expected)
    got = tuple(x.shape[1:])
    if got != expected:
        raise ShapeMismatch(
            f"{what} expects inputs of shape (batch, {', '.join(map(str, expected))}) "
            f"but got (batch, {', '.join(map(str, got))}); change `{setting}` to {list(got)} "
            f"or feed it a value of the right shape", expected=expected, got=got, setting=setting)


class Prior(nn.Module):
    """A distribution over (b, *shape) that a spec can sample: ``prior.sample(like=z)``.

    Subclasses implement ``_sample(n)`` and ``log_prob(z)``; ``distribution()`` returns the
    equivalent ``torch.distributions`` object when one exists (so ``kl``/``elbo`` can use an
    analytic KL) and raises NotImplementedError otherwise.
    """

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        # moves with .to(device) so samples are created where the model lives
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def forward(self, n: int | None = None, like: torch.Tensor | None = None) -> torch.Tensor:
        return self.sample(n=n, like=like)

    def sample(self, n: int | None = None, like: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``n`` samples, or as many as ``like`` has rows; returns (n, *shape)."""
        if like is not None:
            n = like.shape[0]
        if n is None:
            raise ValueError("prior.sample needs n=... or like=...")
        return self._sample(int(n))

    def _sample(self, n: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log density of each row of z: (b, *shape) -> (b,)."""
        return self.distribution().log_prob(z)

    def distribution(self) -> torch.distributions.Distribution:
        raise NotImplementedError(f"{type(self).__name__} has no torch.distributions equivalent")


class Components(nn.ModuleDict):
    """The built components, keyed by their spec names.

    Imported parts have dotted names (``vae.encoder``), which ``nn.Module`` forbids as child
    names; they are stored as ``vae/encoder`` (so state-dict keys read ``vae/encoder.net.0.weight``).
    """

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "/")

    def __getitem__(self, name: str) -> nn.Module:
        return super().__getitem__(self._key(name))

    def __setitem__(self, name: str, module: nn.Module) -> None:
        super().__setitem__(self._key(name), module)

    def __contains__(self, name: str) -> bool:
        return super().__contains__(self._key(name))

    def keys(self):
        return [k.replace("/", ".") for k in super().keys()]

    def items(self):
        return [(k.replace("/", "."), v) for k, v in super().items()]

    def __iter__(self):
        return iter(self.keys())
