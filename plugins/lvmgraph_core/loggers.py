"""Experiment trackers for ``train.loggers``: TensorBoard (the default), and W&B and MLflow.

W&B and MLflow are never dependencies: each imports its library only when a run opens it, and
is registered with ``requires=`` so a spec that chooses one without the library installed is a
validation error saying ``pip install ...`` (before any data is loaded). Both remember their
tracker run id in the run directory, so ``lvmgraph resume`` continues the same tracked run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from lvmgraph import Params, hookimpl
from lvmgraph.train.logging import TensorBoardWriter


class TensorBoardParams(Params):
    """TensorBoard takes no settings: events go to RUN/tensorboard."""


class TensorBoardLogger:
    """Scalars to TensorBoard event files in RUN/tensorboard (``tensorboard --logdir runs``)."""

    def __init__(self):
        self.writer: TensorBoardWriter | None = None

    def open(self, run_dir: Path, spec: dict) -> None:
        self.writer = TensorBoardWriter(run_dir / "tensorboard")

    def log(self, step: int, values: dict[str, float]) -> None:
        self.writer.scalars(values, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _remembered_id(path: Path, new_id) -> str:
    """The tracker run id stored in ``path`` by an earlier open of this run, else ``new_id()`` (stored)."""
    if path.exists():
        return path.read_text().strip()
    run_id = str(new_id())
    path.write_text(run_id + "\n")
    return run_id


class WandbParams(Params):
    project: str | None = Field(default=None, description="W&B project (default: WANDB_PROJECT or W&B's own)")
    entity: str | None = Field(default=None, description="W&B team or user (default: your default entity)")
    mode: Literal["online", "offline"] = Field(default="online",
                                               description="online, or offline (sync later with `wandb sync`)")
    tags: list[str] = Field(default_factory=list, description="tags of the W&B run")


class WandbLogger:
    """Metrics to Weights & Biases: one W&B run per lvmgraph run (named after its folder, the
    resolved spec as its config), continued by ``lvmgraph resume``. Needs ``pip install wandb``."""

    def __init__(self, *, project=None, entity=None, mode="online", tags=()):
        self.settings = {"project": project, "entity": entity, "mode": mode, "tags": list(tags)}
        self.run = None

    def open(self, run_dir: Path, spec: dict) -> None:
        import wandb  # lazily: W&B is optional
        run_id = _remembered_id(run_dir / "wandb_run_id", wandb.util.generate_id)
        self.run = wandb.init(id=run_id, resume="allow", name=run_dir.name, dir=str(run_dir), config=spec,
                              **self.settings)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


class MlflowParams(Params):
    tracking_uri: str | None = Field(default=None, description="MLflow tracking server or folder "
                                                               "(default: MLFLOW_TRACKING_URI or ./mlruns)")
    experiment: str | None = Field(default=None, description="MLflow experiment (default: the spec's name)")


class MlflowLogger:
    """Metrics to MLflow: one MLflow run per lvmgraph run (the resolved spec logged as spec.json),
    continued by ``lvmgraph resume``. Needs ``pip install mlflow``."""

    def __init__(self, *, tracking_uri=None, experiment=None):
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.client = self.run_id = None

    def open(self, run_dir: Path, spec: dict) -> None:
        from mlflow.tracking import MlflowClient  # lazily: MLflow is optional
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        name = self.experiment or spec["name"]
        found = self.client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(name)

        def new_run():
            run = self.client.create_run(experiment_id, run_name=run_dir.name)
            self.client.log_dict(run.info.run_id, spec, "spec.json")
            return run.info.run_id

        self.run_id = _remembered_id(run_dir / "mlflow_run_id", new_run)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key, value, step=step)

    def close(self) -> None:
        if self.client is not None:
            self.client.set_terminated(self.run_id)
            self.client = None


@hookimpl
def register_loggers(register):
    register("tensorboard", TensorBoardLogger, params=TensorBoardParams)
    register("wandb", WandbLogger, params=WandbParams, requires=("wandb",))
    register("mlflow", MlflowLogger, params=MlflowParams, requires=("mlflow",))
