"""Schedules: callables ``step (int) -> float`` that weight losses, scale learning rates or feed the graph.

Every schedule is a pure function of the step (no internal state), so a run resumed from a
checkpoint sees exactly the values it would have seen without stopping. A spec names them:
``schedules: {beta: {type: linear, start: 0, end: 1, steps: 10000}}``.

``stage_alpha`` and ``stage_resolution`` follow a spec's ``stages:`` (progressive growing): the
trainer binds the stage plan to them before the first step, so the graph can read the fade-in
alpha and the current resolution (``progressive_resize(x, resolution=res, alpha=fade)``).
"""
from __future__ import annotations

import bisect
import math

from pydantic import Field, model_validator

from lvmgraph import Params, hookimpl


class ConstantParams(Params):
    value: float = Field(description="the value at every step")


class LinearParams(Params):
    start: float = Field(description="value up to and including step `delay`")
    end: float = Field(description="value from step `delay + steps` on")
    steps: int = Field(gt=0, description="number of steps the move from start to end takes")
    delay: int = Field(0, ge=0, description="steps to hold `start` before moving")


class LinearWarmupParams(Params):
    value: float = Field(1.0, description="value reached at the end of the warm-up and held after")
    steps: int = Field(gt=0, description="length of the warm-up from 0 to `value`")


class CosineParams(LinearParams):
    pass


class StepParams(Params):
    initial: float = Field(description="value for the first `every` steps")
    gamma: float = Field(gt=0, description="factor applied every `every` steps")
    every: int = Field(gt=0, description="steps between two multiplications by gamma")


class PiecewiseParams(Params):
    boundaries: list[int] = Field(description="strictly increasing steps where the value changes")
    values: list[float] = Field(description="one more value than boundaries: values[i] holds from "
                                            "boundaries[i-1] (inclusive) to boundaries[i] (exclusive)")

    @model_validator(mode="after")
    def _consistent(self):
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"piecewise needs len(values) == len(boundaries) + 1, got "
                             f"{len(self.values)} values for {len(self.boundaries)} boundaries")
        if any(b1 >= b2 for b1, b2 in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"piecewise boundaries must be strictly increasing, got {self.boundaries}")
        return self


class Schedule:
    """Base: keyword settings validated by ``params_model`` -> a callable step -> float."""

    params_model: type[Params]

    def __init__(self, **settings):
        # validate here too, so a schedule built in Python is as safe as one from a spec
        self.settings = self.params_model(**settings)

    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.model_dump().items())
        return f"{type(self).__name__}({args})"


def _progress(step: int, delay: int, steps: int) -> float:
    """Fraction in [0, 1] of the way through [delay, delay + steps]."""
    return min(max((step - delay) / steps, 0.0), 1.0)


class Constant(Schedule):
    """step -> value, the same at every step."""

    params_model = ConstantParams

    def __init__(self, *, value: float):
        super().__init__(value=value)

    def __call__(self, step: int) -> float:
        return float(self.settings.value)


class Linear(Schedule):
    """step -> start until `delay`, then linearly to `end` over `steps`, then end (KL warm-up, fade-in α, LR decay)."""

    params_model = LinearParams

    def __init__(self, *, start: float, end: float, steps: int, delay: int = 0):
        super().__init__(start=start, end=end, steps=steps, delay=delay)

    def __call__(self, step: int) -> float:
        s = self.settings
        return float(s.start + (s.end - s.start) * _progress(step, s.delay, s.steps))


class LinearWarmup(Schedule):
    """step -> 0 rising linearly to `value` over `steps`, then `value`."""

    params_model = LinearWarmupParams

    def __init__(self, *, value: float = 1.0, steps: int):
        super().__init__(value=value, steps=steps)

    def __call__(self, step: int) -> float:
        s = self.settings
        return float(s.value * _progress(step, 0, s.steps))


class Cosine(Schedule):
    """step -> start until `delay`, then along a half cosine to `end` over `steps`, then end."""

    params_model = CosineParams

    def __init__(self, *, start: float, end: float, steps: int, delay: int = 0):
        super().__init__(start=start, end=end, steps=steps, delay=delay)

    def __call__(self, step: int) -> float:
        s = self.settings
        t = _progress(step, s.delay, s.steps)
        return float(s.end + (s.start - s.end) * 0.5 * (1.0 + math.cos(math.pi * t)))


class StepDecay(Schedule):
    """step -> initial · gamma^(step // every): multiplied by gamma every `every` steps."""

    params_model = StepParams

    def __init__(self, *, initial: float, gamma: float, every: int):
        super().__init__(initial=initial, gamma=gamma, every=every)

    def __call__(self, step: int) -> float:
        s = self.settings
        return float(s.initial * s.gamma ** (max(step, 0) // s.every))


class Piecewise(Schedule):
    """step -> values[i] for boundaries[i-1] <= step < boundaries[i] (values[0] before the first boundary)."""

    params_model = PiecewiseParams

    def __init__(self, *, boundaries: list[int], values: list[float]):
        super().__init__(boundaries=boundaries, values=values)

    def __call__(self, step: int) -> float:
        s = self.settings
        return float(s.values[bisect.bisect_right(s.boundaries, step)])


class StageParams(Params):
    pass


class StageSchedule(Schedule):
    """Base of the schedules that follow a spec's ``stages:``: the trainer binds the stage plan
    (``bind_stages``) before the first step; still a pure function of the step."""

    params_model = StageParams
    unbound: float  # the value before a plan is bound (dry runs, sampling): the full model's

    def __init__(self):
        super().__init__()
        self.plan = None

    def bind_stages(self, plan) -> None:
        self.plan = plan


class StageAlpha(StageSchedule):
    """step -> the fade-in alpha of the stage plan: 0 -> 1 over a stage's fade-in, 1 while it
    stabilises (and at every step before a plan is bound). Needs a spec with ``stages:``."""

    unbound = 1.0

    def __call__(self, step: int) -> float:
        return self.unbound if self.plan is None else float(self.plan.alpha_at(step))


class StageResolution(StageSchedule):
    """step -> the resolution of the stage plan's current stage; infinity (no resizing: full
    resolution) before a plan is bound. Needs a spec with ``stages:``."""

    unbound = math.inf

    def __call__(self, step: int) -> float:
        return self.unbound if self.plan is None else float(self.plan.resolution_at(step))


@hookimpl
def register_schedules(register):
    register("constant", Constant, params=ConstantParams)
    register("linear", Linear, params=LinearParams)
    register("linear_warmup", LinearWarmup, params=LinearWarmupParams)
    register("cosine", Cosine, params=CosineParams)
    register("step", StepDecay, params=StepParams)
    register("piecewise", Piecewise, params=PiecewiseParams)
    register("stage_alpha", StageAlpha, params=StageParams)
    register("stage_resolution", StageResolution, params=StageParams)
