"""A third-party plugin, pip-installed and used the way a user would, without touching the venv.

``tests/sample_plugin`` is a normal package (pyproject with an ``lvmgraph`` entry point). It is
installed with pip into a temporary folder and put on ``PYTHONPATH`` of ``lvmgraph`` subprocesses,
so its discovery goes through ``importlib.metadata`` exactly as after ``pip install``.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lvmgraph.cli import main
from lvmgraph.plugins import get_registry
from lvmgraph.train.checkpoint import latest_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "sample_plugin"
LVMGRAPH = str(Path(sys.executable).with_name("lvmgraph"))


def _env(pythonpath: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LVMGRAPH_DISABLE_PLUGIN_AUTOLOAD", "LVMGRAPH_DISABLE_PLUGINS")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    # one thread: on a busy 2-core machine OpenMP's spinning threads make a tiny run 5x slower
    env["OMP_NUM_THREADS"] = "1"
    return env


def lvmgraph(*args, site: Path | None, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LVMGRAPH, *map(str, args)], cwd=cwd, env=_env(site), capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The sample plugin pip-installed into a private folder (the source tree stays clean)."""
    tmp = tmp_path_factory.mktemp("third_party")
    src = tmp / "src"
    # building in place would leave build/ and *.egg-info in tests/sample_plugin
    shutil.copytree(SOURCE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                           "--no-index", "--quiet", "--target", str(target), str(src)],
                          capture_output=True, text=True, timeout=180, env=_env(None))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "lvmgraph_sample_plugin" / "specs" / "aae_residual.yaml").exists(), "package data not installed"
    return target


@pytest.fixture(scope="module")
def spec(site) -> Path:
    return site / "lvmgraph_sample_plugin" / "specs" / "aae_residual.yaml"


def test_plugins_command_lists_the_installed_plugin(site, tmp_path):
    done = lvmgraph("plugins", site=site, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    i = lines.index("sample_residual  (lvmgraph-sample-plugin 0.2.0)")  # entry-point name, distribution, version
    assert lines[i + 1].split() == ["components:", "residual_mlp"]
    assert lines[i + 2].split() == ["losses:", "cosine_distance"]
    assert any(line.startswith("core  (lvmgraph ") for line in lines)  # the built-ins still load alongside



def test_plugins_detail_documents_the_plugin_settings(site, monkeypatch, capsys):
    # in-process (cheaper than another interpreter): the entry point is found once its folder is on sys.path
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("LVMGRAPH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("LVMGRAPH_DISABLE_PLUGINS", raising=False)
    assert main(["plugins", "--detail", "residual_mlp", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["kind"], entry["plugin"]) == ("component", "sample_residual")
    assert entry["doc"].startswith("x (b, *in_shape) -> (b, *out_shape): an MLP of pre-norm residual blocks")
    assert entry["settings"]["width"] == {"type": "int", "required": False, "default": 128,
                                          "description": "width of every residual block"}
    assert entry["settings"]["out_activation"]["type"] == "'none' | 'sigmoid' | 'tanh'"
    assert entry["settings"]["in_shape"]["required"] is True


def test_run_trains_the_plugin_spec_and_writes_a_checkpoint(site, spec, tmp_path):
    out = tmp_path / "run"
    done = lvmgraph("run", spec, "--out", out, "--set", "train.steps=20", "--set", "train.log_every=5",
                    "--set", "train.checkpoint_every=10", "--set", "train.sample_every=20", "--no-eval", "--quiet",
                    site=site, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"run directory: {out}" in done.stdout

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("rec_loss", "cos_loss", "d_loss", "g_loss"))
        assert 0.0 <= r["cos_loss"] <= 2.0  # the plugin's loss, in its documented range
    assert rows[-1]["rec_loss"] < rows[0]["rec_loss"]  # the residual autoencoder learns

    ckpt = latest_checkpoint(out / "checkpoints")
    assert ckpt is not None and ckpt.name.endswith("20")
    state = load_checkpoint(ckpt)
    assert state["step"] == 20
    # the weights are the plugin's residual blocks: 2 in the encoder and decoder, 1 in the critic
    keys = set(state["components"])
    assert {"encoder.blocks.1.fc2.weight", "decoder.blocks.1.norm.weight", "critic.blocks.0.fc1.bias"} <= keys
    assert "critic.blocks.1.fc1.weight" not in keys
    # prepare() ran the full validation and dry run through the plugin before training
    resolved = (out / "spec.yaml").read_text()
    assert "residual_mlp" in resolved and "cosine_distance" in resolved


def test_validate_without_the_plugin_names_what_is_missing(spec, monkeypatch, capsys):
    # this process never has the plugin's folder on sys.path (the test above restores it)
    monkeypatch.delenv("LVMGRAPH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    assert get_registry().get("component", "residual_mlp") is None
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: 4 problems" in err
    for line, key in [(10, "encoder"), (11, "decoder"), (12, "critic")]:
        assert f"line {line}  components.{key}.type: unknown component 'residual_mlp'" in err
    assert "line 19  graph.cos_loss: 'cosine_distance' is neither a registered op" in err
