"""Spec problems: each names the file, the line, the key path and, where it can, the fix."""
from __future__ import annotations

from dataclasses import dataclass, replace
import pathlib
from typing import Iterable, Sequence

Path = tuple  # a key path into the spec, e.g. ("components", "encoder", "type") or ("phases", 0, "update")


def format_path(path: Sequence) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    message: str
    path: Path = ()
    file: str | None = None
    line: int | None = None
    hint: str | None = None
    severity: str = "error"  # or "warning"

    def render(self, *, with_file: bool = False, align: bool = True) -> str:
        # ``align`` pads a problem without a line to the column of those with one
        where = f"line {self.line:<3}" if self.line else ("        " if align else "")
        if with_file and self.file:
            where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where} {format_path(self.path)}: {self.message}" if where else f"{format_path(self.path)}: {self.message}"
        if self.hint:
            text += f" — {self.hint}"
        if self.severity == "warning":
            text = "warning: " + text
        return text


class SpecError(Exception):
    """One or more problems in a spec; ``str()`` lists all of them at once."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem], file: str | None = None):
        # a problem that does not name its file happened in the one this error is about
        self.problems = [p if p.file or not file else replace(p, file=file) for p in problems]
        self.file = file
        super().__init__(self.render())

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def render(self) -> str:
        errors = self.errors
        files = {p.file for p in self.problems if p.file}
        several_files = len(files) > 1 or (files and self.file not in files)
        head = f"{self.file or 'spec'}: {len(errors)} problem{'s' if len(errors) != 1 else ''}"
        align = any(p.line for p in self.problems)
        lines = [head] + ["  " + p.render(with_file=bool(several_files), align=align) for p in self.problems]
        return "\n".join(lines)


def did_you_mean_hint(name: str, candidates: Iterable[str]) -> str | None:
    from ..plugins.registry import did_you_mean

    match = did_you_mean(name, candidates)
    return f"did you mean '{match}'?" if match else None


def missing_file_hint(path: "str | pathlib.Path", suffixes: tuple[str, ...] = (".yaml", ".yml")) -> str | None:
    """For a file that is not there: the closest name beside it, or which folder is missing."""
    path = pathlib.Path(path)
    folder = path.parent
    shown = "the current folder" if str(folder) == "." else str(folder)
    if not folder.is_dir():
        return f"there is no folder {folder}"
    names = sorted(p.name for p in folder.iterdir() if p.suffix in suffixes)
    if not names:
        return f"{shown} holds no {' or '.join(suffixes)} file"
    return did_you_mean_hint(path.name, names) or (
        f"{shown} holds {', '.join(names)}" if len(names) <= 5 else None)


class SourceMap:
    """Where each key path of a (possibly composed) spec was written: path -> (file, line)."""

    def __init__(self, entries: dict | None = None):
        self.entries: dict[tuple, tuple[str, int]] = dict(entries or {})

    def locate(self, path: Sequence) -> tuple[str | None, int | None]:
        path = tuple(path)
        while path:
            if path in self.entries:
                return self.entries[path]
            path = path[:-1]
        return self.entries.get((), (None, None))

    def problem(self, message: str, path: Sequence = (), **kw) -> Problem:
        file, line = self.locate(path)
        return Problem(message, tuple(path), file=file, line=line, **kw)

    def with_prefix(self, prefix: tuple) -> "SourceMap":
        return SourceMap({prefix + k: v for k, v in self.entries.items()})

    def update(self, other: "SourceMap", under: tuple = ()) -> None:
        for k, v in other.entries.items():
            self.entries[under + k] = v

    def drop(self, prefix: tuple) -> None:
        n = len(prefix)
        for k in [k for k in self.entries if k[:n] == prefix]:
            del self.entries[k]


def locate_problems(problems: Iterable[Problem], source: SourceMap) -> list[Problem]:
    """Fill in file and line for problems that only know their key path."""
    out = []
    for p in problems:
        if p.line is None:
            file, line = source.locate(p.path)
            p = replace(p, file=p.file or file, line=line)
        out.append(p)
    return out
