"""Evaluate graph values with the phase semantics of DESIGN.md.

- A phase computes only the ancestors of what it minimises.
- Parameters of components the phase does not update have ``requires_grad`` off during the
  phase: gradients flow *through* them (the generator learns through a frozen critic) but
  never accumulate *into* them.
- A value is cached for the rest of the step and reused only while none of the components it
  depends on has been updated since; a value that needs gradients for the current phase is
  reused only if it was computed for this same phase run (an earlier phase's autograd graph is gone).
- Computed once for two phases: when the trainer announces the phase runs a batch serves
  (``begin(..., runs=...)``), a value that the current phase needs without gradients and a later
  run needs with them (nothing in between updating what it depends on) is computed the later
  run's way, with its autograd graph, and the current phase gets it detached; the later run then
  reuses it. This is what a hand-written GAN loop does with ``fake = G(z)``: D trains on
  ``fake.detach()``, G through ``D(fake)``, and G runs once per step.
"""
from __future__ import annotations

import contextlib
import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from . import expr as E
from ..modules import ShapeMismatch
from .compile import ComponentCall, MethodCall, ModelGraph, OpCall, Ref

_BINOPS: dict[str, Callable] = {"+": operator.add, "-": operator.sub, "*": operator.mul,
                                "/": operator.truediv, "**": operator.pow}


class GraphEvalError(RuntimeError):
    """A value failed to compute; names the value and its expression."""

    def __init__(self, value: str, source: str, cause: BaseException):
        self.value, self.source, self.cause = value, source, cause
        super().__init__(f"graph.{value} = {source}: {type(cause).__name__}: {cause}")


@dataclass
class _Cached:
    value: Any
    versions: tuple  # versions of the components it depends on, when computed
    grad_token: object | None  # the phase run whose autograd graph it belongs to


class PhaseRun:
    """One run of a phase over the current batch: the values it minimises and the components it
    updates. The object itself is the token of the run's autograd graph."""

    __slots__ = ("terms", "updated", "grad_values")

    def __init__(self, terms, updated):
        self.terms = tuple(terms)
        self.updated = frozenset(updated)
        self.grad_values: frozenset = frozenset()  # filled in by Executor.begin

    def __repr__(self) -> str:
        return f"PhaseRun(terms={self.terms}, updated={sorted(self.updated)})"


