"""``train.loggers``: trackers registered through ``register_loggers`` get every metrics.jsonl row.

A real in-test plugin registers a logger through the hook (no mock of the trainer); TensorBoard is
the built-in default registered the same way; W&B and MLflow are optional, and choosing one without
its library is a validation error that says what to install.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

import lvmgraph.api as api
from lvmgraph import Params, hookimpl
from lvmgraph.cli import main
from lvmgraph.plugins import build_registry, get_registry, make_plugin_manager, use_registry
from lvmgraph.train.logging import Logger


class RecordingLogger:
    """Keeps what it is sent, in ``CALLS`` (the trainer builds its own instance from the spec)."""

    CALLS: list[tuple] = []

    def __init__(self, *, tag: str = ""):
        self.tag = tag

    def open(self, run_dir, spec):
        self.CALLS.append(("open", run_dir, spec["name"], self.tag))

    def log(self, step, values):
        self.CALLS.append(("log", {"step": step, **values}))

    def close(self):
        self.CALLS.append(("close",))


class RecordingParams(Params):
    tag: str = ""


@pytest.fixture
def recorder():
    plugin = types.ModuleType("recorder_plugin")

    @hookimpl
    def register_loggers(register):
        register("recorder", RecordingLogger, params=RecordingParams)

    plugin.register_loggers = register_loggers
    RecordingLogger.CALLS = []
    with use_registry(build_registry(make_plugin_manager(extra_plugins=[plugin]))):
        yield RecordingLogger.CALLS


def write_spec(tmp_path: Path, loggers: str, name: str = "logged") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nextends: family:vae\n"
                    f"train: {{steps: 7, log_every: 2, checkpoint_every: 7, progress: false,\n"
                    f"        loggers: {loggers}}}\n")
    return path


def test_a_logger_plugin_gets_the_rows_metrics_jsonl_gets(tmp_path, recorder):
    spec = write_spec(tmp_path, "[tensorboard, {recorder: {tag: mine}}]")
    run = api.train(spec, out=tmp_path / "run", evaluate=False)
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6, 7]  # 7: the off-schedule last row is sent too
    assert recorder[0] == ("open", run.path, "logged", "mine")
    assert [c[1] for c in recorder[1:-1]] == rows
    assert recorder[-1] == ("close",)
    assert list(run.tensorboard.glob("events.out.tfevents.*"))  # the default logger still runs beside it

    # resume opens the loggers again and sends only the new rows
    recorder.clear()
    api.resume(run.path, overrides=["train.steps=10"], evaluate=False)
    new_rows = [r for r in run.read_metrics() if r["step"] > 6]
    assert [r["step"] for r in new_rows] == [8, 10]
    assert recorder[0][0] == "open" and recorder[-1] == ("close",)
    assert [c[1] for c in recorder[1:-1]] == new_rows


def test_no_loggers_still_writes_metrics_jsonl(tmp_path, recorder):
    run = api.train(write_spec(tmp_path, "[]"), out=tmp_path / "run", evaluate=False)
    assert [r["step"] for r in run.read_metrics()] == [2, 4, 6, 7]
    assert not run.tensorboard.exists() and recorder == []


def test_tensorboard_is_the_default_logger_registered_through_the_hook():
    from lvmgraph.spec.schema import TrainSpec
    assert TrainSpec().loggers == ["tensorboard"]
    entries = {e.name: e for e in get_registry().entries("logger")}
    assert {"tensorboard", "wandb", "mlflow"} <= set(entries)
    assert {entries[n].plugin for n in ("tensorboard", "wandb", "mlflow")} == {"core"}
    assert isinstance(entries["tensorboard"].factory(), Logger)
    assert entries["wandb"].options["requires"] == ("wandb",)


def validate(capsys, path: Path) -> tuple[int, str]:
    code = main(["validate", "--no-dry-run", str(path)])
    return code, capsys.readouterr().err


def test_an_unknown_logger_gets_did_you_mean(tmp_path, capsys):
    path = write_spec(tmp_path, "[tensorbord]")
    code, err = validate(capsys, path)
    assert code == 2
    assert (f"line 4   train.loggers[0]: unknown logger 'tensorbord' — did you mean 'tensorboard'? "
            f"(see `lvmgraph plugins --kind logger`)") in err


@pytest.mark.parametrize("entry, package", [("wandb", "wandb"), ("{mlflow: {experiment: digits}}", "mlflow")])
def test_a_tracker_without_its_library_is_a_validation_error_naming_the_install(tmp_path, capsys, monkeypatch,
                                                                                  entry, package):
    monkeypatch.setitem(sys.modules, package, None)  # not importable, whether or not it is installed here
    code, err = validate(capsys, write_spec(tmp_path, f"[tensorboard, {entry}]"))
    assert code == 2
    assert (f"line 4   train.loggers[1]: logger '{package}' needs the Python package {package}, which is not "
            f"installed — pip install {package}") in err


def test_logger_settings_are_validated_and_each_logger_listed_once(tmp_path, capsys):
    code, err = validate(capsys, write_spec(tmp_path, "[{tensorboard: {flush_secs: 5}}]", "settings"))
    assert code == 2 and "train.loggers[0].tensorboard.flush_secs: unknown setting 'flush_secs'" in err
    code, err = validate(capsys, write_spec(tmp_path, "[tensorboard, tensorboard]", "twice"))
    assert code == 2 and "logger 'tensorboard' is listed twice; list each logger once" in err


def fake_wandb(calls: list) -> types.ModuleType:
    """A stand-in for the wandb package with the calls WandbLogger makes (the real one needs an
    account or a network and is never a dependency): records them in ``calls``."""
    wandb = types.ModuleType("wandb")
    wandb.util = types.SimpleNamespace(generate_id=lambda: f"id{len(calls)}")

    class Run:
        def log(self, values, step):
            calls.append(("log", step, dict(values)))

        def finish(self):
            calls.append(("finish",))

    def init(**kwargs):
        calls.append(("init", kwargs))
        return Run()

    wandb.init = init
    return wandb


def test_the_wandb_logger_continues_the_same_wandb_run_on_resume(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    spec = write_spec(tmp_path, "[{wandb: {project: digits, mode: offline}}]", "tracked")
    run = api.train(spec, out=tmp_path / "run", evaluate=False)
    (_, first), *logged, finished = calls
    assert first["project"] == "digits" and first["mode"] == "offline" and first["resume"] == "allow"
    assert first["name"] == "run" and first["dir"] == str(run.path) and first["config"]["name"] == "tracked"
    assert [{"step": step, **values} for _, step, values in logged] == run.read_metrics()
    assert finished == ("finish",)

    calls.clear()
    api.resume(run.path, overrides=["train.steps=8"], evaluate=False)
    assert calls[0][1]["id"] == first["id"] == (run.path / "wandb_run_id").read_text().strip()
    assert [c[1] for c in calls if c[0] == "log"] == [8]
