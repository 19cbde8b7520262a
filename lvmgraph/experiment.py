"""From a loaded spec to something that can train: data, compiled graph, built modules — checked.

``prepare`` reports every problem it can find at once (plugin settings, unknown names,
cycles, phases, a dry run on a tiny batch for shape mismatches) before any training starts.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
from torch import nn

from .data.base import DatasetBundle, DataSettingError, DatasetUnavailable
from .data.fill import Filled, fill_from_data
from .data.fit import data_misfit
from .graph.compile import ComponentCall, ModelGraph, compile_graph, walk
from .graph.execute import Executor, GraphEvalError
from .modules import Components, Prior
from .plugins import get_registry
from .plugins.registry import Registry, did_you_mean
from .spec.errors import Problem, SpecError
from .spec.load import LoadedSpec
from .spec.schema import LOADER_KEYS


@dataclass
class Experiment:
    loaded: LoadedSpec
    registry: Registry
    graph: ModelGraph
    data: DatasetBundle
    modules: nn.ModuleDict
    schedules: dict[str, Any]
    device: torch.device
    warnings: list[Problem] = field(default_factory=list)
    ema: dict[str, nn.Module] = field(default_factory=dict)  # averaged copies (train.ema), used for sampling
    from_data: dict[str, list[Filled]] = field(default_factory=dict)  # component settings taken from the data

    @property
    def spec(self):
        return self.loaded.spec

    def sampling_modules(self) -> nn.ModuleDict:
        """The modules generation uses: EMA copies replace the components that have one."""
        if not self.ema:
            return self.modules
        out = Components()
        for name, module in self.modules.items():
            out[name] = self.ema.get(name, module)
        return out

    def executor(self) -> Executor:
        return Executor(self.graph, self.modules, self.schedules, self.device)

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}


def _suggest(name: str, candidates) -> str | None:
    match = did_you_mean(name, list(candidates))
    return f"did you mean '{match}'?" if match else None


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SpecError([Problem("train.device is 'cuda' but no CUDA device is available", ("train", "device"),
                                     hint="use device: auto or cpu")])
        return torch.device("cuda")
    return torch.device("cpu")


def declared_fields(loaded: LoadedSpec, registry: Registry) -> tuple | None:
    """The dataset's field names without loading it: those it declared when registered
    (``fields=``), else ("x", "y"); None for an unknown dataset (compile_graph then takes any
    otherwise unknown name as a field). Lets the graph be checked when the data cannot be loaded."""
    entry = registry.get("dataset", loaded.spec.data.dataset)
    return tuple(entry.options.get("fields", ("x", "y"))) if entry else None


def load_data(loaded: LoadedSpec, registry: Registry) -> DatasetBundle:
    spec = loaded.spec
    entry = registry.get("dataset", spec.data.dataset)
    params = loaded.params.get(("data",))
    settings = dict(params) if params is not None else {}
    try:
        # a dataset that streams registers a second loader (``stream=``); load.py refused the others
        factory = entry.options["stream"] if spec.data.stream else entry.factory
        bundle = factory(**settings)
    except DatasetUnavailable as exc:
        raise SpecError([loaded.source.problem(str(exc), ("data", "dataset"))], file=loaded.path) from None
    except DataSettingError as exc:
        raise SpecError([loaded.source.problem(str(exc), ("data", exc.setting))], file=loaded.path) from None
    return bundle


def build_modules(loaded: LoadedSpec, registry: Registry, problems: list[Problem]) -> nn.ModuleDict:
    from .train.state import hidden_state, hidden_state_message  # (train imports this module)
    modules = Components()
    for name, entry in loaded.spec.components.items():
        reg = registry.get("component", entry.type)
        params = loaded.params.get(("components", name))
        try:
            module = reg.factory(**(dict(params) if params is not None else {}))
        except Exception as exc:  # noqa: BLE001 - a construction error is a spec problem at this entry
            problems.append(loaded.source.problem(f"cannot build {entry.type}: {exc}", ("components", name)))
            continue
        if not isinstance(module, nn.Module):
            problems.append(loaded.source.problem(
                f"plugin '{reg.plugin}' built a {type(module).__name__} for '{entry.type}', not a torch.nn.Module",
                ("components", name)))
            continue
        if reg.kind == "prior" and not isinstance(module, Prior):
            problems.append(loaded.source.problem(f"prior '{entry.type}' does not subclass lvmgraph.Prior",
                                                  ("components", name)))
        hidden = hidden_state(module)
        if hidden:  # a checkpoint would lose it: refuse now, not at the first resume
            problems.append(loaded.source.problem(hidden_state_message(name, module, hidden), ("components", name)))
            continue
        modules[name] = module
    return modules


def build_schedules(loaded: LoadedSpec, registry: Registry) -> dict:
    out = {}
    for name, entry in loaded.spec.schedules.items():
        params = loaded.params.get(("schedules", name))
        out[name] = registry.get("schedule", entry.type).factory(**(dict(params) if params is not None else {}))
    return out


def _check_methods(graph: ModelGraph, modules: nn.ModuleDict, loaded: LoadedSpec) -> list[Problem]:
    """Every ``component.method(...)`` in the graph names a public method of that built component."""
    problems = []
    base = set(dir(nn.Module))
    for value, tree in graph.values.items():
        for node in walk(tree):
            if not (isinstance(node, ComponentCall) and node.method and node.component in modules):
                continue
            module = modules[node.component]
            if node.method.startswith("_") or node.method in base or not callable(getattr(module, node.method, None)):
                methods = sorted(m for m in dir(type(module)) if not m.startswith("_") and m not in base
                                 and callable(getattr(module, m, None)))
                match = did_you_mean(node.method, methods)
                problems.append(loaded.source.problem(
                    f"component '{node.component}' has no method '{node.method}'", ("graph", value),
                    hint=f"did you mean '{match}'?" if match else (f"methods: {', '.join(methods)}" if methods else None)))
    return problems


def dry_run(exp: Experiment) -> list[Problem]:
    """Run every value, every phase's loss and the sampler on a tiny batch, on copies of the modules."""
    loaded, graph = exp.loaded, exp.graph
    problems: list[Problem] = []
    n = min(4, len(exp.data))
    batch = exp.to_device({k: v[:n] for k, v in exp.data.train.items()})
    modules = copy.deepcopy(exp.modules)
    modules.eval()
    ex = Executor(graph, modules, exp.schedules, exp.device)
    failed: set[str] = set()
    with torch.random.fork_rng(devices=[]):
        ex.begin(batch, 0)
        for value in graph.order:
            if value in failed or any(p in failed for p in graph.g.predecessors(value)):
                failed.add(value)
                continue
            try:
                ex.evaluate([value], updated=frozenset(graph.component_deps[value]), token=object(), use_cache=False)
            except GraphEvalError as exc:
                failed.add(value)
                misfit = data_misfit(exp, value, exc.cause)
                if misfit is not None:  # the data's images do not fit: say which data setting to change
                    field, problem = misfit
                    problems.append(problem)
                    failed.update(nx.descendants(graph.g, field))  # their failures would only repeat it
                    continue
                problems.append(loaded.source.problem(f"{exc.source} fails on a batch of {n}: {exc.cause}",
                                                      ("graph", value)))
            except Exception as exc:  # noqa: BLE001
                failed.add(value)
                problems.append(loaded.source.problem(f"fails on a batch of {n}: {exc}", ("graph", value)))
        for i, phase in enumerate(loaded.spec.phases):
            for term in phase.terms:
                if term in failed or term not in graph.values:
                    continue
                result = ex.evaluate([term], updated=frozenset(phase.update), token=object(), use_cache=False)[term]
                where = ("phases", i, "minimize")
                if not isinstance(result, torch.Tensor):
                    problems.append(loaded.source.problem(f"'{term}' is a {type(result).__name__}, not a tensor",
                                                          where))
                elif result.numel() != 1:
                    problems.append(loaded.source.problem(
                        f"'{term}' has shape {tuple(result.shape)}; a phase minimises a scalar", where,
                        hint=f"reduce it, e.g. mean({term}) in the graph"))
                elif not result.requires_grad:
                    problems.append(loaded.source.problem(
                        f"'{term}' does not depend on the parameters of {phase.update}", where))
        sample = loaded.spec.sample
        wanted = sample_values(sample) if sample else []
        if wanted and not any(v in failed for v in wanted) and all(v in graph.values or v in graph.data_fields
                                                                   for v in wanted):
            try:
                out = generate_outputs(exp, n, wanted, modules=modules)
                if sample.grid:
                    grid_rows(out, sample.grid)
            except Exception as exc:  # noqa: BLE001
                problems.append(loaded.source.problem(f"sampling fails: {exc}", ("sample",)))
    return problems


