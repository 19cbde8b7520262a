"""``lvmgraph new spec --family F FILE``: a starter spec that extends a registered family template.

The starter holds what a new spec of the family usually sets (name, seed, and the data the
template's graph needs, which the family registers as ``starter=`` with its template), and, as
comments, the template itself, so every key that can be overridden is in view.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

from ruamel.yaml import YAML

from ..plugins.registry import Registry, did_you_mean
from ..spec.schema import NAME_PATTERN
from .errors import ScaffoldError


def family_entry(registry: Registry, family: str):
    entry = registry.get("spec", family)
    if entry is None:
        families = registry.names("spec")
        match = did_you_mean(family, families)
        hint = f"did you mean '{match}'? " if match else ""
        raise ScaffoldError(f"unknown family '{family}'; {hint}families with a template: {', '.join(families)} "
                            f"(see `lvmgraph plugins --kind spec`)")
    return entry


def flow_yaml(data: dict) -> str:
    """Top-level keys one per line, each value in flow style: ``data: {dataset: digits, batch_size: 64}``."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = True
    yaml.sort_base_mapping_type_on_output = False
    yaml.width = 4096  # one line per key; the file stays easy to edit
    lines = []
    for key, value in data.items():
        buf = io.StringIO()
        yaml.dump(value, buf)
        lines.append(f"{key}: {buf.getvalue().strip().removesuffix('...').strip()}")
    return "\n".join(lines) + "\n"


def starter_text(family: str, path: Path, registry: Registry) -> str:
    entry = family_entry(registry, family)
    template = Path(entry.factory)
    name = path.stem
    header = [
        f"{name}: a {family} spec that extends the registered template family:{family}",
        "(copied at the end of this file as comments). Every key below overrides the template's:",
        "mappings merge key by key, lists are replaced whole, `key: null` deletes.",
        f"Check: lvmgraph validate {path}",
        f"Run:   lvmgraph run {path}",
    ]
    body = {"name": name, "extends": f"family:{family}", "seed": 0, **entry.options.get("starter", {})}
    reference = template.read_text(encoding="utf-8").rstrip("\n").splitlines()
    return ("".join(f"# {line}\n" for line in header) + flow_yaml(body)
            + f"\n# ---- the template family:{family} ({template.name}), for reference ----\n"
            + "".join((f"#   {line}" if line else "#") + "\n" for line in reference))


def new_spec(family: str, path: str | Path, registry: Registry | None = None) -> Path:
    """Write a starter spec for ``family`` to ``path`` (never over an existing file)."""
    if registry is None:
        from ..plugins import get_registry
        registry = get_registry()
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise ScaffoldError(f"{path}: a spec file ends in .yaml; e.g. {path.with_suffix('.yaml')}")
    if not re.match(NAME_PATTERN, path.stem):
        raise ScaffoldError(f"{path}: the file name becomes the spec's name, which may hold only letters, "
                            f"digits, '_', '.' and '-'")
    if path.exists():
        raise ScaffoldError(f"{path} already exists; choose another file (nothing is overwritten)")
    text = starter_text(family, path, registry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
