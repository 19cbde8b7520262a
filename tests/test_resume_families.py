"""Resume equals uninterrupted, for every family, across processes (RELIABILITY.md).

For every spec in specs/ (a glob: a new family's spec is covered by adding it), shrunk as
test_specs.py shrinks it: train K+M steps in this process; train K steps, then continue with
`lvmgraph resume` in a new process for M more. The final checkpoints (every tensor: weights, EMA,
optimizer moments, data position, RNG states, the open log interval, ...), the metrics rows and
the last sample grid must be identical, and the resume must report nothing inexact.

Resume points: K = 3 of 5 steps with a log row every 2 steps (mid-epoch, inside an open log
interval; image pools shrunk so they are full and swapping by then); between the critic and generator phases with n_critic > 1 (a critic repeated twice, a
generator every 2nd step, interrupted before a critic-only step); for every staged spec mid-fade-in
and one step after a resolution switch.

One subprocess does every resume (torch's start-up costs seconds); it calls the command line's
``main`` once per run, so each resume starts from what is on disk, in a process whose global
state (RNG, threads) the previous resume left behind.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from helpers import assert_same
from test_specs import SPECS, data_overrides

import lvmgraph.api as lg
from lvmgraph.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from lvmgraph.train.stages import StagePlan

BATCH = 8
POOL = 12  # image pools shrunk so they are full (and swap) from the second step on
K, M = 3, 2
COMMON = ["train.threads=1", "train.progress=false", "train.log_every=2", "train.checkpoint_every=1000",
          "train.sample_every=1000", f"data.batch_size={BATCH}"]
# the spec that also runs with n_critic = 2 and a generator phase every 2nd step
N_CRITIC_SPEC, N_CRITIC = "gan_ring8", ["phases.0.repeat=2", "phases.1.every=2"]

DRIVER = """
import contextlib, io, json, sys, traceback
from lvmgraph.cli import main
for run_dir, total in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["resume", run_dir, "--set", f"train.steps={total}", "--no-eval", "--quiet"])
        except BaseException:  # one crashed resume fails its own case, not the others
            traceback.print_exc(file=err)
            code = -1
    print(json.dumps({"run": run_dir, "code": code, "stderr": err.getvalue()}), flush=True)
