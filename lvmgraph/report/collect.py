"""What a run directory holds, gathered for the report: metrics, sample grids, pictures, evaluation."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..train.checkpoint import step_of, list_checkpoints
from ..train.rundir import RunDir

_STEP = re.compile(r"step_(\d+)\.png$")


@dataclass
class RunContents:
    """Everything the report shows that is already on disk (paths are absolute)."""

    run: RunDir
    spec_text: str
    info: dict                      # run.json: spec, overrides, started, device, torch, threads
    metrics: list[dict]             # metrics.jsonl rows
    samples: list[tuple[int, Path]]  # (step, samples/step_*.png), by step
    latent_plot: Path | None
    evaluation: dict | None         # eval.json: {step, results}
    checkpoints: list[int] = field(default_factory=list)  # steps of complete checkpoints

    @property
    def last_step(self) -> int | None:
        return self.metrics[-1].get("step") if self.metrics else None

    def elapsed(self) -> float | None:
        """Seconds from the run's start to its last metrics row (a resumed run counts its pauses)."""
        started = self.info.get("started")
        if not started or not self.run.metrics_file.exists():
            return None
        return max(0.0, self.run.metrics_file.stat().st_mtime - float(started))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, or being rewritten: the report shows what it can


def sample_grids(run: RunDir) -> list[tuple[int, Path]]:
    found = []
    for path in run.samples.glob("step_*.png") if run.samples.is_dir() else ():
        match = _STEP.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def collect(run: RunDir) -> RunContents:
    latent = run.path / "latent.png"
    return RunContents(
        run=run,
        spec_text=run.spec_file.read_text() if run.spec_file.exists() else "",
        info=_read_json(run.path / "run.json") or {},
        metrics=run.read_metrics(),
        samples=sample_grids(run),
        latent_plot=latent if latent.exists() else None,
        evaluation=_read_json(run.eval_file),
        checkpoints=[step_of(p) for p in list_checkpoints(run.checkpoints)],
    )
