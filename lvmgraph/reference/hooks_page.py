"""docs/reference/hooks.md: every hook in ``lvmgraph.plugins.hookspecs``, its docstring and example."""
from __future__ import annotations

import inspect

from ..plugins import hookspecs
from ..plugins.manager import GROUP
from .markdown import anchor, docstring, first_paragraph, table


def hook_functions() -> list:
    """The hookspecs in source order (a hookspec carries pluggy's ``<project>_spec`` marker)."""
    found = [f for _, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, f"{GROUP}_spec")]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def hooks_page() -> str:
    hooks = hook_functions()
    parts = ["# Plugin hooks", "", docstring(hookspecs.__doc__), "",
             "A minimal plugin module (`my_plugin.py`, listed as `my_plugin = \"my_plugin\"` under "
             "`[project.entry-points.lvmgraph]`):", "",
             "```python",
             "from lvmgraph import hookimpl",
             "",
             "",
             "@hookimpl",
             "def register_losses(register):",
             "    register(\"l1\", lambda a, b: (a - b).abs().mean())",
             "```", "",
             table(["hook", "what it registers"],
                   [[f"[`{f.__name__}`](#{anchor(f.__name__)})", first_paragraph(f.__doc__)] for f in hooks]), ""]
    for f in hooks:
        parts += [f"## `{f.__name__}`", "", "```python", f"{f.__name__}{inspect.signature(f)}", "```", "",
                  docstring(f.__doc__), ""]
    return "\n".join(parts).rstrip() + "\n"
