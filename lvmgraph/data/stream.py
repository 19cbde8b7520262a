"""Streamed training data: examples decoded on demand by DataLoader worker processes, for datasets
too large to hold as tensors (``data.stream: true``, ``data.workers: N``).

A dataset that streams returns a ``StreamedSplit`` as its bundle's ``train``: a map-style source
(``source[i] -> {field: tensor}``, one example without a batch axis) seen as a mapping of fields.
Each field reads like a tensor where the framework reads a few rows (``field[:4]`` for the dry run,
``field.shape``); small fields (labels, attributes) can be held as tensors outright.

``StreamBatcher`` draws the same batches ``IndexBatcher`` draws from tensors: the order is the
same ``GlobalOrder`` (the seeded permutation, each process's slice of every global batch), the
augmentation the same generator, applied in the main process after the batch reaches the device.
``GlobalBatchSampler`` hands the order to the DataLoader, which runs ahead of training (its
workers prefetch); the batcher's own order advances only as batches are taken, so its state — the
checkpoint's ``data`` entry, in the form ``IndexBatcher`` writes — is the position of the last batch
trained on, and a resumed run restarts the workers there.
"""
from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Iterator, Protocol

import torch
from torch.utils.data import DataLoader, Sampler, default_collate

from .base import Augment, DatasetUnavailable
from .loader import OrderedBatcher
from .order import GlobalOrder

#: seeds the DataLoader's own generator (its workers' base seed), so starting workers never draws
#: from the global RNG the model's noise comes from
LOADER_SEED_OFFSET = 0x5EED_10AD


class ExampleSource(Protocol):
    """A map-style dataset: ``len(source)`` examples, ``source[i]`` one as ``{field: tensor}``."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]: ...


class StreamedField:
    """One field of a ``StreamedSplit``: ``shape``, ``dtype``, ``len`` and indexing (an int, a
    slice, a list or tensor of indices) as a tensor has, reading only the rows asked for."""

    def __init__(self, split: "StreamedSplit", name: str):
        self.split, self.name = split, name
        example = split.example_shapes[name]
        self.shape = torch.Size((len(split.source), *example))
        self.dtype = split.example_dtypes[name]

    def __len__(self) -> int:
        return self.shape[0]

    def dim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, int):
            return self.split.rows([range(len(self))[key]])[self.name][0]
        if isinstance(key, slice):
            indices = range(len(self))[key]
        else:
            indices = torch.as_tensor(key).reshape(-1).tolist()
        return self.split.rows(indices)[self.name]

    def __repr__(self) -> str:
        return f"StreamedField({self.name!r}, shape={tuple(self.shape)}, dtype={self.dtype})"


class StreamedSplit(Mapping):
    """``{field: StreamedField | tensor}``: the ``ExampleSource``'s fields, read on demand, and
    ``held`` fields, tensors (n ...) kept in memory (labels, attributes: small beside images)."""

    def __init__(self, source: ExampleSource, *, held: dict[str, torch.Tensor] | None = None):
        if len(source) == 0:
            raise ValueError("a streamed split needs at least one example")
        self.source = source
        self.held = dict(held or {})
        first = source[0]
        self.example_shapes = {k: tuple(v.shape) for k, v in first.items()}
        self.example_dtypes = {k: v.dtype for k, v in first.items()}
        self._fields = {**{k: StreamedField(self, k) for k in first if k not in self.held}, **self.held}
        for name, values in self.held.items():
            if len(values) != len(source):
                raise ValueError(f"held field {name!r} has {len(values)} rows, the source {len(source)} examples")

    def __getitem__(self, name: str):
        return self._fields[name]

    def __iter__(self):
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def rows(self, indices) -> dict[str, torch.Tensor]:
        """The examples at ``indices`` as a batch, decoded here (not in workers)."""
        indices = [int(i) for i in indices]
        batch = default_collate([self.source[i] for i in indices])
        return {**batch, **{name: values[indices] for name, values in self.held.items()}}


def read_whole(values) -> torch.Tensor:
    """A field as one tensor: a streamed field is decoded whole (every example in memory), for the
    few readers that need all of a split at once (an evaluator trained on the run's own data)."""
    return values[:] if isinstance(values, StreamedField) else values


class GlobalBatchSampler(Sampler):
    """The distributed sampler: yields this process's indices of every global batch, in the order
    ``GlobalOrder`` draws them (the in-memory order), endlessly; it never changes the order it is
    given a copy of (the batcher keeps the position a checkpoint records)."""

    def __init__(self, order: GlobalOrder):
        self.order = order

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            yield self.order.next().tolist()


class _Indexed:
    """source[i] -> (i, example), so each batch carries the indices it was decoded from. A file the
    source cannot read (``DatasetUnavailable``, naming it) comes back as its message, raised by the
    training process as it is, rather than under a worker's traceback."""

    def __init__(self, source: ExampleSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        try:
            return i, self.source[i]
        except DatasetUnavailable as err:
            return i, _Unreadable(str(err))


class _Unreadable(str):
    """The message of an example that could not be read (see ``_Indexed``)."""


def _ignore_interrupts(worker_id: int) -> None:
    """A terminal's Ctrl-C reaches the workers too; the training process alone decides to stop
    (after finishing its step, which may need more batches), then shuts them down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _collate(items):
    indices, examples = zip(*items)
    failed = next((e for e in examples if isinstance(e, _Unreadable)), None)
    return torch.tensor(indices, dtype=torch.int64), failed if failed is not None else default_collate(list(examples))


class StreamBatcher(OrderedBatcher):
    """Batches of a ``StreamedSplit`` decoded by ``workers`` DataLoader processes (0: in this one)."""

    def __init__(self, split: StreamedSplit, *, batch_size: int, device: torch.device, seed: int,
                 shuffle: bool = True, drop_last: bool = True, rank: int = 0, world: int = 1,
                 augment: Augment | None = None, workers: int = 0):
        super().__init__(len(split.source), batch_size=batch_size, seed=seed, shuffle=shuffle,
                         drop_last=drop_last, rank=rank, world=world, augment=augment)
        self.split, self.device, self.workers, self.seed = split, device, workers, seed
        self._batches = None  # the DataLoader's iterator, started at the position of the next batch

    @OrderedBatcher.batch_size.setter
    def batch_size(self, value: int) -> None:
        if value != self.sequence.batch_size:
            self.close()  # what the workers prefetched has the old size
        self.sequence.batch_size = value

    def next(self) -> dict[str, torch.Tensor]:
        if self._batches is None:
            self._start()
        expected = self.sequence.next()
        indices, batch = next(self._batches)
        if isinstance(batch, _Unreadable):
            raise DatasetUnavailable(f"{batch} (found while streaming the training data)")
        if not torch.equal(indices, expected):  # a sampler and a batcher that disagree: never silently
            raise RuntimeError(f"streamed batch {indices.tolist()[:8]} is not the one the order draws "
                               f"({expected.tolist()[:8]})")
        batch.update({name: values[indices] for name, values in self.split.held.items()})
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        return self.augmenter(batch)

    def _start(self) -> None:
        loader = DataLoader(_Indexed(self.split.source), batch_sampler=GlobalBatchSampler(self.sequence.copy()),
                            num_workers=self.workers, collate_fn=_collate, worker_init_fn=_ignore_interrupts,
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(self.seed + LOADER_SEED_OFFSET))
        self._batches = iter(loader)

    def close(self) -> None:
        self._batches = None  # dropping the iterator shuts its workers down; next() starts new ones

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.close()
