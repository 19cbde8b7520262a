"""Does a conditional generator produce what it was asked for? Judged by the dataset evaluator.

Axis legend: n samples, K classes (evaluator outputs), C code values.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from lvmgraph import Params
from lvmgraph.eval.stats import confusion_matrix, hungarian_accuracy, rng_from

from .features import FEATURE_EXTRACTOR, generate

Encoding = Literal["index", "one_hot"]


class ClassAccuracyParams(Params):
    given: str = Field("y", description="graph value that carries the requested class (fixed for sampling)")
    encoding: Encoding = Field("index", description="how the class is fed: index (n,) integers or one_hot "
                                                    "(n, num_classes) floats")
    num_classes: int | None = Field(None, gt=0, description="number of classes (default: the dataset's "
                                                            "info num_classes)")
    n_per_class: int = Field(1000, gt=0, description="samples generated per requested class")
    batch_size: int = Field(500, gt=0, description="samples per generator call and per evaluator call")


class CodeAccuracyParams(Params):
    code: str = Field("c", description="graph value holding the categorical code (fixed for sampling)")
    n_codes: int = Field(10, ge=2, description="number of values of the categorical code")
    encoding: Encoding = Field("one_hot", description="how the code is fed: one_hot (n, n_codes) floats "
                                                      "(InfoGAN) or index (n,) integers")
    n_per_code: int = Field(1000, gt=0, description="samples generated per code value")
    batch_size: int = Field(500, gt=0, description="samples per generator call and per evaluator call")


def condition(value: int, n: int, size: int, encoding: str, device) -> torch.Tensor:
    """n copies of one class/code value: (n,) int64 indices or (n, size) one-hot floats."""
    index = torch.full((n,), value, dtype=torch.long, device=device)
    if encoding == "index":
        return index
    return F.one_hot(index, size).to(torch.get_default_dtype())


def classify_generated(ctx, ev, name: str, values: int, size: int, encoding: str, n_each: int,
                       batch_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """For v in range(values): n_each samples with ``name`` fixed to v -> requested (N,), the
    evaluator's predicted class (N,) and the seed of the draws."""
    requested, predicted = [], []
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        for v in range(values):
            given = {name: condition(v, n_each, size, encoding, ctx.device)}
            for x in generate(ctx, n_each, batch_size, given=given):
                logits = ev.logits(x.to(ctx.device), info=ctx.data.info)
                predicted.append(logits.argmax(dim=1).cpu())
                requested.append(torch.full((x.shape[0],), v, dtype=torch.long))
    return torch.cat(requested), torch.cat(predicted), seed


def class_columns(ctx, predicted: torch.Tensor, at_least: int = 0) -> int:
    """Columns of a confusion matrix over the evaluator's classes: the dataset's classes, or more
    if the evaluator predicts a higher index."""
    return max(at_least, int(ctx.data.info.get("num_classes") or 0), int(predicted.max()) + 1)


def class_accuracy(ctx, **settings) -> dict:
    """Conditional samples -> how often the evaluator assigns them the requested class.

    For each class k, generates ``n_per_class`` samples with the graph value ``given`` fixed
    to k (as an index or a one-hot row, per ``encoding``) and classifies them with the
    dataset evaluator; reports ``accuracy`` over all samples, ``per_class`` accuracies
    (keys are class indices) and ``confusion`` (rows: requested class, columns: evaluator's
    class). Read it against the evaluator's own test accuracy in ``protocol.evaluator``: the
    accuracy-of-conditional-samples protocol of conditional GAN papers (e.g. the
    classification score of AC-GAN, Odena et al. 2017), with this project's classifier.
    """
    s = ClassAccuracyParams(**settings)
    num_classes = s.num_classes or ctx.data.info.get("num_classes")
    if not num_classes:
        raise ValueError("class_accuracy needs the number of classes: the dataset's info has no "
                         "num_classes; set `num_classes:`")
    ev = ctx.evaluator()
    requested, predicted, seed = classify_generated(ctx, ev, s.given, num_classes, num_classes,
                                                    s.encoding, s.n_per_class, s.batch_size)
    counts = confusion_matrix(requested, predicted, num_classes, class_columns(ctx, predicted, num_classes))
    correct = counts[:, :num_classes].diagonal()
    per_class = correct.double() / counts.sum(dim=1).double()
    return {
        "accuracy": correct.sum().item() / counts.sum().item(),
        "per_class": {str(c): v for c, v in enumerate(per_class.tolist())},
        "confusion": counts.tolist(),
        "protocol": {"n_per_class": s.n_per_class, "num_classes": num_classes, "given": s.given,
                     "encoding": s.encoding, "class_names": ctx.data.info.get("class_names"),
                     "classifier": FEATURE_EXTRACTOR, "evaluator": ev.describe(), "seed": seed},
    }


def code_accuracy(ctx, **settings) -> dict:
    """Samples per value of a categorical code -> accuracy of the best code-to-class matching.

    InfoGAN (Chen et al. 2016): a categorical code learned without labels should align with
    the classes (about 5% error on MNIST). For each code value j, generates ``n_per_code``
    samples with the graph value ``code`` fixed to j (one-hot of size ``n_codes`` by
    default), classifies them with the dataset evaluator, and matches codes to classes
    one-to-one by the Hungarian algorithm on the code × class confusion matrix
    (``scipy.optimize.linear_sum_assignment``, maximising matched samples). Reports
    ``accuracy`` of that matching, ``error`` = 1 − accuracy, the ``mapping`` code -> class,
    ``per_code`` accuracies under it, and ``confusion`` (rows: code, columns: class). With
    more code values than classes the unmatched codes count as errors.
    """
    s = CodeAccuracyParams(**settings)
    ev = ctx.evaluator()
    codes, predicted, seed = classify_generated(ctx, ev, s.code, s.n_codes, s.n_codes, s.encoding,
                                                s.n_per_code, s.batch_size)
    k = class_columns(ctx, predicted)
    accuracy, mapping = hungarian_accuracy(codes, predicted, s.n_codes, k)
    counts = confusion_matrix(codes, predicted, s.n_codes, k)
    per_code = {str(j): (counts[j, mapping[j]].item() / counts[j].sum().item() if j in mapping else 0.0)
                for j in range(s.n_codes)}
    return {
        "accuracy": accuracy,
        "error": 1.0 - accuracy,
        "mapping": {str(j): c for j, c in mapping.items()},
        "per_code": per_code,
        "confusion": counts.tolist(),
        "protocol": {"n_per_code": s.n_per_code, "n_codes": s.n_codes, "code": s.code,
                     "encoding": s.encoding, "matching": "Hungarian (linear_sum_assignment) on the "
                                                         "code x class confusion matrix",
                     "classifier": FEATURE_EXTRACTOR, "evaluator": ev.describe(), "seed": seed},
    }
