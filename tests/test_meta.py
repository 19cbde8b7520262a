"""Import every module of lvmgraph and of the built-in plugins, so a broken import fails fast and
names its module (pytest's own ``testing/test_meta.py`` idea).

Modules that only some code paths import (a metric, a dataset reader, the renderer) would
otherwise break only when a user reaches that path.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> list[str]:
    found = []
    for base, package_root in ((ROOT / "lvmgraph", ROOT), (ROOT / "plugins", ROOT / "plugins")):
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" in path.parts or path.name == "__main__.py":  # __main__ runs the CLI
                continue
            parts = path.relative_to(package_root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append(".".join(parts))
    return found


MODULES = _modules()


def test_the_module_list_covers_the_core_and_every_plugin():
    assert {"lvmgraph", "lvmgraph.cli", "lvmgraph.api", "lvmgraph.plugins.hookspecs"} <= set(MODULES)
    plugins = {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists()}
    assert plugins and plugins <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports(module):
    with warnings.catch_warnings():
        # our own code must not use deprecated APIs at import time
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"(lvmgraph|lvmgraph_\w+)(\.|$)")
        mod = importlib.import_module(module)
    # it is the file in this checkout, not a stale copy elsewhere on sys.path
    assert Path(mod.__file__).resolve().is_relative_to(ROOT)


def test_python_dash_m_lvmgraph_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "lvmgraph", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("run", "resume", "sample", "eval", "validate", "graph", "plugins", "new"):
        assert command in done.stdout
