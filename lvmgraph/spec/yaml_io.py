"""YAML 1.2 loading that keeps line numbers, rejects duplicate keys and flags YAML 1.1 traps.

Beyond the parser: every document is read with the YAML 1.2 core schema whatever its ``%YAML``
line says (``yes``/``no``/``on``/``off`` and dates stay strings, ``1e-3`` is a number); tags
other than the core ones (``!!python/...``, ``!!binary``, ``!custom``), a list or mapping used as
a key, aliases that refer to themselves or expand to huge documents, and deep nesting are
problems with their line, as are tabs (with a hint) and syntax errors.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar, merge_attrib
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import VersionedResolver, implicit_resolvers

from .errors import Problem, SourceMap, SpecError, missing_file_hint

# Words YAML 1.1 (PyYAML) reads as booleans; YAML 1.2 (used here) keeps them as strings.
YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n", "true", "false"}

_CORE = "tag:yaml.org,2002:"
# Tags a spec may carry: what the 1.2 core schema resolves plain scalars to, ``<<`` merge keys, and
# the same tags written explicitly (``!!str 1e3``). Anything else would construct a Python object.
ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}
MAX_DEPTH = 64          # real specs nest about 6 levels
MAX_VALUES = 100_000    # after expanding aliases; real specs hold a few hundred


class _Yaml12Resolver(VersionedResolver):
    """The YAML 1.2 core schema for every document: no ``%YAML 1.1`` switch to yes/no booleans, and no
    timestamps (ruamel's extension), so ``name: 2024-01-01`` is the string YAML 1.2 says it is."""

    @property
    def processing_version(self) -> Any:
        return (1, 2)

    @property
    def versioned_resolver(self) -> Any:
        if (1, 2) not in self._version_implicit_resolver:
            for versions, tag, regexp, first in implicit_resolvers:
                if (1, 2) in versions and tag in ALLOWED_TAGS:
                    self.add_version_implicit_resolver((1, 2), tag, regexp, first)
        return self._version_implicit_resolver[(1, 2)]


def _loader() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Resolver = _Yaml12Resolver
    yaml.allow_duplicate_keys = False
    return yaml


def _key_line(node: CommentedMap, key: Any) -> int | None:
    """0-based line of ``key``: its own, or, for a key brought in by ``<<: *anchor``, where the anchor wrote it."""
    try:
        return int(node.lc.key(key)[0])
    except (KeyError, TypeError, IndexError):
        pass
    for item in getattr(node, merge_attrib, None) or []:
        source = item[1] if isinstance(item, tuple) else item
        if isinstance(source, CommentedMap) and key in source:
            return _key_line(source, key)
    return node.lc.line if isinstance(node.lc.line, int) else None


def _plain(node: Any, path: tuple, file: str, smap: SourceMap) -> Any:
    """Convert ruamel's commented containers to plain dicts/lists, recording each key's line."""
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            line = _key_line(node, key)
            smap.entries[path + (key,)] = (file, line + 1 if line is not None else None)
            out[key] = _plain(value, path + (key,), file, smap)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for i, value in enumerate(node):
            smap.entries[path + (i,)] = (file, node.lc.item(i)[0] + 1)
            out.append(_plain(value, path + (i,), file, smap))
        return out
    if isinstance(node, TaggedScalar):  # only ``!!str`` reaches here (other tags are problems)
        return str(node.value)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, str):
        return str(node)
    return node


def _tag(node: Any) -> str:
    tag = getattr(node.tag, "value", None) or node.tag
    return str(tag)


def _node_problems(root: Any, file: str) -> list[Problem]:
    """What the parser accepts but a spec must not hold, found on the composed node graph (where an
    alias is the very node its anchor names, so cycles and expansion can be measured)."""
    problems: list[Problem] = []
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def add(node, path, message, hint=None):
        problems.append(Problem(message, path, file=file, line=node.start_mark.line + 1, hint=hint))

    def visit(node, path: tuple) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            add(node, path, "an alias refers to the value that contains it (a recursive structure)",
                hint="a spec is a tree; copy the values instead")
            raise _Stop
        if len(path) > MAX_DEPTH:
            add(node, path, f"nested more than {MAX_DEPTH} levels deep", hint="a spec nests a few levels at most")
            raise _Stop
        tag = _tag(node)
        if tag not in ALLOWED_TAGS:
            add(node, path, f"the YAML tag '{tag.replace(_CORE, '!!')}' is not allowed in a spec",
                hint="remove the tag; specs hold only strings, numbers, booleans, null, lists and mappings")
        elif not _tag_fits(node, tag):
            add(node, path, f"the YAML tag '{tag.replace(_CORE, '!!')}' does not fit the value it is written on",
                hint="remove the tag (YAML 1.2 reads true/false, numbers and null by themselves)")
        active.add(key)
        size = 1
        if isinstance(node, MappingNode):
            for k, v in node.value:
                if not isinstance(k, ScalarNode):
                    add(k, path, "a list or mapping is used as a key", hint="keys are names (or numbers)")
                sub = path + (k.value if isinstance(k, ScalarNode) else "?",)
                size += visit(k, sub) + visit(v, sub)
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                size += visit(item, path + (i,))
        active.discard(key)
        sizes[key] = size
        if size > MAX_VALUES:
            add(node, path, f"expands to more than {MAX_VALUES} values through aliases",
                hint="aliases (*name) repeat their anchor's value; this looks like an alias bomb")
            raise _Stop
        return size

    if root is not None:
        try:
            visit(root, ())
        except _Stop:
            pass
    return problems


_RESOLVER = _Yaml12Resolver()


