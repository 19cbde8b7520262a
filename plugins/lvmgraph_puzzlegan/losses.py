"""PuzzleGAN's appearance loss: are the input patches restored in the output image?

Axis legend: b batch, c channels, h w spatial; masks are (b 1 h w) in [0, 1].

Lee et al. (ECCV 2018) train the generator with three terms: *spatial* (the predicted mask
against the true mask of the patch locations; a per-pixel BCE, the core ``bce_logits`` on the
generator's ``mask_logit``), *appearance* (this module) and *adversarial* (the gan plugin's
losses). The authors' code computes the appearance term as the L1 distance between the output
seen through the predicted mask and the real image seen through the true mask, averaged over
all pixels; here it is averaged over the true patch region instead, so its scale does not
shrink with the patches' share of the image (one mean absolute pixel error over the patches).
"""
from __future__ import annotations

import torch

from lvmgraph import hookimpl


def appearance_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                    predicted: torch.Tensor | None = None) -> torch.Tensor:
    """output, target (b c h w), mask (b 1 h w) [, predicted (b 1 h w)] -> (): L1 on the patch region.

    Without ``predicted``: Σ mask·|output − target| / (c·Σ mask), the mean absolute error over
    the pixels where the patches really are. With ``predicted`` (the authors' form):
    Σ |predicted·output − mask·target| / (c·Σ mask), which also pulls the predicted mask towards
    where the output reproduces the patches. 0 when the patches are restored exactly in place.
    """
    if output.shape != target.shape:
        raise ValueError(f"appearance_loss: output {tuple(output.shape)} and target {tuple(target.shape)} differ")
    for name, m in (("mask", mask), ("predicted", predicted)):
        if m is not None and (m.shape[0] != output.shape[0] or m.shape[1] != 1 or m.shape[2:] != output.shape[2:]):
            raise ValueError(f"appearance_loss: {name} must be (b 1 h w) = (b, 1, {output.shape[2]}, "
                             f"{output.shape[3]}), got {tuple(m.shape)}")
    area = mask.sum() * output.shape[1]
    if area <= 0:
        raise ValueError("appearance_loss: the mask is empty, so there is no patch region to compare")
    if predicted is None:
        return (mask * (output - target).abs()).sum() / area
    return (predicted * output - mask * target).abs().sum() / area


@hookimpl
def register_losses(register):
    register("appearance_loss", appearance_loss)
