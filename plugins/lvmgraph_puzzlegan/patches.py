"""Key local patches: crop K patches from each image and hand them over without their positions.

Axis legend: b batch, K patches per image, c channels, h w image size, p patch side,
n candidate top-left positions ((h - p + 1) * (w - p + 1) of them).

PuzzleGAN (Lee et al., ECCV 2018) learns to complete an image from a few *key* patches whose
positions it is not told; the true positions only enter the losses, as a mask. The paper takes
its key patches from object proposals (EdgeBoxes on faces, cars, waterfalls ...); on small
grey images such as Fashion-MNIST there is nothing to propose from, so ``key_patches`` uses
an honest, simple rule instead:

- *ink*: a pixel is ink when it lies above its image's darkest value by more than a quarter
  of the image's range (max - min over all its pixels and channels), so the rule works alike
  for data in [0, 1] and [-1, 1] and for any background level;
- a top-left position is *key* when the p x p window there has at least ``min_ink`` ink,
  i.e. the patch shows a piece of the object rather than background;
- K distinct key positions are drawn uniformly at random per image (without replacement);
  if an image has fewer than K key positions, the rest are drawn uniformly from the others.
  ``min_ink: 0`` makes every position key (patches anywhere in the image).

The draw uses torch's global RNG (``torch.rand``), which lvmgraph seeds and checkpoints, so a
run's patches are reproducible and a resumed run draws the same ones; metrics run it under
their own seeded RNG. Each image gets one uniform key per candidate position; the K largest
keys (key positions first) win, and the patches come out in the order of their keys, which
is independent of where they are: the order carries no information about the positions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from lvmgraph import hookimpl

INK_FRACTION_OF_RANGE = 0.25  # a pixel above min + 0.25 * (max - min) of its image is ink


def ink_map(x: torch.Tensor) -> torch.Tensor:
    """x (b c h w) -> (b 1 h w) in {0, 1}: 1 where the pixel (any channel) is ink, see the module docstring."""
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.reshape(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.reshape(-1, 1, 1, 1)
    ink = (x > lo + INK_FRACTION_OF_RANGE * (hi - lo)).any(dim=1, keepdim=True)
    return ink.to(x.dtype)


def window_ink(x: torch.Tensor, size: int) -> torch.Tensor:
    """x (b c h w) -> (b n): the fraction of ink pixels in the size x size window at each top-left position."""
    return F.avg_pool2d(ink_map(x), size, stride=1).flatten(1)


def _check(x: torch.Tensor, k: int, size: int, min_ink: float) -> None:
    if x.dim() != 4:
        raise ValueError(f"key_patches needs images (b c h w), got a tensor of shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= min(h, w):
        raise ValueError(f"key_patches: size={size!r} must be an integer patch side between 1 and the image "
                         f"side ({min(h, w)} for {h}x{w} images)")
    n = (h - size + 1) * (w - size + 1)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"key_patches: k={k!r} must be an integer number of patches between 1 and {n} "
                         f"(the distinct {size}x{size} positions in a {h}x{w} image)")
    if not 0.0 <= float(min_ink) <= 1.0:
        raise ValueError(f"key_patches: min_ink={min_ink!r} is a fraction of the patch's pixels; use 0..1 "
                         f"(0: patches anywhere)")


def key_positions(x: torch.Tensor, k: int, size: int, min_ink: float = 0.25) -> torch.Tensor:
    """x (b c h w) -> corners (b K 2) int64, (row, col) of each patch's top-left pixel, in random order.

    Draws from torch's global RNG: one uniform key per candidate position, plus 2 for key
    positions (ink >= min_ink), then the K largest (see the module docstring).
    """
    _check(x, k, size, min_ink)
    w_pos = x.shape[-1] - size + 1
    eligible = window_ink(x, size) >= float(min_ink) - 1e-6
    scores = torch.rand(eligible.shape, device=x.device) + 2.0 * eligible.to(torch.float32)
    index = scores.topk(k, dim=1).indices  # (b K), ordered by key, not by position
    return torch.stack([index // w_pos, index % w_pos], dim=-1)


def patch_masks(corners: torch.Tensor, size: int, image_hw: tuple[int, int]) -> torch.Tensor:
    """corners (b K 2), patch side, (h, w) -> masks (b K h w) float: 1 on each patch's square, 0 elsewhere."""
    h, w = image_hw
    rows = torch.arange(h, device=corners.device).reshape(1, 1, h, 1)
    cols = torch.arange(w, device=corners.device).reshape(1, 1, 1, w)
    top = corners[..., 0].reshape(*corners.shape[:2], 1, 1)
    left = corners[..., 1].reshape(*corners.shape[:2], 1, 1)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return inside.to(torch.get_default_dtype())


def crop_at(x: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """x (b c h w), corners (b K 2) -> patches (b K c p p): the size x size windows at the corners."""
    c, w = x.shape[1], x.shape[-1]
    windows = F.unfold(x, size)  # (b, c*p*p, n), column j = the window at top-left (j // w_pos, j % w_pos)
    index = corners[..., 0] * (w - size + 1) + corners[..., 1]  # (b K)
    picked = windows.gather(2, index.unsqueeze(1).expand(-1, windows.shape[1], -1))  # (b, c*p*p, K)
    return rearrange(picked, "b (c p q) k -> b k c p q", c=c, p=size, q=size)


def key_patches(x: torch.Tensor, k: int, size: int, min_ink: float = 0.25) -> dict[str, torch.Tensor]:
    """x (b c h w) -> {patches (b K c p p), masks (b K h w), mask (b 1 h w), corners (b K 2)}.

    ``patches``: K size x size crops of each image, at random key positions, in random order
    (the model's input). ``masks``: where each patch came from (same order); ``mask``: their
    union, the target of PuzzleGAN's spatial loss; ``corners``: (row, col) of each patch's
    top-left pixel. Nothing here carries gradient to x. Spec use:
    ``crop: key_patches(x, k=3, size=10)``, then ``crop.patches`` and ``crop.mask``.
    """
    x = x.detach()
    corners = key_positions(x, k, size, min_ink)
    masks = patch_masks(corners, size, tuple(x.shape[-2:])).to(x.dtype)
    return {"patches": crop_at(x, corners, size), "masks": masks,
            "mask": masks.amax(dim=1, keepdim=True), "corners": corners}


def swap_parts(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (b c h w), mask (b 1 h w) -> (2b c h w): real images whose key parts do not belong to them.

    Rows 0..b-1: each image with its masked region taken from the next image of the batch
    (the last from the first); rows b..2b-1: each image's masked region pasted onto the next
    image. The authors' code shows its discriminator such composites as fakes besides the
    generated images, so that D judges whether parts fit their surroundings, not only whether
    each looks real. Rolling by one (never a random permutation) guarantees that every
    composite mixes two different images when b > 1; training batches are shuffled, so the
    pairs are random. Deterministic: draws nothing.
    """
    if x.shape[0] < 2:
        raise ValueError("swap_parts needs a batch of at least 2 images (it pairs each with the next)")
    if mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"swap_parts: mask {tuple(mask.shape)} must be (b 1 h w) for images {tuple(x.shape)}")
    other = x.roll(-1, dims=0)  # other[i] = x[i + 1]
    parts_from_other = mask * other + (1 - mask) * x
    parts_on_other = mask * x + (1 - mask) * other
    return torch.cat([parts_from_other, parts_on_other], dim=0)


OPS = {"key_patches": key_patches, "swap_parts": swap_parts}


@hookimpl
def register_ops(register):
    for name, fn in OPS.items():
        register(name, fn)
