"""YAML 1.2 loading that keeps line numbers, rejects duplicate keys and flags YAML 1.1 traps."""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import Problem, SourceMap, SpecError

# Words YAML 1.1 (PyYAML) reads as booleans; YAML 1.2 (used here) keeps them as strings.
YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n", "true", "false"}


def _loader() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _plain(node: Any, path: tuple, file: str, smap: SourceMap) -> Any:
    """Convert ruamel's commented containers to plain dicts/lists, recording each key's line."""
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            line = node.lc.key(key)[0] + 1
            smap.entries[path + (key,)] = (file, line)
            out[key] = _plain(value, path + (key,), file, smap)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for i, value in enumerate(node):
            smap.entries[path + (i,)] = (file, node.lc.item(i)[0] + 1)
            out.append(_plain(value, path + (i,), file, smap))
        return out
    if isinstance(node, float):
        return float(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, str):
        return str(node)
    return node


def parse_yaml(text: str, file: str = "<string>") -> tuple[Any, SourceMap]:
    smap = SourceMap({(): (file, 1)})
    try:
        node = _loader().load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or str(exc)).strip()
        if "duplicate key" in problem or type(exc).__name__ == "DuplicateKeyError":
            found = re.search(r'duplicate key "(.*?)"', problem)
            key = f"'{found.group(1)}' " if found else ""
            problem = (f"the key {key}appears twice in one mapping "
                       "(YAML keeps only one silently elsewhere; here it is an error)")
        raise SpecError([Problem(f"invalid YAML: {problem}", (), file=file, line=line,
                                 hint="fix the YAML syntax at this line")], file=file) from None
    except YAMLError as exc:
        raise SpecError([Problem(f"invalid YAML: {exc}", (), file=file)], file=file) from None
    return _plain(node, (), file, smap), smap


def load_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(f"no such file: {path}", ())], file=str(path)) from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise SpecError([Problem(f"cannot read {path}: {exc}", ())], file=str(path)) from None
    return parse_yaml(text, str(path))


def parse_scalar(text: str) -> Any:
    """Parse a command-line value the way YAML would (``3`` int, ``1e-3`` float, ``[1, 2]`` list)."""
    try:
        value = _loader().load(io.StringIO(text))
    except YAMLError:
        return text
    return _plain(value, (), "--set", SourceMap())


def dump_yaml(data: Any, path: str | Path, header: str | None = None) -> None:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    buf = io.StringIO()
    if header:
        buf.write("".join(f"# {line}\n" for line in header.splitlines()))
    yaml.dump(data, buf)
    Path(path).write_text(buf.getvalue(), encoding="utf-8")
