"""The PatchGAN discriminator of CycleGAN and pix2pix (Isola et al. 2017; Zhu et al. 2017, appendix 7.2).

Axis legend: b batch, c channels, h w spatial; h' w' the patch map.

x (b c h w) -> logits (b 1 h' w'): one raw score per overlapping image patch, so the
discriminator judges local texture and style rather than the whole image, with far fewer
parameters than a full-image critic. The losses average over the map (e.g.
``lsgan_discriminator_loss``), i.e. over the patches.

Layers with k = ``width`` (4x4 kernels, padding 1, LeakyReLU 0.2):

    C_k (stride 2, no norm) -> C_2k (stride 2) -> ... (n_layers stride-2 convs in all)
    -> C_(2^n_layers k) (stride 1) -> 1-channel conv (stride 1, no norm, no activation)

widths doubling up to 8k. The paper's 70x70 PatchGAN is n_layers=3 (C64-C128-C256-C512), which
gives a 30x30 map on 256 px images. The receptive field (the patch each logit sees,
``receptive_field(n_layers)``) depends on n_layers only:

    n_layers:         1   2   3   4    5
    receptive field: 16  34  70  142  286   (pixels, square)

and the map size on in_shape (``patch_map_size``): at 32 px, n_layers=2 gives a 6x6 map of
34x34 patches and n_layers=3 a 2x2 map of 70x70 ones (mostly zero padding); at 28 px,
n_layers=2 gives 5x5.
"""
from __future__ import annotations

from typing import Annotated, Sequence

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from lvmgraph import Params, ShapeMismatch, check_shape

from .layers import Norm, conv, init_norms, make_norm

ImageShape = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]

KERNEL, PADDING = 4, 1
LEAKY_SLOPE = 0.2
MAX_WIDTH_FACTOR = 8  # widths stop doubling at 8 * width (the reference code's cap)


def layer_strides(n_layers: int) -> list[int]:
    """Strides of the convs in order: n_layers stride-2 convs, then two stride-1 convs."""
    return [2] * n_layers + [1, 1]


def receptive_field(n_layers: int) -> int:
    """The side in pixels of the square input patch one output logit depends on (70 for n_layers=3).

    Walking back from one output position, each layer of kernel k and stride s widens the
    field r to (r - 1) * s + k.
    """
    r = 1
    for stride in reversed(layer_strides(n_layers)):
        r = (r - 1) * stride + KERNEL
    return r


def map_sizes(in_shape: Sequence[int], n_layers: int) -> list[tuple[int, int]]:
    """(h, w) after every conv, the last being the patch map (may contain sizes < 1 when too small)."""
    _, h, w = (int(s) for s in in_shape)
    out = []
    for stride in layer_strides(n_layers):
        h, w = (h + 2 * PADDING - KERNEL) // stride + 1, (w + 2 * PADDING - KERNEL) // stride + 1
        out.append((h, w))
    return out


def patch_map_size(in_shape: Sequence[int], n_layers: int) -> tuple[int, int]:
    """(h', w') of the patch map, or ShapeMismatch naming the setting to change.

    A non-empty map also means every normalised layer sees at least 2x2 positions (the two
    stride-1 convs each shrink the map by one), as instance norm needs.
    """
    if len(in_shape) != 3:
        raise ShapeMismatch(f"in_shape must be an image shape [c, h, w], got {list(in_shape)}")
    h, w = map_sizes(in_shape, n_layers)[-1]
    if min(h, w) < 1:
        fits = [n for n in range(1, n_layers) if min(map_sizes(in_shape, n)[-1]) >= 1]
        fix = f"set n_layers: {max(fits)}" if fits else "pad the data to a larger size (data.pad_to)"
        raise ShapeMismatch(f"in_shape {list(in_shape)} is too small for n_layers={n_layers}: "
                            f"the patch map would be empty; {fix}")
    return h, w


class PatchDiscriminatorParams(Params):
    in_shape: ImageShape = Field(description="image shape [c, h, w]")
    width: PositiveInt = Field(default=64, description="channels of the first conv (ndf); doubled by each "
                                                        "further conv up to 8x. 64 in the paper, 16-32 on a CPU")
    n_layers: int = Field(default=3, ge=1, description="stride-2 convs; sets the patch size (receptive field "
                                                        "16, 34, 70, 142 px for 1-4) and the map size. 3 in the "
                                                        "paper (70x70 patches); 2 for 28-32 px images")
    norm: Norm = Field(default="instance", description="instance (the paper), batch or none; never on the first "
                                                        "or the output conv")
    spectral_norm: bool = Field(default=False, description="spectral normalisation on every conv")

    @model_validator(mode="after")
    def _fits(self):
        patch_map_size(self.in_shape, self.n_layers)
        return self


class PatchDiscriminator(nn.Module):
    """x (b c h w) -> logits (b 1 h' w'): one raw real/fake score per receptive-field patch.

    ``map_shape`` is (1, h', w'); ``receptive_field`` the patch side in pixels.
    """

    def __init__(self, *, in_shape: Sequence[int], width: int = 64, n_layers: int = 3, norm: str = "instance",
                 spectral_norm: bool = False):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.map_shape = (1, *patch_map_size(self.in_shape, n_layers))
        self.receptive_field = receptive_field(n_layers)
        strides = layer_strides(n_layers)
        widths = [self.in_shape[0]] + [width * min(2 ** i, MAX_WIDTH_FACTOR) for i in range(n_layers + 1)] + [1]
        layers: list[nn.Module] = []
        last = len(strides) - 1
        for i, (c_in, c_out, stride) in enumerate(zip(widths[:-1], widths[1:], strides)):
            normed = 0 < i < last and norm != "none"
            layers.append(conv(nn.Conv2d(c_in, c_out, KERNEL, stride, PADDING, bias=not normed),
                               spectral_norm=spectral_norm))
            if i < last:
                layers += [*([make_norm(norm, c_out)] if normed else []), nn.LeakyReLU(LEAKY_SLOPE)]
        self.net = nn.Sequential(*layers)
        init_norms(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, self.in_shape, what="patch_discriminator 'in_shape'", setting="in_shape")
        return self.net(x)
