"""Image-to-image translation: does the output keep the input's content, and does a cycle come back?

Axis legend: b batch, n examples, K classes (evaluator outputs); data axes after b (c h w).

Generic over graph values: ``output`` / ``reconstruction`` name any value the spec computes from a
data batch (CycleGAN's G_AB(x) and F(G(x)), StarGAN's translation to a target domain and back, or
an auto-encoder's reconstruction). A distribution counts by its mean.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from lvmgraph import Params
from lvmgraph.eval.context import point_value
from lvmgraph.eval.stats import confusion_matrix, rng_from, take_examples

from .conditional import class_columns
from .features import FEATURE_EXTRACTOR


class TranslationParams(Params):
    input: str = Field("x", description="data field holding the examples that are translated")
    split: Literal["train", "test"] = Field("test", description="data split to evaluate on")
    n: int = Field(1000, gt=0, description="number of data points (fewer if the split is smaller)")
    batch_size: int = Field(500, gt=0, description="data points per forward pass and evaluator call")


class ContentPreservationParams(TranslationParams):
    output: str = Field("x_ab", description="graph value computed from the data batch: the translated "
                                            "examples, in the data's shape and value range")
    label: str | None = Field("y", description="data field with each input's class; null: the evaluator's "
                                               "prediction on the untranslated input")


class CycleErrorParams(TranslationParams):
    reconstruction: str = Field("x_aba", description="graph value computed from the data batch: the input "
                                                     "translated there and back")


def batches_with(ctx, s: TranslationParams, value: str, setting: str):
    """The split's first n examples -> (batch, the graph value ``value`` for it), per batch.

    The value must have the input's shape: a translation stays in the data space.
    """
    for batch in take_examples(ctx.batches(s.split, s.batch_size, s.n), s.n):
        if s.input not in batch:
            raise KeyError(f"data has no field {s.input!r} (fields: {sorted(batch)}); set `input:`")
        out = point_value(ctx.evaluate([value], dict(batch))[value], value, setting)
        if out.shape != batch[s.input].shape:
            raise ValueError(f"{value!r} has shape {tuple(out.shape)} but data field {s.input!r} has shape "
                             f"{tuple(batch[s.input].shape)}; set `{setting}:` to a value in the data space")
        yield batch, out


def class_labels(batch: dict, field: str) -> torch.Tensor:
    """A data field of class indices (b,) or one-hot / scores rows (b K) -> (b,) int64 on the CPU."""
    if field not in batch:
        raise KeyError(f"data has no field {field!r} (fields: {sorted(batch)}); set `label:` to the class "
                       f"field, or `label: null` to compare with the evaluator's prediction on the input")
    y = batch[field]
    return (y.argmax(dim=1) if y.dim() == 2 else y.reshape(-1)).long().cpu()


# ----------------------------------------------------------------------------- metrics

def content_preservation(ctx, **settings) -> dict:
    """Translated examples -> how often the dataset evaluator still sees the input's class.

    For the first n examples of the split, computes the graph value ``output`` from the batch
    and classifies it with the dataset evaluator; ``accuracy`` = fraction whose predicted
    class equals the input's class (the ``label`` field, or with ``label: null`` the
    evaluator's prediction on the untranslated input). ``reference`` = the evaluator's
    accuracy on the untranslated inputs against the same classes: the ceiling to read
    ``accuracy`` against (1 by construction with ``label: null``). ``per_class``: accuracy
    per input class (keys are class indices, classes absent from the sample left out);
    ``confusion``: rows input class, columns the evaluator's class for the output. The
    classification-accuracy protocol of translation papers (e.g. the FCN/classifier scores
    of CycleGAN and StarGAN), with this project's classifier.
    """
    s = ContentPreservationParams(**settings)
    ev = ctx.evaluator()
    info = ctx.data.info
    targets, on_input, on_output = [], [], []
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        for batch, out in batches_with(ctx, s, s.output, "output"):
            before = ev.logits(batch[s.input], info=info).argmax(dim=1)
            on_input.append(before)
            on_output.append(ev.logits(out, info=info).argmax(dim=1))
            targets.append(before if s.label is None else class_labels(batch, s.label))
    if not targets:
        raise ValueError(f"the {s.split!r} split is empty")
    target, before, after = torch.cat(targets), torch.cat(on_input), torch.cat(on_output)
    k = class_columns(ctx, torch.cat([target, before, after]))
    counts = confusion_matrix(target, after, k, k)
    present = counts.sum(dim=1)
    per_class = {str(c): counts[c, c].item() / present[c].item() for c in range(k) if present[c] > 0}
    return {
        "accuracy": (after == target).double().mean().item(),
        "reference": (before == target).double().mean().item(),
        "per_class": per_class,
        "confusion": counts.tolist(),
        "protocol": {"split": s.split, "n": target.shape[0], "input": s.input, "output": s.output,
                     "label": s.label if s.label is not None else "evaluator prediction on the input",
                     "classifier": FEATURE_EXTRACTOR, "evaluator": ev.describe(), "seed": seed},
    }


def cycle_error(ctx, **settings) -> dict:
    """Inputs x (b ...) and their round trip (b ...) -> mean absolute and mean squared error per element.

    The round trip is the graph value ``reconstruction`` computed from the batch (e.g. CycleGAN's
    F(G(x)); a distribution counts by its mean). ``l1`` is the cycle-consistency loss of
    CycleGAN (Zhu et al. 2017) as a metric, ``mse`` its squared counterpart; both averaged
    over every element of the first n examples of the split, accumulated in float64.
    """
    s = CycleErrorParams(**settings)
    absolute = squared = 0.0
    elements = examples = 0
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        for batch, out in batches_with(ctx, s, s.reconstruction, "reconstruction"):
            diff = out.double() - batch[s.input].double()
            absolute += diff.abs().sum().item()
            squared += diff.square().sum().item()
            elements += diff.numel()
            examples += diff.shape[0]
    if examples == 0:
        raise ValueError(f"the {s.split!r} split is empty")
    return {
        "l1": absolute / elements,
        "mse": squared / elements,
        "protocol": {"split": s.split, "n": examples, "input": s.input, "reconstruction": s.reconstruction,
                     "reduction": "mean per element", "seed": seed},
    }
