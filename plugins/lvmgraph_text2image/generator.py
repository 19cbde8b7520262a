"""The text-conditioned generator G(z, phi(t)) of GAN-INT-CLS (Reed et al., ICML 2016).

Axis legend: b batch, n noise width, d sentence embedding width, t compressed text width,
c h w image.

phi(t) is compressed by a Linear + LeakyReLU(0.2) layer to t dimensions (128 in the paper),
concatenated to z, and decoded by a DCGAN generator (project-and-reshape, transposed convs with
batch norm and ReLU, tanh output): the paper's G is exactly a DCGAN generator on [z, text].
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

    @model_validator(mode="after")
    def _fits(self):
        start_size(self.out_shape, len(self.channels))
        return self


class TextGenerator(nn.Module):
    """z (b n), phi (b d) -> x (b c h w): DCGAN generator on concat(z, LeakyReLU(W phi))."""

    def __init__(self, *, noise_dim: int, embed_dim: int, out_shape: Sequence[int], text_dim: int = 128,
                 channels: Sequence[int] = (256, 128, 64), hidden: Sequence[int] = (), batch_norm: bool = True,
                 out_activation: str = "tanh"):
        super().__init__()
        self.noise_dim = int(noise_dim)
        self.project = TextProjection(embed_dim, text_dim)
        self.net = DCGANGenerator(in_shape=[self.noise_dim + int(text_dim)], out_shape=out_shape,
                                  channels=channels, hidden=hidden, batch_norm=batch_norm,
                                  out_activation=out_activation)
        dcgan_init(self.project)

    def forward(self, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.noise_dim:
            raise ValueError(f"text_generator: z must be (batch, {self.noise_dim}), got {tuple(z.shape)}; set "
                             f"`noise_dim` to the noise prior's width")
        if embedding.shape[0] != z.shape[0]:
            raise ValueError(f"text_generator: {z.shape[0]} noise rows but {embedding.shape[0]} text embeddings")
        return self.net(torch.cat([z, self.project(embedding, owner="text_generator")], dim=1))
