"""Small pieces shared by the text-conditioned generator and discriminator.

Axis legend: b batch, d sentence embedding width, t compressed text width.
"""
from __future__ import annotations

import torch
from torch import nn

LEAKY_SLOPE = 0.2


class TextProjection(nn.Module):
    """phi (b d) -> (b t): the paper's compression of the sentence embedding, Linear + LeakyReLU(0.2).

    Reed et al. compress the 1024-d char-CNN-RNN embedding to 128 dimensions before it meets z (in G)
    or the image features (in D); G and D each own one, so they learn their own views of the text.
    """

    def __init__(self, embed_dim: int, text_dim: int):
        super().__init__()
        self.embed_dim = int(embed_dim)
        self.linear = nn.Linear(self.embed_dim, int(text_dim))
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, embedding: torch.Tensor, *, owner: str) -> torch.Tensor:
        if embedding.dim() != 2 or embedding.shape[1] != self.embed_dim:
            raise ValueError(f"{owner}: the text embedding must be (batch, {self.embed_dim}), got "
                             f"{tuple(embedding.shape)}; set `embed_dim` to the text encoder's out_dim")
        return self.act(self.linear(embedding))
