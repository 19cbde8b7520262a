"""Loss accumulation between log steps, and the writers: TensorBoard, and the loggers a spec
chooses (``train.loggers``, registered through ``register_loggers``) that get every metrics row."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch


class LossMeter:
    """Sums detached loss values per name; ``flush`` returns the means since the last flush.

    Values stay tensors until a flush, so logging costs one device sync per log step.
    """

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        v = value.detach().float()
        total = self.sums.get(name)
        if total is None:
            self.sums[name] = v.clone()  # the meter's own tensor: added to in place from here on
            self.counts[name] = 1
        else:
            total.add_(v)  # in place: the same float32 sum as ``total + v``, without a new tensor every step
            self.counts[name] += 1

    def peek(self) -> dict[str, float]:
        """The means since the last flush, keeping the interval open."""
        return {k: float(self.sums[k].cpu()) / self.counts[k] for k in self.sums}

    def flush(self) -> dict[str, float]:
        out = self.peek()
        self.sums.clear()
        self.counts.clear()
        return out

    def state_dict(self) -> dict:
        # copies: the sums are added to in place afterwards (.cpu() of a CPU tensor is the tensor itself)
        return {"sums": {k: v.detach().cpu().clone() for k, v in self.sums.items()}, "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.sums = {k: v.clone() for k, v in state["sums"].items()}
        self.counts = dict(state["counts"])


class TensorBoardWriter:
    """Scalars and images to TensorBoard event files; a no-op (with one warning) without tensorboard."""

    def __init__(self, logdir):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as exc:  # noqa: BLE001 - tensorboard is optional at run time
            warnings.warn(f"TensorBoard events are not written: {exc}", stacklevel=2)
            self.writer = None
            return
        self.writer = SummaryWriter(log_dir=str(logdir))

    def scalars(self, row: dict, step: int) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, step)

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, grid, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


@runtime_checkable
class Logger(Protocol):
    """What ``register_loggers`` factories return: an experiment tracker fed the metrics rows."""

    def open(self, run_dir: Path, spec: dict) -> None:
        """Start (or, on ``resume``, continue) logging the run in ``run_dir``; ``spec`` is the resolved spec."""

    def log(self, step: int, values: dict[str, float]) -> None:
        """One metrics.jsonl row: the means over the interval that ends at ``step``."""

    def close(self) -> None:
        """Flush and release; called once per open, also when training fails."""


class Loggers:
    """The spec's loggers, opened in the order listed, closed in reverse."""

    def __init__(self, loggers: list[Logger]):
        self.loggers = loggers

    @classmethod
    def open(cls, exp, run_dir: Path) -> "Loggers":
        opened: list[Logger] = []
        try:
            for name, _ in exp.spec.train.logger_items():
                entry = exp.registry.get("logger", name)  # validated with the spec
                params = exp.loaded.params.get(("loggers", name))
                logger = entry.factory(**(dict(params) if params is not None else {}))
                if not isinstance(logger, Logger):
                    raise TypeError(f"logger '{name}' (plugin {entry.plugin}) built a {type(logger).__name__}, "
                                    f"which lacks open(run_dir, spec), log(step, values) or close()")
                logger.open(Path(run_dir), exp.loaded.resolved())
                opened.append(logger)
        except BaseException:
            cls(opened).close()
            raise
        return cls(opened)

    def log(self, step: int, values: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log(step, dict(values))

    def close(self) -> None:
        for logger in reversed(self.loggers):
            logger.close()
        self.loggers = []
