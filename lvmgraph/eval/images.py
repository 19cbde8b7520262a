"""PNG writers for samples, reconstructions and latent spaces (used by the trainer and CLI).

Axis legend: n images or points, c channels, h w spatial, d latent dimension.

Plots are drawn on a bare ``matplotlib.figure.Figure`` rendered by the Agg canvas, so no
window ever opens and pyplot's global figure list is never touched (safe in threads and
long training runs).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

PRIOR_GREY = "0.82"


# ----------------------------------------------------------------------------- image grids

def to_uint8(images: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Float images of any shape -> uint8 of the same shape: clamp to value_range, map to 0..255."""
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    scaled = (images.detach().float().cpu().clamp(lo, hi) - lo) / (hi - lo)
    return (scaled * 255.0).round().to(torch.uint8)


def image_grid(images: torch.Tensor, *, nrow: int | None = None, padding: int = 2,
               pad_value: int = 255) -> torch.Tensor:
    """uint8 images (n c h w) -> one uint8 grid (c H W), ``nrow`` images per row.

    H = rows·(h + padding) + padding, W = nrow·(w + padding) + padding; empty cells in the
    last row and the separators are filled with ``pad_value``.
    """
    n = images.shape[0]
    nrow = min(nrow or math.ceil(math.sqrt(n)), n)  # never wider than the images there are
    rows = math.ceil(n / nrow)
    # blank cells complete the last row so the grid is a full rows × nrow rectangle
    blanks = images.new_full((rows * nrow - n, *images.shape[1:]), pad_value)
    cells = torch.cat([images, blanks])
    # each cell carries its top/left separator; one more strip closes the bottom/right edge
    cells = F.pad(cells, (padding, 0, padding, 0), value=pad_value)
    grid = rearrange(cells, "(r q) c h w -> c (r h) (q w)", r=rows, q=nrow)
    return F.pad(grid, (0, padding, 0, padding), value=pad_value)


def save_image_grid(images: torch.Tensor, path: str | Path, *, nrow: int | None = None,
                    value_range: tuple[float, float] = (0.0, 1.0), padding: int = 2,
                    min_tile: int = 0) -> Path:
    """images (n c h w), c = 1 or 3 -> a PNG grid at ``path`` (parents created); returns the path.

    Tiles smaller than ``min_tile`` pixels are enlarged by an integer factor (nearest
    neighbour) so 8x8 digits stay visible.

    Values are clamped to ``value_range`` and mapped linearly to 0..255; ``nrow`` images per
    row (default ⌈√n⌉); white separators of ``padding`` pixels. One channel is written as a
    greyscale PNG, three as RGB.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"save_image_grid expects a non-empty (n c h w) tensor with c = 1 or 3, "
                         f"got shape {tuple(images.shape)}")
    factor = max(1, -(-min_tile // max(images.shape[-2:])))
    if factor > 1:
        images = images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    grid = image_grid(to_uint8(images, value_range), nrow=nrow, padding=padding)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if grid.shape[0] == 1:
        Image.fromarray(grid[0].numpy()).save(path)  # 2-D uint8 -> "L"
    else:
        Image.fromarray(rearrange(grid, "c h w -> h w c").contiguous().numpy()).save(path)  # -> "RGB"
    return path


def save_comparison_grid(rows: Sequence[torch.Tensor], path: str | Path, *, columns: int = 16,
                         value_range: tuple[float, float] = (0.0, 1.0), padding: int = 2,
                         min_tile: int = 0) -> Path:
    """Rows of images, each (n c h w) for the same n examples (e.g. input, translation,
    reconstruction) -> a PNG where example i is column i of every row.

    More than ``columns`` examples wrap into further blocks of the same rows, one under the
    other; cells past the last example stay blank (white). Otherwise as ``save_image_grid``.
    """
    if not rows:
        raise ValueError("save_comparison_grid needs at least one row")
    n = rows[0].shape[0]
    if any(r.shape != rows[0].shape for r in rows):
        raise ValueError(f"comparison rows must share one shape, got {[tuple(r.shape) for r in rows]}")
    if rows[0].dim() != 4 or rows[0].shape[1] not in (1, 3) or n == 0:
        raise ValueError(f"comparison rows must be non-empty (n c h w) tensors with c = 1 or 3, "
                         f"got shape {tuple(rows[0].shape)}")
    cols = min(columns, n)
    cells = []
    for start in range(0, n, cols):
        for r in rows:
            block = to_uint8(r[start:start + cols], value_range)
            blanks = block.new_full((cols - block.shape[0], *block.shape[1:]), 255)
            cells.append(torch.cat([block, blanks]))
    images = torch.cat(cells)
    factor = max(1, -(-min_tile // max(images.shape[-2:])))
    if factor > 1:
        images = images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    grid = image_grid(images, nrow=cols, padding=padding)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = grid[0].numpy() if grid.shape[0] == 1 else rearrange(grid, "c h w -> h w c").contiguous().numpy()
    Image.fromarray(array).save(path)
    return path


# ----------------------------------------------------------------------------- scatter plots

def _numpy_rows(x, what: str) -> np.ndarray:
    """Tensor or array (n, ...) -> float64 array (n d)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        x = x.reshape(x.shape[0], -1)
    if x.shape[0] == 0:
        raise ValueError(f"{what} is empty")
    return x


