"""The Python API: everything the CLI does, callable from notebooks and scripts.

    import lvmgraph.api as lg
    run = lg.train("specs/aae_uniform.yaml", overrides=["train.steps=200"])
    x = lg.open_run(run.path).sample(16)
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .experiment import Experiment, declared_fields, generate_outputs, prepare, resolve_device
from .graph.compile import ModelGraph
from .report import during_training as report_during_training, try_write_report, write_report
from .spec.load import LoadedSpec, load_spec
from .train import distributed
from .train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from .train.rundir import RunDir
from .train.state import StateMismatch
from .train.trainer import Trainer, load_ema


def load(path: str | Path, overrides: Sequence[str] = ()) -> LoadedSpec:
    """Read and validate a spec file (structure and plugin settings); raises SpecError listing every
    problem. ``validate`` goes further: graph, modules and a dry run."""
    loaded = load_spec(path, overrides)
    loaded.raise_if_errors()
    return loaded


def validate(path: str | Path, overrides: Sequence[str] = (), *, device: str | None = None) -> Experiment:
    """Full validation: load, compile, build and dry-run. Raises SpecError listing every problem."""
    loaded = load_spec(path, overrides)
    return prepare(loaded, device=device)


def build(path: str | Path, overrides: Sequence[str] = (), *, device: str | None = None) -> Experiment:
    """The experiment untrained: data loaded, graph compiled, components built (seeded) on the
    device, as ``validate`` but without the dry run. ``exp.modules[name]`` is each component."""
    return prepare(load_spec(path, overrides), device=device, check=False)


def compile_spec(path: str | Path, overrides: Sequence[str] = ()) -> tuple[LoadedSpec, ModelGraph]:
    """Load and compile a spec without loading its data or building modules: the quick structural
    check (keys, types, names, cycles, phases) of ``lvmgraph validate --no-dry-run``, and the graph
    ``lvmgraph graph`` draws. Raises SpecError listing every problem."""
    from .graph.compile import compile_graph
    from .plugins import get_registry
    loaded = load_spec(path, overrides)
    graph, problems = compile_graph(loaded, get_registry(), declared_fields(loaded, get_registry()))
    loaded.problems += problems
    loaded.raise_if_errors()
    return loaded, graph


def train(path: str | Path, *, out: str | Path | None = None, overrides: Sequence[str] = (),
          progress: bool | None = None, evaluate: bool = True, callbacks=(), device: str | None = None,
          on_warning: Callable[[str], None] | None = None) -> RunDir:
    """Train a spec into a new run directory and return it.

    Spec warnings (e.g. an unused component) go to ``on_warning`` (default: printed to stderr).
    Under torchrun every process calls this; rank 0 alone writes the run directory (docs/DISTRIBUTED.md)
    and every rank returns it.
    """
    if out is not None and distributed.launched_main():
        RunDir.check_new(out)  # refuse before spending time on data and a dry run
    loaded = load_spec(path, overrides)
    replicas = distributed.setup(resolve_device(device or loaded.spec.train.device))
    main = replicas.is_main
    exp = prepare(loaded, device=device)
    run = None
    if main:
        for problem in exp.warnings:
            (on_warning or _print_warning)(problem.render(with_file=True))
        run = RunDir.create(loaded.spec.name, out)
        run.write_spec(loaded.resolved(), str(path))
        run.write_json("run.json", {"spec": str(path), "overrides": list(overrides), "started": time.time(),
                                    "device": str(exp.device), "torch": torch.__version__,
                                    "threads": torch.get_num_threads(), "processes": replicas.world})
    reporting = (report_during_training(exp, run),) if main else ()
    trainer = Trainer(exp, run, progress=progress, callbacks=(*callbacks, *reporting))
    trainer.fit()
    if replicas.active:  # every rank learns the path; then all leave the group and rank 0 evaluates
        run = RunDir(replicas.broadcast(str(run.path) if main else None))
        distributed.leave_together(replicas)
    if main:
        _finish(exp, run, evaluate)
    return run


def _print_warning(text: str) -> None:
    print(text, file=sys.stderr)


def resume(run_dir: str | Path, *, overrides: Sequence[str] = (), progress: bool | None = None,
           evaluate: bool = True, callbacks=(), device: str | None = None,
           on_warning: Callable[[str], None] | None = None) -> RunDir:
    """Continue a run from its newest good checkpoint (``overrides`` e.g. ``train.steps=4000``).

    A resume that cannot continue exactly is refused (``StateMismatch``: the model or its phases
    changed) or warned about, one line per reason to ``on_warning`` (default: stderr); the reasons
    are recorded in the run's run.json under ``resumes``."""
    run = RunDir.open(run_dir)
    loaded = load_spec(run.spec_file, overrides)
    replicas = distributed.setup(resolve_device(device or loaded.spec.train.device))
    exp = prepare(loaded, device=device, check=False)
    ckpt = latest_checkpoint(run.checkpoints)  # (every rank reads the run directory; rank 0 writes it)
    if ckpt is None:
        raise CheckpointError(f"{run.checkpoints}: no complete checkpoint to resume from")
    main = replicas.is_main
    reporting = (report_during_training(exp, run),) if main else ()
    trainer = Trainer(exp, run if main else None, progress=progress, callbacks=(*callbacks, *reporting))
    try:
        trainer.load_state_dict(load_checkpoint(ckpt, map_location=exp.device))
    except StateMismatch as exc:
        raise StateMismatch(f"{ckpt}: cannot resume: {exc}") from None
    if main:
        for reason in trainer.resume_warnings:  # one line per reason the run will not continue bit for bit
            (on_warning or _print_warning)(f"warning: the resume of {run.path} at step {trainer.step} is not exact: {reason}")
        run.record_resume({"step": trainer.step, "checkpoint": ckpt.name, "overrides": list(overrides), "time": time.time(),
                           "device": str(exp.device), "torch": str(torch.__version__), "threads": torch.get_num_threads(),
                           "not_exact": list(trainer.resume_warnings)})
        # a non-empty meter means the row at the checkpoint's step (if any) was an off-schedule last row
        run.truncate_metrics(trainer.step, keep_at_step=not trainer.meter.counts)
        if overrides:
            run.write_spec(loaded.resolved(), f"{run.spec_file} with --set {' '.join(overrides)}")
    trainer.fit()
    distributed.leave_together(replicas)  # (then rank 0 evaluates alone)
    if main:
        _finish(exp, run, evaluate)
    return run


