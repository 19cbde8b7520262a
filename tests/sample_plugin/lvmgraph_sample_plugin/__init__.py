"""A sample third-party lvmgraph plugin: a residual MLP component and a cosine-distance loss.

Installed with pip, it is found through its ``[project.entry-points.lvmgraph]`` entry and
registers through the public hooks only (``from lvmgraph import hookimpl``), exactly like the
built-in families. ``specs/aae_residual.yaml`` next to this file uses both.

Axis legend: b batch, d flattened features, f block width.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn

from lvmgraph import Params, check_shape, hookimpl

SPECS = Path(__file__).parent / "specs"

Shape = Annotated[list[PositiveInt], Field(min_length=1)]


class ResidualMLPParams(Params):
    in_shape: Shape = Field(description="per-sample input shape, e.g. [2] or [1, 8, 8]; inputs are flattened")
    out_shape: Shape = Field(description="per-sample output shape, e.g. [2] or [1, 8, 8]")
    width: PositiveInt = Field(default=128, description="width of every residual block")
    blocks: int = Field(default=2, ge=0, description="number of residual blocks (0 = one linear layer in, one out)")
    out_activation: Literal["none", "sigmoid", "tanh"] = Field(default="none", description="activation on the output")


class ResidualBlock(nn.Module):
    """h (b f) -> h + W2 relu(W1 relu(LayerNorm(h))) (b f): a pre-norm residual block."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        # the last layer starts at zero, so every block starts as the identity
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(F.relu(self.fc1(F.relu(self.norm(h)))))


_OUT = {"none": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class ResidualMLP(nn.Module):
    """x (b, *in_shape) -> (b, *out_shape): an MLP of pre-norm residual blocks on the flattened input.

    Linear in to ``width``, ``blocks`` residual blocks, Linear out, then ``out_activation``.
    """

    def __init__(self, *, in_shape: Sequence[int], out_shape: Sequence[int], width: int = 128,
                 blocks: int = 2, out_activation: str = "none"):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.inp = nn.Linear(math.prod(self.in_shape), width)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.out = nn.Linear(width, math.prod(self.out_shape))
        self.out_act = _OUT[out_activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, self.in_shape, what="residual_mlp 'in_shape'", setting="in_shape")
        h = self.blocks(self.inp(x.flatten(1)))
        return self.out_act(self.out(F.relu(h))).reshape(x.shape[0], *self.out_shape)


def cosine_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """a, b (b, ...) -> (): mean over the batch of 1 − cos(a_i, b_i) of the flattened rows, in [0, 2]."""
    return (1.0 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=eps)).mean()


@hookimpl
def register_components(register):
    register("residual_mlp", ResidualMLP, params=ResidualMLPParams)


@hookimpl
def register_losses(register):
    register("cosine_distance", cosine_distance)
