"""Sliced Wasserstein distance between Laplacian-pyramid patches (Karras et al. 2018, section 5).

Axis legend: n images, c channels, s the side of one pyramid level, p patches per image,
k descriptors (n p), f descriptor features (c · 7 · 7), m projection directions.

The paper's protocol, with its code's constants, for any number of channels (one here for
Fashion-MNIST, where the descriptor is 7x7x1 instead of 7x7x3):

1. images in [0, 255], rounded as 8-bit images are;
2. a Laplacian pyramid (5x5 binomial filter, mirrored borders, as cv2.pyrDown / pyrUp) from the
   full resolution down to 16x16; the coarsest level keeps its low-pass image;
3. at every level, 128 random 7x7 neighbourhoods per image, each a descriptor of c·49 numbers;
4. descriptors normalised per level and channel (mean 0, std 1 over all patches and pixels) —
   each set on its own, real and generated alike;
5. per level, the sliced Wasserstein distance: 4 repeats of 128 random unit directions, the
   sorted projections of both sets compared by mean absolute difference; times 1000.

Reported per level (``swd_32``, ``swd_16`` for 32x32 images) and averaged (``swd``). ``floor_*``
is the same between real train and real test images: what a perfect generator scores.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from lvmgraph import Params
from lvmgraph.eval.stats import rng_from
from lvmgraph_eval.features import chunks_of, generate, real_subset, split_field

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
GAUSS = torch.outer(_BINOMIAL, _BINOMIAL) / 256.0  # cv2.pyrDown's kernel


class SwdParams(Params):
    n: int = Field(10000, ge=2, description="generated images and real test images (clipped to the test split; "
                                            "the paper: 16384)")
    data: str = Field("x", description="data field holding the real images")
    batch_size: int = Field(500, gt=0, description="images per generator call and per pyramid batch")
    patches_per_image: int = Field(128, gt=0, description="7x7 neighbourhoods drawn per image and level")
    patch_size: int = Field(7, ge=1, description="side of a neighbourhood (odd)")
    repeats: int = Field(4, gt=0, description="independent sets of random directions, averaged")
    directions: int = Field(128, gt=0, description="random unit directions per repeat")
    min_resolution: int = Field(16, gt=0, description="the smallest pyramid level (the paper: 16)")
    floor: bool = Field(True, description="also score real train vs real test images")

    @model_validator(mode="after")
    def _odd(self):
        if self.patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd (a centre pixel and equal sides), got {self.patch_size}")
        return self


# ----------------------------------------------------------------------------- pyramid

def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 5x5 filtering of (n c s s) with mirrored borders (scipy 'mirror' = torch 'reflect')."""
    c = x.shape[1]
    weight = kernel.to(x).expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), weight, groups=c)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """(n c s s) -> (n c s/2 s/2): blur with the binomial kernel, keep every other pixel."""
    return _filter(x, GAUSS)[:, :, ::2, ::2]


def pyr_up(x: torch.Tensor) -> torch.Tensor:
    """(n c s s) -> (n c 2s 2s): zeros between the pixels, blur with 4x the kernel."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _filter(up, GAUSS * 4.0)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """(n c s s) -> [band-pass at s, s/2, ...; low-pass at the last level]; sums back to x."""
    pyramid = [x]
    for _ in range(1, levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1])
    return pyramid


# ----------------------------------------------------------------------------- descriptors

def patches(x: torch.Tensor, per_image: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n c s s) -> (n·per_image, c, size, size): neighbourhoods at uniform random centres that fit."""
    n, c, s, _ = x.shape
    half = size // 2
    if s < size:
        raise ValueError(f"a {s}x{s} pyramid level is smaller than the {size}x{size} patches; raise min_resolution")
    centre_y = torch.randint(half, s - half, (n, per_image), generator=generator)
    centre_x = torch.randint(half, s - half, (n, per_image), generator=generator)
    offsets = torch.arange(-half, half + 1)
    rows = (centre_y[..., None] + offsets)[..., :, None]  # (n p size 1)
    cols = (centre_x[..., None] + offsets)[..., None, :]  # (n p 1 size)
    image = torch.arange(n)[:, None, None, None]
    picked = x.permute(0, 2, 3, 1).cpu()[image, rows, cols]  # (n p size size c)
    return picked.permute(0, 1, 4, 2, 3).reshape(n * per_image, c, size, size)


def normalise(desc: torch.Tensor) -> torch.Tensor:
    """(k c size size) -> (k f): zero mean and unit std per channel over all patches and pixels."""
    mean = desc.mean(dim=(0, 2, 3), keepdim=True)
    std = desc.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    return ((desc - mean) / std.clamp_min(1e-12)).reshape(desc.shape[0], -1)


def _sorted_projections(desc: torch.Tensor, dirs: torch.Tensor) -> np.ndarray:
    """(k f), (f m) -> (m k): each direction's projections in ascending order (numpy's SIMD sort is
    several times faster than torch's on a CPU)."""
    return np.sort((dirs.T @ desc.T).numpy(), axis=1)


