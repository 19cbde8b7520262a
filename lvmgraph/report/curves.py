"""Loss curves from metrics.jsonl: one chart per phase, each logged value of the phase a line.

Drawn as inline SVG text (no plotting library), so redrawing them at every sample time during
training costs milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import math
from html import escape

import numpy as np


@dataclass
class CurvePanel:
    title: str
    subtitle: str   # what the phase updates, or what the values are
    keys: list[str]  # metrics.jsonl keys drawn in this panel
    total: str | None = None  # the key of the phase's weighted total, when it has several terms


def panels(phases, keys: list[str]) -> list[CurvePanel]:
    """Group logged keys by the phase that logs them: its loss terms, its weighted total (logged
    under the phase's label when it has several terms) and its ``log:`` values; keys no phase
    claims (stage schedules, skipped updates) form a last panel."""
    present, claimed, out = set(keys), set(), []
    for i, phase in enumerate(phases):
        terms = list(phase.terms)
        mine = ([phase.label] if len(terms) > 1 else []) + terms + list(phase.log)
        mine = [k for k in dict.fromkeys(mine) if k in present and k not in claimed]
        if mine:
            claimed.update(mine)
            every = f", every {phase.every} steps" if phase.every > 1 else ""
            repeat = f", ×{phase.repeat} per step" if phase.repeat > 1 else ""
            total = phase.label if len(terms) > 1 and phase.label in mine else None
            out.append(CurvePanel(f"phase {i}: {phase.label}", f"updates {', '.join(phase.update)}{every}{repeat}",
                                  mine, total))
    rest = [k for k in keys if k not in claimed and k != "step"]
    if rest:
        out.append(CurvePanel("other logged values", "", rest))
    return out


def smooth(y: np.ndarray, n_points: int) -> np.ndarray:
    """An exponential moving average whose span grows with the number of points (none below 20),
    ignoring missing values (NaN) so a key logged only sometimes still draws."""
    if n_points < 20:
        return y
    alpha = 2.0 / (1.0 + max(2.0, n_points / 15.0))
    out, acc = np.empty_like(y), np.nan
    for i, v in enumerate(y):
        if np.isfinite(v):
            acc = v if not np.isfinite(acc) else (1 - alpha) * acc + alpha * v
        out[i] = acc
    return out


TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
         "#bcbd22", "#17becf"]
TOTAL_COLOUR = "#4b5563"
W, H = 440, 250
LEFT, RIGHT, TOP, BOTTOM = 58, 26, 12, 34  # plot margins; RIGHT grows to hold a second axis


def _column(rows: list[dict], key: str) -> np.ndarray:
    return np.array([float(r[key]) if isinstance(r.get(key), (int, float)) else np.nan for r in rows])


def _log_scale_helps(values: list[np.ndarray]) -> bool:
    """Positive values spanning more than two decades read better on a log axis."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    return finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 100


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round numbers (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if not hi > lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = [first + i * step for i in range(int(math.ceil((hi - first) / step)) + 1)]
    return [round(t, 12) for t in ticks]


def _label(v: float) -> str:
    if v == int(v) and abs(v) >= 1000:
        return f"{int(v):,}"  # step counts: 3,000 rather than 3e+03
    return f"{v:.3g}" if v != 0 else "0"


class _Axis:
    """Maps values to pixels (top = high), linear or log10, over ticks that cover the data."""

    def __init__(self, columns: list[np.ndarray], top: float, bottom: float, log: bool):
        finite = np.concatenate([c[np.isfinite(c)] for c in columns]) if columns else np.array([])
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self.log = log
        if log:
            lo, hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
            hi = max(hi, lo + 1)
            self.ticks = [float(e) for e in range(int(lo), int(hi) + 1)]
        else:
            self.ticks = nice_ticks(lo, hi)
        self.lo, self.hi, self.top, self.bottom = self.ticks[0], self.ticks[-1], top, bottom

    def __call__(self, v: np.ndarray) -> np.ndarray:
        v = np.log10(np.where(v > 0, v, np.nan)) if self.log else v
        return self.bottom - (v - self.lo) / (self.hi - self.lo) * (self.bottom - self.top)

    def labels(self) -> list[tuple[float, str]]:
        return [(t, f"1e{int(t)}" if self.log else _label(t)) for t in self.ticks]


def _polyline(xs: np.ndarray, ys: np.ndarray, colour: str, width: float, opacity: float = 1.0,
              dash: str = "") -> str:
    """One path through the finite points (a gap where a value is missing)."""
    parts, pen = [], "M"
    for x, y in zip(xs, ys):
        if not np.isfinite(y):
            pen = "M"
            continue
        parts.append(f"{pen}{x:.1f},{y:.1f}")
        pen = "L"
    if not parts:
        return ""
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<path d="{" ".join(parts)}" fill="none" stroke="{colour}" stroke-width="{width}" '
            f'stroke-opacity="{opacity}" stroke-linejoin="round"{dashed}/>')


def _series(xs, y, ax: _Axis, colour: str, dash: str = "") -> str:
    smoothed = smooth(y, len(y))
    out = ""
    if smoothed is not y:
        out += _polyline(xs, ax(y), colour, 1.0, 0.28, dash)
    out += _polyline(xs, ax(smoothed), colour, 2.0, 1.0, dash)
    if len(y) <= 12:  # few points: mark them
        out += "".join(f'<circle cx="{x:.1f}" cy="{v:.1f}" r="2.6" fill="{colour}"/>'
                       for x, v in zip(xs, ax(y)) if np.isfinite(v))
    return out


def draw_panel(panel: CurvePanel, rows: list[dict]) -> tuple[str, list[tuple[str, str, bool]]]:
    """(inline SVG, legend entries (key, colour, dashed)) of one panel. A phase's weighted total
    (``panel.total``), usually on another scale than its terms, is dashed against a right axis."""
    steps = np.array([r.get("step", i) for i, r in enumerate(rows)], dtype=float)
    keys = [k for k in panel.keys if k != panel.total]
    columns = [_column(rows, k) for k in keys]
    right_margin = 58 if panel.total else RIGHT
    x0, x1, y0, y1 = LEFT, W - right_margin, TOP, H - BOTTOM
    xaxis = nice_ticks(float(steps.min()), float(steps.max())) if len(steps) else [0.0, 1.0]
    xlo, xhi = min(xaxis[0], steps.min()), max(xaxis[-1], steps.max())
    xs = x0 + (steps - xlo) / ((xhi - xlo) or 1.0) * (x1 - x0)
    left = _Axis(columns, y0, y1, _log_scale_helps(columns))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img" '
           f'aria-label="{escape(panel.title)}" font-family="system-ui, sans-serif" font-size="11" fill="#4b5563">']
    for value, text in left.labels():
        y = float(left(np.array([10 ** value if left.log else value]))[0])
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>'
                   f'<text x="{x0 - 6}" y="{y + 3.5:.1f}" text-anchor="end">{text}</text>')
    for t in xaxis:
        if xlo <= t <= xhi:
            x = x0 + (t - xlo) / ((xhi - xlo) or 1.0) * (x1 - x0)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y1}" stroke="#f3f4f6"/>'
                       f'<text x="{x:.1f}" y="{y1 + 15}" text-anchor="middle">{_label(t)}</text>')
    out.append(f'<line x1="{x0}" x2="{x1}" y1="{y1}" y2="{y1}" stroke="#9ca3af"/>'
               f'<line x1="{x0}" x2="{x0}" y1="{y0}" y2="{y1}" stroke="#9ca3af"/>'
               f'<text x="{(x0 + x1) / 2:.0f}" y="{H - 4}" text-anchor="middle">step</text>')
    legend = []
    for i, (key, y) in enumerate(zip(keys, columns)):
        colour = TAB10[i % len(TAB10)]
        out.append(_series(xs, y, left, colour))
        legend.append((key, colour, False))
    if panel.total:
        total = _column(rows, panel.total)
        right = _Axis([total], y0, y1, False)
        out.append(f'<line x1="{x1}" x2="{x1}" y1="{y0}" y2="{y1}" stroke="#9ca3af"/>')
        for value, text in right.labels():
            y = float(right(np.array([value]))[0])
            out.append(f'<text x="{x1 + 6}" y="{y + 3.5:.1f}" fill="{TOTAL_COLOUR}">{text}</text>')
        out.append(_series(xs, total, right, TOTAL_COLOUR, dash="6 4"))
        legend.append((f"{panel.total} (weighted total, right axis)", TOTAL_COLOUR, True))
    out.append("</svg>")
    return "".join(out), legend


def write_curves(phases, rows: list[dict]) -> list[tuple[CurvePanel, str, list]]:
    """(panel, inline SVG, legend) per panel; nothing when no row is logged yet."""
    if not rows:
        return []
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [(panel, *draw_panel(panel, rows)) for panel in panels(phases, keys)]
