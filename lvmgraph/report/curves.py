"""Loss curves from metrics.jsonl: one PNG per phase, each term of the phase a line.

Cheap enough to redraw at every sample time during training (a few hundred milliseconds).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..eval.images import save_figure


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


def _column(rows: list[dict], key: str) -> np.ndarray:
    return np.array([float(r[key]) if isinstance(r.get(key), (int, float)) else np.nan for r in rows])


def _line(ax, steps, y, color, label, style="-"):
    smoothed = smooth(y, len(y))
    if smoothed is not y:
        ax.plot(steps, y, color=color, alpha=0.25, linewidth=1.0, linestyle=style)
    return ax.plot(steps, smoothed, color=color, linewidth=1.8, label=label, linestyle=style,
                   marker="o" if len(y) <= 12 else None, markersize=3)[0]


def _log_scale_helps(values: list[np.ndarray]) -> bool:
    """Positive values spanning more than two decades read better on a log axis."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    return finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 100


def draw_panel(panel: CurvePanel, rows: list[dict], path: Path, total: str | None = None) -> Path:
    """One axis per panel; a phase's weighted total (``total``), usually on another scale than
    its terms, is drawn dashed against a second axis on the right."""
    from matplotlib import colormaps
    steps = np.array([r.get("step", i) for i, r in enumerate(rows)], dtype=float)
    fig = Figure(figsize=(6.4 if len(panel.keys) > 1 else 5.4, 3.1), dpi=110)
    ax = fig.subplots()
    colors = colormaps["tab10"]
    keys = [k for k in panel.keys if k != total]
    columns = [_column(rows, k) for k in keys]
    handles = [_line(ax, steps, y, colors(i % 10), key) for i, (key, y) in enumerate(zip(keys, columns))]
    if _log_scale_helps(columns):
        ax.set_yscale("log")
    if total is not None:
        right = ax.twinx()
        handles.append(_line(right, steps, _column(rows, total), "0.35", f"{total}\n(weighted total, right axis)", "--"))
        right.tick_params(labelsize="small", colors="0.35")
        right.spines["top"].set_visible(False)
    ax.set_xlabel("step", fontsize="small")
    ax.tick_params(labelsize="small")
    ax.grid(True, color="0.92", linewidth=0.8)
    for side in ("top",) + (("right",) if total is None else ()):
        ax.spines[side].set_visible(False)
    if len(handles) > 1:  # beside the plot, so it never hides a curve
        ax.legend(handles=handles, fontsize="x-small", frameon=False, loc="upper left",
                  bbox_to_anchor=(1.14 if total else 1.0, 1.0))
    ax.set_title(panel.title, fontsize="medium", loc="left")
    fig.tight_layout()
    return save_figure(fig, path)


def write_curves(phases, rows: list[dict], folder: Path) -> list[tuple[CurvePanel, Path]]:
    """One PNG per panel in ``folder`` (loss_0.png, ...); nothing when no row is logged yet."""
    if not rows:
        return []
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [(panel, draw_panel(panel, rows, folder / f"loss_{i}.png", panel.total))
            for i, panel in enumerate(panels(phases, keys))]