def detach_value(value: Any) -> Any:
    """A copy of ``value`` cut from autograd, or None when that cannot be done generically."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, dict):
        out = {k: detach_value(v) for k, v in value.items()}
        return None if any(v is None and value[k] is not None for k, v in out.items()) else out
    if isinstance(value, (list, tuple)):
        items = [detach_value(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else type(value)(items)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return None  # distributions and other objects: recompute instead


class Executor:
    def __init__(self, graph: ModelGraph, modules: nn.ModuleDict, schedules: dict[str, Callable[[int], float]],
                 device: torch.device):
        self.graph = graph
        self.modules = modules
        self.schedules = schedules
        self.device = device
        self.versions = {name: 0 for name in modules.keys()}
        self.batch: dict[str, Any] = {}
        self.step = 0
        self._cache: dict[str, _Cached] = {}
        self._params = {name: [p for p in m.parameters()] for name, m in modules.items()}
        self._deps = {v: tuple(sorted(d)) for v, d in graph.component_deps.items()}
        self._data_fields = frozenset(graph.data_fields)
        self._compiled: dict[str, Callable] = {}  # value -> its expression as a closure, compiled on first use
        self._grad_values: dict[tuple, frozenset] = {}  # (terms, updated) -> values a run needs with gradients
        self.runs: list[PhaseRun] = []
        self._claimed = 0  # how many of the runs have started
        self.computed: list[str] = []  # values computed (not reused) since the last begin(); for tests and debugging

    # ---- step bookkeeping -------------------------------------------------
    def begin(self, batch: dict[str, Any], step: int, runs=()) -> None:
        """A new batch: forget every cached value. ``runs`` are the phase runs (in order) that will
        evaluate on this batch, so a value two of them need is computed once (see the module doc)."""
        self.batch = batch
        self.step = step
        self._cache.clear()
        self.computed = []
        self.runs = list(runs)
        self._claimed = 0
        for run in self.runs:
            key = (run.terms, run.updated)
            if key not in self._grad_values:
                self._grad_values[key] = frozenset(
                    v for v in self.graph.ancestors(run.terms)
                    if v in self.graph.values and self.graph.component_deps.get(v, frozenset()) & run.updated)
            run.grad_values = self._grad_values[key]

    def mark_updated(self, components) -> None:
        for c in components:
            self.versions[c] += 1

    def _version_key(self, value: str) -> tuple:
        return tuple(map(self.versions.__getitem__, self._deps.get(value, ())))

    def claim_run(self, terms, updated) -> PhaseRun:
        """The token for the phase run starting now: the next announced run when it is this phase,
        else a run of its own (which shares nothing ahead)."""
        if self._claimed < len(self.runs):
            run = self.runs[self._claimed]
            if run.terms == tuple(terms) and run.updated == frozenset(updated):
                self._claimed += 1
                return run
        return PhaseRun(terms, updated)

    def run_ahead(self, value: str, current) -> PhaseRun | None:
        """The later run of this batch that will need ``value`` with gradients, if nothing between
        now and then updates a component it depends on; None otherwise."""
        runs = self.runs
        if current not in runs:
            return None
        deps = self.graph.component_deps.get(value, frozenset())
        for run in runs[runs.index(current) + 1:]:
            if value in run.grad_values:
                return run
            if deps & run.updated:
                return None
        return None

    def set_trainable(self, components) -> None:
        """Parameters of ``components`` require grad; every other component's do not."""
        wanted = set(components)
        for name, params in self._params.items():
            flag = name in wanted
            for p in params:
                if p.requires_grad is not flag:  # (reading the flag costs less than setting it)
                    p.requires_grad_(flag)

    def trainable_all(self) -> None:
        for params in self._params.values():
            for p in params:
                p.requires_grad_(True)

    # ---- evaluation --------------------------------------------------------
    def evaluate(self, names, *, updated=frozenset(), token: object | None = None,
                 overrides: dict[str, Any] | None = None, use_cache: bool = True) -> dict[str, Any]:
        """Compute graph values. ``updated`` are the components the current phase trains."""
        ctx = _Context(self, frozenset(updated), token, overrides or {}, use_cache)
        return {n: ctx.value(n) for n in names}


_NO_COMPONENTS: frozenset = frozenset()
_SAME_GRAD_MODE = contextlib.nullcontext()


class _Context:
    def __init__(self, ex: Executor, updated: frozenset, token, overrides: dict, use_cache: bool,
                 grad: bool | None = None):
        self.ex, self.updated, self.token, self.overrides, self.use_cache = ex, updated, token, overrides, use_cache
        # gradients are wanted unless the caller disabled them (not: a no-grad value being computed)
        self.grad = torch.is_grad_enabled() if grad is None else grad
        self.local: dict[str, Any] = {}

    def value(self, name: str) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        if name in self.local:
            return self.local[name]
        ex = self.ex
        if name in ex._data_fields:
            if name not in ex.batch:
                raise KeyError(f"data field '{name}' is needed but not in the batch (fields: {sorted(ex.batch)})")
            return ex.batch[name]
        needs_grad = self.grad and not ex.graph.component_deps.get(name, _NO_COMPONENTS).isdisjoint(self.updated)
        cacheable = self.use_cache and not self.overrides
        hit = ex._cache.get(name) if cacheable else None
        if hit is not None:
            if hit.versions == ex._version_key(name):
                if needs_grad and hit.grad_token is self.token and self.token is not None:
                    return hit.value
                if not needs_grad:
                    cut = detach_value(hit.value) if hit.grad_token is not None else hit.value
                    if cut is not None:
                        return cut
        if cacheable and not needs_grad and self.token is not None and self.grad:
            later = ex.run_ahead(name, self.token)
            if later is not None:
                cut = self._for_later_run(name, later)
                if cut is not None:
                    return cut
                cacheable = False  # not detachable (a distribution): this run computes its own, the cache keeps later's
        # switch autograd only when the mode changes (the context manager costs more than the check)
        with torch.set_grad_enabled(needs_grad) if torch.is_grad_enabled() != needs_grad else _SAME_GRAD_MODE:
            try:
                compiled = ex._compiled.get(name)
                if compiled is None:
                    compiled = ex._compiled[name] = compile_node(ex.graph.values[name])
                result = compiled(self)
            except GraphEvalError:
                raise
            except Exception as exc:  # noqa: BLE001 - re-raised with the value's name and expression
                raise GraphEvalError(name, ex.graph.sources.get(name, "?"), exc) from exc
        ex.computed.append(name)
        if cacheable:
            ex._cache[name] = _Cached(result, ex._version_key(name), self.token if needs_grad else None)
        else:
            self.local[name] = result
        return result

    def _for_later_run(self, name: str, later: PhaseRun) -> Any:
        """Compute ``name`` as ``later`` will need it (with gradients into what it updates), cache it
        for that run, and return it detached for this one (None if it cannot be detached)."""
        ex = self.ex
        waking = [p for c in ex.graph.component_deps.get(name, ()) if c in later.updated for p in ex._params[c]
                  if not p.requires_grad]  # frozen by this phase's set_trainable; not updated before `later`
        for p in waking:
            p.requires_grad_(True)
        try:
            value = _Context(ex, later.updated, later, {}, True, grad=True).value(name)
        finally:
            for p in waking:
                p.requires_grad_(False)
        return detach_value(value)


