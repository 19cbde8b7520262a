"""One table of everything the plugins registered, by kind and name."""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Callable

from pydantic import BaseModel

#: hook name -> the kind of thing it registers. Ops and losses share one namespace
#: (both are callable from graph expressions); components and priors share another.
HOOK_KINDS = {
    "register_components": "component",
    "register_priors": "prior",
    "register_ops": "op",
    "register_losses": "loss",
    "register_datasets": "dataset",
    "register_metrics": "metric",
    "register_schedules": "schedule",
    "register_optimizers": "optimizer",
    "register_specs": "spec",
    "register_loggers": "logger",
}
NAMESPACE = {"component": "component", "prior": "component", "op": "op", "loss": "op"}


class PluginClashError(Exception):
    """Two plugins registered the same name in one namespace."""


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Any
    params: type[BaseModel] | None
    plugin: str
    doc: str = ""
    options: dict = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""


class Registry:
    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Entry]] = {}

    def namespace(self, kind: str) -> str:
        return NAMESPACE.get(kind, kind)

    def add(self, kind: str, name: str, factory: Any, *, plugin: str,
            params: type[BaseModel] | None = None, doc: str | None = None, **options) -> Entry:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"plugin {plugin!r}: {kind} name {name!r} must be a Python identifier")
        table = self._tables.setdefault(self.namespace(kind), {})
        if name in table:
            other = table[name]
            raise PluginClashError(
                f"{kind} {name!r} is registered by two plugins: {other.plugin!r} and {plugin!r}; "
                f"uninstall one or disable it with LVMGRAPH_DISABLE_PLUGINS={plugin}")
        if doc is None:
            doc = describe(factory)
        entry = Entry(kind, name, factory, params, plugin, doc, dict(options))
        table[name] = entry
        return entry

    def registrar(self, kind: str, plugin: str) -> Callable:
        def register(name, factory, params=None, doc=None, **options):
            return self.add(kind, name, factory, plugin=plugin, params=params, doc=doc, **options)
        return register

    def get(self, kind: str, name: str) -> Entry | None:
        entry = self._tables.get(self.namespace(kind), {}).get(name)
        if entry is None:
            return None
        # a namespace is shared (ops+losses); asking for "op" finds both, asking for "loss" only losses
        if kind in ("op", "component") or entry.kind == kind:
            return entry
        return None

    def names(self, kind: str) -> list[str]:
        table = self._tables.get(self.namespace(kind), {})
        return sorted(n for n, e in table.items() if kind in ("op", "component") or e.kind == kind)

    def entries(self, kind: str | None = None) -> list[Entry]:
        out = [e for t in self._tables.values() for e in t.values()]
        if kind is not None:
            out = [e for e in out if e.kind == kind]
        return sorted(out, key=lambda e: (e.kind, e.name))

    def suggest(self, kind: str, name: str) -> str | None:
        return did_you_mean(name, self.names(kind))


def describe(factory: Any) -> str:
    """The documentation of a registered thing: its own docstring, or a spec file's header comment.

    A class without a docstring of its own gets "" rather than a base class's (``inspect.getdoc``
    would describe an undocumented component as "Base class for all neural network modules"), and
    a path (``register_specs``) is described by its leading ``#`` comment block, not by ``PosixPath``.
    """
    if isinstance(factory, (str, PurePath)):
        lines = []
        try:
            text = Path(factory).read_text(encoding="utf-8")
        except OSError:
            return ""
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            lines.append(line[1:].strip())
        return "\n".join(lines).strip()
    if isinstance(factory, type):
        own = factory.__dict__.get("__doc__")
        return inspect.cleandoc(own) if isinstance(own, str) else ""
    return inspect.getdoc(factory) or ""


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of neighbours."""
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if prev2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def did_you_mean(name: str, candidates) -> str | None:
    """The closest candidate, or None: typos (edit distance) first, then difflib's similarity."""
    name, candidates = str(name), [str(c) for c in candidates]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    typos = [c for c in candidates if edit_distance(name, c) <= max(1, len(name) // 4)]
    pool = list(dict.fromkeys(typos + close))
    if not pool:
        return None
    return min(pool, key=lambda c: (edit_distance(name, c), -difflib.SequenceMatcher(None, name, c).ratio()))
