"""Device-resident batching: the whole split lives as tensors on the device, batches are index slices.

The order and the position in the epoch come from ``order.GlobalOrder`` (a dedicated seeded
generator; several processes each take their slice of every global batch), and are part of the
state, so a resumed run sees exactly the batches an uninterrupted run would. A dataset's random
augmentation (``DatasetBundle.augment``) draws from a second generator of its own, also part of
the state: switching augmentation on or off leaves the batch order unchanged.

``stream.StreamBatcher`` is the same for datasets too large to hold: the same order and
augmentation, the examples decoded by DataLoader workers.
"""
from __future__ import annotations

import torch

from .base import Augment
from .order import GlobalOrder

#: mixed into the seed of the augmentation generator, so its stream differs from the order's
AUGMENT_SEED_OFFSET = 0x5EED_A06


class Augmenter:
    """A dataset's batch augmentation with its own seeded generator (a no-op without one)."""

    def __init__(self, augment: Augment | None, seed: int):
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed + AUGMENT_SEED_OFFSET)

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.augment(batch, self.generator) if self.augment is not None else batch


class OrderedBatcher:
    """What both batchers share: the order, the augmentation and the state they form together."""

    def __init__(self, n: int, *, batch_size: int, seed: int, shuffle: bool, drop_last: bool, rank: int,
                 world: int, augment: Augment | None):
        self.sequence = GlobalOrder(n, batch_size=batch_size, seed=seed, shuffle=shuffle, drop_last=drop_last,
                                    rank=rank, world=world)
        self.augmenter = Augmenter(augment, seed)
        self.n = n

    # the trainer reads and sets these (stages change the batch size; tests read the position)
    @property
    def batch_size(self) -> int:
        return self.sequence.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.sequence.batch_size = value

    @property
    def epoch(self) -> int:
        return self.sequence.epoch

    @property
    def position(self) -> int:
        return self.sequence.position

    @property
    def order(self) -> torch.Tensor:
        return self.sequence.order

    @property
    def rank(self) -> int:
        return self.sequence.rank

    @property
    def world(self) -> int:
        return self.sequence.world

    def close(self) -> None:
        """Release what fetching holds (a streamed batcher's worker processes); batching may go on."""

    def state_dict(self) -> dict:
        return {**self.sequence.state_dict(), "augment_generator": self.augmenter.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.sequence.load_state_dict(state)
        if "augment_generator" in state:  # (checkpoints from before augmentation have none)
            self.augmenter.generator.set_state(state["augment_generator"])


class IndexBatcher(OrderedBatcher):
    def __init__(self, fields: dict[str, torch.Tensor], *, batch_size: int, device: torch.device,
                 seed: int, shuffle: bool = True, drop_last: bool = True, rank: int = 0, world: int = 1,
                 augment: Augment | None = None):
        self.fields = {k: v.to(device) for k, v in fields.items()}
        super().__init__(next(iter(self.fields.values())).shape[0], batch_size=batch_size, seed=seed,
                         shuffle=shuffle, drop_last=drop_last, rank=rank, world=world, augment=augment)

    def next(self) -> dict[str, torch.Tensor]:
        idx = self.sequence.next().to(next(iter(self.fields.values())).device)
        return self.augmenter({k: v.index_select(0, idx) for k, v in self.fields.items()})
