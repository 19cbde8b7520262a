"""Image transforms of the folder datasets: the load-time geometry (crop, resize) and the random
augmentation applied to each training batch (``DatasetBundle.augment``).

Axis legend: b batch, c channels, h w spatial.

Load-time transforms are deterministic given the seed (a ``random`` crop draws one offset per
image, once, from the split's seeded stream), so the data a run trains on is fixed. Batch-time
augmentation draws from the generator the batcher hands it (its own, checkpointed), so a seeded
run is repeatable and a resumed run continues with exactly the draws it would have made.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from lvmgraph import DataSettingError

CropPosition = Literal["center", "random"]


def crop_box(width: int, height: int, crop: int, position: CropPosition, rng: np.random.Generator,
             *, name: str) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) of a crop x crop square inside a width x height image;
    DataSettingError naming the image when it is smaller than the crop."""
    if crop > width or crop > height:
        raise DataSettingError(f"crop {crop} is larger than {name} ({width}x{height}); use crop <= "
                               f"{min(width, height)} or leave it unset", setting="crop")
    if position == "center":
        left, top = (width - crop) // 2, (height - crop) // 2
    else:
        left, top = int(rng.integers(0, width - crop + 1)), int(rng.integers(0, height - crop + 1))
    return left, top, left + crop, top + crop


class HorizontalFlip:
    """Mirror each example's image fields left-right with probability 1/2 (one draw per example,
    shared by its fields, so paired images stay paired): batch -> batch, images (b c h w)."""

    def __init__(self, fields: tuple[str, ...] = ("x",)):
        self.fields = tuple(fields)

    def __call__(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        n = batch[self.fields[0]].shape[0]
        flip = torch.rand(n, generator=generator) < 0.5
        out = dict(batch)
        for name in self.fields:
            x = batch[name]
            mask = flip.to(x.device).view(n, *([1] * (x.dim() - 1)))
            out[name] = torch.where(mask, x.flip(-1), x)
        return out

    def __repr__(self) -> str:
        return f"HorizontalFlip(fields={list(self.fields)})"
