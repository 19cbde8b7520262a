"""``lvmgraph new plugin NAME``: a third-party plugin package whose own tests pass as written.

The files come from ``templates/plugin/`` (package data): each ``*.tmpl`` is a
``string.Template`` whose ``${...}`` names are filled in below, and ``PACKAGE`` / ``SPEC`` in its
path become the package and spec names.
"""
from __future__ import annotations

import importlib.util
import keyword
import re
from pathlib import Path
from string import Template

import lvmgraph

from .errors import ScaffoldError

TEMPLATES = Path(__file__).parent / "templates" / "plugin"
PREFIX = "lvmgraph_"  # the usual package prefix; the entry point and item names drop it


def plugin_names(package: str) -> dict[str, str]:
    """Every name the templates use, derived from the package name (``lvmgraph_blocks`` ->
    entry point ``blocks``, component ``blocks_mlp``, class ``BlocksMLP``, spec ``blocks_aae``)."""
    entry = package.removeprefix(PREFIX) or package
    return {
        "package": package,
        "dist": package.replace("_", "-"),
        "entry": entry,
        "component": f"{entry}_mlp",
        "Class": "".join(part.capitalize() for part in entry.split("_") if part) + "MLP",
        "spec_name": f"{entry}_aae",
        "lvmgraph_version": lvmgraph.__version__,
    }


def check_package_name(package: str) -> None:
    """Refuse a name that cannot be an importable, unique plugin package."""
    if not package.isidentifier() or keyword.iskeyword(package):
        fixed = re.sub(r"\W+", "_", package.strip()).strip("_").lower()
        hint = f"; e.g. '{fixed}'" if fixed.isidentifier() and not keyword.iskeyword(fixed) else ""
        raise ScaffoldError(f"plugin name '{package}' is not a Python package name: use letters, digits and _, "
                            f"not starting with a digit{hint}")
    if package != package.lower():
        raise ScaffoldError(f"plugin name '{package}': package names are lowercase (PEP 8); "
                            f"use '{package.lower()}'")
    found = importlib.util.find_spec(package)
    if found is not None:
        where = f" ({found.origin})" if found.origin else ""
        example = "" if package.startswith(PREFIX) else f", e.g. '{PREFIX}{package}'"
        raise ScaffoldError(f"plugin name '{package}': a module of that name is already importable{where}; "
                            f"choose another name{example}")


def check_unregistered(names: dict[str, str]) -> None:
    """The new plugin's entry point and component must not clash with installed plugins."""
    from ..plugins import get_registry
    registry = get_registry()
    plugins = {e.plugin for e in registry.entries()}
    if names["entry"] in plugins:
        raise ScaffoldError(f"plugin name '{names['package']}': an installed plugin is already called "
                            f"'{names['entry']}'; choose another name")
    taken = registry.get("component", names["component"])
    if taken is not None:
        raise ScaffoldError(f"plugin name '{names['package']}': component '{names['component']}' is already "
                            f"registered by plugin '{taken.plugin}'; choose another name")


def new_plugin(package: str, parent: str | Path = ".") -> list[Path]:
    """Write the package ``parent/package/`` and return the files written (nothing is written on error)."""
    check_package_name(package)
    names = plugin_names(package)
    check_unregistered(names)
    root = Path(parent) / package
    if root.exists():
        raise ScaffoldError(f"{root} already exists; choose another name or --dir (nothing is overwritten)")
    rendered = {}
    for source in sorted(TEMPLATES.rglob("*.tmpl")):
        rel = source.relative_to(TEMPLATES).with_suffix("")  # strip .tmpl
        parts = [p.replace("PACKAGE", package).replace("SPEC", names["spec_name"]) for p in rel.parts]
        if parts[-1] == "gitignore":  # a dot-file template would be hidden from package data globs
            parts[-1] = ".gitignore"
        rendered[root.joinpath(*parts)] = Template(source.read_text(encoding="utf-8")).substitute(names)
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(rendered)
