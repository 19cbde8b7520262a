"""Progressive growing: the ``Growable`` protocol a component implements to grow with a spec's
``stages:``, the stage plan in steps, and the checks of a plan against the components and data.

The trainer applies the plan (``Trainer._apply_stage``); ``prepare`` runs ``stage_plan_problems``
so ``lvmgraph validate`` reports a plan the model cannot follow before any training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from torch import nn

if TYPE_CHECKING:  # the experiment module calls the checks below, so no import at run time
    from ..experiment import Experiment


@runtime_checkable
class Growable(Protocol):
    """What a component implements to grow with a spec's ``stages:`` (no base class needed).

    - ``resolutions``: the stage resolutions it can take, ascending (a stage plan must walk them in
      order from any of them, skipping none);
    - ``set_stage(resolution, alpha)``: from now on compute at ``resolution``, blending in its newest
      part with weight ``alpha`` (0 -> 1 during a fade-in, 1 otherwise); keep both as persistent
      buffers, so a checkpoint samples at the stage it was trained to;
    - ``stage_parameters(resolution)``: the parameters used at ``resolution`` and every smaller one.

    Built at full size, a growable component keeps its state-dict keys over the whole run; the
    trainer's optimizers hold only the parameters of the stages reached so far.
    """

    resolutions: tuple[int, ...]

    def set_stage(self, resolution: int, alpha: float) -> None: ...

    def stage_parameters(self, resolution: int) -> list[nn.Parameter]: ...


@dataclass(frozen=True)
class Stage:
    index: int
    resolution: int
    batch_size: int
    start: int  # first step of the stage
    fade: int  # steps of fade-in (alpha from 0 towards 1)
    stable: int  # steps at alpha 1

    @property
    def end(self) -> int:
        return self.start + self.fade + self.stable


class StagePlan:
    """A spec's ``stages:`` in steps: which stage, resolution, alpha and batch size each step has.

    Step t of a stage with a fade-in of F steps has alpha t / F while t < F (the first step shows
    the old network exactly), then 1. Steps past the plan stay in the last stage at alpha 1.
    """

    def __init__(self, stages, default_batch_size: int):
        self.stages: list[Stage] = []
        start = 0
        for i, s in enumerate(stages):
            batch = s.batch_size or default_batch_size
            stage = Stage(i, s.resolution, batch, start, s.steps("fade", batch), s.steps("stable", batch))
            self.stages.append(stage)
            start = stage.end

    @property
    def total(self) -> int:
        return self.stages[-1].end

    def index_at(self, step: int) -> int:
        for stage in self.stages:
            if step < stage.end:
                return stage.index
        return len(self.stages) - 1

    def at(self, step: int) -> Stage:
        return self.stages[self.index_at(step)]

    def alpha_at(self, step: int) -> float:
        stage = self.at(step)
        t = step - stage.start
        return t / stage.fade if 0 <= t < stage.fade else 1.0

    def resolution_at(self, step: int) -> int:
        return self.at(step).resolution


def stage_plan_problems(exp: Experiment) -> list:
    """Problems between a spec's ``stages:`` and its components, schedules and data (empty if fine)."""
    spec, source = exp.spec, exp.loaded.source
    growing = {name: m for name, m in exp.modules.items() if isinstance(m, Growable)}
    binders = [name for name, s in exp.schedules.items() if hasattr(s, "bind_stages")]
    problems = []
    if spec.stages is None:
        for name in binders:
            problems.append(source.problem(
                f"schedule '{name}' follows the stage plan, but the spec has no stages: section",
                ("schedules", name), hint="add stages: [...] or use a schedule of another type"))
        return problems
    if not growing:
        problems.append(source.problem("the spec has stages: but none of its components can grow",
                                       ("stages",), hint="use growing components (e.g. progan_generator, "
                                                         "progan_discriminator) or remove stages:"))
    wanted = [s.resolution for s in spec.stages]
    for ladder, names in _by_ladder(growing).items():
        problems += _ladder_problems(exp, wanted, list(ladder), names)
    n = len(exp.data)
    for i, s in enumerate(spec.stages):
        batch = s.batch_size or spec.data.batch_size
        if batch > n and spec.data.drop_last:
            where = ("stages", i, "batch_size") if s.batch_size else ("data", "batch_size")
            problems.append(source.problem(f"batch size {batch} of stages[{i}] is larger than the training set "
                                           f"({n} samples)", where, hint=f"use at most {n}"))
    return problems


def _by_ladder(growing: dict) -> dict[tuple, list[str]]:
    """Growing components grouped by the resolutions they take (a generator and its critic usually
    share them, so one problem names both)."""
    out: dict[tuple, list[str]] = {}
    for name, module in growing.items():
        out.setdefault(tuple(module.resolutions), []).append(name)
    return out


def _who(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return f"component {quoted[0]}" if len(names) == 1 else f"components {', '.join(quoted[:-1])} and {quoted[-1]}"


def _data_size_change(exp: Experiment, names: list[str], size: int) -> str | None:
    """'data.size: 64' when the components took their image shape from the data (lvmgraph.data.fill)
    and the dataset has a setting that makes its images ``size`` px; else None."""
    from ..data.fit import data_changes

    shapes = [f.value for n in names for f in exp.from_data.get(n, ()) if f.fact == "image_shape"]
    if not shapes:
        return None
    got = tuple(shapes[0])
    return " and ".join(f"data.{k}: {v}" for k, v in data_changes(exp.data.info, (got[0], size, size), got)) or None


def _ladder_problems(exp: Experiment, wanted: list[int], ladder: list[int], names: list[str]) -> list:
    """The plan against one ladder of resolutions: each stage's is on it, none is skipped, and the
    plan ends at its top, the full resolution (the data's image size for components that take
    their image shape from the data)."""
    source, who, full, last = exp.loaded.source, _who(names), ladder[-1], len(wanted) - 1
    one = len(names) == 1
    from_data = any(f.fact == "image_shape" for n in names for f in exp.from_data.get(n, ()))
    top = f"{full}, the data's image size" if from_data else f"{full}"
    problems = []
    for i, res in enumerate(wanted):
        if res not in ladder:
            if res > full and from_data:  # past the data's size
                change = _data_size_change(exp, names, res)
                hint = f"end the stages at {top}" + (f", or make the data's images {res} px ({change})" if change
                                                     else "")
            else:
                hint = f"use resolutions from {ladder}" + ("" if from_data else
                                                           f" or change {'its' if one else 'their'} settings")
            problems.append(source.problem(f"resolution {res} is not one that {who} can grow to ({ladder})",
                                           ("stages", i, "resolution"), hint=hint))
        elif i and wanted[i - 1] in ladder and ladder.index(res) != ladder.index(wanted[i - 1]) + 1:
            skipped = ladder[ladder.index(wanted[i - 1]) + 1]
            problems.append(source.problem(f"resolution {res} skips {skipped}, which {who} grow{'s' * one} through",
                                           ("stages", i, "resolution"), hint=f"add a stage at {skipped} before it"))
    if wanted[last] in ladder and wanted[last] < full:
        change = _data_size_change(exp, names, wanted[last])
        problems.append(source.problem(
            f"the stages end at {wanted[last]} but {who} grow{'s' * one} to {top}, so "
            f"{'its' if one else 'their'} levels above {wanted[last]} would never train",
            ("stages", last, "resolution"),
            hint=f"add stages up to {full}" + (f", or make the data's images {wanted[last]} px ({change})"
                                                if change else "")))
    return problems
