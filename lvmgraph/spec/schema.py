"""The spec file's structure as pydantic models. Unknown keys are errors everywhere.

Entries that name a plugin type (components, schedules, optimizers, the dataset, metrics)
keep their settings as extras here; each is validated against the parameter model its
plugin registered (see ``lvmgraph.spec.resolve``), so errors point into the same file.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Number = Union[float, int]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Typed(BaseModel):
    """``{type: name, **settings}``: the settings belong to the plugin that registered ``name``."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="a registered name of the entry's kind (`lvmgraph plugins --kind ...`)")

    @property
    def settings(self) -> dict:
        return dict(self.model_extra or {})


# Keys of ``data:`` that the framework's loader uses; everything else goes to the dataset plugin.
LOADER_KEYS = ("dataset", "batch_size", "eval_batch_size", "shuffle", "drop_last", "stream", "workers")


class DataSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    dataset: str = Field("digits", description="registered dataset name")
    batch_size: int = Field(64, gt=0, description="training batch size")
    eval_batch_size: int = Field(500, gt=0, description="batch size for evaluation and sampling")
    shuffle: bool = Field(True, description="reshuffle the training set every epoch")
    drop_last: bool = Field(True, description="skip the last incomplete batch of an epoch")
    stream: bool = Field(False, description="decode the training examples on demand instead of holding them in "
                                            "memory (datasets that stream: image_folder)")
    workers: int = Field(0, ge=0, description="DataLoader worker processes decoding a streamed dataset "
                                              "(0: decode in the training process); needs stream: true")

    @property
    def settings(self) -> dict:
        return dict(self.model_extra or {})


class PhaseSpec(Strict):
    name: str | None = Field(None, description="label used in logs; defaults to the minimised value")
    minimize: Union[str, dict[str, Union[Number, str]]] = Field(
        description="a graph value, or a weighted sum {value: weight} where a weight is a number or a schedule name")
    update: list[str] = Field(min_length=1, description="components whose parameters this phase's optimizer steps")
    optimizer: Typed = Field(default_factory=lambda: Typed(type="adam"), description="{type: adam, lr: ...}")
    every: int = Field(1, ge=1, description="run this phase only on steps divisible by `every`")
    repeat: int = Field(1, ge=1, description="run it this many times per step, each on a fresh batch (n_critic)")
    lr_schedule: str | None = Field(None, description="a schedule name that multiplies the learning rate")
    clip_grad_norm: float | None = Field(None, gt=0, description="clip the global gradient norm of the updated components")
    log: list[str] = Field(default_factory=list,
                           description="extra scalar graph values to log with this phase (e.g. an accuracy)")

    @field_validator("optimizer", mode="before")
    @classmethod
    def _adam_by_default(cls, value):
        # ``optimizer: {lr: 1e-4}`` (or ``--set phases.0.optimizer.lr=...``) means adam, as an absent optimizer does
        if isinstance(value, dict) and "type" not in value:
            return {"type": "adam", **value}
        return value

    @property
    def terms(self) -> dict[str, Union[Number, str]]:
        return {self.minimize: 1.0} if isinstance(self.minimize, str) else dict(self.minimize)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.minimize if isinstance(self.minimize, str) else "+".join(self.minimize)


class SampleSpec(Strict):
    set: dict[str, str] = Field(default_factory=dict,
                                description="graph values replaced by draws from a prior component: {z: prior}")
    output: str = Field(description="the graph value that is the generated data")
    extra: list[str] = Field(default_factory=list,
                             description="more graph values generated with the same draws as `output` and written "
                                         "beside it by `lvmgraph sample` (e.g. [mask])")
    grid: list[str] | None = Field(None, description="rows of the sample picture, each a graph value or data field "
                                                     "of images, one column per example: [x_a, x_ab, x_aba] shows "
                                                     "input, translation, reconstruction (default: output only)")
    n: int = Field(64, gt=0, description="how many samples the grids written during training show")

    @property
    def outputs(self) -> list[str]:
        """``output`` then ``extra``: every value ``lvmgraph sample`` writes, in order, without repeats."""
        return list(dict.fromkeys([self.output, *self.extra]))


