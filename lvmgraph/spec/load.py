"""Load a spec file: compose, apply overrides, validate the structure and every plugin entry."""
from __future__ import annotations

import importlib.util
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, ValidationError

from ..plugins.registry import Registry, did_you_mean
from .compose import apply_overrides, load_composed
from .errors import Problem, SourceMap, SpecError
from .schema import LOADER_KEYS, RESULT_NAME_KEY, Spec
from .yaml_io import YAML11_BOOLEANS


@dataclass
class LoadedSpec:
    """A validated spec with the plugin settings of each entry validated by its own model."""

    path: str
    raw: dict
    source: SourceMap
    spec: Spec
    params: dict[tuple, BaseModel] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # errors and warnings found after parsing

    def raise_if_errors(self) -> None:
        if any(p.severity == "error" for p in self.problems):
            raise SpecError(sorted(self.problems, key=lambda p: (p.file or "", p.line or 0)), file=self.path)

    def component_params(self, name: str) -> BaseModel:
        return self.params[("components", name)]

    def resolved(self) -> dict:
        """The spec with every default filled in: what a run directory records as spec.yaml."""
        out = self.spec.model_dump(mode="json")
        for (section, *rest), params in self.params.items():
            settings = params.model_dump(mode="json")
            if section in ("components", "schedules"):
                out[section][rest[0]] = {"type": out[section][rest[0]]["type"], **settings}
            elif section == "phases":
                out["phases"][rest[0]]["optimizer"] = {"type": out["phases"][rest[0]]["optimizer"]["type"], **settings}
            elif section == "data":
                out["data"] = {k: out["data"][k] for k in LOADER_KEYS} | settings
        return out


def _unwrap(annotation: Any) -> list:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [a for arg in typing.get_args(annotation) for a in _unwrap(arg)]
    return [annotation]


def fields_at(model: type[BaseModel], loc: Sequence) -> list[str]:
    """The field names valid at ``loc`` inside ``model`` (for did-you-mean on unknown keys)."""
    candidates: list = [model]
    for part in loc:
        nxt = []
        for ann in candidates:
            for a in _unwrap(ann):
                origin, args = typing.get_origin(a), typing.get_args(a)
                if isinstance(a, type) and issubclass(a, BaseModel) and isinstance(part, str) and part in a.model_fields:
                    nxt.append(a.model_fields[part].annotation)
                elif origin in (list, tuple) and isinstance(part, int) and args:
                    nxt.append(args[0])
                elif origin is dict and args:
                    nxt.append(args[1])
        candidates = nxt
    names = []
    for ann in candidates:
        for a in _unwrap(ann):
            if isinstance(a, type) and issubclass(a, BaseModel):
                names += list(a.model_fields)
    return names


def written_loc(model: type[BaseModel], loc: Sequence, *, unknown_key: bool = False) -> tuple:
    """An error's ``loc`` as keys of the spec: without the labels pydantic adds for validators and
    union members (``list[int]``, ``function-after``, a model's class name, a discriminator tag).
    ``unknown_key``: the last part is a key the model does not know (keep it)."""
    out: list = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and ("[" in part or part == "function-after"):
            continue
        if isinstance(part, str) and (i < len(loc) - 1 or not unknown_key):
            names = fields_at(model, out)
            if names and part not in names:  # a label between a union field and its member's keys
                continue
        out.append(part)
    return tuple(out)


def pydantic_problems(exc: ValidationError, model: type[BaseModel], prefix: tuple, source: SourceMap,
                      selector: str | None = None) -> list[Problem]:
    """Each pydantic error as a Problem at the key the user wrote, with the fix. ``selector`` is the key
    that chose ``model`` (``type``): valid beside the model's fields, so a misspelling of it is suggested."""
    problems = []
    for err in exc.errors():
        loc = written_loc(model, err["loc"], unknown_key=err["type"] == "extra_forbidden")
        path = prefix + loc
        msg, hint = err["msg"], None
        if err["type"] == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            allowed = fields_at(model, loc[:-1])
            match = did_you_mean(key, allowed + ([selector] if selector and len(loc) == 1 else []))
            msg = f"unknown setting '{key}'"
            hint = f"did you mean '{match}'?" if match else (f"allowed: {', '.join(allowed)}" if allowed else None)
        elif err["type"] == "missing":
            msg = "required setting is missing"
        elif isinstance(err.get("input"), str) and err["input"].lower() in YAML11_BOOLEANS and "bool" in err["type"]:
            hint = "write true or false (YAML 1.2 reads yes/no/on/off as strings)"
        elif isinstance(err.get("input"), str) and err["type"].startswith(("float", "int")):
            hint = "write a number without quotes" if _is_number(err["input"]) else (
                "write a whole number, e.g. 1000" if err["type"].startswith("int") else "write a number, e.g. 1e-3")
        elif err["type"] == "string_type" and isinstance(err.get("input"), (int, float, bool)):
            hint = "YAML read this as a number or boolean; put it in quotes to make it text"
        problems.append(source.problem(msg, path, hint=hint))
    return problems


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# Strings pydantic would quietly turn into a bool, though YAML 1.2 (unlike 1.1) reads them as text.
_YAML11_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n"}


