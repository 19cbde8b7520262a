"""The GAN family end to end: penalties inside real phases, the PacGAN specs, and a GAN that learns the ring."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lvmgraph.api as lg
from lvmgraph.eval.runner import evaluate
from lvmgraph.experiment import prepare
from lvmgraph.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.threads=1", "train.progress=false"]

WGAN_GP = """\
name: tiny_wgan_gp
seed: 0
data: {dataset: toy2d, name: ring8, batch_size: 32, n_train: 256, n_test: 64}
components:
  prior:     {type: normal, shape: [2]}
  generator: {type: mlp, in_shape: [2], out_shape: [2], hidden: [16]}
  critic:    {type: mlp, in_shape: [2], out_shape: [1], hidden: [16], activation: leaky_relu}
graph:
  z:      prior.sample(like=x)
  x_fake: generator(z)
  w_loss: wgan_critic_loss(critic(x), critic(x_fake))
  gp:     gradient_penalty(critic, x, x_fake)
  r1:     r1_penalty(critic, x)
  g_loss: wgan_generator_loss(critic(x_fake))
phases:
  - {name: critic, minimize: {w_loss: 1.0, gp: 1.0}, update: [critic], optimizer: {type: adam, lr: 1.0e-2}}
  - {name: generator, minimize: g_loss, update: [generator], optimizer: {type: adam, lr: 1.0e-2}}
sample: {set: {z: prior}, output: x_fake}
train: {steps: 3}
"""


def tiny_gan(tmp_path: Path, *sets: str):
    path = tmp_path / "tiny_wgan_gp.yaml"
    path.write_text(WGAN_GP)
    return prepare(lg.load(path, [*FAST, *sets]), device="cpu")


def snapshot(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(before, module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("penalty", ["gp", "r1"])
def test_a_penalty_alone_trains_the_critic_inside_a_phase_and_never_the_generator(tmp_path, penalty):
    # the critic phase minimises only the penalty: its gradient must reach the critic's weights
    # through autograd.grad(create_graph=True), although x and x_fake arrive without grad
    exp = tiny_gan(tmp_path, f"phases.0.minimize={{{penalty}: 1.0}}")
    tr = Trainer(exp)
    critic, generator = exp.modules["critic"], exp.modules["generator"]
    c0, g0 = snapshot(critic), snapshot(generator)
    tr.executor.begin(tr.loader.next(), 0)
    loss = tr.run_phase(0, exp.spec.phases[0])
    assert loss.item() > 0
    # every weight matrix gets a gradient (the output bias cannot: it does not change ∇ₓD)
    weights = [p for p in critic.parameters() if p.dim() == 2]
    assert len(weights) == 2 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
    assert all(p.grad is None for p in generator.parameters())
    assert moved(c0, critic) and not moved(g0, generator)


def test_wgan_gp_trains_both_players_for_a_few_steps(tmp_path):
    exp = tiny_gan(tmp_path)
    critic, generator = exp.modules["critic"], exp.modules["generator"]
    c0, g0 = snapshot(critic), snapshot(generator)
    seen = []

    def after_step(tr: Trainer) -> None:
        seen.append({k: v for k, v in tr.meter.peek().items()})

    tr = Trainer(exp, callbacks=(after_step,))
    # the critic phase with the penalty gives the generator no gradient: check on the first step
    tr.executor.begin(tr.loader.next(), 0)
    tr.run_phase(0, exp.spec.phases[0])
    assert all(p.grad is None for p in generator.parameters())
    assert moved(c0, critic) and not moved(g0, generator)
    tr.fit(3)
    assert moved(g0, generator)
    last = seen[-1]
    assert {"w_loss", "gp", "g_loss"} <= set(last)
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    # the penalty is a real, positive number (‖∇D‖ is not 1 for a random 16-unit critic)
    assert last["gp"] > 0


# ---------------------------------------------------------------- the shipped PacGAN specs

@pytest.mark.parametrize("spec, m, n_modes", [("gan_ring8", 2, 8), ("gan_grid25", 2, 25)])
def test_the_specs_pack_the_discriminator_input_as_pacgan(spec, m, n_modes):
    exp = prepare(lg.load(ROOT / "specs" / f"{spec}.yaml", [*FAST, "data.batch_size=16"]), device="cpu")
    assert exp.spec.data.dataset == "toy2d" and len(exp.data.info["modes"]) == n_modes
    assert exp.modules["critic"].in_shape == (2 * m,)
    tr = Trainer(exp)
    tr.executor.begin(tr.loader.next(), 0)
    out = tr.executor.evaluate(["d_real", "d_fake"])
    assert out["d_real"].shape == out["d_fake"].shape == (16 // m, 1)  # one score per pack of m samples
    assert [name for name, _ in exp.spec.eval.items()] == ["mode_coverage"]


def test_the_grid_spec_adds_a_critic_of_single_points_that_the_generator_also_fools():
    exp = prepare(lg.load(ROOT / "specs" / "gan_grid25.yaml", [*FAST, "data.batch_size=16"]), device="cpu")
    tr = Trainer(exp)
    tr.executor.begin(tr.loader.next(), 0)
    out = tr.executor.evaluate(["p_real", "p_fake", "d_fake", "g_loss"])
    assert out["p_real"].shape == out["p_fake"].shape == (16, 1)  # one score per point
    assert out["d_fake"].shape == (8, 1)                           # one score per pair
    # the generator's loss is the non-saturating loss −log σ(D(G(z))) against both critics
    expected = sum(torch.nn.functional.softplus(-out[k]).mean() for k in ("d_fake", "p_fake"))
    torch.testing.assert_close(out["g_loss"], expected)
    assert sorted(exp.spec.phases[0].update) == ["critic", "point_critic"]


def test_a_gan_on_the_ring_captures_more_modes_after_training():
    # the shipped ring spec, shortened: smaller networks, 400 steps at the initial learning rate
    sets = [*FAST, "train.steps=400", "schedules.decay={type: constant, value: 1.0}", "train.ema={}",
            "components.generator.hidden=[128, 128, 128]", "components.critic.hidden=[128, 128, 128]"]
    exp = prepare(lg.load(ROOT / "specs" / "gan_ring8.yaml", sets), device="cpu")
    before = evaluate(exp, [("mode_coverage", {})])["mode_coverage"]
    Trainer(exp).fit()
    after = evaluate(exp, [("mode_coverage", {})])["mode_coverage"]
    # at initialisation the generator's output is one smooth blob: at most a stray point lands
    # within 3σ (0.03) of a mode
    assert before["modes"] <= 1 and before["high_quality"] < 0.1, before
    assert after["modes"] >= max(5, before["modes"] + 4), after
    assert after["high_quality"] > before["high_quality"]