class TrainSpec(Strict):
    steps: int = Field(1000, ge=0, description="total optimisation steps")
    log_every: int = Field(100, gt=0, description="write metrics.jsonl every N steps (means over the interval)")
    checkpoint_every: int = Field(1000, gt=0, description="save a checkpoint every N steps (and at the end)")
    sample_every: int | None = Field(None, gt=0, description="write a sample grid every N steps (default: checkpoint_every)")
    keep_checkpoints: int = Field(3, ge=1, description="how many recent checkpoints to keep")
    best: str | None = Field(None, description="a logged value (a phase's loss term, its total or a `log:` entry) "
                                               "whose best value at a checkpoint step marks a checkpoint kept "
                                               "besides the last keep_checkpoints")
    best_mode: Literal["min", "max"] = Field("min", description="whether the lowest or the highest `best` value wins")
    nonfinite: Literal["raise", "skip"] = Field("raise", description="a NaN/Inf loss or gradient: stop before the "
                                                                      "optimizer step (raise), or skip that phase's "
                                                                      "update and go on (skip, bounded by max_skips)")
    detect_anomaly: bool = Field(False, description="debug switch: run every phase under "
                                                      "torch.autograd.detect_anomaly, so the first NaN in a "
                                                      "backward pass names the forward operation that made it "
                                                      "(slow; for finding a NaN, not for training)")
    max_skips: int = Field(10, ge=1, description="with nonfinite: skip, the run stops (as with raise) once more "
                                                 "than this many updates have been skipped in all")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when available, else CPU")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="autocast precision for the forward passes")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (fix it for bit-exact resume across machines)")
    compile: bool = Field(False, description="torch.compile every component that has parameters (inductor: C++ "
                                             "kernels on CPU, Triton on CUDA); each phase's first step compiles, "
                                             "later steps run fused kernels. Losses match eager up to float "
                                             "rounding; checkpoints are interchangeable with eager runs")
    channels_last: bool = Field(False, description="keep image batches and convolution weights in channels-last "
                                                   "memory layout, which oneDNN / cuDNN convolutions prefer "
                                                   "(same values, different strides)")
    progress: bool = Field(True, description="show a progress bar")
    ema: dict[str, float] = Field(default_factory=dict,
                                  description="exponential moving averages of component weights used for sampling "
                                              "and evaluation: {generator: 0.999} (decay per update)")
    loggers: list[Union[str, dict[str, dict]]] = Field(
        default_factory=lambda: ["tensorboard"],
        description="trackers that get every metrics.jsonl row: names or {name: {settings}} "
                    "(`lvmgraph plugins --kind logger`); [] for none")

    @field_validator("ema")
    @classmethod
    def _decays(cls, value):
        bad = {k: v for k, v in value.items() if not 0.0 < v < 1.0}
        if bad:
            raise ValueError(f"EMA decays must lie strictly between 0 and 1: {bad}")
        return value

    @field_validator("loggers")
    @classmethod
    def _one_entry_per_logger(cls, value):
        names = [item if isinstance(item, str) else next(iter(item), "") for item in value]
        if any(isinstance(item, dict) and len(item) != 1 for item in value):
            raise ValueError("write each logger as a name or as {name: {settings}} with exactly one key")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"logger {twice[0]!r} is listed twice; list each logger once")
        return value

    def logger_items(self) -> list[tuple[str, dict]]:
        """-> [(logger name, settings)] in the order listed."""
        return [(item, {}) if isinstance(item, str) else next(iter(item.items())) for item in self.loggers]


