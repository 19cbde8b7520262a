"""The real-data side of progressive growing: show the discriminator real images as the generator
draws them at the current stage.

Axis legend: b batch, c channels, H the full image side, r the stage's resolution.
"""
from __future__ import annotations

import math

import torch

from lvmgraph import hookimpl

from .layers import downsample_to, upsample2, upsample_to


def progressive_resize(x: torch.Tensor, resolution: float = math.inf, alpha: float = 1.0) -> torch.Tensor:
    """x (b c H H) -> (b c H H): x averaged down to resolution r, blended during a fade-in, repeated up to H.

    The paper's real-image processing (its code's ``process_reals``): x_r = 2x2-average pooling of
    x down to r x r; during a fade-in (alpha < 1) x_r = lerp(double(avgpool(x_r)), x_r, alpha), the
    real counterpart of the generator's blend; then every pixel repeated back to H x H, so real and
    generated images keep one shape at every stage. Spec use, with schedules of types
    ``stage_resolution`` and ``stage_alpha``: ``x_real: progressive_resize(x, resolution=res, alpha=fade)``.
    ``resolution`` infinity (an unbound stage schedule: dry runs) leaves x at full resolution.
    """
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"progressive_resize takes square images (b, c, H, H), got {tuple(x.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    full = x.shape[-1]
    r = full if math.isinf(resolution) else int(resolution)
    if r > full or r < 1 or full % r:
        raise ValueError(f"resolution {resolution} does not divide the images' side {full}: the stage "
                         f"resolutions must be powers of 2 up to the data's size")
    x_r = downsample_to(x, r)
    if alpha < 1.0 and r > 1:
        x_r = torch.lerp(upsample2(downsample_to(x_r, r // 2)), x_r, alpha)
    return upsample_to(x_r, full)


@hookimpl
def register_ops(register):
    register("progressive_resize", progressive_resize)
