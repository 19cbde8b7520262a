"""Run a spec's metrics on a built model: the concrete EvalContext and ``evaluate``."""
from __future__ import annotations

import time
from typing import Any, Iterator

import torch
from pydantic import ValidationError

from ..experiment import Experiment, generate
from ..graph.execute import Executor
from ..plugins.registry import did_you_mean


class UnknownMetric(ValueError):
    """A metric name that no plugin registered."""


class UnknownValue(ValueError):
    """A metric setting names a graph value the spec does not have."""


class ResultNameClash(ValueError):
    """Two metric entries would write their results under the same name (see ``as:``)."""


def named_entries(items: list[tuple[str, dict]]) -> list[tuple[str, str, dict]]:
    """[(metric, settings)] -> [(result name, metric, settings without ``as``)]; a clash is an error.

    A metric's result is keyed by its name, or by ``as: result_name`` in its settings, so the same
    metric can run several times with different settings (two judges, two directions).
    """
    from ..spec.schema import RESULT_NAME_KEY
    out, seen = [], {}
    for name, settings in items:
        settings = dict(settings or {})
        result = settings.pop(RESULT_NAME_KEY, name)
        if result in seen:
            raise ResultNameClash(f"two metric entries give a result named '{result}' ({seen[result]} and {name}); "
                                  f"name each with `as: ...` in its settings, e.g. {{{name}: {{as: {name}_2}}}}")
        seen[result] = name
        out.append((result, name, settings))
    return out


class RunEvalContext:
    """The EvalContext (see ``lvmgraph.eval.context``) over an Experiment."""

    def __init__(self, exp: Experiment, seed: int = 0):
        self.exp = exp
        # metrics see what generation uses: the EMA copies (train.ema) in place of their components
        self.modules = exp.sampling_modules()
        self.components = dict(self.modules.items())
        self.data = exp.data
        self.device = exp.device
        self.spec = exp.spec
        self.generator = torch.Generator().manual_seed(seed)
        self._evaluator = None

    def evaluate(self, outputs: list[str], inputs: dict[str, Any]) -> dict[str, Any]:
        known = set(self.exp.graph.values) | set(self.exp.graph.data_fields)
        for name in [*outputs, *inputs]:
            if name not in known:
                match = did_you_mean(name, known)
                raise UnknownValue(f"metric asks for '{name}', which is not a graph value or data field of this spec"
                                   + (f"; did you mean '{match}'? (set it in the metric's settings)" if match else ""))
        data = {k: v for k, v in inputs.items() if k in self.exp.graph.data_fields}
        overrides = {k: v for k, v in inputs.items() if k not in data}
        ex = Executor(self.exp.graph, self.modules, self.exp.schedules, self.exp.device)
        ex.begin({k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in data.items()}, 0)
        with torch.no_grad():
            return ex.evaluate(outputs, overrides=overrides)

    def sample(self, n: int, given: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """n generated outputs in the data's format; ``given`` fixes graph values (n rows each)."""
        from .artifacts import as_tensor
        outs, done = [], 0
        bs = self.spec.data.eval_batch_size
        while done < n:
            k = min(bs, n - done)
            part = {name: v[done:done + k].to(self.device) for name, v in (given or {}).items()}
            outs.append(as_tensor(generate(self.exp, k, given=part, offset=done)).detach())
            done += k
        return torch.cat(outs)

    def evaluator(self):
        """The evaluator network for this run's dataset (trained and cached on first use)."""
        if self._evaluator is None:
            if self.data.info.get("kind") != "image":
                raise ValueError(f"dataset '{self.spec.data.dataset}' is not images: no evaluator network; "
                                 "use metrics for points such as mode_coverage")
            from .evaluator import evaluator_for
            # a derived dataset (domains, attributes, captions: info["base"]) is judged by its base's
            # evaluator: its images are the base's, transformed (RGB is read as grey, padding cropped)
            name = self.data.info.get("base") or self.data.info.get("name") or self.spec.data.dataset
            # the evaluator always sees the dataset in its default form, whatever this run's settings;
            # a dataset without one (image_folder: a required root) is judged on this run's own data
            entry = self.exp.registry.get("dataset", name)
            fields = entry.params.model_fields.values() if entry.params is not None else ()
            own = name == self.data.info.get("name") and any(f.is_required() for f in fields)
            bundle = self.data if own else entry.factory()
            self._evaluator = evaluator_for(name, bundle, device=self.device)
        return self._evaluator

    def dataset(self, changes: dict[str, Any]):
        """This run's dataset built again with some of its settings changed (e.g. ``{hold_out: []}``)."""
        name = self.spec.data.dataset
        entry = self.exp.registry.get("dataset", name)
        settings = {**self.spec.data.settings, **changes}
        try:
            params = entry.params.model_validate(settings) if entry.params is not None else settings
        except ValidationError as err:
            raise ValueError(f"dataset '{name}' with the changes {changes}: {err}") from None
        return entry.factory(**dict(params))

    def batches(self, split: str = "test", batch_size: int = 500,
                limit: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
        fields = self.data.test if split == "test" else self.data.train
        n = len(next(iter(fields.values())))
        n = min(n, limit) if limit else n
        for start in range(0, n, batch_size):
            yield {k: v[start:min(n, start + batch_size)].to(self.device) for k, v in fields.items()}


def evaluate(exp: Experiment, metrics: list[tuple[str, dict]] | None = None, seed: int = 0) -> dict:
    """Compute metrics (default: the spec's ``eval.metrics``); returns {result name: result} plus timing.

    ``metrics``: [(metric name, settings)]; ``as: result_name`` in the settings names the result
    (default: the metric's name). Two entries with one result name raise ResultNameClash.
    """
    registry = exp.registry
    items = named_entries(metrics if metrics is not None else exp.spec.eval.items())
    ctx = RunEvalContext(exp, seed)
    results: dict[str, Any] = {}
    was_training = exp.modules.training
    exp.modules.eval()
    try:
        for result, name, settings in items:
            entry = registry.get("metric", name)
            if entry is None:
                match = did_you_mean(name, registry.names("metric"))
                raise UnknownMetric(f"unknown metric '{name}'" + (f"; did you mean '{match}'?" if match else ""))
            params = entry.params.model_validate(settings or {}) if entry.params else None
            start = time.perf_counter()
            ctx.generator.manual_seed(seed)  # each metric's draws depend on the seed, not on the metrics before it
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = entry.factory(ctx, **(dict(params) if params is not None else {}))
            out = dict(out)
            out["seconds"] = round(time.perf_counter() - start, 3)
            if result != name:
                out["metric"] = name  # the result is named by `as:`; record which metric made it
            results[result] = out
    finally:
        exp.modules.train(was_training)
    return results


def format_table(results: dict) -> str:
    rows = []
    for metric, out in results.items():
        for key, value in out.items():
            if key in ("protocol", "seconds", "metric") or isinstance(value, (dict, list)):
                continue
            rows.append((metric, key, f"{value:.6g}" if isinstance(value, float) else str(value)))
    if not rows:
        return "(no metrics)"
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w1}}  {b:<{w2}}  {c}" for a, b, c in rows)
