"""Pictures the report generates from a trained run (after training, or by ``lvmgraph report``).

Axis legend: n examples, c channels, h w spatial, d latent dimension.

Each function returns the figures it wrote (none when the run's graph has nothing of that kind):
- reconstructions: a data field beside a value computed back from it that a loss compares it to
  (``bce(x_hat, x)``), when the value depends on the data other than through a prior's draw;
- interpolations: straight lines between two prior draws of every continuous ``sample.set`` value;
- traversals: for models with several codes (InfoGAN), one row per category of a categorical code
  and a sweep of each dimension of a small continuous code, everything else held fixed;
- translations: the ``sample.grid`` rows for 16 test inputs, and for a categorical code that
  chooses the target (StarGAN) every input translated to every category.
All draws are seeded and taken in a forked RNG, so the figures never disturb training.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import torch

from ..eval.artifacts import as_tensor, encode
from ..eval.images import save_comparison_grid
from ..graph.compile import ComponentCall
from ..modules import Prior

SEED = 4321
COLUMNS = 10       # interpolation steps / traversal columns
MAX_CATEGORIES = 20
SMALL_CODE = 4     # continuous codes up to this many dimensions get per-dimension traversals


@dataclass
class Picture:
    kind: str      # reconstructions, interpolations, traversals, translations
    title: str
    path: Path
    caption: str


def _is_images(t) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[1] in (1, 3)


def _value_range(exp) -> tuple[float, float]:
    return tuple(exp.data.info.get("value_range", (0, 1)))


def _save_rows(exp, rows: list[torch.Tensor], path: Path) -> Path:
    return save_comparison_grid([r.detach().float().cpu() for r in rows], path, columns=max(r.shape[0] for r in rows),
                                value_range=_value_range(exp), min_tile=32)


def _one_hot(draws: torch.Tensor) -> bool:
    """Draws of a categorical prior: rows of zeros with a single one."""
    return draws.dim() == 2 and bool(((draws == 0) | (draws == 1)).all()) and bool((draws.sum(1) == 1).all())


def _prior_draws(run, n: int) -> dict[str, torch.Tensor]:
    exp = run.experiment
    return {v: exp.modules[prior].sample(n=n).detach() for v, prior in exp.spec.sample.set.items()}


# ----------------------------------------------------------------------------- reconstructions

def _prior_draw_values(exp) -> set[str]:
    """Values that are a prior's draw (``prior.sample(like=x)``): data reaches them only for a shape."""
    out = set()
    for name, tree in exp.graph.values.items():
        if isinstance(tree, ComponentCall) and isinstance(exp.modules[tree.component], Prior):
            out.add(name)
    return out


def reconstruction_pairs(exp) -> list[tuple[str, str]]:
    """(data field, value) pairs a graph value compares directly — ``rec: bce(x_hat, x)`` gives
    (x, x_hat) — where the value is computed from that field other than through a prior's draw."""
    g = exp.graph.g
    through = g.copy()
    through.remove_nodes_from(_prior_draw_values(exp))
    pairs = []
    for name in exp.graph.order:
        preds = list(g.predecessors(name))
        for field in (p for p in preds if g.nodes[p]["kind"] == "data"):
            for value in (p for p in preds if g.nodes[p]["kind"] == "value"):
                if value in through and nx.has_path(through, field, value) and (field, value) not in pairs:
                    pairs.append((field, value))
    return pairs


def reconstructions(run, folder: Path, n: int = 16) -> list[Picture]:
    exp = run.experiment
    shown = set(exp.spec.sample.grid or []) if exp.spec.sample else set()
    out = []
    for field, value in reconstruction_pairs(exp):
        if value in shown:  # already a row of the translation grid
            continue
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            rebuilt, _ = encode(exp, value, n=n)
        original = exp.data.test[field][:rebuilt.shape[0]].float()
        if not (_is_images(rebuilt) and rebuilt.shape == original.shape):
            continue
        path = _save_rows(exp, [original, rebuilt], folder / f"reconstruction_{value}.png")
        out.append(Picture("reconstructions", f"{field} → {value}", path,
                           f"top: test rows of {field}; bottom: {value} computed from them"))
    return out


# ----------------------------------------------------------------------------- generation

def _generate(run, given: dict[str, torch.Tensor]) -> torch.Tensor | None:
    n = next(iter(given.values())).shape[0]
    out = run.sample(n, given=given, seed=SEED)
    return out if _is_images(out) else None


def interpolations(run, folder: Path, rows: int = 8) -> list[Picture]:
    """Each row walks in a straight line from one prior draw to another (categorical codes stay
    those of the row's start)."""
    exp = run.experiment
    sample = exp.spec.sample
    if sample is None or not sample.set or sample.grid:
        return []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        start, end = _prior_draws(run, rows), _prior_draws(run, rows)
    moving = [v for v, draws in start.items() if draws.is_floating_point() and not _one_hot(draws)]
    if not moving:
        return []
    t = torch.linspace(0, 1, COLUMNS).view(1, COLUMNS, *[1] * (start[moving[0]].dim() - 1))
    given = {}
    for v, a in start.items():
        a_ = a.unsqueeze(1)
        path = a_ + t.to(a) * (end[v].unsqueeze(1) - a_) if v in moving else a_.expand(-1, COLUMNS, *a.shape[1:])
        given[v] = path.reshape(rows * COLUMNS, *a.shape[1:])
    images = _generate(run, given)
    if images is None:
        return []
    grid = [images[i * COLUMNS:(i + 1) * COLUMNS] for i in range(rows)]
    path = _save_rows(exp, grid, folder / "interpolations.png")
    return [Picture("interpolations", f"{', '.join(moving)}: from one prior draw to another", path,
                    f"each row moves {', '.join(moving)} in {COLUMNS} equal steps between two draws of the prior")]


