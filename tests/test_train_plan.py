"""The trainer's per-step work done once (lvmgraph/train/plan.py) and the loss meter's in-place sums."""
from __future__ import annotations

from pathlib import Path

import torch

import lvmgraph.api as lg
from lvmgraph.train.logging import LossMeter
from lvmgraph.train.plan import StepPlan

SPECS = Path(__file__).resolve().parents[1] / "specs"


def aae_phases(*sets: str):
    return lg.load(SPECS / "aae_uniform.yaml", list(sets)).spec.phases


def labels(batches) -> list[list[str]]:
    return [["+".join(p.terms) for p, _ in runs] for runs in batches]


def test_batches_follow_every_and_repeat_and_are_reused_between_steps():
    plan = StepPlan(aae_phases("phases.1.repeat=3", "phases.2.every=2"))
    # step 0: all three due; the critic's two extra iterations each start a fresh batch
    assert labels(plan.batches(0)) == [["rec_loss", "d_loss"], ["d_loss"], ["d_loss", "g_loss"]]
    assert labels(plan.batches(1)) == [["rec_loss", "d_loss"], ["d_loss"], ["d_loss"]]
    assert plan.batches(2) is plan.batches(0)  # the same set of due phases: worked out once
    runs = [run for batch in plan.batches(0) for _, run in batch]
    assert len({id(r) for r in runs}) == len(runs)  # each batch has its own run tokens
    first = plan.batches(0)[0]
    assert [(run.terms, run.updated) for _, run in first] == [
        (("rec_loss",), frozenset({"encoder", "decoder"})), (("d_loss",), frozenset({"critic"}))]


def test_phase_constants_keep_schedule_weights_by_name_and_list_the_ema_copies():
    phases = aae_phases("phases.0.minimize={rec_loss: 2, g_loss: ramp}", "schedules.ramp={type: constant, value: 1}")
    plan = StepPlan(phases, ema_names={"decoder"})
    rec = plan.phases[0]
    assert rec.terms == ("rec_loss", "g_loss") and rec.weights == (2.0, "ramp")
    assert rec.label == "rec_loss+g_loss" and rec.update == ("encoder", "decoder")
    assert rec.ema == ("decoder",) and plan.phases[1].ema == ()


def test_meter_sums_in_place_as_a_new_tensor_would_and_its_state_is_a_copy():
    values = [torch.tensor(v) for v in (0.1, 0.7, 1e-8, 3.3)]
    meter = LossMeter()
    for v in values[:2]:
        meter.add("loss", v.requires_grad_())
    saved = meter.state_dict()
    for v in values[2:]:
        meter.add("loss", v)
    expected = values[0].detach().clone()
    for v in values[1:]:
        expected = expected + v.detach()
    assert meter.sums["loss"].item() == expected.item() and not meter.sums["loss"].requires_grad
    assert saved["sums"]["loss"].item() == (values[0] + values[1]).item()  # not moved by the later adds
    assert meter.flush() == {"loss": expected.item() / 4}
    resumed = LossMeter()
    resumed.load_state_dict(saved)
    for v in values[2:]:
        resumed.add("loss", v)
    assert resumed.peek() == {"loss": expected.item() / 4}
    assert values[0].item() == torch.tensor(0.1).item()  # the first value added was not summed into
