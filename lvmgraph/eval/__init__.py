"""Evaluation: the metric protocol, sampling artifacts and the metric runner."""
from .context import EvalContext

__all__ = ["EvalContext"]
