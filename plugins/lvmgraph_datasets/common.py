"""Settings and image post-processing shared by the built-in datasets.

Axis legend: n samples, c channels, h w spatial, d point coordinates.

Every image loader goes through the same steps, in this order, so the datasets behave
alike: pixels scaled to [0, 1] -> optional binarization -> optional centred padding with
the background value -> optional mapping to [-1, 1]. All randomness comes from generators
seeded from the ``seed`` setting and the split, never from the global RNG.
"""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field

from lvmgraph import DatasetBundle, DataSettingError, Params

Binarize = Literal["none", "threshold", "stochastic"]

DIGIT_NAMES = [str(d) for d in range(10)]

#: the value ranges an image dataset can be delivered in
VALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0))


def known_value_range(value: tuple[float, float]) -> tuple[float, float]:
    if tuple(value) not in VALUE_RANGES:
        raise ValueError(f"value_range must be [0, 1] or [-1, 1], got {list(value)}")
    return value


#: a ``value_range`` setting: [0, 1] or [-1, 1], checked the same way by every image dataset
ValueRange = Annotated[tuple[float, float], AfterValidator(known_value_range)]

#: split name -> a number mixed into the seed, so each split draws its own stream
#: (limiting or resizing one split never changes the other)
SPLIT_IDS = {"train": 0, "test": 1}


class ImageParams(Params):
    """Settings every image dataset shares."""

    seed: int = Field(default=0, ge=0,
                      description="seed of stochastic binarization and, for digits, of the train/test shuffle")
    value_range: ValueRange = Field(
        default=(0.0, 1.0),
        description="pixel range of the delivered images: [0, 1] or [-1, 1] (e.g. for tanh decoders)")
    pad_to: int | None = Field(
        default=None, gt=0,
        description="pad images with the background value to this square size, centred (e.g. 32 for 28x28 images)")
    binarize: Binarize = Field(
        default="none",
        description="none; threshold (pixel > 0.5 becomes 1); "
                    "stochastic (one fixed Bernoulli draw per pixel, seeded)")


def split_seed(seed: int, split: str) -> int:
    """A 64-bit seed for one split's stream, derived from the user's seed."""
    return int(np.random.SeedSequence([seed, SPLIT_IDS[split]]).generate_state(1, dtype=np.uint64)[0])


def split_rng(seed: int, split: str) -> np.random.Generator:
    """A numpy Generator private to one split of one seeded load."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split]]))


def split_generator(seed: int, split: str) -> torch.Generator:
    """A CPU torch.Generator private to one split of one seeded load."""
    return torch.Generator().manual_seed(split_seed(seed, split))


def to_unit_float(pixels: np.ndarray, *, max_value: float) -> torch.Tensor:
    """pixels (n h w) or (n c h w), integers 0..max_value -> float32 (n c h w) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).to(torch.float32)
    x.mul_(1.0 / max_value)
    return x.unsqueeze(1) if x.ndim == 3 else x


def binarize_images(x: torch.Tensor, mode: Binarize, *, generator: torch.Generator | None) -> torch.Tensor:
    """x (n c h w) in [0, 1] -> the same shape, 0/1-valued unless mode is 'none'."""
    if mode == "threshold":
        return (x > 0.5).to(x.dtype)
    if mode == "stochastic":
        # one static draw: the dataset is fixed for the run, as in the usual "binarized MNIST" protocol
        return (torch.rand(x.shape, generator=generator) < x).to(x.dtype)
    return x


def pad_images(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """x (n c h w) in [0, 1] -> (n c size size), centred, padded with 0 (the background)."""
    if size is None:
        return x
    h, w = x.shape[-2:]
    if size < h or size < w:
        raise DataSettingError(f"pad_to={size} is smaller than the images ({h}x{w}); "
                               f"use pad_to >= {max(h, w)} or leave it unset", setting="pad_to")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top), value=0.0)


def to_value_range(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """x in [0, 1] -> x affinely mapped onto value_range (in place when a change is needed)."""
    lo, hi = value_range
    if (lo, hi) == (0.0, 1.0):
        return x
    return x.mul_(hi - lo).add_(lo)


def prepare_images(x: torch.Tensor, *, split: str, seed: int, binarize: Binarize,
                   pad_to: int | None, value_range: tuple[float, float]) -> torch.Tensor:
    """x (n c h w) in [0, 1] -> binarized, padded, range-mapped float32 (n c h' w')."""
    # (the generator only for the draw: a streamed loader prepares one image at a time)
    generator = split_generator(seed, split) if binarize == "stochastic" else None
    x = binarize_images(x, binarize, generator=generator)
    x = pad_images(x, pad_to)
    return to_value_range(x, tuple(float(v) for v in value_range))


def pad_shape_settings(native_shape) -> dict:
    """``info["shape_settings"]`` of a dataset whose only size setting is ``pad_to``: it can make the
    images larger than ``native_shape`` (c h w), never smaller (see ``lvmgraph.data.fit``)."""
    return {"size": "pad_to", "min_size": int(max(native_shape[-2:]))}


def labels_to_tensor(labels: np.ndarray) -> torch.Tensor:
    """labels (n,) of any integer dtype -> int64 tensor (n,)."""
    return torch.from_numpy(np.asarray(labels, dtype=np.int64).copy())


def image_bundle(*, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 name: str, class_names: list[str], value_range: tuple[float, float],
                 binarize: Binarize, source: str, native_shape: tuple[int, ...]) -> DatasetBundle:
    """(x, y) per split -> a DatasetBundle with the image ``info`` every loader reports.

    ``info["shape"]`` is the delivered per-image shape (c h w), after ``pad_to``;
    ``info["native_shape"]`` the shape before padding (what evaluators crop back to).
    """
    (x_train, y_train), (x_test, y_test) = train, test
    info = {
        "name": name,
        "kind": "image",
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "value_range": tuple(float(v) for v in value_range),
        "source": source,
        "shape": tuple(x_train.shape[1:]),
        "native_shape": tuple(int(v) for v in native_shape),
        "binarize": binarize,
        "shape_settings": pad_shape_settings(native_shape),
    }
    return DatasetBundle(train={"x": x_train, "y": y_train}, test={"x": x_test, "y": y_test}, info=info)