"""


@dataclass
class Case:
    id: str
    spec: Path
    overrides: list[str]
    k: int  # steps before the interruption
    total: int
    straight: Path | None = None
    first: Path | None = None
    resumed: dict = field(default_factory=dict)  # the subprocess's report for this run
    error: str | None = None  # why a leg could not run (a skip reason or a failure)
    pools: list[str] = field(default_factory=list)  # its image_pool components


def mini_stages(stages) -> list[dict]:
    """A plan in miniature: one stable step at the first resolution, then for each next one a
    fade-in of two steps and one stable step (so a fade-in has a middle)."""
    return [{"resolution": s.resolution, "stable_steps": 1, **({"fade_steps": 2} if i else {})}
            for i, s in enumerate(stages)]


def cases_of(path: Path) -> list[Case]:
    spec = lg.load(path).spec
    pools = [name for name, c in spec.components.items() if c.type == "image_pool"]
    common = [*COMMON, *(f"components.{name}.size={POOL}" for name in pools)]
    if not spec.stages:
        out = [Case(f"{path.stem}-mid_epoch", path, common, K, K + M, pools=pools)]
        if path.stem == N_CRITIC_SPEC:
            out.append(Case(f"{path.stem}-n_critic", path, [*common, *N_CRITIC], K, K + M, pools=pools))
        return out
    overrides = [*common, f"stages={json.dumps(mini_stages(spec.stages))}"]
    plan = StagePlan(lg.load(path, overrides).spec.stages, BATCH)
    last = plan.stages[min(2, len(plan.stages) - 1)]
    points = {"mid_fade_in": plan.stages[1].start + 1,  # alpha 0.5 of the first fade-in
              "after_resolution_switch": last.start + 1}
    return [Case(f"{path.stem}-{name}", path, overrides, k, plan.total, pools=pools) for name, k in points.items()]


CASES = [case for path in SPECS for case in cases_of(path)]


def test_every_spec_has_a_case_and_the_special_resume_points_are_there():
    assert {c.spec for c in CASES} == set(SPECS)
    ids = {c.id for c in CASES}
    assert f"{N_CRITIC_SPEC}-n_critic" in ids
    staged = [c for c in CASES if "stages=" in " ".join(c.overrides)]
    assert {"mid_fade_in", "after_resolution_switch"} <= {c.id.rsplit("-", 1)[1] for c in staged}


def _train(case: Case, out: Path, steps: int) -> Path:
    return lg.train(case.spec, out=out, evaluate=False, overrides=[*case.overrides, f"train.steps={steps}"],
                    on_warning=lambda _: None).path


@pytest.fixture(scope="module")
def legs(tmp_path_factory) -> dict[str, Case]:
    """Every case's two legs: the first legs here, then the resumes in one new process while the
    uninterrupted runs train here."""
    root = tmp_path_factory.mktemp("families")
    threads = torch.get_num_threads()
    try:
        for case in CASES:
            try:
                case.overrides = data_overrides(case.spec) + case.overrides
                case.first = _train(case, root / case.id / "resumed", case.k)
            except pytest.skip.Exception as exc:
                case.error = f"skip: {exc}"
            except Exception as exc:  # noqa: BLE001 - reported by that case's test
                case.error = f"the first {case.k} steps failed: {exc!r}"
        todo = [case for case in CASES if case.error is None]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps([[str(c.first), c.total] for c in todo])],
                                env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for case in todo:
            try:
                case.straight = _train(case, root / case.id / "straight", case.total)
            except Exception as exc:  # noqa: BLE001
                case.error = f"the uninterrupted run failed: {exc!r}"
        stdout, stderr = proc.communicate(timeout=1200)
        reports = {r["run"]: r for r in map(json.loads, stdout.splitlines()) if "run" in r}
        for case in todo:
            case.resumed = reports.get(str(case.first), {"code": None, "stderr": f"no report; driver stderr:\n{stderr}"})
    finally:
        torch.set_num_threads(threads)
    return {case.id: case for case in CASES}


def final_state(run: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_resume_in_a_new_process_equals_uninterrupted(legs, case_id):
    case = legs[case_id]
    if case.error and case.error.startswith("skip: "):
        pytest.skip(case.error[6:])
    assert case.error is None, case.error
    assert case.resumed["code"] == 0, case.resumed["stderr"]
    assert "not exact" not in case.resumed["stderr"], case.resumed["stderr"]
    resumes = json.loads((case.first / "run.json").read_text())["resumes"]
    assert [(r["step"], r["not_exact"]) for r in resumes] == [(case.k, [])]

    # the interruption really is where the case says: K steps, inside an open log interval
    at_k = load_checkpoint(list_checkpoints(case.first / "checkpoints")[0])
    assert at_k["step"] == case.k
    if case.k % 2:  # (log rows every 2 steps)
        assert at_k["meter"]["counts"], "the checkpoint should hold an open log interval"
    if case.id.endswith("mid_epoch"):
        assert 0 < at_k["data"]["position"] < len(at_k["data"]["order"])
    for pool in case.pools:  # full, so the steps after the resume swap stored fakes
        assert int(at_k["components"][f"{pool}.count"]) == POOL

    straight, resumed = final_state(case.straight), final_state(case.first)
    assert straight["step"] == resumed["step"] == case.total
    assert_same(straight, resumed, "state")  # every registered entry, every tensor, bit for bit
    rows = [json.loads(line) for line in (case.straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [*range(2, case.total + 1, 2), *([case.total] if case.total % 2 else [])]
    assert (case.first / "metrics.jsonl").read_text().splitlines() == (case.straight / "metrics.jsonl").read_text().splitlines()
    grid = f"samples/step_{case.total:08d}.png"
    if (case.straight / grid).exists():
        assert (case.first / grid).read_bytes() == (case.straight / grid).read_bytes()
