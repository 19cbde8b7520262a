"""Growth and resume for a staged spec: optimizers gain a stage's parameters with fresh state while
the old ones keep theirs, and a run stopped mid-fade-in, at a stage boundary or right after a
resolution switch continues exactly as an uninterrupted run (RELIABILITY.md), in this process and
through `lvmgraph resume` in a new one.

The plan (digits padded to 16x16): 4x4 for steps 0-3; 8x8 fading in over steps 4-7 at batch 8,
stable 8-9; 16x16 fading in over 10-13, stable 14-15.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_same

import lvmgraph.api as lg
from lvmgraph.experiment import prepare
from lvmgraph.spec.load import load_spec
from lvmgraph.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from lvmgraph.train.trainer import Trainer

TOTAL = 16
SPEC = """\
name: progan_tiny
extends: family:progan
data: {dataset: digits, pad_to: 16, value_range: [-1, 1], batch_size: 16}
components:
  generator:     {in_shape: [8], out_shape: [1, 16, 16], channels: [16, 8, 8]}
  discriminator: {in_shape: [1, 16, 16], channels: [16, 8, 8]}
  noise:         {shape: [8]}
stages:
  - {resolution: 4,  stable_steps: 4}
  - {resolution: 8,  fade_images: 32, stable_steps: 2, batch_size: 8}
  - {resolution: 16, fade_steps: 4, stable_steps: 2}
