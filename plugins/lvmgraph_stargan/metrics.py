"""What StarGAN logs beside its losses: how well a classifier head reads multi-hot attributes.

Axis legend: b batch, k binary attributes.

For one-hot domains the core ``accuracy`` (argmax against the index or one-hot row) already
says how often D's classifier names the right domain; for the paper's CelebA setting, where a
label is a set of binary attributes, the matching number is the share of attribute decisions
(logit > 0 means "present") that agree with the label: ``attribute_accuracy``.
"""
from __future__ import annotations

import torch

from lvmgraph import hookimpl


def attribute_accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits (b k), multi-hot target (b k) in {0, 1} -> (): share of the b·k attribute decisions
    (logit > 0 read as 1) equal to the target. No gradient; for logging (``log:`` of a phase)."""
    if logits.shape != target.shape:
        raise ValueError(f"attribute_accuracy: logits {tuple(logits.shape)} and target {tuple(target.shape)} must "
                         f"have the same shape (one logit per attribute)")
    with torch.no_grad():
        return ((logits > 0) == (target > 0.5)).float().mean()


@hookimpl
def register_losses(register):
    register("attribute_accuracy", attribute_accuracy)
