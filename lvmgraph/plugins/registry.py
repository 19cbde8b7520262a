"""One table of everything the plugins registered, by kind and name."""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
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
            doc = inspect.getdoc(factory) or ""
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


def did_you_mean(name: str, candidates) -> str | None:
    match = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return match[0] if match else None
