"""Load plugins from the ``lvmgraph`` entry-point group and build the registry.

``LVMGRAPH_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry points (tests register their own);
``LVMGRAPH_DISABLE_PLUGINS=a,b`` blocks the named plugins.
"""
from __future__ import annotations

import os
from functools import lru_cache

import pluggy

from . import hookspecs
from .registry import HOOK_KINDS, Registry

GROUP = "lvmgraph"


def make_plugin_manager(autoload: bool | None = None, extra_plugins=()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    for name in filter(None, os.environ.get("LVMGRAPH_DISABLE_PLUGINS", "").split(",")):
        pm.set_blocked(name.strip())
    if autoload is None:
        autoload = not os.environ.get("LVMGRAPH_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        pm.load_setuptools_entrypoints(GROUP)
    for plugin in extra_plugins:
        pm.register(plugin)
    pm.check_pending()  # a misspelled hook implementation fails loudly
    return pm


def build_registry(pm: pluggy.PluginManager) -> Registry:
    registry = Registry()
    for hook_name, kind in HOOK_KINDS.items():
        caller = getattr(pm.hook, hook_name)
        # call each implementation with its own registrar so every entry knows its plugin
        for impl in reversed(caller.get_hookimpls()):
            impl.function(register=registry.registrar(kind, impl.plugin_name))
    return registry


_override: Registry | None = None


@lru_cache(maxsize=1)
def _default_registry() -> Registry:
    return build_registry(make_plugin_manager())


def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    return _override if _override is not None else _default_registry()


class use_registry:
    """Context manager that makes ``registry`` the process-wide one (tests, embedding)."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def __enter__(self):
        global _override
        self._saved, _override = _override, self.registry
        return self.registry

    def __exit__(self, *exc):
        global _override
        _override = self._saved


def plugin_listing(pm: pluggy.PluginManager, registry: Registry) -> list[dict]:
    """What each loaded plugin registers, for ``lvmgraph plugins``."""
    dists = {id(p): d for p, d in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        entries = [e for e in registry.entries() if e.plugin == name]
        rows.append({
            "name": name,
            "package": getattr(dist, "project_name", None) or getattr(dist, "name", None),
            "version": getattr(dist, "version", None),
            "registers": {kind: [e.name for e in entries if e.kind == kind]
                          for kind in HOOK_KINDS.values() if any(e.kind == kind for e in entries)},
        })
    return rows
