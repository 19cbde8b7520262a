"""Multi-process training (docs/DISTRIBUTED.md; RELIABILITY.md "Multi-process"): real gloo
processes on the CPU under torchrun, compared with one-process runs of twice the batch.

The torchrun launches start together in one module fixture (each pays for starting torch and
loading the data twice; the training itself is a handful of steps), with a timeout, so a hang
fails the module instead of blocking CI. The one-process runs for comparison train in this process.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import assert_same

import lvmgraph.api as lg
from lvmgraph.cli import main as cli_main
from lvmgraph.data.loader import IndexBatcher
from lvmgraph.train.checkpoint import list_checkpoints, load_checkpoint
from lvmgraph.train.distributed import Replicas, without_nproc
from lvmgraph.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
AAE = ROOT / "specs" / "aae_uniform.yaml"
DCGAN = ROOT / "specs" / "dcgan_fashion_mnist.yaml"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TIMEOUT = 900  # seconds for a whole launch: generous for a busy machine, finite for a hang
COMMON = ["train.threads=1", "train.progress=false", "train.log_every=2", "train.checkpoint_every=4",
          "train.keep_checkpoints=5", "train.sample_every=4"]
AAE_SET = [*COMMON, "train.steps=8", "data.batch_size=16"]
DCGAN_SET = [*COMMON, "train.steps=4", "data.batch_size=8"]

# An autoencoder and a critic without random draws or batch statistics: 2 processes x b and
# 1 process x 2b compute the same gradients up to the order of float sums. The critic's phase has
# what trips DistributedDataParallel: a component frozen in the other phase, called several times
# in its own, and a gradient penalty (a double backward through the critic).
AE = """\
name: ae_digits
seed: 0
data: {dataset: digits, batch_size: 20}
components:
  encoder: {type: mlp, in_shape: [1, 8, 8], out_shape: [2], hidden: [32], out_activation: tanh}
  decoder: {type: mlp, in_shape: [2], out_shape: [1, 8, 8], hidden: [32], out_activation: sigmoid}
  critic:  {type: mlp, in_shape: [1, 8, 8], out_shape: [1], hidden: [16]}
graph:
  z:        encoder(x)
  x_hat:    decoder(z)
  rec_loss: bce(x_hat, x)
  d_loss:   mean(critic(x)) - mean(critic(x_hat))
  r1:       r1_penalty(critic, x)
phases:
  - {minimize: rec_loss, update: [encoder, decoder], optimizer: {type: sgd, lr: 0.5}}
  - {minimize: {d_loss: 1.0, r1: 1.0}, update: [critic], optimizer: {type: sgd, lr: 0.1}}