def _range_of(prior, draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a traversal sweeps: the prior's bounds when it has them, else the 2nd to 98th percentile."""
    if hasattr(prior, "low") and hasattr(prior, "high"):
        return (torch.as_tensor(float(prior.low), device=draws.device),
                torch.as_tensor(float(prior.high), device=draws.device))
    flat = draws.reshape(draws.shape[0], -1)
    return torch.quantile(flat, 0.02, dim=0), torch.quantile(flat, 0.98, dim=0)


def traversals(run, folder: Path, bases: int = 4) -> list[Picture]:
    exp = run.experiment
    sample = exp.spec.sample
    if sample is None or len(sample.set) < 2 or sample.grid:
        return []
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        shared = _prior_draws(run, COLUMNS)
        wide = _prior_draws(run, 1000)
    for code, draws in shared.items():
        k = draws.shape[1] if draws.dim() == 2 else 0
        if _one_hot(draws) and k <= MAX_CATEGORIES:  # one row per category, columns share the rest
            given = {v: d.repeat(k, *[1] * (d.dim() - 1)) for v, d in shared.items()}
            given[code] = torch.eye(k, dtype=draws.dtype, device=draws.device).repeat_interleave(COLUMNS, dim=0)
            images = _generate(run, given)
            if images is None:
                continue
            path = _save_rows(exp, [images[i * COLUMNS:(i + 1) * COLUMNS] for i in range(k)],
                              folder / f"traversal_{code}.png")
            out.append(Picture("traversals", f"{code}: one row per category", path,
                               f"row i sets {code} to category i; each column keeps its own draws of "
                               f"{', '.join(v for v in shared if v != code)}"))
        elif draws.is_floating_point() and draws.dim() == 2 and 0 < k <= SMALL_CODE:
            low, high = _range_of(exp.modules[sample.set[code]], wide[code])
            steps = torch.linspace(0, 1, COLUMNS, device=draws.device)
            rows = []
            for dim in range(k):
                for b in range(bases):  # one row per base draw: the sweep's effect, seen several times
                    given = {v: d[b:b + 1].repeat(COLUMNS, *[1] * (d.dim() - 1)) for v, d in shared.items()}
                    lo, hi = (low if low.dim() == 0 else low[dim]), (high if high.dim() == 0 else high[dim])
                    given[code] = given[code].clone()
                    given[code][:, dim] = lo + steps * (hi - lo)
                    rows.append(given)
            given = {v: torch.cat([r[v] for r in rows]) for v in shared}
            images = _generate(run, given)
            if images is None:
                continue
            path = _save_rows(exp, [images[i * COLUMNS:(i + 1) * COLUMNS] for i in range(len(rows))],
                              folder / f"traversal_{code}.png")
            out.append(Picture("traversals", f"{code}: each dimension swept", path,
                               f"rows {bases} at a time: {code}[0], …, {code}[{k - 1}] swept from "
                               f"{float(low.min()):.2g} to {float(high.max()):.2g} over the columns, "
                               f"the other values fixed per row"))
    return out


def translations(run, folder: Path, n: int = 16) -> list[Picture]:
    exp = run.experiment
    sample = exp.spec.sample
    if sample is None or not sample.grid:
        return []
    from ..experiment import grid_rows
    values = run.sample(n, seed=SEED, outputs=list(sample.grid))
    path = _save_rows(exp, grid_rows(values, sample.grid), folder / "translations.png")
    out = [Picture("translations", " · ".join(sample.grid), path,
                   f"one column per test example; rows {', '.join(sample.grid)}")]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        codes = _prior_draws(run, 2)
    for code, draws in codes.items():  # a categorical code picks the target domain: show them all
        k = draws.shape[1] if draws.dim() == 2 else 0
        if not (_one_hot(draws) and k <= MAX_CATEGORIES):
            continue
        targets = [torch.full((COLUMNS,), i, dtype=torch.long, device=exp.device) for i in range(k)]
        rows = run.sweep(code, targets, COLUMNS, seed=SEED, labels=[f"{code}={i}" for i in range(k)])
        path = _save_rows(exp, grid_rows(rows, list(rows)), folder / f"translations_{code}.png")
        out.append(Picture("translations", f"every value of {code}", path,
                           f"top: {sample.grid[0]}; then one row per {code} = 0 … {k - 1}, same inputs"))
    return out


def generate_all(run, folder: Path) -> list[Picture]:
    folder.mkdir(parents=True, exist_ok=True)
    pictures: list[Picture] = []
    for make in (translations, reconstructions, interpolations, traversals):
        try:
            pictures += make(run, folder)
        except Exception as exc:  # noqa: BLE001 - one kind of picture failing leaves the rest of the page
            warnings.warn(f"report: no {make.__name__} ({type(exc).__name__}: {exc})", stacklevel=2)
    return pictures
