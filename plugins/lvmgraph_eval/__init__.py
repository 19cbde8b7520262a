"""Offline evaluation metrics that follow published protocols.

Sample quality in the feature space of the run's dataset evaluator (``evaluator_fd``,
``evaluator_kid``, ``precision_recall``, ``density_coverage``; never Inception), the standard
Inception metrics from a local torchvision Inception-v3 weights file (``inception_fid``,
``inception_score``; opt-in, never downloaded), mode coverage on the 2-D mixtures
(``mode_coverage``), the Parzen-window log-likelihood (``parzen_ll``), the accuracy of
conditional generators (``class_accuracy``, InfoGAN's ``code_accuracy``) and the translation
metrics over any graph value computed from a data batch (``content_preservation``: does the
evaluator still see the input's class; ``cycle_error``: L1/MSE of a round trip), and
``judge_accuracy``: how often a judge trained on the run's own data (two domains, a class field,
multi-hot attributes) classifies generated or translated images as their target.
The maths lives in ``lvmgraph.eval.stats``; these functions gather samples and features and
state their protocol (sample counts after clipping, k, kernel, seeds, feature extractor).
"""
from lvmgraph import hookimpl

from .conditional import ClassAccuracyParams, CodeAccuracyParams, class_accuracy, code_accuracy
from .features import (DensityCoverageParams, FdParams, KidParams, PrecisionRecallParams, density_coverage,
                       evaluator_fd, evaluator_kid, precision_recall)
from .judge import JudgeAccuracyParams, judge_accuracy
from .inception import InceptionFidParams, InceptionScoreParams, inception_fid, inception_score
from .likelihood import ParzenParams, parzen_ll
from .modes import ModeCoverageParams, mode_coverage
from .translation import ContentPreservationParams, CycleErrorParams, content_preservation, cycle_error

METRICS = {
    "evaluator_fd": (evaluator_fd, FdParams),
    "evaluator_kid": (evaluator_kid, KidParams),
    "precision_recall": (precision_recall, PrecisionRecallParams),
    "density_coverage": (density_coverage, DensityCoverageParams),
    "inception_fid": (inception_fid, InceptionFidParams),
    "inception_score": (inception_score, InceptionScoreParams),
    "mode_coverage": (mode_coverage, ModeCoverageParams),
    "parzen_ll": (parzen_ll, ParzenParams),
    "class_accuracy": (class_accuracy, ClassAccuracyParams),
    "code_accuracy": (code_accuracy, CodeAccuracyParams),
    "content_preservation": (content_preservation, ContentPreservationParams),
    "cycle_error": (cycle_error, CycleErrorParams),
    "judge_accuracy": (judge_accuracy, JudgeAccuracyParams),
}


@hookimpl
def register_metrics(register):
    for name, (fn, params) in METRICS.items():
        register(name, fn, params=params)


__all__ = ["METRICS", "register_metrics"]
