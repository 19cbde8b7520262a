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
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for t in tensors:
        by_device.setdefault(t.device, []).append(t)
    found = []
    for device, group in by_device.items():
        flag = torch.zeros(1, device=device)
        if all(t.is_floating_point() and not t.is_sparse for t in group):
            torch._amp_foreach_non_finite_check_and_unscale_(group, flag, torch.ones(1, device=device))
        else:
            flag += torch.stack([~torch.isfinite(t).all() for t in group]).any()
        found.append(flag.cpu())
    return bool(torch.cat(found).any())
