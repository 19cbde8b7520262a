"""The matching-aware discriminator D(x, phi(t)) of GAN-INT-CLS (Reed et al., ICML 2016).

Axis legend: b batch, c h w image, C trunk channels, H W the trunk's final map (4x4 in the paper),
d sentence embedding width, t compressed text width.

D judges an (image, text) pair: DCGAN stride-2 convs take the image to a small map (C H W); the
text embedding, compressed by Linear + LeakyReLU(0.2), is replicated over that map and concatenated
depth-wise; a 1x1 conv (+ batch norm) + LeakyReLU mixes image and text features, and a final conv
whose kernel covers the whole map gives one logit. With ``projection: true`` the logit also gets
the inner product of a linear map of phi with the trunk's channels summed over the map (a
projection discriminator, Miyato & Koyama 2018). With ``num_classes``, ``classify(h)`` reads
class logits off the trunk's map (the auxiliary classifier of AC-GAN, Odena, Olah & Shlens 2017).
With the CLS loss D learns to reject real images with the wrong text as well as fakes, so it must
read the text.

``features(x)`` and ``score(h, phi)`` split the forward pass, so a graph can run the trunk once on
the real images and score it against both the right and the wrong captions.
"""
from __future__ import annotations

from typing import Sequence

import torch
from einops import repeat
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from lvmgraph import Params, check_shape
from lvmgraph_dcgan.components import KERNEL, PADDING, STRIDE, ImageShape, Widths, dcgan_init, trunk_size

from .layers import LEAKY_SLOPE, TextProjection


class MatchingDiscriminatorParams(Params):
    in_shape: ImageShape = Field(description="image shape [c, h, w]")
    embed_dim: PositiveInt = Field(description="width of the sentence embedding phi(t): the text encoder's out_dim")
    text_dim: PositiveInt = Field(default=128, description="width the embedding is compressed to before it is "
                                                           "replicated over the image features (the paper's 128)")
    channels: Widths = Field(default=[64, 128, 256],
                             description="output channels of each stride-2 conv; [64, 128, 256] takes 32x32 to "
                                         "the paper's 4x4 map")
    batch_norm: bool = Field(default=True, description="batch norm after every conv except the input layer and "
                                                       "the output")
    spectral_norm: bool = Field(default=False, description="spectral normalisation on every conv and linear layer")
    projection: bool = Field(default=False, description="also add the projection term <V phi, sum_HW h> of "
                                                        "Miyato & Koyama (ICLR 2018) to the logit: the text "
                                                        "then meets every trunk channel directly, a stronger "
                                                        "match signal than concatenation alone")
    num_classes: PositiveInt | None = Field(None, description="also give ``classify(h)``: K class logits from the "
                                                              "trunk's map (an AC-GAN head, Odena et al. 2017) "
                                                              "for a class loss on real and generated images")

    @model_validator(mode="after")
    def _fits(self):
        trunk_size(self.in_shape, len(self.channels))
        return self


def _sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


class MatchingDiscriminator(nn.Module):
    """x (b c h w), phi (b d) -> logit (b 1): does the image look real *and* match the text?"""

    def __init__(self, *, in_shape: Sequence[int], embed_dim: int, text_dim: int = 128,
                 channels: Sequence[int] = (64, 128, 256), batch_norm: bool = True, spectral_norm: bool = False,
                 projection: bool = False, num_classes: int | None = None):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.map_shape = trunk_size(self.in_shape, len(channels))  # (H, W)
        layers: list[nn.Module] = []
        c = self.in_shape[0]
        for i, c_out in enumerate(channels):
            bn = batch_norm and i > 0  # never on the input layer (DCGAN)
            layers += [_sn(nn.Conv2d(c, c_out, KERNEL, STRIDE, PADDING, bias=not bn), spectral_norm),
                       *([nn.BatchNorm2d(c_out)] if bn else []), nn.LeakyReLU(LEAKY_SLOPE)]
            c = int(c_out)
        self.trunk = nn.Sequential(*layers)
        self.project = TextProjection(embed_dim, text_dim)
        if spectral_norm:
            self.project.linear = _sn(self.project.linear, True)
        self.joint = nn.Sequential(
            _sn(nn.Conv2d(c + int(text_dim), c, 1, bias=not batch_norm), spectral_norm),
            *([nn.BatchNorm2d(c)] if batch_norm else []), nn.LeakyReLU(LEAKY_SLOPE))
        self.out = _sn(nn.Conv2d(c, 1, self.map_shape), spectral_norm)  # kernel = the whole H x W map
        # projection discriminator term: phi -> one weight per trunk channel (no bias, so a zero
        # embedding adds nothing)
        self.text_to_channels = _sn(nn.Linear(int(embed_dim), c, bias=False), spectral_norm) if projection else None
        # AC-GAN head: the trunk's whole map -> class logits (no text: the class must show in the image)
        self.classes = (_sn(nn.Linear(c * self.map_shape[0] * self.map_shape[1], int(num_classes)), spectral_norm)
                        if num_classes else None)
        dcgan_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (b c h w) -> the image trunk's map (b C H W)."""
        check_shape(x, self.in_shape, what="matching_discriminator 'in_shape'", setting="in_shape")
        return self.trunk(x)

    def score(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """h (b C H W) from ``features``, phi (b d) -> logit (b 1)."""
        if embedding.shape[0] != h.shape[0]:
            raise ValueError(f"matching_discriminator: {h.shape[0]} images but {embedding.shape[0]} text embeddings")
        text = self.project(embedding, owner="matching_discriminator")
        tiled = repeat(text, "b t -> b t H W", H=h.shape[2], W=h.shape[3])
        logit = self.out(self.joint(torch.cat([h, tiled], dim=1))).flatten(1)
        if self.text_to_channels is not None:
            pooled = h.sum(dim=(2, 3))                                   # (b C)
            logit = logit + (self.text_to_channels(embedding) * pooled).sum(dim=1, keepdim=True)
        return logit

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """h (b C H W) from ``features`` -> class logits (b K); needs ``num_classes``."""
        if self.classes is None:
            raise ValueError("matching_discriminator.classify needs a class head: set num_classes (e.g. 10) "
                             "in the discriminator's settings")
        return self.classes(h.flatten(1))

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x), embedding)
