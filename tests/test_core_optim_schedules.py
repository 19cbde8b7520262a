"""Core optimizers and schedules: settings validation, optimisation that works, schedule values."""
import math

import pytest
import torch
from pydantic import ValidationError

from lvmgraph.plugins.registry import Registry
from lvmgraph_core.optim import register_optimizers
from lvmgraph_core.schedules import Linear, Piecewise, register_schedules


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    register_optimizers(reg.registrar("optimizer", "core"))
    register_schedules(reg.registrar("schedule", "core"))
    return reg


def build(registry, kind, name, *args, **settings):
    """What the framework does with a spec entry: validate with the params model, then call the factory."""
    entry = registry.get(kind, name)
    return entry.factory(*args, **dict(entry.params(**settings)))


# ---------------------------------------------------------------- optimizers

def test_all_optimizers_are_registered_with_params_models(registry):
    assert registry.names("optimizer") == ["adam", "adamw", "rmsprop", "sgd"]
    for name in registry.names("optimizer"):
        entry = registry.get("optimizer", name)
        assert entry.params is not None and entry.summary


@pytest.mark.parametrize("name, settings", [
    ("adam", {"lr": 0.1}),
    ("adamw", {"lr": 0.1, "weight_decay": 0.0}),
    ("sgd", {"lr": 0.1, "momentum": 0.5, "nesterov": True}),
    ("rmsprop", {"lr": 0.02}),
])
def test_each_optimizer_minimises_a_quadratic(registry, name, settings):
    torch.manual_seed(0)
    target = torch.tensor([1.5, -2.0, 0.5])
    w = torch.zeros(3, requires_grad=True)
    opt = build(registry, "optimizer", name, [w], **settings)
    assert isinstance(opt, torch.optim.Optimizer)
    start = ((w - target) ** 2).sum().item()
    for _ in range(300):
        opt.zero_grad()
        loss = ((w - target) ** 2).sum()
        loss.backward()
        opt.step()
    assert ((w - target) ** 2).sum().item() < 1e-3 * start


def test_settings_reach_the_optimizer_and_defaults_follow_the_brief(registry):
    w = torch.zeros(2, requires_grad=True)
    adam = build(registry, "optimizer", "adam", [w], lr=2e-4, betas=[0.5, 0.999])   # YAML gives a list
    group = adam.param_groups[0]
    assert group["lr"] == 2e-4 and group["betas"] == (0.5, 0.999) and group["weight_decay"] == 0
    assert build(registry, "optimizer", "adamw", [w]).param_groups[0]["weight_decay"] == 0.01
    rms = build(registry, "optimizer", "rmsprop", [w], lr=5e-5, alpha=0.9)
    assert rms.param_groups[0]["alpha"] == 0.9 and rms.param_groups[0]["lr"] == 5e-5


def test_param_groups_are_accepted(registry):
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = build(registry, "optimizer", "sgd", [{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]


@pytest.mark.parametrize("name, settings", [
    ("adam", {"learning_rate": 1e-3}),              # unknown key
    ("adam", {"lr": 0}),                            # lr must be > 0
    ("adam", {"betas": [0.9, 1.0]}),                # betas in [0, 1)
    ("adam", {"betas": [0.9]}),                     # two betas
    ("adamw", {"weight_decay": -0.1}),
    ("sgd", {"nesterov": True}),                    # nesterov needs momentum
    ("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1}),
    ("rmsprop", {"alpha": 1.5}),
])
def test_optimizer_params_reject_bad_settings(registry, name, settings):
    with pytest.raises(ValidationError):
        registry.get("optimizer", name).params(**settings)


# ---------------------------------------------------------------- schedules

def test_all_schedules_are_registered(registry):
    assert registry.names("schedule") == ["constant", "cosine", "linear", "linear_warmup", "piecewise",
                                          "stage_alpha", "stage_resolution", "step"]


def test_constant(registry):
    s = build(registry, "schedule", "constant", value=0.3)
    assert [s(t) for t in (0, 10, 10 ** 6)] == [0.3, 0.3, 0.3]


def test_linear_holds_then_moves_then_holds(registry):
    s = build(registry, "schedule", "linear", start=1.0, end=0.0, steps=100, delay=50)
    assert s(0) == 1.0 and s(50) == 1.0                     # held until delay
    assert s(75) == pytest.approx(0.75) and s(100) == pytest.approx(0.5)   # a quarter, half way
    assert s(150) == 0.0 and s(10 ** 6) == 0.0              # end, then held
    assert isinstance(s(100), float)


def test_linear_warmup_rises_from_zero(registry):
    s = build(registry, "schedule", "linear_warmup", value=2.0, steps=10)
    assert [s(t) for t in (0, 5, 10, 11)] == pytest.approx([0.0, 1.0, 2.0, 2.0])
    assert build(registry, "schedule", "linear_warmup", steps=4)(2) == pytest.approx(0.5)   # value defaults to 1


def test_cosine_follows_a_half_cosine(registry):
    s = build(registry, "schedule", "cosine", start=1.0, end=0.1, steps=100, delay=10)
    assert s(0) == pytest.approx(1.0) and s(10) == pytest.approx(1.0)
    assert s(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert s(60) == pytest.approx(0.55)                     # midpoint of the move
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)


def test_step_decay_multiplies_at_each_boundary(registry):
    s = build(registry, "schedule", "step", initial=0.1, gamma=0.5, every=10)
    assert s(0) == pytest.approx(0.1) and s(9) == pytest.approx(0.1)
    assert s(10) == pytest.approx(0.05) and s(19) == pytest.approx(0.05)
    assert s(35) == pytest.approx(0.1 * 0.5 ** 3)


def test_piecewise_switches_at_the_boundaries(registry):
    s = build(registry, "schedule", "piecewise", boundaries=[10, 20], values=[1.0, 0.5, 0.1])
    assert [s(t) for t in (0, 9, 10, 19, 20, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]


def test_schedules_are_pure_functions_of_the_step(registry):
    s = build(registry, "schedule", "cosine", start=0.0, end=1.0, steps=7)
    forward = [s(t) for t in range(10)]
    assert [s(t) for t in reversed(range(10))] == forward[::-1]


@pytest.mark.parametrize("name, settings", [
    ("piecewise", {"boundaries": [10, 20], "values": [1.0, 0.5]}),       # one value too few
    ("piecewise", {"boundaries": [20, 10], "values": [1.0, 0.5, 0.1]}),  # not increasing
    ("linear", {"start": 0.0, "end": 1.0, "steps": 0}),
    ("linear", {"start": 0.0, "end": 1.0, "steps": 10, "delay": -1}),
    ("linear", {"start": 0.0, "end": 1.0}),                              # steps is required
    ("linear_warmup", {"steps": 10, "start": 0.0}),                      # unknown key
    ("step", {"initial": 1.0, "gamma": 0.5, "every": 0}),
    ("cosine", {"start": 1.0, "end": 0.0, "steps": -5}),
])
def test_invalid_schedule_settings_are_rejected(registry, name, settings):
    with pytest.raises(ValidationError):
        registry.get("schedule", name).params(**settings)


def test_schedules_built_directly_in_python_are_validated_too():
    with pytest.raises(ValidationError):
        Piecewise(boundaries=[5], values=[1.0])
    with pytest.raises(ValidationError):
        Linear(start=0.0, end=1.0, steps=0)
    assert "steps=3" in repr(Linear(start=0.0, end=1.0, steps=3))
