"""The run directory: resolved spec, metrics, TensorBoard events, samples, checkpoints, evaluation."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..spec.yaml_io import dump_yaml


class RunDirError(RuntimeError):
    pass


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # layout
    @property
    def spec_file(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def eval_file(self) -> Path:
        return self.path / "eval.json"

    @staticmethod
    def check_new(out: str | Path) -> None:
        """Refuse an ``--out`` that already holds files (checked again, and created, by ``create``)."""
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} is a file, not a run directory; choose another --out")
        if path.exists() and any(path.iterdir()):
            raise RunDirError(f"{path} already holds files; choose another --out, "
                              f"or continue that run with `lvmgraph resume {path}`")

    @classmethod
    def create(cls, name: str, out: str | Path | None = None, root: str | Path = "runs") -> "RunDir":
        """A new, empty run directory; never reuses a directory that holds files."""
        if out is not None:
            path = Path(out)
            cls.check_new(path)
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(root) / f"{name}-{stamp}"
            i = 1
            while path.exists():
                path = Path(root) / f"{name}-{stamp}-{i}"
                i += 1
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.samples.mkdir(exist_ok=True)
        run.checkpoints.mkdir(exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        run = cls(path)
        if not run.spec_file.exists():
            raise RunDirError(_not_a_run_message(Path(path)))
        return run

    def write_spec(self, resolved: dict, source: str) -> None:
        dump_yaml(resolved, self.spec_file,
                  header=f"Resolved spec (every default filled in), written by lvmgraph from {source}.\n"
                         f"Continue with: lvmgraph resume {self.path}")

    def write_json(self, name: str, data: dict) -> Path:
        path = self.path / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=float))
        tmp.replace(path)
        return path

    def record_resume(self, entry: dict) -> None:
        """Append one resume (its step, overrides, environment and the reasons it is not exact) to
        run.json's ``resumes`` list."""
        path = self.path / "run.json"
        info = json.loads(path.read_text()) if path.exists() else {}
        info.setdefault("resumes", []).append(entry)
        self.write_json("run.json", info)

    def append_metrics(self, row: dict) -> None:
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict]:
        if not self.metrics_file.exists():
            return []
        rows = []
        for line in self.metrics_file.read_text().splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    break  # a torn last line from a crash
        return rows

    def truncate_metrics(self, after_step: int, *, keep_at_step: bool = True) -> None:
        """Drop rows logged after the checkpoint a resumed run starts from (and the row at it, unless
        ``keep_at_step``: a row written while that logging interval was still open)."""
        rows = [r for r in self.read_metrics()
                if r.get("step", 0) < after_step or (r.get("step", 0) == after_step and keep_at_step)]
        tmp = self.metrics_file.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(self.metrics_file)


def _runs_in(folder: Path) -> list[Path]:
    """The run directories directly inside ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if RunDir(p).spec_file.is_file()), key=lambda p: p.stat().st_mtime)


def _not_a_run_message(path: Path) -> str:
    """Why ``path`` is not a run directory, and the run the user most likely meant."""
    from ..spec.errors import did_you_mean_hint

    if path.is_file():
        return f"{path} is a file, not a run directory (a run directory holds spec.yaml)"
    if not path.exists():
        hint = did_you_mean_hint(path.name, [p.name for p in _runs_in(path.parent)])
        return f"no such run directory: {path}" + (f"; {hint}" if hint else "")
    inside = _runs_in(path)
    if len(inside) == 1:
        return f"{path} is not a run directory but holds one: {inside[0]}"
    if inside:
        return f"{path} is not a run directory but holds {len(inside)} runs; the newest is {inside[-1]}"
    return f"{path} is not an lvmgraph run directory (no spec.yaml)"
