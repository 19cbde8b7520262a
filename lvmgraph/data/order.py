"""The order in which training examples are drawn: one seeded permutation per epoch, walked by the
global batch, each process taking its own slice. Shared by both batchers (``loader.IndexBatcher``
for tensors on the device, ``stream.StreamBatcher`` for examples decoded by DataLoader workers),
so a dataset delivers the same batches whether it is held in memory or streamed.

The position in the epoch is state (``state_dict``): a resumed run continues with exactly the
batches an uninterrupted run would have drawn. The state's form is the one checkpoints have always
held under ``data`` (epoch, position, order, generator), so the two batchers read each other's.

Several processes (``world`` > 1, see ``lvmgraph.train.distributed``): ``batch_size`` is per
process. Every process draws the same order (same seed) and steps through it by the global batch,
``batch_size * world``; process ``rank`` takes its own slice. So at every step the processes
together see exactly the examples one process with ``batch_size * world`` sees.
"""
from __future__ import annotations

import copy

import torch


class GlobalOrder:
    """Which examples (indices into the training split) each batch of this process holds."""

    def __init__(self, n: int, *, batch_size: int, seed: int, shuffle: bool = True, drop_last: bool = True,
                 rank: int = 0, world: int = 1):
        if batch_size * world > n and drop_last:
            per = f" x {world} processes" if world > 1 else ""
            raise ValueError(f"batch_size {batch_size}{per} is larger than the dataset ({n})")
        self.n = n
        self.batch_size = batch_size
        self.rank, self.world = rank, world
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.position = 0
        self.order = self._new_order()

    def _new_order(self) -> torch.Tensor:
        if self.shuffle:
            return torch.randperm(self.n, generator=self.generator)
        return torch.arange(self.n)

    def next_global(self) -> torch.Tensor:
        """The indices of the next global batch (every process's examples), advancing the position."""
        size = self.batch_size * self.world
        end = self.position + size
        if end > self.n and (self.drop_last or self.position >= self.n):
            self.epoch += 1
            self.position, end = 0, size
            self.order = self._new_order()
        idx = self.order[self.position:min(end, self.n)]
        self.position = end
        return idx

    def next(self) -> torch.Tensor:
        """This process's indices of the next global batch."""
        idx = self.next_global()
        return self.rank_slice(idx) if self.world > 1 else idx

    def rank_slice(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch. A short last batch (drop_last: false) is split as
        evenly as it goes, repeating its examples when it has fewer than one per process, so that
        no process gets an empty batch."""
        if len(idx) == self.batch_size * self.world:
            return idx[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        if len(idx) < self.world:
            idx = idx.repeat(-(-self.world // len(idx)))[:self.world]
        return torch.tensor_split(idx, self.world)[self.rank]

    def copy(self) -> "GlobalOrder":
        """An independent order at the same position (a DataLoader's sampler runs ahead on one)."""
        twin = copy.copy(self)
        twin.generator = torch.Generator()
        twin.load_state_dict(self.state_dict())
        return twin

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "order": self.order.clone(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if state["order"].numel() != self.n:
            raise ValueError(f"the checkpoint's data order covers {state['order'].numel()} rows, the training set "
                             f"now has {self.n}: the data settings changed since it was written")
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.order = state["order"].clone()
        self.generator.set_state(state["generator"])
