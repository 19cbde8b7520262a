"""Explain a component that refuses the data's images as a data setting to change.

A component checks its input with ``check_shape`` (``lvmgraph.modules``), which raises a
``ShapeMismatch`` carrying the shape it takes, the shape it got and its setting. When the dry run
meets one whose input has exactly the per-sample shape of a data field the failing value is
computed from, the data does not fit the components: ``data_misfit`` turns it into a problem at the
``data:`` entry naming the dataset's settings that set the image size and channels (a dataset
declares them in ``info["shape_settings"]``, e.g. ``{"size": "size", "channels": "channels"}``)
and the values that would fit, with the component's own setting as the alternative.
"""
from __future__ import annotations

from typing import Sequence

import networkx as nx

from ..modules import ShapeMismatch
from ..spec.errors import Problem


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape)


def misfit_field(graph, data_shapes: dict[str, tuple], value: str, got: tuple) -> str | None:
    """The data field that ``value`` is computed from whose per-sample shape is ``got``, if any."""
    ancestors = nx.ancestors(graph.g, value)
    return next((f for f in graph.data_fields if f in ancestors and tuple(data_shapes.get(f, ())) == got), None)


def data_changes(info: dict, expected: tuple, got: tuple) -> list[tuple[str, object]]:
    """``[(data setting, value)]`` that make images of shape ``got`` into ``expected`` (c h w).

    Only what the dataset declares in ``info["shape_settings"]``: ``size`` (the setting of a square
    side; ``min_size``, when given, is the smallest side it accepts, e.g. for ``pad_to``) and
    ``channels`` (a setting name, or ``[name, {channels: value}]`` for a setting such as
    ``mode: grey``).
    """
    settings = info.get("shape_settings") or {}
    out = []
    if len(expected) != 3 or len(got) != 3:
        return out
    if (expected[1:] != got[1:] and "size" in settings and expected[1] == expected[2]
            and expected[1] >= settings.get("min_size", 0)):
        out.append((settings["size"], int(expected[1])))
    if expected[0] != got[0] and "channels" in settings:
        setting = settings["channels"]
        if isinstance(setting, (list, tuple)):
            name, values = setting
            if int(expected[0]) in values:
                out.append((name, values[int(expected[0])]))
        else:
            out.append((setting, int(expected[0])))
    return out


def data_misfit(exp, value: str, cause: BaseException) -> tuple[str, Problem] | None:
    """(the data field, a problem at ``data:``) when ``cause`` says the data's images do not fit
    a component of ``value``'s expression; None when the mismatch is not the data's."""
    if not isinstance(cause, ShapeMismatch) or cause.expected is None or cause.got is None:
        return None
    data = exp.data
    field = misfit_field(exp.graph, data.field_shapes(), value, cause.got)
    if field is None:
        return None
    who = f"components.{cause.component}" if cause.component else "a component"
    message = (f"images {field} are {shape_text(cause.got)} but {who} takes {shape_text(cause.expected)}")
    changes = data_changes(data.info, cause.expected, cause.got)
    alternative = (f"components.{cause.component}.{cause.setting}: {list(cause.got)}"
                   if cause.component and cause.setting else "the components' image settings")
    if changes:
        fix = " and ".join(f"data.{k}: {v}" for k, v in changes)
        hint = f"set {fix}, or change {alternative} (and the other components' image settings to match)"
        path = ("data", changes[0][0])
    else:
        hint = (f"change the data settings that set the image shape, or {alternative} "
                f"(and the other components' image settings to match)")
        path = ("data", "dataset")
    return field, exp.loaded.source.problem(message, path, hint=hint)
