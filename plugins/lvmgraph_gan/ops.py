"""GAN graph ops: PacGAN packing.

Axis legend: b batch, m samples per pack, d features per sample (the flattened ``...``).
"""
from __future__ import annotations

import math

import torch

from lvmgraph import hookimpl


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """x (b, ...) -> (b/m, m·d): every m consecutive samples concatenated into one row (PacGAN).

    Lin et al. (2018): the discriminator judges m samples at once — all real or all
    generated — which penalises a generator that collapses onto few modes. Rows are
    flattened, so the critic's ``in_shape`` becomes [m·d]; b must be a multiple of m
    (pick ``data.batch_size`` accordingly). ``m = 1`` only flattens. Spec use:
    ``d_real: critic(pack(x, 2))`` and ``d_fake: critic(pack(x_fake, 2))``.
    """
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"pack: m must be a positive integer (samples per pack), got {m!r}")
    b = x.shape[0]
    if b % m:
        raise ValueError(f"pack: a batch of {b} samples cannot be split into packs of m={m}; "
                         f"use a batch size that is a multiple of {m} (data.batch_size)")
    d = math.prod(x.shape[1:])
    return x.reshape(b // m, m * d)


OPS = {"pack": pack}


@hookimpl
def register_ops(register):
    for name, fn in OPS.items():
        register(name, fn)
