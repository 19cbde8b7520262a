from .manager import build_registry, get_registry, make_plugin_manager, use_registry
from .registry import Entry, PluginClashError, Registry, did_you_mean

__all__ = ["build_registry", "get_registry", "make_plugin_manager", "use_registry",
           "Entry", "PluginClashError", "Registry", "did_you_mean"]
