"""The image history buffer of Shrivastava et al. (2017), as CycleGAN uses it (Zhu et al. 2017, sec. 4).

Axis legend: b batch, n pool slots; ``...`` the per-sample shape (c h w for images).

The discriminators are updated on a mix of the newest fakes and fakes from earlier generator
versions, which damps the oscillation between generator and discriminator. In a spec, the pool
sits between the generator's output and the discriminator, in the discriminator's loss only:

    components:
      pool_b: {type: image_pool, size: 50, shape: [1, 28, 28]}
    graph:
      x_ab:     g_ab(x_a)
      g_adv_ab: lsgan_generator_loss(d_b(x_ab))                      # the generator sees its newest fakes
      d_loss_b: lsgan_discriminator_loss(d_b(x_b), d_b(pool_b(x_ab)))

It has no parameters, so no phase can (or needs to) update it and it is never in an optimizer.
"""
from __future__ import annotations

from typing import Annotated, Sequence

import torch
from pydantic import Field, PositiveInt
from torch import nn

from lvmgraph import Params, check_shape

SWAP_PROBABILITY = 0.5


class ImagePoolParams(Params):
    shape: Annotated[list[PositiveInt], Field(min_length=1)] = Field(
        description="per-sample shape of the fakes it stores, e.g. [1, 28, 28] (the generator's out_shape)")
    size: int = Field(default=50, ge=0, description="how many past fakes it keeps: 50 in the paper; 0 turns it "
                                                     "into the identity")


class ImagePool(nn.Module):
    """fakes (b, *shape) -> (b, *shape), detached: each row the new fake or one from the history.

    While fewer than ``size`` fakes are stored, each new fake is stored and returned as is.
    Once the pool is full, each row is, with probability 0.5, swapped for a uniformly chosen
    stored fake (the new one takes that slot), and otherwise returned as is. Rows are handled
    in order, so a later row of a batch may draw a fake an earlier row just stored.

    The random choices come from torch's global (CPU) RNG, which lvmgraph seeds and checkpoints,
    and the history lives in buffers (``images`` (size, *shape), ``count`` ()), which are part
    of the component's state dict: a run resumed from a checkpoint continues with the same
    history and the same draws, bit for bit.

    In eval mode (the dry run, evaluation, sampling) it returns its input unchanged and stores
    nothing, so computing a loss for a report never changes the training history. With
    ``size`` 0 it is the identity (detached) in both modes.
    """

    def __init__(self, *, shape: Sequence[int], size: int = 50):
        super().__init__()
        if size < 0:
            raise ValueError(f"image_pool size must be >= 0 (0 disables it), got {size}")
        self.shape = tuple(int(s) for s in shape)
        self.size = int(size)
        self.register_buffer("images", torch.zeros(self.size, *self.shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def full(self) -> bool:
        return int(self.count) >= self.size

    @torch.no_grad()
    def forward(self, fakes: torch.Tensor) -> torch.Tensor:
        check_shape(fakes, self.shape, what="image_pool 'shape'", setting="shape")
        fakes = fakes.detach()
        if self.size == 0 or not self.training:
            return fakes
        b = fakes.shape[0]
        # drawn for every row, pool full or not, so the RNG stream advances the same way each call
        swap = (torch.rand(b) < SWAP_PROBABILITY).tolist()
        slots = torch.randint(self.size, (b,)).tolist()
        out = fakes.clone()
        n = int(self.count)
        for i in range(b):
            if n < self.size:  # filling up: keep it, hand it back unchanged
                self.images[n] = fakes[i]
                n += 1
            elif swap[i]:
                out[i] = self.images[slots[i]]
                self.images[slots[i]] = fakes[i]
        self.count.fill_(n)
        return out

    def extra_repr(self) -> str:
        return f"size={self.size}, shape={list(self.shape)}"
