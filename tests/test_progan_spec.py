"""The shipped Progressive GAN spec runs its stage plan in miniature, and a tiny ProGAN learns.

Miniature: the spec's own resolutions 4 -> 8 -> 16 -> 32, every fade-in two steps and every
stabilisation one, on 256 Fashion-MNIST images (skipped without the data, as tests/test_specs.py).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import lvmgraph.api as lg
from lvmgraph.train.checkpoint import latest_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "progan_fashion_mnist.yaml"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SMALL_SWD = {"n": 32, "patches_per_image": 16, "repeats": 1, "directions": 32}


def miniature(path: Path, batch_size: int = 8) -> list[str]:
    """--set overrides that keep a spec's resolutions and shrink every stage to a few steps."""
    stages = lg.load(path).spec.stages
    entries = [{"resolution": s.resolution, "stable_steps": 1, "batch_size": batch_size,
                **({"fade_steps": 2} if i else {})} for i, s in enumerate(stages)]
    return [f"stages={json.dumps(entries)}"]


def test_the_shipped_spec_runs_its_stage_plan_in_miniature(tmp_path):
    if not FASHION_MNIST.is_dir():
        pytest.skip(f"Fashion-MNIST is not installed at {FASHION_MNIST} (apt-get install dataset-fashion-mnist)")
    overrides = ["data.limit_train=256", "data.limit_test=128", *miniature(SPEC), "train.log_every=1",
                 "train.checkpoint_every=100", "train.sample_every=100"]
    exp = lg.validate(SPEC, overrides)
    initial = {k: v.detach().clone() for k, v in exp.modules.state_dict().items()}
    assert exp.spec.train.steps == 1 + 3 * 3  # train.steps follows the plan
    run = lg.train(SPEC, out=tmp_path / "run", overrides=overrides, progress=False, evaluate=False)

    rows = run.read_metrics()
    seen = [(r["stage/resolution"], r["stage/alpha"]) for r in rows]
    assert seen == [(4, 1.0)] + [(r, a) for r in (8, 16, 32) for a in (0.0, 0.5, 1.0)]
    for row in rows:
        assert all(math.isfinite(v) for v in row.values()), row
    state = load_checkpoint(latest_checkpoint(run.checkpoints))
    assert state["stage"] == 3 and set(state["components"]) == set(initial)
    # every level of both networks has trained (a new level's first fade-in step has alpha 0)
    for name in ("generator", "discriminator"):
        for level in range(4):
            keys = [k for k in initial if k.endswith("weight") and any(
                k.startswith(f"{name}.{part}.{level}.") for part in ("blocks", "to_rgb", "from_rgb"))]
            assert keys and all(not torch.equal(initial[k], state["components"][k]) for k in keys), (name, level)
    assert int(state["ema"]["generator"]["resolution"]) == 32

    results = lg.open_run(run.path).evaluate([("swd", SMALL_SWD)], write=False)["swd"]
    assert set(results) >= {"swd", "swd_32", "swd_16", "floor", "protocol"}
    assert results["protocol"]["levels"] == [32, 16] and results["swd"] > results["floor"] > 0


TINY = """\
name: progan_learns
extends: family:progan
data: {dataset: digits, pad_to: 16, value_range: [-1, 1], batch_size: 32}
components:
  generator:     {in_shape: [16], out_shape: [1, 16, 16], channels: [32, 16, 16]}
  discriminator: {in_shape: [1, 16, 16], channels: [32, 16, 16]}
  noise:         {shape: [16]}
stages:
  - {resolution: 4,  stable_steps: 50}
  - {resolution: 8,  fade_steps: 50, stable_steps: 50}
  - {resolution: 16, fade_steps: 50, stable_steps: 50}
train: {log_every: 50, checkpoint_every: 1000, sample_every: 1000, threads: 1, progress: false,
        ema: {generator: 0.95}}
"""


def test_a_tiny_progan_on_digits_brings_the_sliced_wasserstein_distance_down(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    metric = [("swd", {"n": 300, "min_resolution": 16, "repeats": 1, "directions": 64, "patches_per_image": 32})]
    untrained = lg.train(path, out=tmp_path / "untrained", overrides=["train.steps=0"], evaluate=False)
    before = lg.open_run(untrained.path).evaluate(metric, write=False)["swd"]
    run = lg.train(path, out=tmp_path / "run", evaluate=False)
    after = lg.open_run(run.path).evaluate(metric, write=False)["swd"]
    assert after["floor"] == before["floor"]  # the same real sets and directions: comparable numbers
    assert after["swd"] < 0.8 * before["swd"], (before["swd"], after["swd"])
