"""Deterministic image transforms that derive new domains from grey images: thin, thick, tint.

Axis legend: n images, c channels (1 in, 3 after ``tint``), h w spatial; s the up-sampling factor.

Thinning and thickening follow Morpho-MNIST (Castro et al. 2019, ``morphomnist/perturb.py``):
each image's mean stroke thickness t is measured, then the strokes are eroded (thinning) or dilated
(thickening) with a structuring element of radius ``amount * t / 2`` on an s-times up-sampled copy
(``int(amount * s * t / 2)`` up-sampled pixels, as there), and the result is averaged back down.
Their reference amounts are ``thin(amount=0.7)``, which takes about 70% off the thickness (the
stroke keeps ~0.3x), and ``thick(amount=1.0)``, which adds 1.0x (the stroke becomes ~2x). The
radius is rounded down to whole up-sampled pixels, so thin strokes move less than the amount
(8x8 digits thin to ~0.55x), and dilation that closes loops measures as more than 2x.

Differences from Morpho-MNIST, all for speed and no dependency beyond torch:

- morphology is grey-level (min / max pooling) on the bilinearly up-sampled grey image, not binary
  on a thresholded one, so anti-aliased edges survive;
- the structuring element is an octagon (r alternating 3x3 square and 3x3 cross steps of
  max / min filtering, as ``max_pool2d`` would do) instead of a digital disk;
- the thickness is the width of the rectangle with the ink's area and perimeter (thresholded
  up-sampled image) instead of twice the mean distance transform along its skeleton (see
  ``stroke_thickness``); both give w for a stroke of width w;
- ``max_radius`` can cap the radius (in native pixels): a filled shape such as a Fashion-MNIST
  garment measures as very "thick", and an uncapped erosion would wipe it out.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: colour name -> RGB multiplier in [0, 1]; ``tint`` paints the ink in it on a black background
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "orange": (1.0, 0.5, 0.0),
    "purple": (0.5, 0.0, 1.0),
    "white": (1.0, 1.0, 1.0),
    "grey": (0.5, 0.5, 0.5),
}

#: the Morpho-MNIST reference amounts (fraction of the measured thickness taken off / added)
THIN_AMOUNT, THICK_AMOUNT = 0.7, 1.0
#: images per chunk when working on the up-sampled copy (~6 MB for 28x28 at s=4: stays in cache)
CHUNK = 128


def _check_grey(x: torch.Tensor, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{what} expects grey images of shape (n, 1, h, w), got {tuple(x.shape)}")


def stroke_thickness(x: torch.Tensor, *, scale: int = 4, threshold: float = 0.5) -> torch.Tensor:
    """x (n 1 h w) in [0, 1] -> mean stroke thickness per image (n,), in native pixels.

    The width w of the rectangle with the ink's area A and perimeter P: w and the length L solve
    wL = A, 2(w + L) = P, so w = P/4 - sqrt((P/4)^2 - A) (P/4 for compact blobs where the root is
    imaginary). It is exact for a w x L bar and ~ 2A/P for a long stroke of any shape (a ring
    counts its inner and outer edge). As in Morpho-MNIST the ink is an s-times bilinearly
    up-sampled copy thresholded at ``threshold``, so sub-pixel changes register and grey texture
    inside the strokes does not; P is the mask's isotropic total variation (forward-difference
    gradient norms, zero outside the image). Dilation raises it and erosion lowers it. An empty
    image measures 0.
    """
    _check_grey(x, "stroke_thickness")
    if len(x) > CHUNK:  # the up-sampled copy of a whole dataset would not fit in memory
        return torch.cat([stroke_thickness(part, scale=scale, threshold=threshold) for part in x.split(CHUNK)])
    mask = (F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False) > threshold).to(x.dtype)
    padded = F.pad(mask, (0, 1, 0, 1))
    dx = padded[..., :-1, 1:] - padded[..., :-1, :-1]
    dy = padded[..., 1:, :-1] - padded[..., :-1, :-1]
    perimeter = torch.sqrt(dx * dx + dy * dy).flatten(1).sum(1)
    area = mask.flatten(1).sum(1)
    quarter = perimeter / 4
    return (quarter - torch.sqrt((quarter * quarter - area).clamp_min(0.0))) / scale


def _extreme3(y: torch.Tensor, dim: int, op) -> torch.Tensor:
    """(n c h w) -> the same shape: ``op`` (max or min) over each pixel and its two neighbours along dim.

    Equal to a 1x3 ``max_pool2d`` (edges see only the inside), done with shifted slices,
    which is several times faster on the CPU.
    """
    size = y.shape[dim]
    out = y.clone()
    if size > 1:
        right = out.narrow(dim, 1, size - 1)
        op(right, y.narrow(dim, 0, size - 1), out=right)
        left = out.narrow(dim, 0, size - 1)
        op(left, y.narrow(dim, 1, size - 1), out=left)
    return out


def _step(x: torch.Tensor, k: int, dilate: bool) -> torch.Tensor:
    """One radius-1 grey dilation (or erosion) of (n c h w): a 3x3 square on odd k, a 3x3 cross on even k.

    Alternating the two grows an octagon, a closer stand-in for a disk than a square alone.
    """
    op = torch.maximum if dilate else torch.minimum
    if k % 2:
        return _extreme3(_extreme3(x, -1, op), -2, op)
    return op(_extreme3(x, -1, op), _extreme3(x, -2, op))


def morph(x: torch.Tensor, radius: torch.Tensor | int, *, dilate: bool, scale: int = 4) -> torch.Tensor:
    """x (n 1 h w) in [0, 1], radius (n,) or int in up-sampled pixels -> (n 1 h w), eroded or dilated.

    Each image is up-sampled s = ``scale`` times (bilinear), eroded/dilated with an octagon of its
    own radius, and average-pooled back to h x w. Erosion is a grey-level min filter, dilation a
    max filter; the result is also clipped by the input (min for erosion, max for dilation) so the
    resampling blur never lets erosion add ink or dilation remove it. Radius 0: unchanged.
    """
    _check_grey(x, "erode/dilate")
    n = x.shape[0]
    radius = torch.as_tensor(radius, dtype=torch.int64)
    radius = radius.expand(n) if radius.ndim == 0 else radius
    if radius.shape != (n,) or (radius < 0).any():
        raise ValueError(f"radius must be a non-negative int or one per image, shape ({n},); "
                         f"got shape {tuple(radius.shape)} with minimum {int(radius.min())}")
    out = x.clone()
    for start in range(0, n, CHUNK):
        r = radius[start:start + CHUNK]
        idx = (r > 0).nonzero().flatten()  # positions in the chunk still being worked on
        if len(idx) == 0:
            continue
        r = r[idx]
        cur = F.interpolate(x[start + idx], scale_factor=scale, mode="bilinear", align_corners=False)
        for k in range(1, int(r.max()) + 1):
            cur = _step(cur, k, dilate)
            hit = r == k
            if hit.any():
                rows = start + idx[hit]
                down = F.avg_pool2d(cur[hit], scale)
                # resampling blurs a little; erosion must never add ink nor dilation remove it
                out[rows] = torch.minimum(down, x[rows]) if not dilate else torch.maximum(down, x[rows])
                # images that reached their radius leave the working set
                cur, r, idx = cur[~hit], r[~hit], idx[~hit]
    return out


def erode(x: torch.Tensor, radius: torch.Tensor | int, *, scale: int = 4) -> torch.Tensor:
    """x (n 1 h w) -> (n 1 h w): grey-level erosion by an octagon of ``radius`` up-sampled pixels."""
    return morph(x, radius, dilate=False, scale=scale)


def dilate(x: torch.Tensor, radius: torch.Tensor | int, *, scale: int = 4) -> torch.Tensor:
    """x (n 1 h w) -> (n 1 h w): grey-level dilation by an octagon of ``radius`` up-sampled pixels."""
    return morph(x, radius, dilate=True, scale=scale)


def morph_radius(x: torch.Tensor, amount: float, *, scale: int = 4,
                 max_radius: float | None = None) -> torch.Tensor:
    """x (n 1 h w) -> radius (n,) int64 in up-sampled pixels: Morpho-MNIST's int(amount * s * t / 2).

    t is ``stroke_thickness``; ``max_radius`` (native pixels) caps it when set.
    """
    radius = torch.floor(amount * scale * stroke_thickness(x, scale=scale) / 2)
    if max_radius is not None:
        radius = radius.clamp_max(float(int(max_radius * scale)))
    return radius.to(torch.int64)


def thin(x: torch.Tensor, amount: float = THIN_AMOUNT, *, scale: int = 4,
         max_radius: float | None = None) -> torch.Tensor:
    """x (n 1 h w) in [0, 1] -> (n 1 h w): strokes eroded by ~``amount`` of their own thickness.

    ``amount=0.7`` (Morpho-MNIST's reference) leaves about 0.3x of the measured thickness; the
    radius is chosen per image from its measurement (see the module docstring).
    """
    if not 0 <= amount < 1:
        raise ValueError(f"thinning amount must lie in [0, 1) (0.7 takes 70% off), got {amount}")
    return erode(x, morph_radius(x, amount, scale=scale, max_radius=max_radius), scale=scale)


def thick(x: torch.Tensor, amount: float = THICK_AMOUNT, *, scale: int = 4,
          max_radius: float | None = None) -> torch.Tensor:
    """x (n 1 h w) in [0, 1] -> (n 1 h w): strokes dilated by ~``amount`` of their own thickness.

    ``amount=1.0`` (Morpho-MNIST's reference) about doubles the measured thickness.
    """
    if amount < 0:
        raise ValueError(f"thickening amount must be >= 0 (1.0 doubles the thickness), got {amount}")
    return dilate(x, morph_radius(x, amount, scale=scale, max_radius=max_radius), scale=scale)


def colour_rgb(name: str) -> tuple[float, float, float]:
    """A palette name -> its RGB triple; an unknown name raises ValueError with the closest one."""
    if name in PALETTE:
        return PALETTE[name]
    from lvmgraph.plugins.registry import did_you_mean
    match = did_you_mean(name, PALETTE)
    hint = f"did you mean '{match}'? " if match else ""
    raise ValueError(f"unknown colour '{name}': {hint}(palette: {', '.join(PALETTE)})")


def tint(x: torch.Tensor, colour: str | torch.Tensor) -> torch.Tensor:
    """x (n 1 h w) in [0, 1], a palette name or RGB (3,) / per-image (n 3) -> (n 3 h w) = x * colour.

    The ink takes the colour, the (zero) background stays black.
    """
    _check_grey(x, "tint")
    rgb = torch.tensor(colour_rgb(colour)) if isinstance(colour, str) else torch.as_tensor(colour)
    rgb = rgb.to(x.dtype).reshape(-1, 3, 1, 1)
    return x * rgb
