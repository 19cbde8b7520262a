"""Graph expressions: a small, safe call syntax parsed with ``ast`` (never ``eval``).

Allowed: names (dotted names like ``vae.encoder`` for imported parts), calls with
positional and keyword arguments, attribute reads (``critic(x).logit``, ``q.mean``),
numbers, strings, booleans, None, lists/tuples, and the operators + - * / ** and unary minus.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Iterator


class ExprError(ValueError):
    """The expression is not valid graph syntax."""


@dataclass(frozen=True)
class Name:
    id: str  # possibly dotted: "vae.encoder"


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Attr:
    target: Any
    attr: str


@dataclass(frozen=True)
class Call:
    func: Any  # Name or Attr
    args: tuple
    kwargs: tuple  # ((key, node), ...)


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Neg:
    operand: Any


_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


def parse(source: str) -> Any:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"cannot parse {source!r}: {exc.msg}") from None
    return _convert(tree.body, source)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _convert(node: ast.AST, source: str) -> Any:
    if isinstance(node, ast.Name):
        return Name(node.id)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float, str, bool)) or node.value is None:
            return Const(node.value)
    if isinstance(node, ast.Attribute):
        dotted = _dotted(node)
        # a dotted name is kept whole; the compiler decides which prefix is a name
        return Name(dotted) if dotted else Attr(_convert(node.value, source), node.attr)
    if isinstance(node, ast.Call):
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise ExprError("*args and **kwargs are not allowed in graph expressions")
        return Call(_convert(node.func, source),
                    tuple(_convert(a, source) for a in node.args),
                    tuple((k.arg, _convert(k.value, source)) for k in node.keywords))
    if isinstance(node, (ast.List, ast.Tuple)):
        return Seq(tuple(_convert(e, source) for e in node.elts))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return BinOp(_BINOPS[type(node.op)], _convert(node.left, source), _convert(node.right, source))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _convert(node.operand, source)
        if isinstance(operand, Const) and isinstance(operand.value, (int, float)):
            return Const(-operand.value if isinstance(node.op, ast.USub) else operand.value)
        return Neg(operand) if isinstance(node.op, ast.USub) else operand
    kind = type(node).__name__
    raise ExprError(f"{kind} is not allowed in {source!r}; graph expressions use names, calls, "
                    "attributes, numbers, strings, lists and + - * / **")


def names(node: Any) -> Iterator[str]:
    """Every Name in the expression (callees included)."""
    if isinstance(node, Name):
        yield node.id
    elif isinstance(node, Attr):
        yield from names(node.target)
    elif isinstance(node, Call):
        yield from names(node.func)
        for a in node.args:
            yield from names(a)
        for _, v in node.kwargs:
            yield from names(v)
    elif isinstance(node, Seq):
        for item in node.items:
            yield from names(item)
    elif isinstance(node, BinOp):
        yield from names(node.left)
        yield from names(node.right)
    elif isinstance(node, Neg):
        yield from names(node.operand)


def unparse(node: Any) -> str:
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Const):
        text = repr(node.value)
        # a folded negative literal keeps its sign when it is a base: (-3) ** 2 is not -3 ** 2
        return f"({text})" if isinstance(node.value, (int, float)) and text.startswith("-") else text
    if isinstance(node, Seq):
        return "[" + ", ".join(unparse(i) for i in node.items) + "]"
    if isinstance(node, Attr):
        return f"{unparse(node.target)}.{node.attr}"
    if isinstance(node, Call):
        parts = [unparse(a) for a in node.args] + [f"{k}={unparse(v)}" for k, v in node.kwargs]
        return f"{unparse(node.func)}({', '.join(parts)})"
    if isinstance(node, BinOp):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    if isinstance(node, Neg):
        return f"(-{unparse(node.operand)})"
    raise TypeError(node)


def rename(node: Any, mapping: dict[str, str], callables: set[str] = frozenset()) -> Any:
    """Rename names (or their first dotted part) by ``mapping``; used to namespace imported parts.

    A bare callee (``nll(...)``) is renamed only if it is in ``callables`` (the part's
    components): otherwise it is an op, even when a value of the same name exists."""
    if isinstance(node, Name):
        head, _, rest = node.id.partition(".")
        if node.id in mapping:
            return Name(mapping[node.id])
        if head in mapping:
            return Name(mapping[head] + ("." + rest if rest else ""))
        return node
    def again(n):
        return rename(n, mapping, callables)

    if isinstance(node, Attr):
        return Attr(again(node.target), node.attr)
    if isinstance(node, Call):
        func = node.func
        if not (isinstance(func, Name) and "." not in func.id and func.id not in callables):
            func = again(func)
        return Call(func, tuple(again(a) for a in node.args), tuple((k, again(v)) for k, v in node.kwargs))
    if isinstance(node, Seq):
        return Seq(tuple(again(i) for i in node.items))
    if isinstance(node, BinOp):
        return BinOp(node.op, again(node.left), again(node.right))
    if isinstance(node, Neg):
        return Neg(again(node.operand))
    return node