# ---- expressions compiled to closures ---------------------------------------------------------
# A value's expression is walked on every step; turning each node into a closure once (the node's
# fields bound, its children already compiled) leaves only the calls themselves on the hot path,
# where walking the tree re-dispatches on the node type at every node.

def _compile_args(args, kwargs) -> Callable[["_Context"], tuple[list, dict]]:
    arg_fns = [compile_node(a) for a in args]
    kwarg_fns = [(k, compile_node(v)) for k, v in kwargs]
    if not kwarg_fns:
        return lambda ctx: ([f(ctx) for f in arg_fns], {})
    # positional arguments first, then keywords, as written: values that draw random numbers
    # (a prior's sample) are computed in the same order as before compiling
    return lambda ctx: ([f(ctx) for f in arg_fns], {k: f(ctx) for k, f in kwarg_fns})


def compile_node(node) -> Callable[["_Context"], Any]:
    """The closure that evaluates ``node`` in a context."""
    if isinstance(node, Ref):
        name = node.name
        if node.kind in ("value", "data"):
            return lambda ctx: ctx.value(name)
        if node.kind == "component":
            return lambda ctx: ctx.ex.modules[name]  # looked up each time: wrappers (DDP) replace entries
        if node.kind == "schedule":
            return lambda ctx: float(ctx.ex.schedules[name](ctx.ex.step))
        if node.kind == "builtin":
            return lambda ctx: ctx.ex.step
    if isinstance(node, E.Const):
        constant = node.value
        return lambda ctx: constant
    if isinstance(node, E.Seq):
        item_fns = [compile_node(i) for i in node.items]
        return lambda ctx: [f(ctx) for f in item_fns]
    if isinstance(node, ComponentCall):
        component, method, arguments = node.component, node.method, _compile_args(node.args, node.kwargs)

        def call_component(ctx):
            module = ctx.ex.modules[component]
            fn = module if method is None else getattr(module, method)
            args, kwargs = arguments(ctx)
            try:
                return fn(*args, **kwargs)
            except ShapeMismatch as exc:  # name the component that refused its input (for lvmgraph.data.fit)
                exc.component = exc.component or component
                raise
        return call_component
    if isinstance(node, OpCall):
        op, arguments = node.fn, _compile_args(node.args, node.kwargs)

        def call_op(ctx):
            args, kwargs = arguments(ctx)
            return op(*args, **kwargs)
        return call_op
    if isinstance(node, MethodCall):
        target_fn, method, arguments = compile_node(node.target), node.method, _compile_args(node.args, node.kwargs)

        def call_method(ctx):
            target = target_fn(ctx)
            args, kwargs = arguments(ctx)
            return getattr(target, method)(*args, **kwargs)
        return call_method
    if isinstance(node, E.Attr):
        target_fn, attr = compile_node(node.target), node.attr

        def get_attr(ctx):
            target = target_fn(ctx)
            if isinstance(target, dict):
                if attr not in target:
                    raise KeyError(f"no output named '{attr}'; outputs are {sorted(target)}")
                return target[attr]
            return getattr(target, attr)
        return get_attr
    if isinstance(node, E.BinOp):
        op, left, right = _BINOPS[node.op], compile_node(node.left), compile_node(node.right)
        return lambda ctx: op(left(ctx), right(ctx))
    if isinstance(node, E.Neg):
        operand = compile_node(node.operand)
        return lambda ctx: -operand(ctx)
    raise TypeError(f"cannot evaluate {node!r}")
