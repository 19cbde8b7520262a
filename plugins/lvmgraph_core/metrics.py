"""Model-agnostic evaluation metrics.

Axis legend: b batch, then the data field's own axes (c h w for images, d for points).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from lvmgraph import Params, hookimpl
from lvmgraph.eval.context import point_value
from lvmgraph.eval.stats import take_examples

#: predictions are clamped to [EPS, 1 − EPS] before the log in the BCE
BCE_EPS = 1e-6


class ReconstructionParams(Params):
    input: str = Field("x", description="data field the model reconstructs (the target)")
    output: str = Field("x_hat", description="graph value holding the reconstruction: a tensor, "
                                             "or a distribution whose mean is used")
    split: Literal["train", "test"] = Field("test", description="data split to evaluate on")
    n: int = Field(1000, gt=0, description="number of data points (fewer if the split is smaller)")
    batch_size: int = Field(500, gt=0, description="data points per forward pass")


def reconstruction_error(ctx, **settings) -> dict:
    """Data x (b ...) and the graph's reconstruction (b ...) -> mean squared error per element,
    and mean binary cross-entropy per element when the data lie in [0, 1].

    The reconstruction is the ``output`` graph value given the batch (a distribution counts
    by its mean). BCE clamps predictions to [1e-6, 1 − 1e-6]; it is the natural error for
    binarised or [0, 1] images and is left out for data outside that range.
    """
    s = ReconstructionParams(**settings)
    squared = bce = 0.0
    elements = examples = 0
    data_in_unit_range = True
    for batch in take_examples(ctx.batches(s.split, s.batch_size, s.n), s.n):
        if s.input not in batch:
            raise KeyError(f"data has no field {s.input!r} (fields: {sorted(batch)}); set `input:`")
        target = batch[s.input].float()
        prediction = point_value(ctx.evaluate([s.output], dict(batch))[s.output], s.output, "output").float()
        if prediction.shape != target.shape:
            raise ValueError(f"{s.output!r} has shape {tuple(prediction.shape)} but data field "
                             f"{s.input!r} has shape {tuple(target.shape)}")
        squared += F.mse_loss(prediction, target, reduction="sum").item()
        data_in_unit_range &= bool(target.min() >= 0) and bool(target.max() <= 1)
        if data_in_unit_range:
            probs = prediction.clamp(BCE_EPS, 1 - BCE_EPS)
            bce += F.binary_cross_entropy(probs, target, reduction="sum").item()
        elements += target.numel()
        examples += target.shape[0]
    if examples == 0:
        raise ValueError(f"the {s.split!r} split is empty")
    result = {"mse": squared / elements}
    if data_in_unit_range:
        result["bce"] = bce / elements
    result["protocol"] = {"split": s.split, "n": examples, "input": s.input, "output": s.output,
                          "reduction": "mean per element", "bce_clamp": BCE_EPS}
    return result


@hookimpl
def register_metrics(register):
    register("reconstruction_error", reconstruction_error, params=ReconstructionParams)