train: {steps: 6, log_every: 2, checkpoint_every: 3, threads: 1, progress: false}
"""


def set_args(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def start(args: list, cwd: Path) -> subprocess.Popen:
    # a session of its own, so that a hung launch is killed with all its workers
    return subprocess.Popen([str(a) for a in args], cwd=cwd, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def torchrun(*args, cwd: Path) -> subprocess.Popen:
    return start([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                  "-m", "lvmgraph", *args], cwd)


def finish(p: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"{p.args} hung (killed after {TIMEOUT} s)\nstderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-5000:]}"
    return result


def nan_probe_spec(root: Path) -> str:
    """The autoencoder, unshuffled, 5 examples per process, with a term that is NaN exactly when the
    labels of a process's batch sum to less than a threshold: chosen so that this happens once in
    the first 3 steps, on one process only."""
    y = lg.validate(root / "ae.yaml", ["data.batch_size=5"]).data.train["y"]
    sums = [(int(y[i * 5:(i + 1) * 5].sum()), i) for i in range(6)]  # slice i: step i // 2, rank i % 2
    (low, _), (second, _) = sorted(sums)[:2]
    assert low < second, "the probe needs one batch with the smallest label sum"
    threshold = (low + second) / 2
    text = AE.replace("rec_loss: bce(x_hat, x)", f"rec_loss: bce(x_hat, x) + 0.0 * (sum(y) - {threshold}) ** 0.5")
    text = text.replace("batch_size: 20}", "batch_size: 5, shuffle: false}")
    text = text.replace("steps: 6,", "steps: 3, nonfinite: skip,")
    return text


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    (root / "ae.yaml").write_text(AE)
    (root / "nan.yaml").write_text(nan_probe_spec(root))
    (root / "aae").mkdir()
    procs = {
        # no --out: each process would name its own runs/<name>-<time> directory if it wrote one
        "aae": torchrun("run", AAE, "--quiet", *set_args(AAE_SET), cwd=root / "aae"),
        "ae": start([sys.executable, "-m", "lvmgraph", "run", root / "ae.yaml", "--nproc", "2", "--out", root / "ae2",
                     "--no-eval", "--quiet"], root),
        "nan": torchrun("run", root / "nan.yaml", "--out", root / "nan", "--no-eval", "--quiet", cwd=root),
    }
    # a long run, stopped below by a SIGTERM to one of its processes (through `--nproc`, whose exit code is 75)
    procs["stop"] = start([sys.executable, "-m", "lvmgraph", "run", AAE, "--nproc", "2", "--out", root / "stop",
                           "--no-eval", "--quiet", *set_args([*AAE_SET, "train.steps=1000000", "train.log_every=1",
                                                              "train.checkpoint_every=1000000"])], root)
    if FASHION_MNIST.is_dir():
        procs["dcgan"] = torchrun("run", DCGAN, "--out", root / "dcgan2", "--no-eval", "--quiet",
                                  *set_args(DCGAN_SET), cwd=root)
    # meanwhile, the one-process runs to compare with: twice the batch; the same with other random
    # draws (the yardstick); the AAE also with the same batch (half the examples per step)
    one = {"ae_2b": lg.train(root / "ae.yaml", out=root / "ae1", evaluate=False, overrides=["data.batch_size=40"]),
           "aae_b": final_weights(lg.train(AAE, out=root / "aae_b", evaluate=False, overrides=AAE_SET).path)}
    for name, spec, overrides in [("aae", AAE, [*AAE_SET, "data.batch_size=32"]),
                                  ("dcgan", DCGAN, [*DCGAN_SET, "data.batch_size=16"])]:
        if name == "dcgan" and not FASHION_MNIST.is_dir():
            continue
        one[f"{name}_2b"] = final_weights(lg.train(spec, out=root / f"{name}_2b", evaluate=False, overrides=overrides).path)
        one[f"{name}_2b_other_draws"] = other_draws(spec, overrides)
    stop_one_process(procs["stop"], root / "stop" / "metrics.jsonl")
    done = {name: finish(p) for name, p in procs.items()}
    ok(done["aae"])
    made = list((root / "aae" / "runs").iterdir())
    assert len(made) == 1, f"one run directory expected, found {made}"
    aae2 = made[0]
    # resume the 2-process run from its step-4 checkpoint, with 2 processes
    resumed = root / "resumed"
    shutil.copytree(aae2, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_00000008")
    done["resume"] = finish(torchrun("resume", resumed, "--quiet", cwd=root))
    return {"root": root, "done": done, "one": one, "aae2": aae2, "resumed": resumed}


def stop_one_process(launcher: subprocess.Popen, metrics: Path) -> None:
    """Once the run has logged a step, SIGTERM to the process of rank 1 only (a child of the launcher)."""
    deadline = time.monotonic() + TIMEOUT
    while not (metrics.exists() and metrics.read_text().strip()):
        assert launcher.poll() is None and time.monotonic() < deadline, "the run to stop did not start"
        time.sleep(0.5)
    ranks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (comm) state ppid ...": the launcher's children are the workers
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == launcher.pid:
                ranks[int(stat.parent.name)] = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    rank1 = [pid for pid, env in ranks.items() if b"RANK=1" in env]
    assert len(rank1) == 1, ranks
    os.kill(rank1[0], signal.SIGTERM)


def final(run_dir: Path) -> dict:
    return load_checkpoint(list_checkpoints(Path(run_dir) / "checkpoints")[-1])


def final_weights(run_dir: Path) -> dict:
    return final(run_dir)["components"]


def other_draws(spec: Path, overrides: list[str]) -> dict:
    """The weights of the same run (same initial weights, same batches) with other random draws
    inside the graph: the spread that sampling noise alone puts between two runs."""
    exp = lg.validate(spec, overrides)
    torch.manual_seed(12345)
    Trainer(exp, None, progress=False).fit()
    return {k: v.detach().clone() for k, v in exp.modules.state_dict().items()}


def distance(a: dict, b: dict) -> float:
    """Euclidean distance over the parameters (the keys ending in weight or bias; BatchNorm's
    running statistics follow from them)."""
    keys = [k for k in b if k.endswith(("weight", "bias"))]
    return float(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in keys)) ** 0.5


# ---- identical replicas ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["aae", "dcgan"])
def test_two_processes_hold_identical_replicas_at_every_checkpoint(runs, name):
    if name not in runs["done"]:
        pytest.skip("Fashion-MNIST is not installed")
    ok(runs["done"][name])
    run_dir = runs["aae2"] if name == "aae" else runs["root"] / "dcgan2"
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    assert [int(p.name.split("_")[1]) for p in checkpoints] == ([4, 8] if name == "aae" else [4])
    for path in checkpoints:
        ranks = load_checkpoint(path)["replicas"]["ranks"]
        assert len(ranks) == 2
        # sha256 over every parameter and buffer (BatchNorm statistics too), taken on each process
        assert ranks[0]["digest"] == ranks[1]["digest"], path
        # ... while the processes draw their own noise
        assert not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])


# ---- 2 processes x b against 1 process x 2b ------------------------------------------------------------

def test_without_random_draws_two_processes_equal_one_process_with_twice_the_batch(runs):
    """No noise and no batch statistics: the two runs differ only in the order of float sums
    (about 1e-8 measured), so the tolerance is tight; a wrong slice, a missing or doubled gradient
    average would be off by the size of an update (1e-2)."""
    ok(runs["done"]["ae"])  # through `lvmgraph run --nproc 2`
    two, one = final(runs["root"] / "ae2"), final(runs["one"]["ae_2b"].path)
    assert two["step"] == one["step"] == 6
    for k in one["components"]:
        torch.testing.assert_close(two["components"][k], one["components"][k], rtol=0, atol=1e-6)
    rows2 = [json.loads(r) for r in (runs["root"] / "ae2" / "metrics.jsonl").read_text().splitlines()]
    rows1 = runs["one"]["ae_2b"].read_metrics()
    assert [r["step"] for r in rows2] == [r["step"] for r in rows1] == [2, 4, 6]
    for r2, r1 in zip(rows2, rows1):  # logged losses are the means over the processes
        assert r2.keys() == r1.keys() and {"rec_loss", "d_loss", "r1"} <= r1.keys()
        for k in r1:
            assert r2[k] == pytest.approx(r1[k], abs=1e-6), k


@pytest.mark.parametrize("name", ["aae", "dcgan"])
def test_two_processes_match_one_process_with_twice_the_batch(runs, name):
    """With random draws inside the graph (the AAE's prior samples, the DCGAN's noise) the two
    processes see the examples of the 1 x 2b run but draw other noise, and (DCGAN) normalise each
    BatchNorm over their own half of the batch. So the tolerance is the distance sampling noise
    alone puts between two 1 x 2b runs, the same but for their random draws. Measured (AAE 8
    steps, DCGAN 4): 2 x b is 0.14 from 1 x 2b, the other-draws run 0.12-0.17 (AAE); 0.29 and
    0.37 (DCGAN: rank 0 draws what the one process draws first). A wrong split of the batch or a
    gradient not averaged shows in the AAE: its 1 x b run (half the examples) is 0.44 away."""
    if name not in runs["done"]:
        pytest.skip("Fashion-MNIST is not installed")
    ok(runs["done"][name])
    two = final_weights(runs["aae2"] if name == "aae" else runs["root"] / "dcgan2")
    one = runs["one"]
    tolerance = 1.5 * distance(one[f"{name}_2b_other_draws"], one[f"{name}_2b"])
    assert 0 < distance(two, one[f"{name}_2b"]) < tolerance, (distance(two, one[f"{name}_2b"]), tolerance)
    if name == "aae":
        assert distance(one["aae_b"], one["aae_2b"]) > 2 * distance(two, one["aae_2b"])


# ---- only rank 0 writes ----------------------------------------------------------------------------------

def test_only_rank_zero_writes_the_run_directory(runs):
    result, run_dir = ok(runs["done"]["aae"]), runs["aae2"]
    assert result.stdout.count("run directory:") == 1  # rank 0 reports
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["spec.yaml", "run.json", "metrics.jsonl", "checkpoints", "samples", "tensorboard", "eval.json", "latent.png",
         "report.html", "report"])
    assert [r["step"] for r in lg.RunDir(run_dir).read_metrics()] == [2, 4, 6, 8]  # each row once
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step_00000004.png", "step_00000008.png"]
    assert len(list((run_dir / "tensorboard").iterdir())) == 1
    assert json.loads((run_dir / "run.json").read_text())["processes"] == 2
    assert json.loads((run_dir / "eval.json").read_text())["step"] == 8


# ---- resume ------------------------------------------------------------------------------------------

def test_resuming_a_two_process_run_continues_exactly(runs):
    ok(runs["done"]["resume"])
    resumed, uninterrupted = final(runs["resumed"]), final(runs["aae2"])
    assert resumed["step"] == 8
    # weights, optimizers, every rank's RNG stream and open log interval, the data position
    assert_same(resumed, uninterrupted)
    assert lg.RunDir(runs["resumed"]).read_metrics() == lg.RunDir(runs["aae2"]).read_metrics()


def test_resuming_with_another_number_of_processes_warns_that_it_is_not_exact(runs, tmp_path, capsys):
    ok(runs["done"]["aae"])
    run_dir = tmp_path / "one"
    shutil.copytree(runs["aae2"], run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "step_00000008")
    lg.resume(run_dir, evaluate=False)
    err = capsys.readouterr().err
    assert "is not exact: world size changed from 2 to 1" in err
    assert final(run_dir)["step"] == 8 and final(run_dir)["replicas"] == {"ranks": []}


# ---- agreed decisions ------------------------------------------------------------------------------------

def test_a_non_finite_loss_on_one_process_is_skipped_by_both(runs):
    """The probe term is NaN on one process at one step (train.nonfinite: skip): both processes
    drop that update together and go on, so the run ends with identical replicas. Were the
    decision not agreed, one process would wait in the gradient average for the other, which has
    moved on: a hang (the timeout) or a collective size mismatch."""
    ok(runs["done"]["nan"])
    state = final(runs["root"] / "nan")
    assert state["step"] == 3 and state["skipped"] == 1
    digests = {r["digest"] for r in state["replicas"]["ranks"]}
    assert len(digests) == 1
    rows = lg.RunDir(runs["root"] / "nan").read_metrics()
    assert sum(r.get("nonfinite_skipped", 0) for r in rows) > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in /proc")
def test_a_stop_signal_to_one_process_stops_both_after_the_same_step(runs):
    """SIGTERM reached rank 1 only: both processes finish the same step, rank 0 checkpoints it,
    and the launcher exits with 75; resuming would continue from there."""
    result = runs["done"]["stop"]
    assert result.returncode == 75, result.stderr[-3000:]
    found = re.search(r"SIGTERM received: stopped after step (\d+); a checkpoint was saved", result.stderr)
    assert found, result.stderr[-3000:]
    step = int(found.group(1))
    checkpoints = list_checkpoints(runs["root"] / "stop" / "checkpoints")
    assert [p.name for p in checkpoints] == [f"step_{step:08d}"]
    state = load_checkpoint(checkpoints[0])
    assert state["step"] == step and len({r["digest"] for r in state["replicas"]["ranks"]}) == 1


# ---- the pieces, in this process -----------------------------------------------------------------------

def test_ranks_split_each_global_batch_exactly_as_one_process_draws_it():
    fields = {"x": torch.arange(23)}
    one = IndexBatcher(fields, batch_size=6, device=torch.device("cpu"), seed=5)
    ranks = [IndexBatcher(fields, batch_size=3, device=torch.device("cpu"), seed=5, rank=r, world=2)
             for r in range(2)]
    for _ in range(12):  # across epochs (3 global batches per epoch, drop_last)
        assert torch.equal(torch.cat([b.next()["x"] for b in ranks]), one.next()["x"])


def test_a_short_last_batch_leaves_no_process_empty():
    fields = {"x": torch.arange(7)}
    ranks = [IndexBatcher(fields, batch_size=3, device=torch.device("cpu"), seed=0, shuffle=False,
                          drop_last=False, rank=r, world=2) for r in range(2)]
    first = [b.next()["x"].tolist() for b in ranks]
    assert first == [[0, 1, 2], [3, 4, 5]]
    last = [b.next()["x"].tolist() for b in ranks]
    assert last == [[6], [6]]  # one example left for two processes: both take it


def test_one_process_replicas_do_nothing():
    r = Replicas()
    assert not r.active and r.is_main
    assert r.all_true(True) and not r.all_true(False) and r.any_true(True) and not r.any_true(False)
    assert r.mean_values({"a": 1.5}) == {"a": 1.5} and r.all_gather(3) == [3] and r.broadcast(4) == 4


def test_nproc_below_one_is_refused(capsys):
    assert cli_main(["run", str(AAE), "--nproc", "0"]) == 2
    assert "--nproc 0: give the number of processes" in capsys.readouterr().err


def test_nproc_is_dropped_from_the_command_each_process_runs():
    assert without_nproc(["run", "s.yaml", "--nproc", "2", "--set", "a=1"]) == ["run", "s.yaml", "--set", "a=1"]
    assert without_nproc(["run", "--nproc=4", "s.yaml"]) == ["run", "s.yaml"]


def test_a_launched_process_keeps_its_exit_code_and_output_when_it_skips_the_teardown(tmp_path):
    """Under torchrun (WORLD_SIZE > 1) `python -m lvmgraph` ends by os._exit (see __main__.py): the
    exit code and what it printed must survive that. A spec error is the case that needs no peer."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(AE.replace("batch_size: 20", "batchsize: 20"))
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    for env in ({"WORLD_SIZE": "2", "RANK": "1"}, {}):
        result = subprocess.run([sys.executable, "-m", "lvmgraph", "validate", str(bad)], cwd=tmp_path, text=True,
                                capture_output=True, env=dict(buffered, **env), timeout=300)
        assert result.returncode == 2, (env, result.stderr)
        assert "batch_size" in result.stderr and str(bad) in result.stderr, (env, result.stderr)
        # stdout into a pipe is block-buffered: what is printed there must be flushed before the exit
        good = subprocess.run([sys.executable, "-m", "lvmgraph", "validate", str(AAE)], cwd=tmp_path, text=True,
                              capture_output=True, env=dict(buffered, **env), timeout=300)
        assert good.returncode == 0 and good.stdout == f"{AAE}: ok\n", (env, good.stdout, good.stderr)