class PlanarView:
    """Maps (n d) points to the plane: the identity for d = 2, the first two principal
    components of ``fit_on`` for d > 2, and (value, 0) for d = 1. ``note`` says which."""

    def __init__(self, fit_on: np.ndarray):
        self.d = fit_on.shape[1]
        self.note = ""
        if self.d > 2:
            self.center = fit_on.mean(axis=0)
            _, sing, vt = np.linalg.svd(fit_on - self.center, full_matrices=False)
            self.axes = np.zeros((self.d, 2))  # (d 2); fewer than 2 points span fewer axes, the rest stay 0
            self.axes[:, :len(vt[:2])] = vt[:2].T
            var = sing ** 2
            share = var[:2].sum() / var.sum() if var.sum() > 0 else 1.0
            self.note = f"PCA of {self.d}-D latent: PC1–PC2, {100 * share:.0f}% of variance"
        elif self.d == 1:
            self.note = "1-D latent"

    def __call__(self, points: np.ndarray) -> np.ndarray:
        if points.shape[1] != self.d:
            raise ValueError(f"expected points of dimension {self.d}, got {points.shape[1]}")
        if self.d > 2:
            return (points - self.center) @ self.axes
        if self.d == 1:
            return np.concatenate([points, np.zeros_like(points)], axis=1)
        return points


def _titled(title: str, note: str) -> str:
    return f"{title} ({note})" if title and note else (title or note)


def _save_figure(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)  # attach an Agg canvas: rendering never involves a GUI backend
    fig.savefig(path, format="png", dpi=fig.dpi)
    return path


def _marker_size(n: int) -> float:
    """Smaller markers for denser scatters so structure stays visible."""
    return float(np.clip(5000.0 / max(n, 1), 3.0, 25.0))


def _legend_scale(size: float) -> float:
    """Legend markers about 6 pt across whatever the scatter's marker area (pt²)."""
    return max(1.0, 6.0 / math.sqrt(size))


def save_points_plot(points, path: str | Path, *, reference=None, title: str = "") -> Path:
    """points (n 2) -> a PNG scatter of generated points over ``reference`` data (m 2) in grey.

    Points of dimension > 2 are shown on the first two principal components of the
    reference data (or of the points when there is none), which the title notes.
    """
    pts = _numpy_rows(points, "points")
    ref = None if reference is None else _numpy_rows(reference, "reference")
    view = PlanarView(ref if ref is not None else pts)
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.subplots()
    if ref is not None:
        r2 = view(ref)
        ax.scatter(r2[:, 0], r2[:, 1], s=_marker_size(len(r2)), c=PRIOR_GREY, label="data",
                   linewidths=0)
    p2 = view(pts)
    ax.scatter(p2[:, 0], p2[:, 1], s=_marker_size(len(p2)), c="tab:blue", alpha=0.7,
               label="generated", linewidths=0)
    if ref is not None:
        ax.legend(loc="upper right", markerscale=_legend_scale(_marker_size(len(p2))), fontsize="small")
    ax.set_title(_titled(title, view.note.replace("latent", "data")), fontsize="medium")
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    return _save_figure(fig, path)


def _class_colors(count: int) -> list:
    from matplotlib import colormaps
    cmap = colormaps["tab10" if count <= 10 else "tab20" if count <= 20 else "turbo"]
    if count <= 20:
        return [cmap(i) for i in range(count)]
    return [cmap(i / max(count - 1, 1)) for i in range(count)]


def save_latent_plot(latents, labels, path: str | Path, *, prior_samples=None, title: str = "",
                     class_names: Sequence[str] | None = None) -> Path:
    """latents (n d), labels (n,) or None -> a PNG of encoded data coloured by class.

    Drawn over light-grey ``prior_samples`` (m d) so holes and mismatches with the prior
    show. For d > 2 everything is projected on the first two principal components of the
    latents (the title says so and how much variance they keep); d = 1 is drawn on a line.
    """
    z = _numpy_rows(latents, "latents")
    view = PlanarView(z)
    fig = Figure(figsize=(5.5, 5), dpi=100)
    ax = fig.subplots()
    if prior_samples is not None:
        p2 = view(_numpy_rows(prior_samples, "prior_samples"))
        ax.scatter(p2[:, 0], p2[:, 1], s=_marker_size(len(p2)), c=PRIOR_GREY, label="prior",
                   linewidths=0, zorder=1)
    z2 = view(z)
    size = _marker_size(len(z2))
    if labels is None:
        ax.scatter(z2[:, 0], z2[:, 1], s=size, c="tab:blue", alpha=0.8, label="encoded",
                   linewidths=0, zorder=2)
    else:
        y = (labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor)
             else np.asarray(labels)).reshape(-1)
        if len(y) != len(z2):
            raise ValueError(f"got {len(z2)} latents but {len(y)} labels")
        classes = np.unique(y)
        for color, cls in zip(_class_colors(len(classes)), classes):
            name = (class_names[int(cls)] if class_names is not None and 0 <= int(cls) < len(class_names)
                    else str(cls))
            mask = y == cls
            ax.scatter(z2[mask, 0], z2[mask, 1], s=size, color=color, alpha=0.8, label=name,
                       linewidths=0, zorder=2)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=_legend_scale(size),
              fontsize="small", frameon=False)
    ax.set_title(_titled(title, view.note), fontsize="medium")
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    return _save_figure(fig, path)
