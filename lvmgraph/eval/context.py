"""What a metric function sees: the built model, the data, and a way to evaluate graph values."""
from __future__ import annotations

from typing import Any, Iterator, Protocol

import torch
from torch import nn

from ..data.base import DatasetBundle


class EvalContext(Protocol):
    """Passed to every metric as ``fn(ctx, **settings)``.

    - ``components``: name -> built ``nn.Module`` (priors included), in eval mode.
    - ``data``: the DatasetBundle; ``info`` has ``kind``, ``num_classes`` ...
    - ``device``: where the model lives.
    - ``generator``: a seeded ``torch.Generator`` (CPU) for metric-side randomness.
    - ``evaluate(outputs, inputs)``: compute graph values (names) given a dict of inputs
      that may hold data fields and/or overrides for any graph value (e.g. ``{"z": z}``);
      returns ``{name: value}``. Runs under ``torch.no_grad()``.
    - ``sample(n)``: n generated outputs following the spec's ``sample:`` section (a tensor).
    - ``batches(split, batch_size, limit)``: iterate over a split as dicts of tensors on the device.
    - ``dataset(changes)``: the run's dataset built again with some settings changed (a new bundle).
    - ``spec``: the validated spec (``ctx.spec.sample.set`` tells which value a prior replaces).
    """

    components: dict[str, nn.Module]
    data: DatasetBundle
    device: torch.device
    generator: torch.Generator
    spec: Any

    def evaluate(self, outputs: list[str], inputs: dict[str, Any]) -> dict[str, Any]: ...

    def sample(self, n: int) -> torch.Tensor: ...

    def dataset(self, changes: dict[str, Any]) -> DatasetBundle: ...

    def batches(self, split: str = "test", batch_size: int = 500,
                limit: int | None = None) -> Iterator[dict[str, torch.Tensor]]: ...


def point_value(value, name: str, setting: str) -> torch.Tensor:
    """A graph value a metric reads -> a tensor: itself, or the mean of a distribution.

    ``name`` is the graph value and ``setting`` the metric setting that named it, so the error
    says which setting to change.
    """
    if isinstance(value, torch.distributions.Distribution):
        return value.mean
    if isinstance(value, torch.Tensor):
        return value
    raise TypeError(f"graph value {name!r} is a {type(value).__name__}; set `{setting}:` to a tensor or a "
                    f"distribution computed from the data")