def sliced_wasserstein(ref: torch.Tensor, others: list[torch.Tensor], repeats: int, directions: int,
                       generator: torch.Generator, chunk: int = 16) -> list[float]:
    """ref (k f), others [(k f)] -> per other: mean over repeats of the mean |sorted(ref·d) − sorted(other·d)|
    over the k descriptors and the directions d.

    Every set must hold as many descriptors as ``ref``. Directions are unit Gaussian vectors,
    shared by all comparisons with ``ref`` (whose projections are sorted once); they are projected
    ``chunk`` at a time to bound memory (k · chunk floats per set)."""
    for other in others:
        if other.shape != ref.shape:
            raise ValueError(f"sliced_wasserstein needs equal descriptor sets, got {tuple(ref.shape)} and "
                             f"{tuple(other.shape)}")
    totals = [0.0] * len(others)
    for _ in range(repeats):
        dirs = torch.randn(ref.shape[1], directions, generator=generator)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        for start in range(0, directions, chunk):
            d = dirs[:, start:start + chunk]
            base = _sorted_projections(ref, d)
            for i, other in enumerate(others):
                totals[i] += float(np.abs(base - _sorted_projections(other, d)).sum(dtype=np.float64))
    return [t / (repeats * ref.shape[0] * directions) for t in totals]


def to_8bit(x: torch.Tensor, value_range) -> torch.Tensor:
    """Images in value_range -> float in [0, 255], clipped and rounded as saving 8-bit images does."""
    lo, hi = (float(v) for v in value_range)
    return ((x.float() - lo) / (hi - lo)).clamp(0, 1).mul(255).round()


def pyramid_sizes(side: int, smallest: int) -> list[int]:
    sizes = []
    while side >= smallest:
        sizes.append(side)
        if side % 2:
            break
        side //= 2
    return sizes


def descriptors(chunks, sizes: list[int], s: SwdParams, value_range, generator: torch.Generator) -> list[torch.Tensor]:
    """Image chunks (k c H H) -> one normalised descriptor set (n p, f) per pyramid level."""
    per_level: list[list[torch.Tensor]] = [[] for _ in sizes]
    for x in chunks:
        pyramid = laplacian_pyramid(to_8bit(x, value_range), len(sizes))
        for level, band in enumerate(pyramid):
            per_level[level].append(patches(band, s.patches_per_image, s.patch_size, generator))
    return [normalise(torch.cat(d)) for d in per_level]


# ----------------------------------------------------------------------------- the metric

def swd(ctx, **settings) -> dict:
    """Sliced Wasserstein distance (×10³) of 7x7 Laplacian-pyramid patches, generated vs real test images.

    ProGAN's protocol (module docstring) at every level from the full resolution down to
    ``min_resolution``: ``swd_<side>`` per level and ``swd`` their mean; lower is better, 0 for
    identical patch distributions. ``floor_*``: real train vs real test at the same n.
    """
    s = SwdParams(**settings)
    test = split_field(ctx, "test", s.data)
    if test.dim() != 4 or test.shape[-1] != test.shape[-2]:
        raise ValueError(f"swd needs square images (n, c, s, s); {s.data} has shape {tuple(test.shape)}")
    sizes = pyramid_sizes(test.shape[-1], s.min_resolution)
    if not sizes:
        raise ValueError(f"the images ({test.shape[-1]}x{test.shape[-1]}) are smaller than min_resolution "
                         f"{s.min_resolution}; set min_resolution: {test.shape[-1]} or less")
    value_range = ctx.data.info.get("value_range", (0.0, 1.0))
    # one n for every set (the distance depends on it); the floor also needs n train images
    n = min(s.n, test.shape[0], *([split_field(ctx, "train", s.data).shape[0]] if s.floor else []))
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        fake = descriptors(generate(ctx, n, s.batch_size, like=test), sizes, s, value_range, ctx.generator)
    real = descriptors(chunks_of(real_subset(ctx, "test", s.data, n), s.batch_size), sizes, s, value_range,
                       ctx.generator)
    sets = [fake]
    if s.floor:
        train = real_subset(ctx, "train", s.data, n)
        sets.append(descriptors(chunks_of(train, s.batch_size), sizes, s, value_range, ctx.generator))
    per_level = [sliced_wasserstein(r, [d[level] for d in sets], s.repeats, s.directions, ctx.generator)
                 for level, r in enumerate(real)]
    out: dict = {}
    for i, name in enumerate(["swd", "floor"][:len(sets)]):
        scores = [1e3 * level[i] for level in per_level]
        out.update({f"{name}_{size}": v for size, v in zip(sizes, scores)})
        out[name] = sum(scores) / len(scores)
    out["protocol"] = {
        "n_requested": s.n, "n_generated": n, "n_real_test": n, "n_real_train": n if s.floor else 0,
        "clipped_to_data": n < s.n,
        "levels": sizes, "pyramid": "Laplacian, 5x5 binomial filter, mirrored borders (cv2.pyrDown/pyrUp)",
        "pixels": "8-bit scale [0, 255], rounded", "patch_size": s.patch_size,
        "patches_per_image": s.patches_per_image, "normalisation": "per level and channel, each set on its own",
        "repeats": s.repeats, "directions_per_repeat": s.directions,
        "directions": "shared by the generated and the train comparison of a level", "scale": 1000,
        "data": s.data, "seed": seed,
        "reference": "Karras et al. 2018, section 5 and their code's sliced_wasserstein.py",
    }
    return out