def _finish(exp: Experiment, run: RunDir, evaluate: bool) -> None:
    from .eval.artifacts import write_latent_plot
    write_latent_plot(exp, run)
    if evaluate and exp.spec.eval.metrics:
        from .eval.runner import evaluate as run_metrics
        results = run_metrics(exp)
        run.write_json("eval.json", {"step": _trained_steps(run), "results": results})
    try_write_report(run, exp)  # after the evaluation, which it shows; a failure only warns


def _trained_steps(run: RunDir) -> int | None:
    rows = run.read_metrics()
    return rows[-1]["step"] if rows else None


@dataclass
class Run:
    """A finished or interrupted run, loaded for sampling and evaluation."""

    run: RunDir
    experiment: Experiment
    step: int

    @property
    def path(self) -> Path:
        return self.run.path

    def sample(self, n: int, given: dict[str, Any] | None = None, seed: int = 0, *,
               outputs: str | Sequence[str] | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """n samples as the spec's ``sample:`` section says, on the CPU.

        ``given``: {value or data field: tensor with n rows} fixed instead of drawn / read from the
        test split (see ``parse_given``). ``outputs``: None returns the main output (a tensor);
        ``"all"`` returns {name: tensor} for ``sample.output``, ``sample.extra`` and the
        ``sample.grid`` rows; a list of names returns {name: tensor} for those. All come from the
        same draws. Generated in batches of ``data.eval_batch_size``.
        """
        from .eval.artifacts import as_tensor
        spec = self.experiment.spec.sample
        if spec is None:
            raise ValueError("this spec has no sample: section, so it cannot generate")
        if outputs is None:
            names = [spec.output]
        elif isinstance(outputs, str):
            if outputs != "all":
                raise ValueError(f"outputs={outputs!r}: use None, 'all' or a list of value names")
            from .experiment import sample_values
            names = sample_values(spec)
        else:
            names = list(outputs)
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        bs = self.experiment.spec.data.eval_batch_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, n, bs):
                k = min(bs, n - start)
                chunk = {name: v[start:start + k] for name, v in (given or {}).items()}
                out = generate_outputs(self.experiment, k, names, given=chunk, offset=start)
                for name in names:
                    parts[name].append(as_tensor(out[name]).detach().cpu())
        result = {name: torch.cat(p) for name, p in parts.items()}
        return result[spec.output] if outputs is None else result

    def sweep(self, name: str, values: Sequence[torch.Tensor | dict[str, torch.Tensor]], n: int,
              given: dict[str, Any] | None = None, seed: int = 0, *,
              labels: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The main output once per value of ``name`` (each a tensor of n rows, as ``given`` takes,
        or a dict of given fields when a value comes with companions, e.g. a caption's ``text`` and
        ``text_length`` from ``parse_given``), from the same draws, inputs and noise: {label: (n ...)},
        led by the inputs (the first ``sample.grid`` row) when the spec's sample section has a grid.
        E.g. one StarGAN input translated to every domain:
        ``run.sweep("c_trg", [torch.full((8,), k) for k in range(6)], 8)``.
        """
        spec = self.experiment.spec.sample
        if spec is None:
            raise ValueError("this spec has no sample: section, so it cannot generate")
        labels = list(labels) if labels is not None else [f"{name}={i}" for i in range(len(values))]
        if len(labels) != len(values):
            raise ValueError(f"{len(values)} values but {len(labels)} labels")
        rows: dict[str, torch.Tensor] = {}
        for label, value in zip(labels, values):
            fields = value if isinstance(value, dict) else {name: value}
            out = self.sample(n, given={**(given or {}), **fields}, seed=seed, outputs="all")
            if spec.grid and not rows:
                rows[spec.grid[0]] = out[spec.grid[0]]
            rows[label] = out[spec.output]
        return rows

    def evaluate(self, metrics: Sequence[str | tuple[str, dict]] | None = None, write: bool = True, *,
                 n: int | None = None) -> dict:
        """Run metrics and return {result name: {value name: number}}; ``write`` saves RUN/eval.json.

        ``metrics``: None for the spec's ``eval.metrics``; names, each a result name of the spec's
        entries (``as:``) or a metric name (the spec's entries of that metric, else its default
        settings); or ``(metric, settings)`` pairs. ``n`` sets the sample count of every chosen
        metric that has an ``n`` setting.
        """
        from .eval.runner import evaluate as run_metrics
        items = self.experiment.spec.eval.items()
        if metrics is not None:
            chosen = []
            for m in metrics:
                chosen += select_metrics(items, [m]) if isinstance(m, str) else [(m[0], dict(m[1]))]
            items = chosen
        if n is not None:
            items = [(name, _with_n(name, settings, n, self.experiment.registry)) for name, settings in items]
        results = run_metrics(self.experiment, items)
        if write:
            self.run.write_json("eval.json", {"step": self.step, "results": results})
        return results


def select_metrics(items: list[tuple[str, dict]], wanted: Sequence[str]) -> list[tuple[str, dict]]:
    """Metric entries by name (``lvmgraph eval --metrics a,b``): each a result name of the spec's
    entries (``as:``), or a metric name (all the spec's entries of that metric; with its default
    settings when the spec has none)."""
    from .spec.schema import RESULT_NAME_KEY
    out = []
    for want in wanted:
        chosen = [(name, settings) for name, settings in items if settings.get(RESULT_NAME_KEY, name) == want]
        chosen = chosen or [(name, settings) for name, settings in items if name == want]
        out += chosen or [(want, {})]
    return out


def _with_n(metric: str, settings: dict, n: int, registry) -> dict:
    entry = registry.get("metric", metric)
    if entry is not None and entry.params is not None and "n" in entry.params.model_fields:
        return {**settings, "n": n}
    return settings


def open_run(run_dir: str | Path, *, device: str | None = None) -> Run:
    """Load a run's spec and newest checkpoint, ready to sample or evaluate."""
    run = RunDir.open(run_dir)
    loaded = load_spec(run.spec_file)
    exp = prepare(loaded, device=device, check=False)
    ckpt = latest_checkpoint(run.checkpoints)
    if ckpt is None:
        raise CheckpointError(f"{run.checkpoints}: no complete checkpoint")
    state = load_checkpoint(ckpt, map_location=exp.device)
    exp.modules.load_state_dict(state["components"])
    load_ema(exp, state)
    exp.modules.eval()
    return Run(run, exp, int(state["step"]))


class UnknownDataset(ValueError):
    """A dataset name nothing registered; the message says the closest registered name."""


def evaluator(dataset: str, *, device: str = "auto"):
    """The evaluator CNN of a registered image dataset (``lvmgraph evaluator train``): loaded from
    the cache, or trained and cached on a miss. ``describe()`` gives its accuracy and cache entry."""
    from .eval.evaluator import evaluator_for
    from .experiment import resolve_device
    from .plugins import get_registry
    from .plugins.registry import did_you_mean
    registry = get_registry()
    entry = registry.get("dataset", dataset)
    if entry is None:
        match = did_you_mean(dataset, registry.names("dataset"))
        raise UnknownDataset(f"unknown dataset '{dataset}'" + (f"; did you mean '{match}'?" if match else ""))
    bundle = entry.factory()
    if bundle.info.get("kind") != "image":
        raise UnknownDataset(f"'{dataset}' is not an image dataset; evaluators are image classifiers")
    return evaluator_for(dataset, bundle, device=resolve_device(device))


def report(run_dir: str | Path, *, device: str | None = None) -> Path:
    """(Re)write ``RUN/report.html`` from the run directory and its newest checkpoint (without a
    checkpoint yet: curves, sample grids and the graph, no generated pictures); returns its path."""
    run = RunDir.open(run_dir)
    if latest_checkpoint(run.checkpoints) is None:
        return write_report(run, prepare(load_spec(run.spec_file), device=device, check=False), pictures=False)
    return write_report(run, open_run(run_dir, device=device).experiment)


def parse_given(items: Sequence[str], n: int | None = None, device="cpu", *,
                experiment: Experiment | None = None) -> dict[str, torch.Tensor]:
    """``NAME=VALUE`` strings of ``sample --given`` -> {name: tensor of n rows}.

    With the run's ``experiment``, VALUE may be a number, an .npz/.npy file, an image file, a folder
    of images, a .txt file of texts, or a text the dataset encodes (``DatasetBundle.encoders``);
    images are converted to the data's channels and value range, and an array of one example's
    shape is repeated n times. ``n=None``: the size of the batches given (default 64). See
    ``lvmgraph.eval.given`` for the rules. Without an experiment: numbers and .npz/.npy only.
    """
    from .eval.given import parse_given as parse
    return parse(items, n, device, experiment=experiment)
