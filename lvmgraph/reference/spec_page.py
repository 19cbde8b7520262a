"""docs/reference/spec.md: the hand-written guide (``spec_guide.md``) around a table of every
section and key of the spec schema (``lvmgraph.spec.schema``), generated from the pydantic models."""
from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from ..plugins.describe import settings_of, type_name
from ..spec.schema import Spec, Typed
from .markdown import anchor, docstring, table, yaml_value

GUIDE = Path(__file__).with_name("spec_guide.md")
PLACEHOLDER = "{{keys}}"
#: where the settings of a section's extra keys are documented
EXTRAS = {"data": "the dataset's settings: see [datasets.md](datasets.md)"}
TYPED = {"components": "[components.md](components.md) and [priors.md](priors.md)",
         "schedules": "[schedules.md](schedules.md)", "optimizer": "[optimizers.md](optimizers.md)"}


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``list[PhaseSpec] | None`` -> [PhaseSpec])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _is_list(annotation) -> bool:
    origin = typing.get_origin(annotation)
    return origin is list or any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))


def _is_mapping(annotation) -> bool:
    origin = typing.get_origin(annotation)
    return origin is dict or any(_is_mapping(a) for a in typing.get_args(annotation) if a is not type(None))


def _type(annotation) -> str:
    """The type with the schema's model classes (an implementation detail) shown as ``mapping``."""
    text = type_name(annotation)
    for m in _models_in(annotation):
        text = re.sub(rf"\b{m.__name__}\b", "mapping", text)
    return text


def sections(model: type[BaseModel] = Spec, path: str = "") -> list[tuple[str, type[BaseModel]]]:
    """[(key path, model)] for the top level and every nested model, depth first in declaration
    order; a model met again (``Typed``) is listed once, at its first path."""
    out: list[tuple[str, type[BaseModel]]] = [(path, model)]
    seen = {model}

    def walk(m: type[BaseModel], prefix: str) -> None:
        for name, f in m.model_fields.items():
            for sub in _models_in(f.annotation):
                if sub in seen:
                    continue
                seen.add(sub)
                key = f"{prefix}{name}" + ("[i]" if _is_list(f.annotation) else ".NAME" if _is_mapping(f.annotation) else "")
                out.append((key, sub))
                walk(sub, key + ".")
    walk(model, path)
    return out


def _section(path: str, model: type[BaseModel], paths: dict) -> str:
    heading = f"`{path}`" if path else "Top level"
    out = [f"### {heading}", ""]
    own = model.__dict__.get("__doc__")
    if own and model is not Spec:
        out += [docstring(own), ""]
    rows = []
    for name, s in settings_of(model).items():
        annotation = model.model_fields[name].annotation
        nested = [paths[m] for m in _models_in(annotation) if m in paths]
        if s["required"]:
            default = "required"
        elif isinstance(s["default"], BaseModel):  # a whole section: its keys have the defaults
            default = "see below"
        else:
            default = f"`{yaml_value(s['default'])}`"
        description = s["description"]
        if nested:
            description += f" (keys: [`{nested[0]}`](#{anchor(nested[0])}))"
        rows.append([f"`{name}`", f"`{_type(annotation)}`", default, description])
    out.append(table(["key", "type", "default", "description"], rows))
    extra = model.model_config.get("extra")
    last = path.rsplit(".", 1)[-1].split("[")[0] if path else ""
    if model is Typed:
        out += ["", "Every other key is a setting of the registered type, validated by its parameter model: "
                    + ", ".join(TYPED.values()) + "."]
    elif extra == "allow":
        out += ["", f"Every other key is {EXTRAS.get(last, 'passed to the plugin')}."]
    return "\n".join(out)


def keys_reference() -> str:
    found = sections()
    paths = {m: p for p, m in found}
    typed_at = ", ".join(f"`{p}`" for p in ("components.NAME", "schedules.NAME", "phases[i].optimizer"))
    out = [f"Typed entries (`{{type: NAME, ...settings}}`) appear at {typed_at}.", ""]
    for path, model in found:
        out += [_section(path, model, paths), ""]
    return "\n".join(out).rstrip()


def spec_page() -> str:
    guide = GUIDE.read_text(encoding="utf-8")
    if PLACEHOLDER not in guide:
        raise ValueError(f"{GUIDE} has no {PLACEHOLDER} line where the generated key tables go")
    return guide.replace(PLACEHOLDER, keys_reference()).rstrip() + "\n"
