"""Resume equals uninterrupted (RELIABILITY.md), in one process through lvmgraph.api.

The digits training split has 1438 rows and batch_size 100, so an epoch is 14 batches and the
resume points below (step 40, step 41) fall mid-epoch and between two log rows.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from helpers import assert_same

import lvmgraph.api as lg
from lvmgraph.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
N = 40
COMMON = ["train.threads=1", "train.progress=false", "train.log_every=15", f"train.checkpoint_every={N}",
          "train.sample_every=1000"]
SMALL = ["components.encoder.hidden=[16]", "components.decoder.hidden=[16]", "components.critic.hidden=[16]"]
# resume points: (spec, extra overrides, steps before the interruption)
CASES = {
    "aae": ("aae_uniform.yaml", [], N),
    "vae": ("vae.yaml", [], N),
    # n_critic = 2 and a generator phase every 2nd step; interrupted after an odd step
    "aae_repeat_every": ("aae_uniform.yaml", ["phases.1.repeat=2", "phases.2.every=2", "train.checkpoint_every=41"],
                         41),
    # EMA copies of two components are part of the state, and a loss weight follows a schedule
    "hybrid_ema_schedule": ("hybrid_vae_mixture_critic.yaml", ["train.ema={critic: 0.9, vae.decoder: 0.99}"], N),
}


def final_state(run) -> dict:
    return load_checkpoint(latest_checkpoint(run.checkpoints))


@pytest.mark.parametrize("case", sorted(CASES))
def test_resume_equals_uninterrupted(tmp_path, case):
    spec, extra, k = CASES[case]
    total = 2 * N
    straight = lg.train(SPECS / spec, out=tmp_path / "straight", evaluate=False,
                        overrides=[*COMMON, *extra, f"train.steps={total}"])
    first = lg.train(SPECS / spec, out=tmp_path / "resumed", evaluate=False,
                     overrides=[*COMMON, *extra, f"train.steps={k}"])
    assert [p.name for p in list_checkpoints(first.checkpoints)] == [f"step_{k:08d}"]
    at_k = load_checkpoint(list_checkpoints(first.checkpoints)[-1])
    assert 0 < at_k["data"]["position"] < 1400  # really mid-epoch (14 batches of 100 per epoch)
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    resumed = lg.resume(first.path, overrides=[f"train.steps={total}"], evaluate=False)

    rows_a, rows_b = straight.read_metrics(), resumed.read_metrics()
    assert [r["step"] for r in rows_a] == [15, 30, 45, 60, 75, 80]
    assert rows_b == rows_a  # every logged loss, exactly

    a, b = final_state(straight), final_state(resumed)
    assert a["step"] == b["step"] == total
    for name in a["components"]:
        assert torch.equal(a["components"][name], b["components"][name]), name
    assert_same(a["optimizers"], b["optimizers"], "optimizers")
    assert_same(a["data"], b["data"], "data")
    assert_same(a["rng"], b["rng"], "rng")
    # the sample grids written after the resume match too
    for png in sorted((straight.path / "samples").glob("*.png")):
        if int(png.stem.split("_")[1]) > k:
            assert png.read_bytes() == (resumed.path / "samples" / png.name).read_bytes(), png.name


def test_resume_rewinds_metrics_written_after_the_checkpoint(tmp_path):
    """A crash after a checkpoint leaves rows beyond it; the resumed run rewrites them, not duplicates."""
    sets = [*COMMON, *SMALL, "train.log_every=10"]
    straight = lg.train(SPECS / "aae_uniform.yaml", out=tmp_path / "a", evaluate=False,
                        overrides=[*sets, "train.steps=30"])
    run = lg.train(SPECS / "aae_uniform.yaml", out=tmp_path / "b", evaluate=False,
                   overrides=[*sets, "train.steps=30", "train.checkpoint_every=20"])
    # simulate the crash: drop the final checkpoint (step 30), keep the rows logged up to step 30
    latest = list_checkpoints(run.checkpoints)[-1]
    assert latest.name == "step_00000030"
    shutil.rmtree(latest)
    lg.resume(run.path, evaluate=False)
    assert run.read_metrics() == straight.read_metrics()
    assert [r["step"] for r in run.read_metrics()] == [10, 20, 30]


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    run = lg.train(SPECS / "aae_uniform.yaml", out=tmp_path / "run", evaluate=False,
                   overrides=[*COMMON, *SMALL, "train.steps=20"])
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [15, 20]  # the last, off-schedule row is written
    before = final_state(run)
    lg.resume(run.path, evaluate=False)
    assert run.read_metrics() == rows
    assert_same(final_state(run)["components"], before["components"], "components")


def fresh_run(tmp_path: Path, name: str, seed: int):
    return lg.train(SPECS / "aae_uniform.yaml", out=tmp_path / name, evaluate=False,
                    overrides=[*COMMON, f"seed={seed}", "train.steps=12", "train.checkpoint_every=12",
                               "train.sample_every=12"])


def test_same_seed_same_run_different_seed_different_run(tmp_path):
    a, b, c = fresh_run(tmp_path, "a", 0), fresh_run(tmp_path, "b", 0), fresh_run(tmp_path, "c", 1)
    sa, sb, sc = final_state(a), final_state(b), final_state(c)
    assert_same(sa["components"], sb["components"], "components")
    assert_same(sa["optimizers"], sb["optimizers"], "optimizers")
    assert a.read_metrics() == b.read_metrics()
    grid = "samples/step_00000012.png"
    assert (a.path / grid).read_bytes() == (b.path / grid).read_bytes()
    assert any(not torch.equal(sa["components"][k], sc["components"][k]) for k in sa["components"])
    assert a.read_metrics() != c.read_metrics()
    assert (a.path / grid).read_bytes() != (c.path / grid).read_bytes()