def _sample_problems(loaded: LoadedSpec, graph: ModelGraph) -> list[Problem]:
    """``sample.extra`` and ``sample.grid`` name graph values (or, for grid rows, data fields)."""
    sample = loaded.spec.sample
    problems = []
    if sample is None:
        return problems
    values, fields = list(graph.values), list(graph.data_fields)
    for key, names, allowed in (("extra", sample.extra, values), ("grid", sample.grid or [], values + fields)):
        for i, name in enumerate(names):
            if name not in allowed:
                what = "a graph value" if key == "extra" else "a graph value or data field"
                problems.append(loaded.source.problem(f"'{name}' is not {what}", ("sample", key, i),
                                                      hint=_suggest(name, allowed)))
    return problems


def prepare(loaded: LoadedSpec, *, registry: Registry | None = None, device: str | None = None,
            check: bool = True) -> Experiment:
    """Load data, compile the graph, build modules on the device and (with ``check``) dry-run them."""
    registry = registry or get_registry()
    problems = list(loaded.problems)
    data = None
    fields: tuple = ()
    filled: dict[str, list[Filled]] = {}
    if not any(p.path[:1] == ("data",) for p in problems if p.severity == "error"):
        try:
            data = load_data(loaded, registry)
            fields = tuple(data.fields)
        except SpecError as exc:
            problems += exc.problems
        else:  # component settings the spec leaves to the data (lvmgraph.data.fill)
            filled, fill_problems = fill_from_data(loaded, data)
            problems += fill_problems
    # without loaded data, check the graph against the fields the dataset declares, so one typo
    # in `data` does not also report every use of x_a as unknown
    graph, graph_problems = compile_graph(loaded, registry, fields or declared_fields(loaded, registry))
    problems += graph_problems
    problems += _sample_problems(loaded, graph)
    for name in loaded.spec.train.ema:
        if name not in loaded.spec.components:
            problems.append(loaded.source.problem(f"ema names '{name}', which is not a component", ("train", "ema", name),
                                                  hint=_suggest(name, loaded.spec.components)))
    best = loaded.spec.train.best
    if best is not None:
        logged = {name for phase in loaded.spec.phases for name in [*phase.terms, phase.label, *phase.log]}
        if best not in logged:
            problems.append(loaded.source.problem(
                f"train.best names '{best}', which is not logged", ("train", "best"),
                hint=_suggest(best, sorted(logged)) or f"use one of {sorted(logged)}"))
    if data is not None and len(data) < loaded.spec.data.batch_size and loaded.spec.data.drop_last:
        problems.append(loaded.source.problem(
            f"batch_size {loaded.spec.data.batch_size} is larger than the training set ({len(data)} samples)",
            ("data", "batch_size"), hint=f"use at most {len(data)}"))
    _raise_errors(problems, loaded)

    torch.manual_seed(loaded.spec.seed)  # component initialisation is part of the seeded run
    random.seed(loaded.spec.seed)  # Python's RNG is checkpointed too, so it starts seeded as well
    modules = build_modules(loaded, registry, problems)
    problems += _check_methods(graph, modules, loaded)
    _raise_errors(problems, loaded)
    dev = resolve_device(device or loaded.spec.train.device)
    modules.to(dev)
    exp = Experiment(loaded, registry, graph, data, modules, build_schedules(loaded, registry), dev,
                     [p for p in problems if p.severity == "warning"], from_data=filled)
    # EMA copies start equal to the freshly initialised weights and never require grad
    exp.ema = {name: copy.deepcopy(modules[name]).requires_grad_(False) for name in loaded.spec.train.ema}
    from .train.stages import stage_plan_problems  # (train imports this module)
    problems += stage_plan_problems(exp)
    _raise_errors(problems, loaded)
    if check:
        problems += dry_run(exp)
        _raise_errors(problems, loaded)
    return exp


