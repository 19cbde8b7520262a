"""Offline evaluation metrics that follow published protocols.

Sample quality in the feature space of the run's dataset evaluator (``evaluator_fd``,
``evaluator_kid``, ``precision_recall``, ``density_coverage``; never Inception), mode coverage
on the 2-D mixtures (``mode_coverage``), the Parzen-window log-likelihood (``parzen_ll``) and
the accuracy of conditional generators (``class_accuracy``, InfoGAN's ``code_accuracy``).
The maths lives in ``lvmgraph.eval.stats``; these functions gather samples and features and
state their protocol (sample counts after clipping, k, kernel, seeds, feature extractor).
"""
from lvmgraph import hookimpl

from .conditional import ClassAccuracyParams, CodeAccuracyParams, class_accuracy, code_accuracy
from .features import (DensityCoverageParams, FdParams, KidParams, PrecisionRecallParams, density_coverage,
                       evaluator_fd, evaluator_kid, precision_recall)
from .likelihood import ParzenParams, parzen_ll
from .modes import ModeCoverageParams, mode_coverage

METRICS = {
    "evaluator_fd": (evaluator_fd, FdParams),
    "evaluator_kid": (evaluator_kid, KidParams),
    "precision_recall": (precision_recall, PrecisionRecallParams),
    "density_coverage": (density_coverage, DensityCoverageParams),
    "mode_coverage": (mode_coverage, ModeCoverageParams),
    "parzen_ll": (parzen_ll, ParzenParams),
    "class_accuracy": (class_accuracy, ClassAccuracyParams),
    "code_accuracy": (code_accuracy, CodeAccuracyParams),
}


@hookimpl
def register_metrics(register):
    for name, (fn, params) in METRICS.items():
        register(name, fn, params=params)


__all__ = ["METRICS", "register_metrics"]
