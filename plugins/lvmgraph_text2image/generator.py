"""The text-conditioned generator G(z, phi(t)) of GAN-INT-CLS (Reed et al., ICML 2016).

Axis legend: b batch, n noise width, d sentence embedding width, t compressed text width,
c h w image.

phi(t) is compressed by a Linear + LeakyReLU(0.2) layer to t dimensions (128 in the paper),
concatenated to z, and decoded by a DCGAN generator (project-and-reshape, transposed convs with
batch norm and ReLU, tanh output): the paper's G is exactly a DCGAN generator on [z, text].

``tint: true`` (not in the paper) draws the image as one ink channel times a colour: the DCGAN
trunk outputs a single channel m in [0, 1] and a linear head on the compressed text gives a colour
c in [0, 1]^c (sigmoid), x = m * c (mapped to the output activation's range). It is the layered
idea of FineGAN (Singh, Ojha & Lee, CVPR 2019: shape and appearance drawn by separate branches)
reduced to a tint, for data rendered as ink on a black background: the colour can then only come
from the text, and the shape branch never has to draw a colour, so a caption pairing a colour with
a garment it was never seen with ("a red ankle boot" when only green ones were) asks the shape
branch for a shape it has drawn and the colour head for a colour it has drawn.
"""
from __future__ import annotations

from typing import Sequence

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from lvmgraph import Params
from lvmgraph_dcgan.components import DCGANGenerator, ImageShape, OutActivation, Widths, dcgan_init, start_size

from .layers import TextProjection


class TextGeneratorParams(Params):
    noise_dim: PositiveInt = Field(description="width of the noise z (the noise prior's shape [n])")
    embed_dim: PositiveInt = Field(description="width of the sentence embedding phi(t): the text encoder's out_dim")
    text_dim: PositiveInt = Field(default=128, description="width the embedding is compressed to before it is "
                                                           "concatenated to z (the paper's 128)")
    out_shape: ImageShape = Field(description="image shape [c, h, w]; h and w divisible by 2 ** len(channels)")
    channels: Widths = Field(default=[256, 128, 64],
                             description="channels entering each stride-2 transposed conv, widest first "
                                         "([256, 128, 64]: 4x4 -> 32x32)")
    hidden: list[PositiveInt] = Field(default=[], description="fully connected layers before the projection")
    batch_norm: bool = Field(default=True, description="batch norm after every layer but the output")
    out_activation: OutActivation = Field(default="tanh", description="tanh (data in [-1, 1]), sigmoid or none")
    tint: bool = Field(default=False, description="draw one ink channel times a colour read from the text alone "
                                                  "(ink on a black background, e.g. tinted captions data); needs "
                                                  "out_activation tanh or sigmoid")

    @model_validator(mode="after")
    def _fits(self):
        start_size(self.out_shape, len(self.channels))
        if self.tint and self.out_activation == "none":
            raise ValueError("tint: true needs out_activation tanh (data in [-1, 1]) or sigmoid (data in [0, 1]): "
                             "the ink is drawn in [0, 1] and mapped to that range")
        return self


class TextGenerator(nn.Module):
    """z (b n), phi (b d) -> x (b c h w): DCGAN generator on concat(z, LeakyReLU(W phi)); with ``tint``,
    a one-channel DCGAN generator (the ink) times a colour linear in LeakyReLU(W phi)."""

    def __init__(self, *, noise_dim: int, embed_dim: int, out_shape: Sequence[int], text_dim: int = 128,
                 channels: Sequence[int] = (256, 128, 64), hidden: Sequence[int] = (), batch_norm: bool = True,
                 out_activation: str = "tanh", tint: bool = False):
        super().__init__()
        if tint and out_activation not in ("tanh", "sigmoid"):
            raise ValueError("text_generator: tint needs out_activation tanh or sigmoid")
        self.noise_dim = int(noise_dim)
        self.out_activation = out_activation
        self.project = TextProjection(embed_dim, text_dim)
        channels_out = int(out_shape[0])
        trunk_shape = [1, *out_shape[1:]] if tint else list(out_shape)
        self.net = DCGANGenerator(in_shape=[self.noise_dim + int(text_dim)], out_shape=trunk_shape,
                                  channels=channels, hidden=hidden, batch_norm=batch_norm,
                                  out_activation=out_activation)
        self.colour = nn.Linear(int(text_dim), channels_out) if tint else None
        dcgan_init(self.project)

    def forward(self, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.noise_dim:
            raise ValueError(f"text_generator: z must be (batch, {self.noise_dim}), got {tuple(z.shape)}; set "
                             f"`noise_dim` to the noise prior's width")
        if embedding.shape[0] != z.shape[0]:
            raise ValueError(f"text_generator: {z.shape[0]} noise rows but {embedding.shape[0]} text embeddings")
        text = self.project(embedding, owner="text_generator")
        out = self.net(torch.cat([z, text], dim=1))
        if self.colour is None:
            return out
        ink = (out + 1) / 2 if self.out_activation == "tanh" else out   # (b 1 h w) in [0, 1]
        tinted = ink * torch.sigmoid(self.colour(text))[:, :, None, None]  # (b c h w)
        return tinted * 2 - 1 if self.out_activation == "tanh" else tinted
