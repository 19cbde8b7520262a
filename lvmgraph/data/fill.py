"""Component settings that a spec may leave unset: ``prepare`` fills them from the data.

A parameter model marks such a setting with ``from_data(fact, description=...)``, e.g. a network's
image shape: ``out_shape: list[int] | None = from_data("image_shape", description=...)``. When the
spec does not set it, ``fill_from_data`` computes the fact from the loaded data and validates the
entry again with the value, so the model's own checks apply to it (a problem then also says where
the value came from and which data settings change it). A value written in the spec always wins;
the filled one is recorded in the run's spec.yaml like any other setting, so a resumed or
re-opened run builds the same component without looking at the data again.

Facts:

- ``image_shape``: the per-sample shape [c, h, w] of the data's images (its floating-point fields
  with three axes, e.g. ``x``; several image fields must agree).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..spec.load import pydantic_problems
from .base import DatasetBundle
from .fit import shape_text

FROM_DATA = "from_data"  # the json_schema_extra key of a setting filled from the data


def from_data(fact: str, *, description: str) -> Any:
    """A pydantic field that defaults to the data's ``fact`` (one of ``FACTS``) when left unset."""
    if fact not in FACTS:
        raise ValueError(f"unknown data fact '{fact}'; known: {', '.join(FACTS)}")
    return Field(None, description=description, json_schema_extra={FROM_DATA: fact})


def fact_of(model: type[BaseModel], setting: str) -> str | None:
    """The data fact that fills ``setting`` of ``model`` when it is unset, or None."""
    extra = model.model_fields[setting].json_schema_extra
    return extra.get(FROM_DATA) if isinstance(extra, dict) else None


@dataclass(frozen=True)
class Filled:
    """A setting filled from the data: its value and where the value came from, for messages."""

    setting: str
    fact: str
    value: Any
    source: str  # e.g. "the data's images x (1×64×64)"


def image_shape(data: DatasetBundle) -> tuple[list[int] | None, str]:
    """(the images' shape [c, h, w], a description of its origin), or (None, why there is none)."""
    shapes = {f: s for f, s in data.field_shapes().items() if len(s) == 3 and data.train[f].is_floating_point()}
    if not shapes:
        fields = ", ".join(f"{f} {shape_text(s) or 'scalar'}" for f, s in data.field_shapes().items())
        return None, f"the data has no images (fields {fields})"
    if len(set(shapes.values())) > 1:
        return None, "the data's images differ in shape (" + ", ".join(f"{f} {shape_text(s)}"
                                                                         for f, s in shapes.items()) + ")"
    shape = next(iter(shapes.values()))
    return [int(s) for s in shape], f"the data's images {', '.join(shapes)} ({shape_text(shape)})"


FACTS = {"image_shape": image_shape}  # fact -> fn(data) -> (value or None, its origin or why there is none)


def shape_settings_text(info: dict) -> str:
    """The data settings that set the images' shape (``info["shape_settings"]``), e.g. 'data.size'."""
    settings = info.get("shape_settings") or {}
    names = [settings[k] if isinstance(settings[k], str) else settings[k][0] for k in ("size", "channels")
             if k in settings]
    return " / ".join(f"data.{n}" for n in names) or "the data settings that set the images' shape"


def fill_from_data(loaded, data: DatasetBundle) -> tuple[dict[str, list[Filled]], list]:
    """Fill every unset ``from_data`` setting of the spec's components, in ``loaded.params``.

    Returns ({component: [Filled, ...]}, problems): a problem when the data has no such fact or the
    filled entry fails its model's validation.
    """
    facts: dict[str, tuple[Any, str]] = {}
    filled: dict[str, list[Filled]] = {}
    problems = []
    for name in loaded.spec.components:
        key = ("components", name)
        params = loaded.params.get(key)
        if params is None:
            continue
        model = type(params)
        unset = {s: fact for s in model.model_fields if (fact := fact_of(model, s)) and getattr(params, s) is None}
        if not unset:
            continue
        done = []
        for setting, fact in unset.items():
            if fact not in facts:
                facts[fact] = FACTS[fact](data)
            value, source = facts[fact]
            if value is None:
                problems.append(loaded.source.problem(
                    f"{setting} is not set and cannot be taken from the data: {source}", key,
                    hint=f"set components.{name}.{setting}"))
            else:
                done.append(Filled(setting, fact, value, source))
        if len(done) < len(unset):
            continue
        settings = params.model_dump(exclude_unset=True) | {f.setting: f.value for f in done}
        try:
            loaded.params[key] = model.model_validate(settings)
        except ValidationError as exc:
            problems += refused(loaded, name, done, data, pydantic_problems(exc, model, key, loaded.source))
            continue
        filled[name] = done
    return filled, problems


def refused(loaded, name: str, done: list[Filled], data: DatasetBundle, problems: list) -> list:
    """The problems of a component that refuses the values filled from the data, reported at the
    data setting that makes the images (the values' origin) when the dataset declares one."""
    size = (data.info.get("shape_settings") or {}).get("size")
    taken = " and ".join(f.setting for f in done)
    out = []
    for p in problems:
        message = p.message.removeprefix("Value error, ")
        if p.path == ("components", name):  # the model's own check of the filled values
            p = loaded.source.problem(f"components.{name} takes its {taken} from {done[0].source}: {message}",
                                      ("data", size) if size else p.path)
        out.append(replace(p, hint=f"change the images with {shape_settings_text(data.info)}, "
                                   f"or set components.{name}.{done[0].setting}"))
    return out
