"""The run report: ``RUN/report.html``, a static page of what a run did and makes.

    collect   what the run directory holds (metrics, sample grids, latent plot, eval.json, run.json)
    curves    loss curves per phase (inline SVG)
    figures   pictures generated from the trained weights (translations, reconstructions,
              interpolations, code traversals)
    page      the HTML, with the model graph drawn by ``lvmgraph.graph.svg``

Written cheaply during training (curves and the sample grids already on disk), in full after
training and by ``lvmgraph report RUN``. Pictures live in ``RUN/report/``; the page refers to them
and to the run's own files by relative paths, so the folder can be copied or archived whole.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from ..train.rundir import RunDir

PAGE = "report.html"
FOLDER = "report"


def write_report(run: RunDir | str | Path, exp, *, pictures: bool = True, in_progress: bool = False) -> Path:
    """Write ``RUN/report.html`` for the run directory ``run`` of the experiment ``exp``.

    ``pictures`` generates figures from ``exp``'s current weights (seconds; after training);
    without it only the loss curves are drawn. ``in_progress`` marks the page as a run still
    training (it then reloads itself every minute)."""
    from ..graph.svg import to_svg
    from .collect import collect
    from .curves import write_curves
    from .page import PageParts, render, write_page
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    folder = run.path / FOLDER
    folder.mkdir(exist_ok=True)
    contents = collect(run)
    spec = exp.spec
    parts = PageParts(curves=write_curves(spec.phases, contents.metrics),
                      diagram_svg=to_svg(exp.graph, spec.phases), phases=list(spec.phases),
                      total_steps=spec.train.steps, in_progress=in_progress)
    if pictures and spec.sample is not None:
        from ..api import Run
        from .figures import generate_all
        parts.pictures = generate_all(Run(run, exp, contents.last_step or 0), folder)
    return write_page(run.path / PAGE, render(contents, parts, spec.name))


def try_write_report(run: RunDir, exp, **kwargs) -> Path | None:
    """``write_report``, warning instead of raising: a report must never stop training or lose a
    checkpoint."""
    try:
        return write_report(run, exp, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure here is reported and training goes on
        warnings.warn(f"{run.path / PAGE} not written: {type(exc).__name__}: {exc}", stacklevel=2)
        return None


def during_training(exp, run: RunDir):
    """A trainer callback that rewrites the page (curves and sample grids only) whenever a sample
    grid was written, except at the last step, whose full report follows training."""
    cfg = exp.spec.train
    every = cfg.sample_every or cfg.checkpoint_every

    def callback(trainer) -> None:
        if trainer.step % every == 0 and trainer.step < cfg.steps:
            try_write_report(run, exp, pictures=False, in_progress=True)
    return callback
