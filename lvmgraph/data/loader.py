"""Device-resident batching: the whole split lives as tensors on the device, batches are index slices.

The order comes from a dedicated seeded generator, and the position in the epoch is part of
the state, so a resumed run sees exactly the batches an uninterrupted run would. A dataset's
random augmentation (``DatasetBundle.augment``) draws from a second generator of its own, also
part of the state: switching augmentation on or off leaves the batch order unchanged.

Several processes (``world`` > 1, see ``lvmgraph.train.distributed``): ``batch_size`` is per
process. Every process draws the same order (same seed) and steps through it by the global batch,
``batch_size * world``; process ``rank`` takes its own slice. So at every step the processes
together see exactly the examples one process with ``batch_size * world`` sees.
"""
from __future__ import annotations

import torch

from .base import Augment

#: mixed into the seed of the augmentation generator, so its stream differs from the order's
AUGMENT_SEED_OFFSET = 0x5EED_A06


class IndexBatcher:
    def __init__(self, fields: dict[str, torch.Tensor], *, batch_size: int, device: torch.device,
                 seed: int, shuffle: bool = True, drop_last: bool = True, rank: int = 0, world: int = 1,
                 augment: Augment | None = None):
        self.fields = {k: v.to(device) for k, v in fields.items()}
        self.n = next(iter(self.fields.values())).shape[0]
        if batch_size * world > self.n and drop_last:
            per = f" x {world} processes" if world > 1 else ""
            raise ValueError(f"batch_size {batch_size}{per} is larger than the dataset ({self.n})")
        self.batch_size = batch_size
        self.rank, self.world = rank, world
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.augment = augment
        self.augment_generator = torch.Generator().manual_seed(seed + AUGMENT_SEED_OFFSET)
        self.epoch = 0
        self.position = 0
        self.order = self._new_order()

    def _new_order(self) -> torch.Tensor:
        if self.shuffle:
            return torch.randperm(self.n, generator=self.generator)
        return torch.arange(self.n)

    def next(self) -> dict[str, torch.Tensor]:
        size = self.batch_size * self.world
        end = self.position + size
        if end > self.n and (self.drop_last or self.position >= self.n):
            self.epoch += 1
            self.position, end = 0, size
            self.order = self._new_order()
        idx = self.order[self.position:min(end, self.n)]
        self.position = end
        if self.world > 1:
            idx = self._rank_slice(idx)
        idx = idx.to(next(iter(self.fields.values())).device)
        batch = {k: v.index_select(0, idx) for k, v in self.fields.items()}
        return self.augment(batch, self.augment_generator) if self.augment is not None else batch

    def _rank_slice(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch. A short last batch (drop_last: false) is split as
        evenly as it goes, repeating its examples when it has fewer than one per process, so that
        no process gets an empty batch."""
        if len(idx) == self.batch_size * self.world:
            return idx[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        if len(idx) < self.world:
            idx = idx.repeat(-(-self.world // len(idx)))[:self.world]
        return torch.tensor_split(idx, self.world)[self.rank]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "order": self.order.clone(),
                "generator": self.generator.get_state(), "augment_generator": self.augment_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if state["order"].numel() != self.n:
            raise ValueError(f"the checkpoint's data order covers {state['order'].numel()} rows, the training set "
                             f"now has {self.n}: the data settings changed since it was written")
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.order = state["order"].clone()
        self.generator.set_state(state["generator"])
        if "augment_generator" in state:  # (checkpoints from before augmentation have none)
            self.augment_generator.set_state(state["augment_generator"])