def _raise_errors(problems: list[Problem], loaded: LoadedSpec) -> None:
    if any(p.severity == "error" for p in problems):
        raise SpecError(sorted(problems, key=lambda p: (p.severity != "error", p.file or "", p.line or 0)),
                        file=loaded.path)


def test_batch(exp: Experiment, fields, n: int, offset: int = 0) -> dict:
    """n test rows from ``offset`` on (cycling when the split is shorter) of the given fields."""
    out = {}
    for f in fields:
        t = exp.data.test[f]
        idx = (torch.arange(n) + offset) % t.shape[0]
        out[f] = t[idx]
    return exp.to_device(out)


def _like_prior_draws(value: torch.Tensor, draws: torch.Tensor | None) -> torch.Tensor:
    """A given value in the form the prior it replaces produces: class indices become one-hot
    rows when the prior draws one-hot codes (``--given c=3`` for a categorical code)."""
    if (draws is not None and isinstance(value, torch.Tensor) and not value.is_floating_point()
            and value.dim() == 1 and draws.dim() == 2):
        return torch.nn.functional.one_hot(value.long(), draws.shape[1]).to(draws.dtype)
    if draws is not None and isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(draws.dtype)
    return value


def sample_values(sample) -> list[str]:
    """Every value a sample writes or shows: output, extra outputs, grid rows (no repeats)."""
    return list(dict.fromkeys([*sample.outputs, *(sample.grid or [])]))


