"""``lvmgraph new``: starter files written from templates (a plugin package, a family spec)."""
from .errors import ScaffoldError
from .plugin import new_plugin
from .spec import new_spec

__all__ = ["ScaffoldError", "new_plugin", "new_spec"]
