"""Draw a compiled graph as a standalone SVG, laid out here (no Graphviz, no JavaScript).

Left to right in layers: data fields first, each value one layer right of the latest value or
data field it uses, each component and schedule just left of its first use, and the losses a
phase minimises in the last column. Within a layer, nodes are ordered by a few barycenter sweeps
(each moves towards the mean height of its neighbours), which removes most edge crossings in
graphs of this size.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

import networkx as nx

from .compile import ModelGraph
from .render import drawn_nodes

# fill, stroke, text colour per kind of node
STYLE = {
    "data": ("#dbeafe", "#3b82f6", "#1e3a8a"),
    "component": ("#fef3c7", "#d97706", "#78350f"),
    "schedule": ("#ede9fe", "#7c3aed", "#4c1d95"),
    "builtin": ("#f3f4f6", "#9ca3af", "#374151"),
    "value": ("#f9fafb", "#9ca3af", "#111827"),
    "loss": ("#fee2e2", "#dc2626", "#7f1d1d"),
}
LEGEND = [("data", "data field"), ("component", "component"), ("value", "value"),
          ("loss", "loss (minimised)"), ("schedule", "schedule")]
NODE_H, DUMMY_H, V_GAP, H_GAP, MARGIN = 42, 6, 16, 56, 16
SUB_CHARS = 30  # a value's expression is shown up to this many characters


@dataclass
class Node:
    name: str
    kind: str      # a STYLE key
    title: str
    subtitle: str
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0


def _text_width(text: str, px: float) -> float:
    return len(text) * px * 0.6  # average advance of a sans-serif glyph, roughly


def _nodes(graph: ModelGraph, losses: set[str]) -> dict[str, Node]:
    nodes = {}
    for name, data in drawn_nodes(graph):
        kind = data["kind"]
        subtitle = ""
        if kind == "component":
            subtitle = data.get("type", "")
        elif kind == "value":
            expr = " ".join(graph.sources.get(name, data.get("expr", "")).split())
            subtitle = expr if len(expr) <= SUB_CHARS else expr[:SUB_CHARS - 1] + "…"
            kind = "loss" if name in losses else "value"
        node = Node(name, kind, name, subtitle)
        node.width = max(_text_width(name, 13), _text_width(subtitle, 10.5)) + 22
        nodes[name] = node
    return nodes


def _assign_layers(g: nx.DiGraph, nodes: dict[str, Node]) -> None:
    flowing = {"data", "value", "loss"}
    for name in nx.topological_sort(g):
        node = nodes[name]
        if node.kind == "data":
            node.layer = 0
        elif node.kind in flowing:
            preds = [nodes[p].layer for p in g.predecessors(name) if nodes[p].kind in flowing]
            node.layer = 1 + max(preds, default=0)
    last = max((n.layer for n in nodes.values() if n.kind in flowing), default=0)
    for name, node in nodes.items():  # losses nothing else uses line up on the right
        if node.kind == "loss" and g.out_degree(name) == 0:
            node.layer = last
    for name, node in nodes.items():
        if node.kind not in flowing:
            node.layer = max(0, min((nodes[s].layer for s in g.successors(name)), default=1) - 1)


def _with_dummies(g: nx.DiGraph, nodes: dict[str, Node]) -> nx.DiGraph:
    """The graph with every edge that spans several layers split by a chain of dummy nodes, one
    per layer it crosses: they keep a lane free so the edge bends around the nodes in between."""
    h = nx.DiGraph()
    h.add_nodes_from(nodes)
    for u, v in g.edges():
        prev = u
        for layer in range(nodes[u].layer + 1, nodes[v].layer):
            dummy = f"\0{u}->{v}@{layer}"
            nodes[dummy] = Node(dummy, "dummy", "", "", layer=layer)
            h.add_edge(prev, dummy)
            prev = dummy
        h.add_edge(prev, v)
    return h


def _order_layers(h: nx.DiGraph, nodes: dict[str, Node]) -> list[list[Node]]:
    count = max(n.layer for n in nodes.values()) + 1
    layers: list[list[Node]] = [[] for _ in range(count)]
    for node in nodes.values():  # declaration order first: data, components, values
        layers[node.layer].append(node)
    undirected = h.to_undirected(as_view=True)
    rank: dict[str, float] = {}

    def place(layer):
        for i, node in enumerate(layer):
            rank[node.name] = i - (len(layer) - 1) / 2

    for layer in layers:
        place(layer)
    for sweep in range(12):
        for layer in layers if sweep % 2 == 0 else layers[::-1]:
            def centre(node: Node) -> float:
                ys = [rank[m] for m in undirected.neighbors(node.name)]
                return sum(ys) / len(ys) if ys else rank[node.name]
            layer.sort(key=centre)
            place(layer)
    return layers


def _height(node: Node) -> float:
    return DUMMY_H if node.kind == "dummy" else NODE_H


def _position(layers: list[list[Node]]) -> tuple[float, float]:
    def extent(layer):
        return sum(_height(n) for n in layer) + max(len(layer) - 1, 0) * V_GAP
    height = max(extent(layer) for layer in layers)
    x = MARGIN
    for layer in layers:
        width = max((n.width for n in layer), default=0)
        y = MARGIN + 28 + (height - extent(layer)) / 2
        for node in layer:
            node.x, node.y = x + (width - node.width) / 2, y
            if node.kind == "dummy":  # a lane as wide as the column
                node.x, node.width = x, width
            y += _height(node) + V_GAP
        x += width + H_GAP
    return x - H_GAP + MARGIN, height + 2 * MARGIN + 28


def _edge(path: list[Node], kind: str) -> str:
    """A smooth curve from the first node's right side through the dummies' lanes to the last
    node's left side."""
    def mid(n):
        return n.y + _height(n) / 2
    first, last = path[0], path[-1]
    d = f"M{first.x + first.width:.1f},{mid(first):.1f}"
    x, y = first.x + first.width, mid(first)
    for node in path[1:]:
        x2, y2 = node.x - (2 if node is last else 0), mid(node)
        dx = max(18.0, (x2 - x) / 2)
        d += f" C{x + dx:.1f},{y:.1f} {x2 - dx:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        if node is not last:
            d += f" L{node.x + node.width:.1f},{y2:.1f}"
        x, y = node.x + node.width, y2
    dash = ' stroke-dasharray="4 3"' if kind in ("component", "schedule") else ""
    return (f'<path d="{d}" fill="none" stroke="{STYLE[kind][1]}" stroke-opacity="0.6" stroke-width="1.3"'
            f'{dash} marker-end="url(#arrow)"/>')