def generate(exp: Experiment, n: int, *, given: dict | None = None, modules: nn.ModuleDict | None = None,
             output: str | None = None, offset: int = 0) -> Any:
    """n generated outputs: priors replace the values named in ``sample.set``; ``given`` fixes others;
    data fields still needed come from the test split."""
    sample = exp.spec.sample
    if sample is None:
        raise ValueError("this spec has no sample: section, so it cannot generate")
    output = output or sample.output
    return generate_outputs(exp, n, [output], given=given, modules=modules, offset=offset)[output]


def generate_outputs(exp: Experiment, n: int, outputs, *, given: dict | None = None,
                     modules: nn.ModuleDict | None = None, offset: int = 0) -> dict[str, Any]:
    """Several graph values (or data fields) from one set of draws: {name: value} for n examples.

    As ``generate``: priors replace ``sample.set``, ``given`` fixes values (or data fields), the
    data still needed comes from test rows ``offset`` on. One executor pass computes them all, so
    an image and its mask come from the same noise.
    """
    sample = exp.spec.sample
    if sample is None:
        raise ValueError("this spec has no sample: section, so it cannot generate")
    modules = modules if modules is not None else exp.sampling_modules()
    outputs = list(outputs)
    was_training = modules.training
    modules.eval()
    try:
        with torch.no_grad():
            overrides = {value: modules[prior].sample(n=n) for value, prior in sample.set.items()}
            for name, value in (given or {}).items():
                overrides[name] = _like_prior_draws(value, overrides.get(name))
            fields = exp.graph.data_needed(outputs, given=overrides)
            ex = Executor(exp.graph, modules, exp.schedules, exp.device)
            ex.begin(test_batch(exp, fields, n, offset), 0)
            return ex.evaluate(outputs, overrides=overrides)
    finally:
        modules.train(was_training)


def grid_rows(values: dict[str, Any], names) -> list[torch.Tensor]:
    """The grid rows ``names`` of generated ``values`` as image tensors (n c h w) of one size;
    one-channel rows are repeated to three when another row is RGB."""
    rows = []
    for name in names:
        value = values[name]
        value = value.mean if isinstance(value, torch.distributions.Distribution) else value
        if not isinstance(value, torch.Tensor) or value.dim() != 4 or value.shape[1] not in (1, 3):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"sample.grid row '{name}' is {shape}, not images (n c h w) with c = 1 or 3")
        rows.append(value)
    sizes = {tuple(r.shape[-2:]) for r in rows}
    if len(sizes) > 1:
        raise ValueError(f"sample.grid rows differ in image size: "
                         + ", ".join(f"{n} {tuple(r.shape[1:])}" for n, r in zip(names, rows)))
    channels = max(r.shape[1] for r in rows)
    return [r.expand(-1, channels, -1, -1) if r.shape[1] != channels else r for r in rows]


def example_values(exp: Experiment, names, n: int = 2) -> dict[str, Any]:
    """What each named graph value or data field looks like for n examples (default 2), computed
    as ``lvmgraph sample`` computes it (priors for ``sample.set``, data from the test split): its
    per-example shape and dtype tell a given array whether it is one example or a batch.

    Unknown names raise ValueError with a did-you-mean.
    """
    names = list(names)
    known = list(exp.graph.values) + list(exp.graph.data_fields)
    for name in names:
        if name not in known:
            hint = _suggest(name, known)
            raise ValueError(f"'{name}' is not a graph value or data field of this spec"
                             + (f"; {hint}" if hint else ""))
    out = {name: exp.data.test[name][:n] for name in names if name in exp.data.test}
    rest = [name for name in names if name not in out]
    if rest:
        if exp.spec.sample is None:
            raise ValueError("this spec has no sample: section, so it cannot generate")
        with torch.random.fork_rng(devices=[]):
            out.update(generate_outputs(exp, n, rest))
    return out