def string_bool_problems(model: type[BaseModel], value: Any, prefix: tuple, source: SourceMap) -> list[Problem]:
    """A bool field written ``no``/``yes``/``on``/``off``: an error with the fix, never a silent coercion."""
    problems: list[Problem] = []
    if not isinstance(value, dict):
        return problems
    for key, item in value.items():
        info = model.model_fields.get(key) if isinstance(key, str) else None
        if info is None:
            continue
        kinds = _unwrap(info.annotation)
        if isinstance(item, str) and bool in kinds and str not in kinds:
            if item.lower() in _YAML11_BOOL_WORDS:
                problems.append(source.problem(
                    f"expected true or false, got the string '{item}'", prefix + (key,),
                    hint="write true or false (YAML 1.2 reads yes/no/on/off as strings)"))
            continue
        for kind in kinds:
            args = typing.get_args(kind)
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                problems += string_bool_problems(kind, item, prefix + (key,), source)
            elif typing.get_origin(kind) is list and args and isinstance(args[0], type) \
                    and issubclass(args[0], BaseModel) and isinstance(item, list):
                for i, sub in enumerate(item):
                    problems += string_bool_problems(args[0], sub, prefix + (key, i), source)
    return problems


def importable(module: str) -> bool:
    """Whether ``import module`` would find it, without importing it (a plugin's ``requires=``)."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: imports of it are blocked
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _validate_entry(registry: Registry, kind: str, label: str, type_name: str, settings: dict, path: tuple,
                    source: SourceMap, params: dict, key: tuple, problems: list, type_path: tuple | None = None):
    entry = registry.get(kind, type_name) if kind != "component" else (
        registry.get("component", type_name))
    if entry is None:
        match = did_you_mean(type_name, registry.names(kind))
        hint = f"did you mean '{match}'?" if match else None
        see = f"see `lvmgraph plugins --kind {kind}`"
        problems.append(source.problem(f"unknown {label} '{type_name}'", type_path or path + ("type",),
                                       hint=f"{hint} ({see})" if hint else see))
        return None
    missing = [m for m in entry.options.get("requires", ()) if not importable(m)]
    if missing:
        problems.append(source.problem(
            f"{label} '{type_name}' needs the Python package{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}, which {'are' if len(missing) > 1 else 'is'} not installed",
            type_path or path + ("type",), hint=f"pip install {' '.join(missing)}"))
    model = entry.params
    if model is None:
        if settings:
            problems.append(source.problem(f"{label} '{type_name}' takes no settings", path))
        return entry
    problems.extend(string_bool_problems(model, settings, path, source))
    try:
        params[key] = model.model_validate(settings)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, model, path, source, selector="type" if type_path is None else None))
    return entry


def _loader_key_typos(settings: dict, entry, source: SourceMap, problems: list) -> dict:
    """Report a dataset setting that is a misspelled loader key (``data.streem``) with the loader
    key it means (the dataset's own model would not suggest it); the others go on to the dataset."""
    own = entry.params.model_fields if entry is not None and entry.params is not None else {}
    out = {}
    for key, value in settings.items():
        match = did_you_mean(str(key), [*LOADER_KEYS, *own]) if key not in own else None
        if match in LOADER_KEYS:
            problems.append(source.problem(f"unknown setting '{key}'", ("data", key), hint=f"did you mean '{match}'?"))
        else:
            out[key] = value
    return out


def _stream_problems(data: dict, entry, registry: Registry, source: SourceMap) -> list[Problem]:
    """``data.stream`` on a dataset that cannot stream, ``data.workers`` without streaming."""
    problems = []
    stream, workers = data.get("stream", False), data.get("workers", 0)
    if stream is True and entry is not None and "stream" not in entry.options:
        able = sorted(e.name for e in registry.entries("dataset") if "stream" in e.options)
        problems.append(source.problem(
            f"dataset '{entry.name}' cannot stream: it is loaded into memory whole", ("data", "stream"),
            hint=f"remove data.stream (or use a dataset that streams: {', '.join(able) or 'none installed'})"))
    if isinstance(workers, int) and not isinstance(workers, bool) and workers > 0 and stream is not True:
        problems.append(source.problem(
            f"data.workers: {workers} decodes a streamed dataset, but data.stream is off", ("data", "workers"),
            hint="set data.stream: true to decode the training data in worker processes, or remove data.workers"))
    return problems


def _registry_problems(raw: dict, registry: Registry, source: SourceMap, params: dict) -> list[Problem]:
    """Check every plugin-typed entry against its registered parameter model (works on the raw dict,
    so these problems are reported even when the file has structural errors too)."""
    problems: list[Problem] = []

    def typed(section_items, kind, label, prefix):
        for name, entry in section_items:
            if isinstance(entry, dict) and isinstance(entry.get("type"), str):
                settings = {k: v for k, v in entry.items() if k != "type"}
                _validate_entry(registry, kind, label, entry["type"], settings, prefix + (name,),
                                source, params, (prefix[0], name), problems)

    for section, kind in (("components", "component"), ("schedules", "schedule")):
        if isinstance(raw.get(section), dict):
            typed(raw[section].items(), kind, kind, (section,))
    for i, phase in enumerate(raw.get("phases") or [] if isinstance(raw.get("phases"), list) else []):
        opt = phase.get("optimizer", {"type": "adam"}) if isinstance(phase, dict) else None
        if isinstance(opt, dict) and isinstance(opt.get("type", "adam"), str):
            settings = {k: v for k, v in opt.items() if k != "type"}
            _validate_entry(registry, "optimizer", "optimizer", opt.get("type", "adam"), settings,
                            ("phases", i, "optimizer"), source, params, ("phases", i), problems)
    data = raw.get("data", {})
    if isinstance(data, dict) and isinstance(data.get("dataset", "digits"), str):
        settings = {k: v for k, v in data.items() if k not in LOADER_KEYS}
        entry = registry.get("dataset", data.get("dataset", "digits"))
        settings = _loader_key_typos(settings, entry, source, problems)
        entry = _validate_entry(registry, "dataset", "dataset", data.get("dataset", "digits"), settings, ("data",),
                                source, params, ("data",), problems, type_path=("data", "dataset"))
        problems.extend(_stream_problems(data, entry, registry, source))
    metrics = (raw.get("eval") or {}).get("metrics") if isinstance(raw.get("eval"), dict) else None
    for i, item in enumerate(metrics or [] if isinstance(metrics, list) else []):
        if isinstance(item, str):
            name, settings = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            (name, settings), = item.items()
            settings = settings or {}
        else:
            continue
        if isinstance(settings, dict):
            # `as:` names the entry's result (EvalSpec); it is not a setting of the metric
            result = settings.get(RESULT_NAME_KEY, name)
            settings = {k: v for k, v in settings.items() if k != RESULT_NAME_KEY}
            _validate_entry(registry, "metric", "metric", str(name), settings, ("eval", "metrics", i, name),
                            source, params, ("eval", str(result)), problems, type_path=("eval", "metrics", i))
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    loggers = train.get("loggers", ["tensorboard"])
    for i, item in enumerate(loggers if isinstance(loggers, list) else []):
        if isinstance(item, str):
            name, settings = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            (name, settings), = item.items()
        else:
            continue  # the schema reports the entry's form
        if isinstance(name, str) and isinstance(settings or {}, dict):
            _validate_entry(registry, "logger", "logger", name, settings or {}, ("train", "loggers", i, name),
                            source, params, ("loggers", name), problems, type_path=("train", "loggers", i))
    return problems


def validate_raw(raw: dict, source: SourceMap, registry: Registry, path: str) -> LoadedSpec:
    """Structure and plugin settings. Raises SpecError when the structure itself is invalid;
    otherwise returns the LoadedSpec with any plugin-entry problems in ``problems``."""
    params: dict[tuple, BaseModel] = {}
    problems = _registry_problems(raw, registry, source, params) + string_bool_problems(Spec, raw, (), source)
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        found = pydantic_problems(exc, Spec, (), source) + problems
        raise SpecError(sorted(found, key=lambda p: (p.file or "", p.line or 0)), file=path) from None
    return LoadedSpec(path=path, raw=raw, source=source, spec=spec, params=params, problems=problems)


def load_spec(path: str | Path, overrides: Sequence[str] = (), registry: Registry | None = None) -> LoadedSpec:
    """Read, compose and validate a spec; raises SpecError listing every problem found."""
    if registry is None:
        from ..plugins import get_registry
        registry = get_registry()

    templates = {name: Path(registry.get("spec", name).factory) for name in registry.names("spec")}
    raw, source = load_composed(path, templates)
    if overrides:
        raw = apply_overrides(raw, source, overrides)
    return validate_raw(raw, source, registry, str(path))


def load_spec_dict(raw: dict, registry: Registry | None = None, path: str = "<dict>") -> LoadedSpec:
    """Validate an in-memory spec (Python API, tests)."""
    if registry is None:
        from ..plugins import get_registry
        registry = get_registry()
    return validate_raw(raw, SourceMap({(): (path, None)}), registry, path)
