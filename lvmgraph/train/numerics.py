"""The trainer's arithmetic around the loss: assembling the weighted sum, checking for NaN / Inf.

Both sit on the hot path of every phase, so each avoids tensor work that changes nothing.
"""
from __future__ import annotations

import torch


def weighted_sum(terms) -> torch.Tensor:
    """sum(weight * value) over (weight, value) pairs, without the tensor ops a plain ``sum()`` adds
    that change nothing (``0 + a``, ``1.0 * a``): the same value and gradients, fewer autograd nodes."""
    total = None
    for weight, value in terms:
        term = value if weight == 1.0 else weight * value
        total = term if total is None else total + term
    return total


def any_non_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether any of the tensors holds a NaN or Inf: one fused pass and one host sync.

    GradScaler's check-and-unscale kernel with a scale of exactly 1 (which leaves every value
    bit-identical) reads each tensor once without allocating, where ``isfinite(g).all()`` per
    tensor costs several passes and a temporary each (a tenth of a small model's step)."""
    if not tensors:
        return False
    device = tensors[0].device
    found = torch.zeros(1, device=device)
    try:
        torch._amp_foreach_non_finite_check_and_unscale_(tensors, found, _unit_scale(device))
    except RuntimeError:  # tensors on several devices, sparse or not floating point: one by one
        return any(not bool(torch.isfinite(t).all()) for t in tensors)
    return bool(found)


_UNIT_SCALES: dict[torch.device, torch.Tensor] = {}


def _unit_scale(device: torch.device) -> torch.Tensor:
    """The scale 1 the check multiplies by, one per device (read, never written, by the kernel)."""
    scale = _UNIT_SCALES.get(device)
    if scale is None:
        scale = _UNIT_SCALES[device] = torch.ones(1, device=device)
    return scale
