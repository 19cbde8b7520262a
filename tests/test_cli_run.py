"""The CLI run / resume / sample / eval flow, each command in its own process.

Independent commands run concurrently (two waves) to keep the module fast; every test then
checks one part of what they wrote. The quick refusals (validate, an occupied --out) call
``lvmgraph.cli.main`` in this process: the console script is ``sys.exit(main())``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lvmgraph.api as lg
from lvmgraph.cli import main as cli_main
from lvmgraph.train.checkpoint import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
AAE = ROOT / "specs" / "aae_uniform.yaml"
VAE = ROOT / "specs" / "vae.yaml"
_script = Path(sys.executable).parent / "lvmgraph"
LVMGRAPH = [str(_script)] if _script.exists() else [sys.executable, "-m", "lvmgraph"]
FLOW = ["--set", "train.log_every=20", "--set", "train.checkpoint_every=30", "--set", "train.sample_every=30",
        "--set", "train.threads=1", "--quiet"]
AAE_METRICS = {"reconstruction_error", "prior_mmd", "prior_ks"}


def start(*args: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")  # training sets train.threads=1 itself; this speeds up the rest
    return subprocess.Popen([*LVMGRAPH, *map(str, args)], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(procs: dict[str, subprocess.Popen]) -> dict[str, subprocess.CompletedProcess]:
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        out[name] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    return out


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def results_without_timing(eval_json: dict) -> dict:
    return {name: {k: v for k, v in out.items() if k != "seconds"} for name, out in eval_json["results"].items()}


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    wave1 = {
        "run_b": start("run", AAE, "--out", root / "B", "--set", "train.steps=60", *FLOW, cwd=root),
        "run_a": start("run", AAE, "--out", root / "A", "--set", "train.steps=30", *FLOW, cwd=root),
    }
    # meanwhile, a small VAE run for `sample --given` (how it was trained is not under test here)
    lg.train(VAE, out=root / "V", evaluate=False, overrides=["train.steps=20", "train.checkpoint_every=20",
                                                             "train.threads=1", "train.progress=false"])
    wave1 = finish(wave1)
    for name in ("run_b", "run_a"):
        ok(wave1[name])
    run_eval = json.loads((root / "B" / "eval.json").read_text())
    shutil.copytree(root / "B", root / "E")
    for d in ("B", "E"):
        (root / d / "eval.json").unlink()
    z = torch.Generator().manual_seed(3)
    np.savez(root / "z.npz", samples=torch.randn(16, 8, generator=z).numpy())
    wave2 = finish({
        "resume_a": start("resume", root / "A", "--set", "train.steps=60", "--quiet", cwd=root),
        "sample_npz": start("sample", root / "B", "-n", 16, "--out", root / "s.npz", cwd=root),
        "sample_png": start("sample", root / "B", "--n", 16, "--out", root / "grids" / "s.png", cwd=root),
        "eval": start("eval", root / "B", cwd=root),
        "eval_ks": start("eval", root / "E", "--metrics", "prior_ks", cwd=root),
        "given": start("sample", root / "V", "-n", 16, "--given", f"z={root / 'z.npz'}", "--seed", 5,
                       "--out", root / "g.npz", cwd=root),
    })
    return {"root": root, "run_eval": run_eval, **wave1, **wave2}


# ----------------------------------------------------------------------------- lvmgraph run

def test_run_writes_a_complete_run_directory(flow):
    b = flow["root"] / "B"
    assert f"run directory: {b}" in flow["run_b"].stdout
    rows = [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert all(set(r) == {"step", "rec_loss", "d_loss", "g_loss"} for r in rows)
    assert [p.name for p in list_checkpoints(b / "checkpoints")] == ["step_00000030", "step_00000060"]
    for ckpt in list_checkpoints(b / "checkpoints"):
        assert json.loads((ckpt / "manifest.json").read_text())["step"] == int(ckpt.name[5:])
    assert sorted(p.name for p in (b / "samples").glob("*.png")) == ["step_00000030.png", "step_00000060.png"]
    for png in [*(b / "samples").glob("*.png"), b / "latent.png"]:
        with Image.open(png) as im:
            assert im.format == "PNG" and min(im.size) >= 32
    assert flow["run_eval"]["step"] == 60
    assert set(flow["run_eval"]["results"]) == AAE_METRICS
    # TensorBoard holds the same scalars as metrics.jsonl
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    assert list((b / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(b / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"rec_loss", "d_loss", "g_loss"}
    logged = [(e.step, e.value) for e in events.Scalars("rec_loss")]
    assert [s for s, _ in logged] == [20, 40, 60]
    assert [v for _, v in logged] == pytest.approx([r["rec_loss"] for r in rows], rel=1e-6)


def test_resolved_spec_validates_and_loads_with_the_overrides(flow, capsys):
    b = flow["root"] / "B"
    assert cli_main(["validate", str(b / "spec.yaml")]) == 0
    assert f"{b / 'spec.yaml'}: ok" in capsys.readouterr().out
    spec = lg.load(b / "spec.yaml").spec
    assert (spec.train.steps, spec.train.log_every, spec.train.checkpoint_every, spec.train.threads) == (60, 20, 30, 1)
    assert spec.phases[1].optimizer.settings["betas"] == [0.5, 0.999]


@pytest.mark.parametrize("existing", ["a finished run", "a file of the user's"])
def test_run_refuses_an_occupied_out_directory_without_touching_it(flow, capsys, existing):
    if existing == "a finished run":
        target = flow["root"] / "B"
    else:
        target = flow["root"] / "occupied"
        target.mkdir(exist_ok=True)
        (target / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert cli_main(["run", str(AAE), "--out", str(target), "--set", "train.steps=2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already holds files" in err and str(target) in err
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before


def test_a_path_that_is_not_a_run_points_to_the_run_meant(tmp_path, capsys):
    """A typo, the runs folder itself, or a file: each says which run directory to pass instead."""
    for name in ("aae_uniform-20261205-101500", "vae-20261205-101700"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.yaml").write_text("name: x\n")
    os.utime(tmp_path / "aae_uniform-20261205-101500" / "spec.yaml", (1, 1))
    os.utime(tmp_path / "aae_uniform-20261205-101500", (1, 1))

    def error(path):
        assert cli_main(["eval", str(path)]) == 2
        return capsys.readouterr().err

    assert "did you mean 'aae_uniform-20261205-101500'?" in error(tmp_path / "aae_uniform-20261205-10150")
    assert f"holds 2 runs; the newest is {tmp_path / 'vae-20261205-101700'}" in error(tmp_path)
    assert "is a file, not a run directory" in error(tmp_path / "vae-20261205-101700" / "spec.yaml")
    assert f"no such run directory: {tmp_path / 'elsewhere' / 'x'}" in error(tmp_path / "elsewhere" / "x")


# ----------------------------------------------------------------------------- lvmgraph resume

def test_resume_in_a_new_process_equals_one_uninterrupted_run(flow):
    """run --steps 30, then resume --set train.steps=60 == run --steps 60 (the resume point is
    mid-epoch and between two log rows: 14 batches per epoch, log_every 20)."""
    ok(flow["resume_a"])
    a, b = flow["root"] / "A", flow["root"] / "B"
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    assert [p.name for p in list_checkpoints(a / "checkpoints")] == ["step_00000030", "step_00000060"]
    sa = load_checkpoint(a / "checkpoints" / "step_00000060")
    sb = load_checkpoint(b / "checkpoints" / "step_00000060")
    assert sa["components"].keys() == sb["components"].keys()
    for name in sa["components"]:
        assert torch.equal(sa["components"][name], sb["components"][name]), name
    for oa, ob in zip(sa["optimizers"], sb["optimizers"]):
        for pa, pb in zip(oa["state"].values(), ob["state"].values()):
            assert all(torch.equal(torch.as_tensor(pa[k]), torch.as_tensor(pb[k])) for k in pa)
    assert (a / "samples" / "step_00000060.png").read_bytes() == (b / "samples" / "step_00000060.png").read_bytes()
    assert results_without_timing(json.loads((a / "eval.json").read_text())) == \
        results_without_timing(flow["run_eval"])
    assert lg.load(a / "spec.yaml").spec.train.steps == 60  # the resolved spec records the extension


# ----------------------------------------------------------------------------- lvmgraph sample

def test_sample_npz(flow):
    ok(flow["sample_npz"])
    with np.load(flow["root"] / "s.npz") as f:
        assert f.files == ["samples"]
        samples = f["samples"]
    assert samples.shape == (16, 1, 8, 8) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert samples.std(axis=0).mean() > 1e-3  # 16 different draws, not one repeated
    # the same seed in this process gives the same samples
    again = lg.open_run(flow["root"] / "B").sample(16, seed=0).numpy()
    np.testing.assert_allclose(samples, again, rtol=0, atol=1e-6)


def test_sample_png(flow):
    ok(flow["sample_png"])
    with Image.open(flow["root"] / "grids" / "s.png") as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("L"), dtype=np.float32)
    assert min(pixels.shape) >= 4 * 8 and pixels.std() > 1


# ----------------------------------------------------------------------------- lvmgraph eval

def test_eval_writes_eval_json_equal_to_the_runs_own(flow):
    result = ok(flow["eval"])
    written = json.loads((flow["root"] / "B" / "eval.json").read_text())
    assert written["step"] == 60
    assert set(written["results"]) == AAE_METRICS
    assert "prior_ks" in result.stdout and "eval.json" in result.stdout
    for name in ("mmd2", "floor"):
        assert isinstance(written["results"]["prior_mmd"][name], float)
    assert 0 <= written["results"]["prior_ks"]["ks_max"] <= 1
    assert written["results"]["reconstruction_error"]["mse"] > 0
    # evaluation is seeded: the run's end-of-training evaluation and `lvmgraph eval` agree
    assert results_without_timing(written) == results_without_timing(flow["run_eval"])


def test_eval_subset_of_metrics(flow):
    ok(flow["eval_ks"])
    written = json.loads((flow["root"] / "E" / "eval.json").read_text())
    assert list(written["results"]) == ["prior_ks"]
    # a metric's value does not depend on which other metrics ran before it
    assert results_without_timing(written)["prior_ks"] == results_without_timing(flow["run_eval"])["prior_ks"]


# ----------------------------------------------------------------------------- sample --given

def test_vae_sample_with_a_given_latent_is_deterministic(flow):
    root = flow["root"]
    ok(flow["given"])
    with np.load(root / "g.npz") as f:
        g0 = f["samples"]
    assert g0.shape == (16, 1, 8, 8)
    run = lg.open_run(root / "V")
    with np.load(root / "z.npz") as f:
        z = torch.from_numpy(f["samples"])
    with torch.no_grad():
        expected = run.experiment.modules["decoder"](z).mean.numpy()
    # the output is the decoder's mean at exactly the given z, whatever the seed
    np.testing.assert_allclose(g0, expected, rtol=0, atol=1e-6)
    given = {"z": z}
    assert torch.equal(run.sample(16, given=given, seed=0), run.sample(16, given=given, seed=5))
    # without --given the seed does matter, so the equalities above are not trivial
    assert not torch.equal(run.sample(16, seed=0), run.sample(16, seed=5))
