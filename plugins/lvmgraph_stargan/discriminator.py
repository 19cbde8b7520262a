"""StarGAN's discriminator with two heads (Choi et al., CVPR 2018, sec. 3.1 and appendix).

Axis legend: b batch, c channels, h w spatial; h' w' the final feature map (h / 2^n_layers);
k label width (domains or attributes).

x (b c h w) -> {"src": (b 1 h' w'), "cls": (b k)}

- trunk: n_layers convs 4x4, stride 2, padding 1, each followed by LeakyReLU(0.01), widths
  n, 2n, 4n, ... (doubling, capped at ``max_width`` if set); no normalisation anywhere (a
  WGAN-GP critic must treat each sample alone, so no batch norm, and the paper uses none).
- ``src``: a 3x3 conv (stride 1, padding 1) to one channel: a PatchGAN map of raw real/fake
  scores, no sigmoid (the Wasserstein critic of WGAN-GP).
- ``cls``: a conv whose kernel covers the whole h' x w' map (no padding) to k channels, flattened
  to (b k): logits of the domain (softmax cross-entropy) or of each attribute (sigmoid BCE).

At the paper's 128 px, n_layers = 6 with n = 64 gives a 2x2 map (widths 64 ... 2048) and a 2x2
classifier kernel; at 32 px, n_layers = 3 gives 4x4. Both heads share the trunk, so D's domain
classifier and its critic are trained together in the discriminator's phase.
"""
from __future__ import annotations

from typing import Annotated, Sequence

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from lvmgraph import Params, ShapeMismatch, check_shape

ImageShape = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]

KERNEL, STRIDE, PADDING = 4, 2, 1
LEAKY_SLOPE = 0.01  # the paper's LeakyReLU slope (CycleGAN uses 0.2)


def final_map_size(in_shape: Sequence[int], n_layers: int) -> tuple[int, int]:
    """(h', w') after the trunk, or ShapeMismatch naming the setting to change.

    Each 4x4 stride-2 conv with padding 1 halves an even size exactly; the classifier's kernel is
    the final map, so every size on the way must stay even for the map to tile the image.
    """
    if len(in_shape) != 3:
        raise ShapeMismatch(f"in_shape must be an image shape [c, h, w], got {list(in_shape)}")
    _, h, w = (int(s) for s in in_shape)
    factor = 2 ** n_layers
    if h % factor or w % factor:
        fits = [n for n in range(1, n_layers) if h % 2 ** n == 0 and w % 2 ** n == 0]
        fix = f"set n_layers: {max(fits)}" if fits else "pad the data (data.pad_to) to a multiple of a power of 2"
        raise ShapeMismatch(f"in_shape {list(in_shape)}: h and w must be divisible by {factor} (2 ** n_layers, "
                            f"n_layers={n_layers}) so the trunk halves them exactly down to the classifier's "
                            f"map; {fix}")
    return h // factor, w // factor


def trunk_widths(width: int, n_layers: int, max_width: int | None) -> list[int]:
    """Output channels of the trunk's convs: width, 2 width, 4 width, ... (capped at max_width)."""
    widths = [width * 2 ** i for i in range(n_layers)]
    return [min(w, max_width) for w in widths] if max_width else widths


class StarGANDiscriminatorParams(Params):
    in_shape: ImageShape = Field(description="image shape [c, h, w]; h and w divisible by 2 ** n_layers")
    c_dim: PositiveInt = Field(description="outputs of the classifier head: the number of domains (softmax) or "
                                           "of binary attributes (sigmoid), as the generator's c_dim")
    width: PositiveInt = Field(default=64, description="channels of the first conv; each further conv doubles "
                                                        "them. 64 in the paper, 16-32 on a CPU")
    n_layers: int = Field(default=6, ge=1, description="stride-2 4x4 convs in the trunk: 6 at the paper's 128 px "
                                                        "(a 2x2 final map), 3 at 32 px (4x4)")
    max_width: PositiveInt | None = Field(default=None, description="cap on the trunk's channels; null (the "
                                                                     "paper): double every layer")

    @model_validator(mode="after")
    def _fits(self):
        final_map_size(self.in_shape, self.n_layers)
        return self


class StarGANDiscriminator(nn.Module):
    """x (b c h w) -> {"src": real/fake patch scores (b 1 h' w'), "cls": domain logits (b k)}.

    ``map_shape`` is (1, h', w'), the shape of ``src`` per sample.
    """

    def __init__(self, *, in_shape: Sequence[int], c_dim: int, width: int = 64, n_layers: int = 6,
                 max_width: int | None = None):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.c_dim = int(c_dim)
        h, w = final_map_size(self.in_shape, n_layers)
        self.map_shape = (1, h, w)
        layers: list[nn.Module] = []
        c_in = self.in_shape[0]
        for c_out in trunk_widths(width, n_layers, max_width):
            layers += [nn.Conv2d(c_in, c_out, KERNEL, STRIDE, PADDING), nn.LeakyReLU(LEAKY_SLOPE)]
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.src = nn.Conv2d(c_in, 1, kernel_size=3, stride=1, padding=1, bias=False)
        self.cls = nn.Conv2d(c_in, self.c_dim, kernel_size=(h, w), bias=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_shape(x, self.in_shape, what="stargan_discriminator 'in_shape'", setting="in_shape")
        features = self.trunk(x)
        return {"src": self.src(features), "cls": self.cls(features).flatten(1)}
