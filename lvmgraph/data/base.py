"""What a dataset plugin returns: named fields as tensors, split into train and test."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


class DatasetUnavailable(RuntimeError):
    """The dataset's files are not on this machine; the message says how to get them."""


class DataSettingError(ValueError):
    """A dataset setting does not fit the data found (e.g. ``pad_to`` smaller than the images).

    ``setting`` names the key under ``data:`` to change; ``prepare`` reports the message at that
    key's line instead of a traceback.
    """

    def __init__(self, message: str, *, setting: str):
        super().__init__(message)
        self.setting = setting


#: random augmentation of a training batch: ``fn(batch, generator) -> batch``, drawing only from
#: ``generator`` (the batcher's own, checkpointed), so a seeded run and its resume see the same draws
Augment = Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]]


@dataclass
class DatasetBundle:
    """Train and test splits, each a dict ``field -> tensor`` whose first axis is the sample.

    Conventions: ``x`` is the main observation (images as float (n c h w) in [0, 1],
    points as (n d)), ``y`` an integer class label (n,). ``info`` carries what evaluation
    and reports need: ``kind`` ("image" or "points"), ``num_classes``, ``class_names``,
    ``value_range`` and ``source`` (where the data came from).

    ``encoders`` lets a user type values that are not numbers or images, e.g. a caption for
    ``lvmgraph sample RUN --given text="a thick red sneaker"``: ``{name: fn}`` where ``fn(str)``
    returns the fields of ONE example as ``{field: tensor}`` without a batch axis (a captions
    dataset: ``{"text": ids (L,), "text_length": tensor(len)}``). It raises ValueError with a
    helpful message (e.g. the vocabulary) when the text cannot be encoded.

    ``augment`` (optional) transforms each *training* batch at random (e.g. horizontal flips),
    after the batch is on the device; test batches, evaluation and the dry run see the data as
    loaded. See ``Augment``.

    A dataset that streams (``data.stream: true``) gives a ``stream.StreamedSplit`` as ``train``:
    its examples are decoded on demand (``streamed`` is then true).
    """

    train: dict[str, torch.Tensor]  # or a StreamedSplit (fields read like tensors: shape, slicing)
    test: dict[str, torch.Tensor]
    info: dict = field(default_factory=dict)
    encoders: dict[str, Callable[[str], dict[str, torch.Tensor]]] = field(default_factory=dict)
    augment: Augment | None = None

    def __post_init__(self) -> None:
        for split_name, split in (("train", self.train), ("test", self.test)):
            sizes = {name: t.shape[0] for name, t in split.items()}
            if len(set(sizes.values())) > 1:
                raise ValueError(f"{split_name} fields differ in length: {sizes}")

    @property
    def streamed(self) -> bool:
        from .stream import StreamedSplit
        return isinstance(self.train, StreamedSplit)

    @property
    def fields(self) -> list[str]:
        return list(self.train)

    def field_shapes(self) -> dict[str, tuple]:
        return {name: tuple(t.shape[1:]) for name, t in self.train.items()}

    def __len__(self) -> int:
        return next(iter(self.train.values())).shape[0]