class StageSpec(Strict):
    """One entry of ``stages:``: a resolution, how long it fades in and stabilises, its batch size.

    Durations are given in images shown (ProGAN's unit; steps = ceil(images / batch_size)) or in
    steps, one of the two for each of fade and stable."""

    resolution: int = Field(gt=0, description="the stage's resolution (image side in pixels), handed to every "
                                               "component that grows")
    fade_images: int | None = Field(None, ge=0, description="images over which the new resolution fades in "
                                                          "(alpha 0 -> 1); not on the first stage")
    fade_steps: int | None = Field(None, ge=0, description="the fade-in in steps instead of images")
    stable_images: int | None = Field(None, ge=0, description="images trained at alpha 1 after the fade-in")
    stable_steps: int | None = Field(None, ge=0, description="the stabilisation in steps instead of images")
    batch_size: int | None = Field(None, gt=0, description="training batch size during this stage "
                                                           "(default: data.batch_size)")

    @model_validator(mode="after")
    def _one_unit_each(self):
        for part in ("fade", "stable"):
            images, steps = getattr(self, f"{part}_images"), getattr(self, f"{part}_steps")
            if images is not None and steps is not None:
                raise ValueError(f"give {part}_images or {part}_steps, not both")
        if self.stable_images is None and self.stable_steps is None:
            raise ValueError("say how long the stage stabilises: stable_images: N (images shown) or "
                             "stable_steps: N")
        return self

    def steps(self, part: str, batch_size: int) -> int:
        """Length of ``part`` ('fade' or 'stable') in steps at this stage's batch size."""
        images, steps = getattr(self, f"{part}_images"), getattr(self, f"{part}_steps")
        if steps is not None:
            return steps
        return -(-images // batch_size) if images else 0  # ceil: every image is shown


def stage_problems(stages: list[StageSpec]) -> list[str]:
    """Whole-list checks of ``stages:`` (each message names the entry and the fix)."""
    out = []
    if stages and (stages[0].fade_images or stages[0].fade_steps):
        out.append(f"stages[0] (resolution {stages[0].resolution}) is the first stage: there is nothing to fade "
                   "in from; remove its fade_images / fade_steps")
    for i, (prev, stage) in enumerate(zip(stages, stages[1:]), start=1):
        if stage.resolution <= prev.resolution:
            out.append(f"stages[{i}].resolution {stage.resolution} must be larger than stages[{i - 1}]'s "
                       f"{prev.resolution}: list the stages from the smallest resolution up")
        if stage.fade_images is None and stage.fade_steps is None:
            out.append(f"stages[{i}] (resolution {stage.resolution}) needs fade_images: N or fade_steps: N "
                       "(0 switches to it at once)")
    for i, stage in enumerate(stages):
        if not any((stage.fade_images, stage.fade_steps, stage.stable_images, stage.stable_steps)):
            out.append(f"stages[{i}] (resolution {stage.resolution}) lasts no step: give it stable_images "
                       "or stable_steps > 0, or remove it")
    return out


#: the key of a metric entry's settings that names its result (not passed to the metric)
RESULT_NAME_KEY = "as"


class EvalSpec(Strict):
    """``metrics``: names or ``{name: {settings}}``. The same metric may appear several times when
    each entry names its result with ``as:`` (``{judge_accuracy: {as: domain_ab, ...}}``): results are
    keyed by that name (default: the metric's name), which must be unique."""

    metrics: list[Union[str, dict[str, dict]]] = Field(
        default_factory=list, description="metric names, or {name: {settings}}; `as: result_name` in the "
                                          "settings names the result (needed when a metric appears twice)")
    samples: int = Field(64, gt=0, description="samples in the evaluation grid")

    @field_validator("metrics")
    @classmethod
    def _one_key_each(cls, value):
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            if isinstance(item, dict) and len(item) != 1:
                raise ValueError("write each metric as a name or as {name: {settings}} with exactly one key")
            name, settings = (item, {}) if isinstance(item, str) else next(iter(item.items()))
            result = (settings or {}).get(RESULT_NAME_KEY, name)
            if not isinstance(result, str) or not result.isidentifier():
                raise ValueError(f"metrics[{i}] ({name}): `as: {result!r}` must be a name (letters, digits, _)")
            if result in seen:
                raise ValueError(f"metrics[{i}] and metrics[{seen[result]}] both give a result named '{result}'; "
                                 f"name each with `as: ...` in its settings, e.g. {{{name}: {{as: {name}_2, ...}}}}")
            seen[result] = i
        return value

    def items(self) -> list[tuple[str, dict]]:
        """-> [(metric name, settings)]; the settings keep ``as`` (the runner names results by it)."""
        out = []
        for item in self.metrics:
            if isinstance(item, str):
                out.append((item, {}))
            else:
                (name, settings), = item.items()
                out.append((name, dict(settings or {})))
        return out


#: what a spec's ``name`` may hold (it names run directories)
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


class Spec(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="run name (used for run directories)")
    description: str = Field("", description="free text, kept in the run's spec.yaml")
    seed: int = Field(0, ge=0, description="seeds module initialisation, batches and noise; the same seed "
                                            "trains the same run")
    data: DataSpec = Field(default_factory=DataSpec, description="the dataset and how it is batched")
    components: dict[str, Typed] = Field(description="named components: {name: {type: ..., settings}}")
    schedules: dict[str, Typed] = Field(default_factory=dict, description="named schedules: {name: {type: ..., settings}}")
    graph: dict[str, str] = Field(description="named values: {name: expression}")
    phases: list[PhaseSpec] = Field(min_length=1, description="what each training step optimises, in order")
    sample: SampleSpec | None = Field(None, description="how new data is generated (none: the run cannot sample)")
    train: TrainSpec = Field(default_factory=TrainSpec, description="length, logging, checkpoints, device")
    eval: EvalSpec = Field(default_factory=EvalSpec, description="metrics computed at the end of a run and by "
                                                                 "`lvmgraph eval`")
    stages: Optional[list[StageSpec]] = Field(
        None, min_length=1,
        description="progressive growing: resolutions from the smallest up, each with fade-in and stabilisation "
                    "lengths and a batch size; the trainer hands each stage to every component that grows")

    @field_validator("graph", mode="before")
    @classmethod
    def _numbers_are_expressions(cls, value):
        if isinstance(value, dict):
            return {k: (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                    for k, v in value.items()}
        return value

    @field_validator("stages")
    @classmethod
    def _stage_list(cls, value):
        problems = stage_problems(value or [])
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _steps_from_stages(self):
        # a staged spec trains through its plan unless train.steps says otherwise
        if self.stages and "steps" not in self.train.model_fields_set:
            self.train.steps = sum(s.steps(part, s.batch_size or self.data.batch_size)
                                   for s in self.stages for part in ("fade", "stable"))
        return self

    @model_validator(mode="after")
    def _names_unique(self):
        clashes = set(self.components) & set(self.graph) | set(self.schedules) & (set(self.graph) | set(self.components))
        if clashes:
            raise ValueError(f"names used twice across components, schedules and graph: {sorted(clashes)}")
        return self
