"""Draw a compiled graph as Mermaid or Graphviz dot text."""
from __future__ import annotations

from .compile import ModelGraph

_SHAPES = {"data": ("[/", "/]"), "component": ("[[", "]]"), "schedule": ("{{", "}}"), "value": ("(", ")")}


def _id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def drawn_nodes(graph: ModelGraph):
    """Every node but the built-in names (``step``) nothing uses."""
    return [(n, d) for n, d in graph.g.nodes(data=True) if d["kind"] != "builtin" or graph.g.out_degree(n)]


def to_mermaid(graph: ModelGraph, phases=()) -> str:
    lines = ["flowchart LR"]
    for name, data in drawn_nodes(graph):
        left, right = _SHAPES.get(data["kind"], ("(", ")"))
        label = name if data["kind"] != "component" else f"{name}: {data.get('type', '')}"
        lines.append(f'  {_id(name)}{left}"{label}"{right}')
    for u, v in graph.g.edges():
        lines.append(f"  {_id(u)} --> {_id(v)}")
    for i, phase in enumerate(phases):
        for term in phase.terms:
            lines.append(f'  {_id(term)} -. "phase {i}: {phase.label}" .-> {_id("phase" + str(i))}')
        lines.append(f'  {_id("phase" + str(i))}>"update {", ".join(phase.update)}"]')
    return "\n".join(lines) + "\n"


def to_dot(graph: ModelGraph, phases=()) -> str:
    shapes = {"data": "parallelogram", "component": "box3d", "schedule": "hexagon", "value": "ellipse"}
    lines = ["digraph lvmgraph {", "  rankdir=LR;"]
    for name, data in drawn_nodes(graph):
        label = name if data["kind"] != "component" else f"{name}\\n{data.get('type', '')}"
        lines.append(f'  {_id(name)} [label="{label}", shape={shapes.get(data["kind"], "ellipse")}];')
    for u, v in graph.g.edges():
        lines.append(f"  {_id(u)} -> {_id(v)};")
    for i, phase in enumerate(phases):
        pid = _id("phase" + str(i))
        lines.append(f'  {pid} [label="phase {i}: update {", ".join(phase.update)}", shape=note];')
        for term in phase.terms:
            lines.append(f"  {_id(term)} -> {pid} [style=dashed];")
    lines.append("}")
    return "\n".join(lines) + "\n"