def _box(node: Node) -> str:
    fill, stroke, ink = STYLE[node.kind]
    rx = {"data": 2, "component": 4, "value": 16, "loss": 16, "schedule": 10}.get(node.kind, 6)
    weight = ' font-weight="600"' if node.kind in ("component", "loss", "data") else ""
    cx = node.x + node.width / 2
    parts = [f'<g><title>{escape(node.name)}: {escape(node.subtitle or node.kind)}</title>',
             f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" height="{NODE_H}" rx="{rx}" '
             f'fill="{fill}" stroke="{stroke}" stroke-width="1.4"/>']
    if node.subtitle:
        parts.append(f'<text x="{cx:.1f}" y="{node.y + 17:.1f}" font-size="13"{weight} fill="{ink}" '
                     f'text-anchor="middle">{escape(node.title)}</text>')
        parts.append(f'<text x="{cx:.1f}" y="{node.y + 33:.1f}" font-size="10.5" fill="#6b7280" '
                     f'text-anchor="middle" font-family="ui-monospace, Menlo, Consolas, monospace">'
                     f'{escape(node.subtitle)}</text>')
    else:
        parts.append(f'<text x="{cx:.1f}" y="{node.y + 26:.1f}" font-size="13"{weight} fill="{ink}" '
                     f'text-anchor="middle">{escape(node.title)}</text>')
    return "".join(parts) + "</g>"


def _legend(y: float) -> str:
    out, x = [], MARGIN
    for kind, label in LEGEND:
        fill, stroke, _ = STYLE[kind]
        out.append(f'<rect x="{x}" y="{y}" width="14" height="14" rx="3" fill="{fill}" stroke="{stroke}"/>'
                   f'<text x="{x + 20}" y="{y + 11.5}" font-size="12" fill="#374151">{label}</text>')
        x += 34 + _text_width(label, 12)
    return "".join(out)


def to_svg(graph: ModelGraph, phases=()) -> str:
    """The graph as an SVG document: data fields, components, values and the losses ``phases``
    minimise, each kind in its own colour and shape; component edges dashed."""
    losses = {t for phase in phases for t in phase.terms}
    nodes = _nodes(graph, losses)
    g = graph.g.subgraph(nodes)
    _assign_layers(g, nodes)
    h = _with_dummies(g, nodes)
    layers = _order_layers(h, nodes)
    width, height = _position(layers)
    body = []
    for u, v in g.edges():
        path, here = [nodes[u]], u
        while here != v:  # follow the dummy chain of this edge
            here = next(s for s in h.successors(here) if s == v or s.startswith(f"\0{u}->{v}@"))
            path.append(nodes[here])
        body.append(_edge(path, nodes[u].kind))
    body += [_box(n) for n in nodes.values() if n.kind != "dummy"]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="system-ui, -apple-system, Segoe UI, '
            f'Helvetica, Arial, sans-serif" role="img" aria-label="model graph">'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>'
            + _legend(MARGIN) + "".join(body) + "</svg>\n")