train: {log_every: 3, checkpoint_every: 100, sample_every: 5, threads: 1, progress: false, ema: {generator: 0.9}}
"""
_script = Path(sys.executable).parent / "lvmgraph"
LVMGRAPH = [str(_script)] if _script.exists() else [sys.executable, "-m", "lvmgraph"]


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "progan_tiny.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def straight(spec_path, tmp_path_factory):
    return lg.train(spec_path, out=tmp_path_factory.mktemp("straight") / "run", evaluate=False)


def final_state(run) -> dict:
    return load_checkpoint(latest_checkpoint(run.checkpoints))


def assert_same_run(straight, resumed, k: int) -> None:
    assert resumed.read_metrics() == straight.read_metrics()  # every logged loss, resolution and alpha
    a, b = final_state(straight), final_state(resumed)
    assert a["step"] == b["step"] == TOTAL and a["stage"] == b["stage"] == 2
    assert_same(a, b, "state")  # components, EMA, optimizers (groups and moments), data, RNG, meter
    for png in sorted((straight.path / "samples").glob("*.png")):
        if int(png.stem.split("_")[1]) > k:
            assert png.read_bytes() == (resumed.path / "samples" / png.name).read_bytes(), png.name


def test_the_plan_runs_as_declared(straight):
    rows = straight.read_metrics()
    assert [r["step"] for r in rows] == [3, 6, 9, 12, 15, 16]
    # means over the log interval: steps 3-5 are (4, a 1), (8, a 0), (8, a .25); 9-11 are (8, 1), (16, 0), (16, .25)
    assert rows[1]["stage/resolution"] == pytest.approx((4 + 8 + 8) / 3)
    assert rows[1]["stage/alpha"] == pytest.approx((1 + 0 + 0.25) / 3)
    assert rows[3]["stage/resolution"] == pytest.approx((8 + 16 + 16) / 3)
    assert rows[3]["stage/alpha"] == pytest.approx((1 + 0 + 0.25) / 3)
    state = final_state(straight)
    assert int(state["components"]["generator.resolution"]) == 16
    assert int(state["ema"]["generator"]["resolution"]) == 16
    # one param group per stage in both optimizers, the last holding the 16x16 level
    for opt in state["optimizers"]:
        assert len(opt["param_groups"]) == 3


@pytest.mark.parametrize("k", [6, 10, 11], ids=["mid_fade_in", "at_stage_boundary", "after_resolution_switch"])
def test_resume_equals_uninterrupted(spec_path, straight, tmp_path, k):
    first = lg.train(spec_path, out=tmp_path / "run", evaluate=False, overrides=[f"train.steps={k}"])
    at_k = load_checkpoint(list_checkpoints(first.checkpoints)[-1])
    assert at_k["step"] == k
    assert at_k["stage"] == {6: 1, 10: 1, 11: 2}[k]  # the boundary case enters stage 2 only after resuming
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    resumed = lg.resume(first.path, overrides=[f"train.steps={TOTAL}"], evaluate=False)
    assert_same_run(straight, resumed, k)


def test_resume_mid_fade_in_in_a_new_process(spec_path, straight, tmp_path):
    first = lg.train(spec_path, out=tmp_path / "run", evaluate=False, overrides=["train.steps=7"])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([*LVMGRAPH, "resume", str(first.path), "--set", f"train.steps={TOTAL}", "--no-eval",
                           "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_same_run(straight, first, 7)


def test_new_parameters_join_with_fresh_state_and_old_ones_keep_theirs(spec_path):
    exp = prepare(load_spec(spec_path))
    seen = {}

    def record(tr: Trainer) -> None:
        opt = tr.optimizers[1]  # the generator's phase
        seen[tr.step] = {id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()}
                         for group in opt.param_groups for p in group["params"] if p in opt.state}
        seen[tr.step, "groups"] = [len(g["params"]) for g in opt.param_groups]

    trainer = Trainer(exp, callbacks=(record,))
    g = exp.modules["generator"]
    level0 = [id(p) for p in g.stage_parameters(4)]
    level1 = [id(p) for p in g.stage_parameters(8) if id(p) not in level0]
    trainer.fit(5)
    assert seen[4, "groups"] == [len(level0)] and seen[5, "groups"] == [len(level0), len(level1)]
    before, after = seen[4], seen[5]
    for pid in level0:  # kept their moments and step count through the growth
        assert float(after[pid]["step"]) == 5 and float(before[pid]["step"]) == 4
    for pid in level1:  # fresh: created by their first update (their toRGB is used from alpha 0 on)
        assert pid not in before
        assert float(after[pid]["step"]) == 1
    new_group = trainer.optimizers[1].param_groups[1]
    assert new_group["lr"] == 1e-3 and tuple(new_group["betas"]) == (0.0, 0.99)  # the phase's settings
    # at alpha 0 the new 8x8 block gets a zero gradient: its weights have not moved yet
    block = g.blocks[1][0].weight
    assert float(after[id(block)]["exp_avg"].abs().max()) == 0.0


def test_a_checkpoint_samples_at_the_stage_it_reached(spec_path, tmp_path):
    run = lg.train(spec_path, out=tmp_path / "run", evaluate=False, overrides=["train.steps=9"])  # 8x8, alpha 1
    model = lg.open_run(run.path)
    x = model.sample(6)
    assert x.shape == (6, 1, 16, 16)
    pooled = F.avg_pool2d(x, 2).repeat_interleave(2, -2).repeat_interleave(2, -1)
    assert torch.allclose(x, pooled, atol=1e-6)  # drawn at 8x8, repeated to 16x16
    coarse = F.avg_pool2d(x, 4).repeat_interleave(4, -2).repeat_interleave(4, -1)
    assert not torch.allclose(x, coarse, atol=1e-3)
    assert int(model.experiment.ema["generator"].resolution) == 8


def test_resuming_with_a_stage_list_that_moves_the_trained_steps_is_refused(spec_path, tmp_path):
    run = lg.train(spec_path, out=tmp_path / "run", evaluate=False, overrides=["train.steps=6"])
    with pytest.raises(ValueError, match=r"the checkpoint at step 6 was trained into stage 1, but this spec's "
                                         r"stages put step 5 in stage 0 \(resolution 4\)"):
        lg.resume(run.path, overrides=["stages.0.stable_steps=8"], evaluate=False)
    # lengthening the current stage is fine: the steps already trained keep their stages
    lg.resume(run.path, overrides=["stages.1.stable_steps=5", "train.steps=8"], evaluate=False)
