"""``mask_iou``: does the predicted mask put the patches where they came from?

Axis legend: b batch, n examples, h w spatial; masks (b 1 h w) or (b K h w) (per-patch masks
are united first).

For the first n examples of a split, the spec's graph computes the predicted mask (``mask``,
probabilities) and the true mask of the patch locations (``target``) from the data batch; the
prediction is thresholded at ``threshold`` and compared per image by intersection over union.
The patches are cropped at random inside the graph, so the metric runs under its own seeded
RNG (the crops are reproducible from the evaluation seed and never shift the training RNG).

Two input-independent baselines come with it, to read the score against: ``all_ones`` (the
whole image predicted) and ``best_fixed_mask``: the best single mask for every image, chosen
with hindsight on the same examples (pixels whose true-mask frequency is at least t, for the
t that maximises the mean IoU). A model that reads the patches must beat both.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from lvmgraph import Params
from lvmgraph.eval.context import point_value
from lvmgraph.eval.stats import rng_from, take_examples


MAX_LEVELS = 64  # frequency thresholds tried for the best fixed mask


class MaskIouParams(Params):
    mask: str = Field("mask_pred", description="graph value computed from the data batch: the predicted mask, "
                                               "probabilities (b 1 h w)")
    target: str = Field("mask_true", description="graph value computed from the data batch: the true mask of the "
                                                 "patch locations (b 1 h w), or per-patch masks (b K h w)")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="a pixel is predicted inside when mask >= threshold")
    split: Literal["train", "test"] = Field("test", description="data split to evaluate on")
    n: int = Field(1000, gt=0, description="number of data points (fewer if the split is smaller)")
    batch_size: int = Field(500, gt=0, description="data points per forward pass")


def as_union(mask: torch.Tensor, name: str) -> torch.Tensor:
    """(b 1 h w) or (b K h w) -> (b h w) bool-ready floats: per-patch masks united."""
    if mask.dim() != 4:
        raise ValueError(f"mask_iou: {name} must be (b 1 h w) or (b K h w), got shape {tuple(mask.shape)}")
    return mask.amax(dim=1)


def iou(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """pred, true (b h w) bool -> (b,) float64: |pred ∩ true| / |pred ∪ true| per image (1 when both are empty)."""
    inter = (pred & true).flatten(1).sum(1).double()
    union = (pred | true).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def best_fixed_mask_iou(true: torch.Tensor) -> tuple[float, float]:
    """true (n h w) bool -> (mean IoU, threshold) of the best input-independent mask {frequency >= t}."""
    freq = true.double().mean(dim=0)
    levels = torch.unique(freq[freq > 0])
    if levels.numel() > MAX_LEVELS:  # evenly spaced among the distinct frequencies, both ends kept
        levels = levels[torch.linspace(0, levels.numel() - 1, MAX_LEVELS).round().long()]
    best, best_t = 0.0, 1.0
    for t in levels.tolist():
        score = iou((freq >= t).expand_as(true), true).mean().item()
        if score > best:
            best, best_t = score, t
    return best, best_t


def mask_iou(ctx, **settings) -> dict:
    """Predicted vs true patch-location masks -> mean IoU over the examples, with trivial baselines.

    ``iou``: mean over images of IoU(mask >= threshold, target > 0.5). ``all_ones``: the same
    for a mask covering the whole image; ``best_fixed_mask``: for the best single mask chosen
    with hindsight (see the module docstring), with its frequency threshold. ``mask_area`` and
    ``target_area``: mean fraction of the image predicted inside and truly covered.
    """
    s = MaskIouParams(**settings)
    preds, trues = [], []
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        for batch in take_examples(ctx.batches(s.split, s.batch_size, s.n), s.n):
            out = ctx.evaluate([s.mask, s.target], dict(batch))
            pred = as_union(point_value(out[s.mask], s.mask, "mask"), "mask") >= s.threshold
            true = as_union(point_value(out[s.target], s.target, "target"), "target") > 0.5
            if pred.shape != true.shape:
                raise ValueError(f"mask_iou: {s.mask!r} is {tuple(pred.shape)} per union but {s.target!r} is "
                                 f"{tuple(true.shape)}; they must cover the same image size")
            preds.append(pred.cpu())
            trues.append(true.cpu())
    if not preds:
        raise ValueError(f"the {s.split!r} split is empty")
    pred, true = torch.cat(preds), torch.cat(trues)
    fixed, t = best_fixed_mask_iou(true)
    return {
        "iou": iou(pred, true).mean().item(),
        "all_ones": iou(torch.ones_like(true), true).mean().item(),
        "best_fixed_mask": fixed,
        "mask_area": pred.double().mean().item(),
        "target_area": true.double().mean().item(),
        "protocol": {"split": s.split, "n": pred.shape[0], "mask": s.mask, "target": s.target,
                     "threshold": s.threshold, "best_fixed_mask_threshold": t,
                     "statistic": "mean over images of |pred ∩ true| / |pred ∪ true|", "seed": seed},
    }


METRICS = {"mask_iou": (mask_iou, MaskIouParams)}
