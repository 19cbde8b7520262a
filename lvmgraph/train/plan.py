"""What the trainer does at a step, worked out once instead of at every step.

A framework's step costs more than a hand-written loop's only by the Python it runs around the
same tensor work (benchmarks/step_time.py), so everything that depends on the spec alone is
computed here once: per phase its terms, constant weights, updated components and meter names;
per set of phases due at a step, the batches they run on and the executor's phase runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ..graph.execute import PhaseRun


@dataclass(frozen=True)
class PhasePlan:
    """One phase's constants. ``weights`` holds a float, or the name of a schedule read each step."""

    index: int
    terms: tuple[str, ...]
    weights: tuple[Union[float, str], ...]
    updated: frozenset
    update: tuple[str, ...]  # as listed (the order of the parameters the checks walk)
    label: str
    log: tuple[str, ...]
    ema: tuple[str, ...]  # updated components that have an EMA copy
    every: int
    repeat: int

    @classmethod
    def of(cls, index: int, phase, ema_names) -> "PhasePlan":
        terms = phase.terms  # (a property building a dict on every read)
        return cls(index, tuple(terms), tuple(w if isinstance(w, str) else float(w) for w in terms.values()),
                   frozenset(phase.update), tuple(phase.update), phase.label, tuple(phase.log),
                   tuple(c for c in phase.update if c in ema_names), phase.every, phase.repeat)


class StepPlan:
    """The phases of a spec and, per step, the batches their runs share."""

    def __init__(self, phases, ema_names=()):
        self.phases = [PhasePlan.of(i, phase, set(ema_names)) for i, phase in enumerate(phases)]
        self._batches: dict[tuple[int, ...], list] = {}

    def batches(self, step: int) -> list[list[tuple[PhasePlan, PhaseRun]]]:
        """The step's phase runs grouped by the batch they use: each extra ``repeat`` of a phase
        sees a fresh batch, as in WGAN's critic iterations. Cached per set of due phases; the runs
        are reused from step to step (a run is the token of its autograd graph only within one
        batch: the executor forgets every cached value when a batch begins)."""
        due = tuple(p.index for p in self.phases if step % p.every == 0)
        plan = self._batches.get(due)
        if plan is None:
            plan = [[]]
            for i in due:
                p = self.phases[i]
                for r in range(p.repeat):
                    if r > 0:
                        plan.append([])
                    plan[-1].append((p, PhaseRun(p.terms, p.updated)))
            self._batches[due] = plan
        return plan
