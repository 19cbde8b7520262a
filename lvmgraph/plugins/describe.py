"""Readable descriptions of registered items and pydantic settings, shared by
``lvmgraph plugins --detail`` and the generated reference docs."""
from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from ..data.fill import FROM_DATA
from .registry import Entry


def type_name(annotation) -> str:
    """A readable type: Literal choices spelled out, Annotated unwrapped, containers with their
    items (``list[int]``), unions with ``|``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(a) for a in args)
    if annotation is type(None):
        return "None"
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


def settings_of(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """{field: {type, required, default, description}} of a pydantic model, in declaration order,
    plus ``from_data``, the data fact that fills the setting when unset (``lvmgraph.data.fill``)."""
    out = {}
    for name, f in model.model_fields.items():
        required = f.is_required()
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        out[name] = {"type": type_name(f.annotation), "required": required,
                     # get_default also resolves default_factory (f.default is then PydanticUndefined)
                     "default": None if required else f.get_default(call_default_factory=True),
                     "description": f.description or ""}
        if extra.get(FROM_DATA):
            out[name]["from_data"] = extra[FROM_DATA]
    return out


def describe_entry(entry: Entry) -> dict:
    """A registered item as plain data: kind, name, plugin, docstring and settings."""
    settings = settings_of(entry.params) if entry.params is not None else {}
    return {"kind": entry.kind, "name": entry.name, "plugin": entry.plugin, "doc": entry.doc, "settings": settings}
