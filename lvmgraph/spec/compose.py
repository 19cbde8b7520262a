"""Spec composition: ``extends`` (deep merge), ``imports`` (namespaced parts), ``--set`` overrides."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..graph import expr
from .errors import Problem, SourceMap, SpecError, did_you_mean_hint, missing_file_hint
from .yaml_io import load_yaml, parse_scalar

TEMPLATE_PREFIX = "family:"


def deep_merge(base: Any, override: Any, base_map: SourceMap, over_map: SourceMap, path: tuple = ()) -> Any:
    """Mappings merge key by key; anything else is replaced; a key set to null is removed.

    A typed entry whose ``type`` changes (``prior: {type: swiss_roll}`` over a uniform prior), or a
    ``data`` section whose ``dataset`` changes, is replaced whole: the old settings mean nothing
    to the new type."""
    retyped = isinstance(base, dict) and isinstance(override, dict) and any(
        key in override and key in base and override[key] != base[key] for key in ("type", "dataset"))
    if retyped or not (isinstance(base, dict) and isinstance(override, dict)):
        base_map.drop(path)
        base_map.update(SourceMap({k: v for k, v in over_map.entries.items() if k[:len(path)] == path}))
        return copy.deepcopy(override)
    out = dict(base)
    for key, value in override.items():
        sub = path + (key,)
        if value is None:
            out.pop(key, None)
            base_map.drop(sub)
        elif key in out:
            out[key] = deep_merge(out[key], value, base_map, over_map, sub)
        else:
            out[key] = copy.deepcopy(value)
            base_map.update(SourceMap({k: v for k, v in over_map.entries.items() if k[:len(sub)] == sub}))
    return out


def load_composed(path: str | Path, templates: Mapping[str, Path] | None = None,
                  _seen: tuple = ()) -> tuple[dict, SourceMap]:
    """Load a spec file with its ``extends`` chain and ``imports`` resolved; ``templates`` maps
    the names usable as ``family:NAME`` to their files."""
    path = Path(path)
    key = path.resolve()
    if key in _seen:
        chain = " -> ".join(str(p) for p in _seen + (key,))
        raise SpecError([Problem(f"extends/imports loop: {chain}", ("extends",))], file=str(path))
    raw, smap = load_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError([Problem("a spec must be a mapping of keys (name, data, components, graph, phases, ...)",
                                 ())], file=str(path))
    seen = _seen + (key,)

    def resolve_ref(ref: Any, where: tuple) -> Path:
        if not isinstance(ref, str):
            raise SpecError([smap.problem("must be a file path or family:NAME", where)], file=str(path))
        if ref.startswith(TEMPLATE_PREFIX):
            name = ref[len(TEMPLATE_PREFIX):]
            found = (templates or {}).get(name)
            if found is None:
                hint = did_you_mean_hint(name, templates or ()) or "see `lvmgraph plugins` for registered specs"
                raise SpecError([smap.problem(f"no template spec named {name!r}", where, hint=hint)], file=str(path))
            return Path(found)
        target = (path.parent / ref)
        if not target.exists():
            raise SpecError([smap.problem(f"no such file {ref!r} (relative to {path.parent})", where,
                                          hint=missing_file_hint(target))], file=str(path))
        return target

    if "imports" in raw:
        imports = raw.pop("imports")
        if not isinstance(imports, dict):
            raise SpecError([smap.problem("imports must map a prefix to a spec file: {vae: parts/vae.yaml}",
                                          ("imports",))], file=str(path))
        for prefix, ref in imports.items():
            part, part_map = load_composed(resolve_ref(ref, ("imports", prefix)), templates, seen)
            _merge_import(raw, smap, str(prefix), part, part_map)
        smap.drop(("imports",))

    if "extends" in raw:
        bases = raw.pop("extends")
        smap_ext = smap
        merged: dict = {}
        merged_map = SourceMap()
        for i, ref in enumerate(bases if isinstance(bases, list) else [bases]):
            where = ("extends", i) if isinstance(bases, list) else ("extends",)
            base, base_map = load_composed(resolve_ref(ref, where), templates, seen)
            merged = deep_merge(merged, base, merged_map, base_map)
        smap_ext.drop(("extends",))
        merged = deep_merge(merged, raw, merged_map, smap_ext)
        merged_map.entries.setdefault((), smap.entries.get((), (str(path), 1)))
        return merged, merged_map
    return raw, smap


def _merge_import(raw: dict, smap: SourceMap, prefix: str, part: dict, part_map: SourceMap) -> None:
    """Add a part's components, schedules and graph under ``prefix.``, rewriting its expressions."""
    sections = {s: part.get(s) or {} for s in ("components", "schedules", "graph")}
    for section, entries in sections.items():
        if not isinstance(entries, dict):
            raise SpecError([part_map.problem(f"'{section}' must be a mapping of names", (section,))],
                            file=part_map.locate(())[0])
    own = set().union(*sections.values())
    mapping = {name: f"{prefix}.{name}" for name in own}
    for section, entries in sections.items():
        if not entries:
            continue
        if raw.get(section) is None:
            raw[section] = {}
        target = raw[section]
        if not isinstance(target, dict):
            continue  # validation reports the importing spec's malformed section at its line
        for name, value in entries.items():
            new_name = mapping[name]
            if new_name in target:
                continue  # the importing spec overrides the part's entry
            if section == "graph":
                try:
                    value = expr.unparse(expr.rename(expr.parse(str(value)), mapping, set(sections["components"])))
                except expr.ExprError:
                    pass  # left as written; the compiler reports it with its location
            target[new_name] = value
            for k, v in part_map.entries.items():
                if k[:2] == (section, name):
                    smap.entries[(section, new_name) + k[2:]] = v


def apply_overrides(raw: dict, smap: SourceMap, overrides: Sequence[str]) -> dict:
    """``key.path=value`` assignments; list items by index (``phases.0.optimizer.lr=1e-4``)."""
    raw = copy.deepcopy(raw)
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            problems.append(Problem(f"--set {item!r}: write key.path=value", ("--set",), file="--set"))
            continue
        parts: list = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
        # dotted component names (vae.encoder) are kept together when such a key exists
        node = raw
        i = 0
        ok = True
        while i < len(parts) - 1:
            part = parts[i]
            if isinstance(node, dict):
                joined = next((".".join(map(str, parts[i:j])) for j in range(len(parts) - 1, i, -1)
                               if ".".join(map(str, parts[i:j])) in node), None)
                if joined is not None and joined != part:
                    parts[i:i + joined.count(".") + 1] = [joined]
                    part = joined
                if part not in node:
                    smap.entries[tuple(parts[:i + 1])] = ("--set", None)
                node = node.setdefault(part, {})
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                hint = (f"the list has {len(node)} item{'s' if len(node) != 1 else ''}, numbered from 0"
                        if isinstance(node, list) else None)
                problems.append(Problem(f"--set {key}: no list item or mapping at {part!r}", tuple(parts[:i + 1]),
                                        file="--set", hint=hint))
                ok = False
                break
            i += 1
        if not ok:
            continue
        last = parts[-1]
        value = parse_scalar(text)
        if isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            problems.append(Problem(f"--set {key}: cannot assign here", tuple(parts), file="--set"))
            continue
        smap.drop(tuple(parts))  # locations of what the old value held no longer apply
        smap.entries[tuple(parts)] = ("--set", None)
    if problems:
        raise SpecError(problems, file="--set")
    return raw
