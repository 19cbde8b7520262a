"""Compile a spec's graph section into a networkx DiGraph of named values, resolving every name.

Node kinds: ``data`` (a dataset field), ``value`` (a graph entry), ``component``, ``schedule``.
An edge u -> v means v's expression uses u. Each value keeps a resolved expression tree whose
leaves say what they refer to, so execution never looks names up by string matching again.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

from ..plugins.registry import Registry, did_you_mean
from ..spec.errors import Problem
from ..spec.load import LoadedSpec
from . import expr as E

# Methods of distribution values a graph may call (others are attribute reads).
DISTRIBUTION_METHODS = {"rsample", "sample", "log_prob", "entropy", "cdf", "icdf", "expand"}
BUILTIN_NAMES = {"step": "the current training step (an int)"}
_KIND_LABELS = {"value": "graph value", "data": "data field", "schedule": "schedule", "builtin": "built-in name"}


@dataclass(frozen=True)
class Ref:
    kind: str  # data | value | component | schedule | builtin
    name: str


@dataclass(frozen=True)
class ComponentCall:
    component: str
    method: str | None  # None = forward
    args: tuple
    kwargs: tuple


@dataclass(frozen=True)
class OpCall:
    op: str
    fn: Any
    args: tuple
    kwargs: tuple


@dataclass(frozen=True)
class MethodCall:
    target: Any
    method: str
    args: tuple
    kwargs: tuple


def walk(node) -> Iterator:
    """Every node of a resolved expression tree, parents before children."""
    yield node
    if isinstance(node, (ComponentCall, OpCall, MethodCall)):
        if isinstance(node, MethodCall):
            yield from walk(node.target)
        for arg in node.args:
            yield from walk(arg)
        for _, value in node.kwargs:
            yield from walk(value)
    elif isinstance(node, E.Attr):
        yield from walk(node.target)
    elif isinstance(node, E.Seq):
        for item in node.items:
            yield from walk(item)
    elif isinstance(node, E.BinOp):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, E.Neg):
        yield from walk(node.operand)


@dataclass
class ModelGraph:
    values: dict[str, Any]  # name -> resolved expression
    sources: dict[str, str]  # name -> expression text as written
    data_fields: tuple[str, ...]
    components: dict[str, str]  # name -> type
    schedules: tuple[str, ...]
    g: nx.DiGraph
    component_deps: dict[str, frozenset] = field(default_factory=dict)  # value -> components it depends on
    order: list[str] = field(default_factory=list)  # values in dependency order

    def ancestors(self, names) -> set[str]:
        out = set()
        for n in names:
            out |= nx.ancestors(self.g, n) | {n}
        return out

    def values_needed(self, outputs, given=()) -> list[str]:
        """Values that must be computed (in order) to get ``outputs`` when ``given`` are supplied."""
        given = set(given)
        needed: set[str] = set()
        stack = [o for o in outputs if o not in given]
        while stack:
            n = stack.pop()
            if n in needed or n in given or self.g.nodes[n]["kind"] != "value":
                continue
            needed.add(n)
            stack.extend(p for p in self.g.predecessors(n) if p not in given)
        return [v for v in self.order if v in needed]

    def data_needed(self, outputs, given=()) -> set[str]:
        given = set(given)
        vals = set(self.values_needed(outputs, given)) | {o for o in outputs if o not in given}
        fields = set()
        for v in vals:
            if v in self.data_fields and v not in given:
                fields.add(v)
            elif v in self.g:
                fields |= {p for p in self.g.predecessors(v)
                           if self.g.nodes[p]["kind"] == "data" and p not in given}
        return fields


class _Resolver:
    def __init__(self, spec, registry: Registry, data_fields, problems: list, where: tuple, source_map):
        self.spec = spec
        self.registry = registry
        self.open_fields = data_fields is None  # the dataset is unknown: any other plain name may be a field
        self.data_fields = tuple(data_fields or ())
        self.problems = problems
        self.where = where
        self.source_map = source_map
        self.uses: set[tuple[str, str]] = set()  # (kind, name)

    # every name a value may refer to, for did-you-mean
    def _known(self):
        return list(self.spec.graph) + list(self.data_fields) + list(self.spec.components) + list(self.spec.schedules)

    def problem(self, message, hint=None):
        problem = self.source_map.problem(message, self.where, hint=hint)
        if problem not in self.problems:  # a name used twice in one value is reported once
            self.problems.append(problem)

    def split_name(self, dotted: str):
        """Longest known prefix of a dotted name, and the attribute chain after it."""
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            head = ".".join(parts[:i])
            if (head in self.spec.graph or head in self.spec.components or head in self.data_fields
                    or head in self.spec.schedules or head in BUILTIN_NAMES):
                return head, parts[i:]
        return None, parts

    def ref(self, name: str) -> Ref | None:
        if name in self.spec.graph:
            kind = "value"
        elif name in self.data_fields:
            kind = "data"
        elif name in self.spec.components:
            kind = "component"
        elif name in self.spec.schedules:
            kind = "schedule"
        elif name in BUILTIN_NAMES:
            kind = "builtin"
        else:
            return None
        self.uses.add((kind, name))
        return Ref(kind, name)

    def unknown(self, name: str, as_call=False):
        fields = ", ".join(self.data_fields) or "none"
        if as_call:
            ops = self.registry.names("op")
            match = did_you_mean(name, ops + list(self.spec.components))
            self.problem(f"'{name}' is neither a registered op nor a component of this spec",
                         f"did you mean '{match}'?" if match else "see `lvmgraph plugins --kind op`")
        else:
            match = did_you_mean(name, self._known())
            self.problem(f"uses '{name}', which is neither a data field ({fields}) nor a graph value, "
                         "component or schedule", f"did you mean '{match}'?" if match else None)

    def resolve(self, node):
        if isinstance(node, E.Const):
            return node
        if isinstance(node, E.Seq):
            return E.Seq(tuple(self.resolve(i) for i in node.items))
        if isinstance(node, E.BinOp):
            return E.BinOp(node.op, self.resolve(node.left), self.resolve(node.right))
        if isinstance(node, E.Neg):
            return E.Neg(self.resolve(node.operand))
        if isinstance(node, E.Name):
            head, rest = self.split_name(node.id)
            if head is None and self.open_fields and "." not in node.id:
                self.uses.add(("data", node.id))
                return Ref("data", node.id)
            if head is None:
                self.unknown(node.id)
                return E.Const(None)
            out: Any = self.ref(head)
            for attr in rest:
                out = E.Attr(out, attr)
            return out
        if isinstance(node, E.Attr):
            return E.Attr(self.resolve(node.target), node.attr)
        if isinstance(node, E.Call):
            return self.resolve_call(node)
        raise TypeError(node)

    def resolve_call(self, node: E.Call):
        args = tuple(self.resolve(a) for a in node.args)
        kwargs = tuple((k, self.resolve(v)) for k, v in node.kwargs)
        func = node.func
        if isinstance(func, E.Name):
            head, rest = self.split_name(func.id)
            if head is not None and not rest and head not in self.spec.components:
                head = None  # a bare callee that is not a component is an op, even if a value has its name
            if head is None:
                if "." in func.id:
                    self.unknown(func.id.split(".")[0])
                    return E.Const(None)
                entry = self.registry.get("op", func.id)
                if entry is None:
                    kind = self.ref(func.id).kind if self.split_name(func.id)[0] == func.id else None
                    if kind is not None:
                        self.problem(f"'{func.id}' cannot be called: it is a {_KIND_LABELS.get(kind, kind)}, "
                                     "not an op or a component",
                                     "only ops and components take arguments")
                    else:
                        self.unknown(func.id, as_call=True)
                    return E.Const(None)
                self.check_signature(func.id, entry.factory, node)
                self.uses.add(("op", func.id))
                return OpCall(func.id, entry.factory, args, kwargs)
            kind = self.ref(head).kind
            if kind == "component" and len(rest) <= 1:
                return ComponentCall(head, rest[0] if rest else None, args, kwargs)
            if kind in ("value", "data") and rest:
                target: Any = Ref(kind, head)
                for attr in rest[:-1]:
                    target = E.Attr(target, attr)
                return self.method_call(target, rest[-1], args, kwargs)
            self.problem(f"'{func.id}' cannot be called: it is a {_KIND_LABELS.get(kind, kind)}")
            return E.Const(None)
        if isinstance(func, E.Attr):
            return self.method_call(self.resolve(func.target), func.attr, args, kwargs)
        self.problem("only names, components and methods can be called")
        return E.Const(None)

    def method_call(self, target, method, args, kwargs):
        if method not in DISTRIBUTION_METHODS:
            self.problem(f"method '{method}' cannot be called on a value",
                         f"allowed: {', '.join(sorted(DISTRIBUTION_METHODS))}; read attributes without ()")
        return MethodCall(target, method, args, kwargs)

    def check_signature(self, name, fn, node: E.Call):
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return
        try:
            sig.bind(*node.args, **{k: None for k, _ in node.kwargs})
        except TypeError as exc:
            params = [p for p in sig.parameters if sig.parameters[p].kind not in (
                inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
            bad = [k for k, _ in node.kwargs if k not in sig.parameters]
            hint = None
            if bad:
                match = did_you_mean(bad[0], params)
                hint = f"did you mean '{match}='?" if match else f"{name} takes: {', '.join(params)}"
            self.problem(f"{name}{sig}: {exc}", hint)


def compile_graph(loaded: LoadedSpec, registry: Registry, data_fields) -> tuple[ModelGraph, list[Problem]]:
    """The spec's graph and its problems. ``data_fields`` names the dataset's fields; None when the
    dataset is unknown (already a problem), so names that are nothing else are taken as fields
    instead of each being reported."""
    spec, source = loaded.spec, loaded.source
    problems: list[Problem] = []
    g = nx.DiGraph()
    fields = list(data_fields or ())  # grows by the assumed fields when data_fields is None
    for f in fields:
        g.add_node(f, kind="data")
    for c, entry in spec.components.items():
        g.add_node(c, kind="component", type=entry.type)
    for s in spec.schedules:
        g.add_node(s, kind="schedule")
    for name in BUILTIN_NAMES:
        g.add_node(name, kind="builtin")
    clash = [n for n in spec.graph if n in fields]
    for n in clash:
        problems.append(source.problem(f"graph value '{n}' has the name of a data field", ("graph", n),
                                       hint="rename the value"))
    values: dict[str, Any] = {}
    broken: set[str] = set()  # values whose expression has an error (their edges may be missing)
    for name, text in spec.graph.items():
        g.add_node(name, kind="value", expr=text)
        resolver = _Resolver(spec, registry, data_fields, problems, ("graph", name), source)
        before = len(problems)
        try:
            values[name] = resolver.resolve(E.parse(text))
        except E.ExprError as exc:
            problems.append(source.problem(str(exc), ("graph", name)))
            values[name] = E.Const(None)
            broken.add(name)
            continue
        if len(problems) > before:
            broken.add(name)
        for kind, used in resolver.uses:
            if kind == "data" and used not in g:  # an assumed field (unknown dataset)
                g.add_node(used, kind="data")
                fields.append(used)
            if kind != "op":
                g.add_edge(used, name)

    value_graph = g.subgraph([n for n, d in g.nodes(data=True) if d["kind"] == "value"])
    try:
        cycle = nx.find_cycle(value_graph)
        names = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        problems.append(source.problem(f"values depend on each other in a cycle: {names}", ("graph", cycle[0][0])))
        order = list(spec.graph)
    except nx.NetworkXNoCycle:
        order = list(nx.topological_sort(value_graph))
        order += [v for v in spec.graph if v not in order]

    comp_deps = {}
    for v in order:
        comp_deps[v] = frozenset(a for a in nx.ancestors(g, v) if g.nodes[a]["kind"] == "component")
    graph = ModelGraph(values, dict(spec.graph), tuple(fields), {c: e.type for c, e in spec.components.items()},
                       tuple(spec.schedules), g, comp_deps, order)
    problems += _check_phases(graph, loaded, broken)
    problems.sort(key=lambda p: (p.file or "", p.line or 0))  # file order, whoever prints them
    return graph, problems


def _check_phases(graph: ModelGraph, loaded: LoadedSpec, broken: set[str] = frozenset()) -> list[Problem]:
    spec, source = loaded.spec, loaded.source
    problems = []
    values = list(spec.graph)
    for i, phase in enumerate(spec.phases):
        deps: set[str] = set()
        for term, weight in phase.terms.items():
            where = ("phases", i, "minimize") + ((term,) if not isinstance(phase.minimize, str) else ())
            if term not in spec.graph:
                match = did_you_mean(term, values)
                problems.append(source.problem(f"minimizes '{term}', which is not a graph value", where,
                                               hint=f"did you mean '{match}'?" if match else None))
                continue
            deps |= graph.component_deps[term]
            if isinstance(weight, str) and weight not in spec.schedules:
                match = did_you_mean(weight, list(spec.schedules))
                problems.append(source.problem(f"weight '{weight}' is not a number or a schedule name", where,
                                               hint=f"did you mean '{match}'?" if match else "declare it under schedules:"))
        for j, comp in enumerate(phase.update):
            where = ("phases", i, "update", j)
            if comp not in spec.components:
                match = did_you_mean(comp, list(spec.components))
                problems.append(source.problem(f"updates '{comp}', which is not a component", where,
                                               hint=f"did you mean '{match}'?" if match else None))
            elif comp not in deps and all(t in spec.graph for t in phase.terms) \
                    and not graph.ancestors(phase.terms) & broken:  # not a consequence of an error above
                problems.append(source.problem(
                    f"updates '{comp}' but its loss ({', '.join(phase.terms)}) does not depend on it", where,
                    hint="remove it from update or use it in the loss"))
        for j, name in enumerate(phase.log):
            if name not in spec.graph:
                match = did_you_mean(name, values)
                problems.append(source.problem(f"logs '{name}', which is not a graph value", ("phases", i, "log", j),
                                               hint=f"did you mean '{match}'?" if match else None))
        if phase.lr_schedule and phase.lr_schedule not in spec.schedules:
            match = did_you_mean(phase.lr_schedule, list(spec.schedules))
            problems.append(source.problem(f"lr_schedule '{phase.lr_schedule}' is not a schedule name",
                                           ("phases", i, "lr_schedule"),
                                           hint=f"did you mean '{match}'?" if match else None))
    if spec.sample:
        for value, prior in spec.sample.set.items():
            if value not in spec.graph and value not in graph.data_fields:
                match = did_you_mean(value, values)
                problems.append(source.problem(f"sets '{value}', which is not a graph value", ("sample", "set", value),
                                               hint=f"did you mean '{match}'?" if match else None))
            if prior not in spec.components:
                match = did_you_mean(prior, list(spec.components))
                problems.append(source.problem(f"'{prior}' is not a component", ("sample", "set", value),
                                               hint=f"did you mean '{match}'?" if match else None))
        if spec.sample.output not in spec.graph:
            match = did_you_mean(spec.sample.output, values)
            problems.append(source.problem(f"output '{spec.sample.output}' is not a graph value", ("sample", "output"),
                                           hint=f"did you mean '{match}'?" if match else None))
    used = {u for v in spec.graph for u in graph.g.predecessors(v)} | set(spec.sample.set.values() if spec.sample else ())
    for comp in spec.components:
        if comp not in used:
            problems.append(source.problem(f"component '{comp}' is never used in the graph", ("components", comp),
                                           severity="warning"))
    return problems