def _tag_fits(node: Any, tag: str) -> bool:
    """An explicit core tag must agree with the node: ``!!int x`` or ``!!bool yes`` would construct a value
    YAML 1.2 does not read there (or crash); ``!!str`` fits any scalar."""
    if isinstance(node, SequenceNode):
        return tag == _CORE + "seq"
    if isinstance(node, MappingNode):
        return tag == _CORE + "map"
    if tag == _CORE + "merge":
        return node.value == "<<"
    if tag == _CORE + "str":
        return True
    if tag in (_CORE + "seq", _CORE + "map"):
        return False
    implicit = str(_RESOLVER.resolve(ScalarNode, node.value, (True, False)))
    return implicit == tag or (tag == _CORE + "float" and implicit == _CORE + "int")


class _Stop(Exception):
    pass


def _flow_depth_problems(text: str, file: str) -> list[Problem]:
    """Deeply nested ``[[[...`` found by a scan of the text: the parser would take seconds to fail on
    thousands of levels. Quotes and comments are skipped; brackets inside plain scalars count, which
    errs only for texts with dozens of unbalanced ones."""
    depth, line, quote, comment, prev = 0, 1, None, False, "\n"
    for ch in text:
        if ch == "\n":
            line, comment = line + 1, False
        elif comment:
            pass
        elif quote:
            if ch == quote and not (quote == '"' and prev == "\\"):
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and prev in " \t\n":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return [Problem(f"nested more than {MAX_DEPTH} levels deep", (), file=file, line=line,
                                hint="a spec nests a few levels at most")]
        elif ch in "]}":
            depth = max(depth - 1, 0)
        prev = ch
    return []


def _version_problems(text: str, file: str) -> list[Problem]:
    problems = []
    for found in re.finditer(r"^%YAML[ \t]+(\S*)", text, re.M):
        if found.group(1) != "1.2":
            problems.append(Problem(
                f"the file declares %YAML {found.group(1)}, but specs are read as YAML 1.2",
                (), file=file, line=text.count("\n", 0, found.start()) + 1,
                hint="remove the %YAML line (YAML 1.2: yes/no/on/off are strings, 1e-3 is a number)"))
    return problems


def _syntax_problem(exc: MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    problem = (exc.problem or str(exc)).strip()
    hint = "fix the YAML syntax at this line"
    if "duplicate key" in problem or type(exc).__name__ == "DuplicateKeyError":
        found = re.search(r'duplicate key "(.*?)"', problem)
        key = f"'{found.group(1)}' " if found else ""
        problem = (f"the key {key}appears twice in one mapping "
                   "(YAML keeps only one silently elsewhere; here it is an error)")
        hint = "keep one of them"
    elif "'\\t'" in problem or "\t" in problem:
        hint = "YAML does not allow tabs for indentation or before values; use spaces"
    elif "another document" in problem:
        hint = "a spec is one YAML document; remove the '---' line and what follows, or split the file"
    elif "undefined alias" in problem:
        hint = "define the anchor (&name) before the alias (*name) that uses it"
    return Problem(f"invalid YAML: {problem}", (), file=file, line=line, hint=hint)


class _CheckedConstructor(RoundTripConstructor):
    """Runs ``_node_problems`` on the composed node graph before building anything from it."""

    spec_file = "<string>"

    def construct_document(self, node: Any) -> Any:
        problems = _node_problems(node, self.spec_file)
        if problems:
            raise SpecError(problems, file=self.spec_file)
        return super().construct_document(node)


def _load_checked(text: str, file: str) -> Any:
    yaml = _loader()
    yaml.Constructor = _CheckedConstructor
    yaml.constructor.spec_file = file
    return yaml.load(io.StringIO(text))


def _char(c: Any) -> str:
    return repr(chr(c)) if isinstance(c, int) else repr(c)


def parse_yaml(text: str, file: str = "<string>") -> tuple[Any, SourceMap]:
    """Parse one spec document -> (plain dicts/lists/scalars, key path -> (file, line)); SpecError otherwise."""
    smap = SourceMap({(): (file, 1)})
    try:
        problems = _version_problems(text, file) + _flow_depth_problems(text, file)
        if problems:
            raise SpecError(problems, file=file)
        node = _load_checked(text, file)
    except MarkedYAMLError as exc:
        raise SpecError([_syntax_problem(exc, file)], file=file) from None
    except ReaderError as exc:  # a character YAML forbids (NUL, most control characters)
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        raise SpecError([Problem(f"invalid YAML: character {_char(exc.character)} is not allowed ({exc.reason})", (),
                                 file=file, line=line, hint="remove it")], file=file) from None
    except YAMLError as exc:
        raise SpecError([Problem(f"invalid YAML: {exc}", (), file=file)], file=file) from None
    except RecursionError:
        raise SpecError([Problem("invalid YAML: nested too deeply to read", (), file=file,
                                 hint=f"a spec nests a few levels at most (limit {MAX_DEPTH})")], file=file) from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:  # ruamel tripping on odd input
        raise SpecError([Problem(f"invalid YAML: cannot read the document ({type(exc).__name__}: {exc})", (),
                                 file=file, hint="simplify the YAML near the last change")], file=file) from None
    return _plain(node, (), file, smap), smap


def load_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(f"no such file: {path}", (), hint=missing_file_hint(path))], file=str(path)) from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise SpecError([Problem(f"cannot read {path}: {exc}", ())], file=str(path)) from None
    return parse_yaml(text, str(path))


def parse_scalar(text: str) -> Any:
    """Parse a command-line value the way YAML would (``3`` int, ``1e-3`` float, ``[1, 2]`` list)."""
    try:
        value = _load_checked(text, "--set")
    except (YAMLError, RecursionError, SpecError):
        return text  # not YAML, or a tag or alias trick: kept as the text written, which validation then reports
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
