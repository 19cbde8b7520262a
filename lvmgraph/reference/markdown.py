"""Small Markdown writers for the generated reference: table cells, YAML-style values,
docstrings with reStructuredText literal blocks, function signatures.

Everything here is deterministic: no object addresses, no absolute paths, no timestamps,
so a page generated twice is byte-for-byte the same.
"""
from __future__ import annotations

import enum
import inspect
import json
import math
import re
from pathlib import PurePath
from typing import Any, Sequence

from pydantic import BaseModel

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")
_YAML_WORDS = {"null", "true", "false", "yes", "no", "on", "off", "y", "n", "~"}


def cell(text: Any) -> str:
    """One table cell: no line breaks, pipes escaped (a Literal type reads ``'a' | 'b'``)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def yaml_value(value: Any) -> str:
    """A default as it is written in a spec: ``[256, 256]``, ``{type: adam}``, ``null``, ``.inf``."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_defaults=True)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return yaml_value(value.value)
    if isinstance(value, float):
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        if math.isnan(value):
            return ".nan"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        plain = _PLAIN.match(value) and value.lower() not in _YAML_WORDS
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, PurePath):
        return yaml_value(value.name)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_value(str(k))}: {yaml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(yaml_value(v) for v in items) + "]"
    return stable_repr(value)


def stable_repr(value: Any) -> str:
    """``repr`` without memory addresses (``<function f at 0x7f...>`` -> ``<function f>``)."""
    return _ADDRESS.sub("", repr(value))


def signature(name: str, fn: Any) -> str:
    """``concat(*xs: torch.Tensor, dim: int = 1) -> torch.Tensor``; annotations as written in the source."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return f"{name}(...)"
    parts, seen_kw_only = [], False
    for p in sig.parameters.values():
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        if p.kind == p.KEYWORD_ONLY and not seen_kw_only:
            parts.append("*")
        seen_kw_only = seen_kw_only or p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)
        text = prefix + p.name
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += (" = " if p.annotation is not p.empty else "=") + stable_repr(p.default)
        parts.append(text)
    out = f"{name}({', '.join(parts)})"
    if sig.return_annotation is not sig.empty:
        out += f" -> {_annotation(sig.return_annotation)}"
    return out


def _annotation(annotation: Any) -> str:
    if isinstance(annotation, str):  # `from __future__ import annotations`: the source text
        return annotation
    return inspect.formatannotation(annotation)


def docstring(text: str) -> str:
    """A docstring as Markdown: reStructuredText literal blocks (a paragraph ending in ``::``
    followed by an indented block, as the hook examples are written) become fenced code."""
    lines = inspect.cleandoc(text or "").splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line[:-1] if line.rstrip().endswith("::") else line)
        i += 1
        if not line.rstrip().endswith("::"):
            continue
        if out[-1].strip() == "":  # a bare "::" line
            out.pop()
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        while block and not block[0].strip():
            block.pop(0)
        if block:
            indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
            out += ["", "```python", *[b[indent:] for b in block], "```", ""]
    return "\n".join(out).strip()


def first_paragraph(text: str) -> str:
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def first_sentence(text: str) -> str:
    """The first sentence of the first paragraph (a sentence ends at a full stop before a capital)."""
    return re.split(r"(?<=\.)\s+(?=[A-Z])", first_paragraph(text), maxsplit=1)[0]


def anchor(name: str) -> str:
    """The anchor GitHub gives a heading ``## `name` ``: lower case, punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", name.lower()).replace(" ", "-")
