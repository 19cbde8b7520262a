"""GAN plugin losses and ops: hand-computed values, analytic gradient penalties, PacGAN packing."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from lvmgraph.plugins.registry import Registry
from lvmgraph_gan import losses, ops
from lvmgraph_gan.losses import (drift_penalty, gradient_penalty, hinge_discriminator_loss, hinge_generator_loss,
                                 lsgan_discriminator_loss, lsgan_generator_loss, r1_penalty, wgan_critic_loss,
                                 wgan_generator_loss)
from lvmgraph_gan.ops import pack


def t(*values):
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1)


def test_losses_and_ops_are_registered_with_documented_objectives():
    reg = Registry()
    losses.register_losses(reg.registrar("loss", "gan"))
    ops.register_ops(reg.registrar("op", "gan"))
    assert set(reg.names("loss")) == set(losses.LOSSES) == {
        "lsgan_discriminator_loss", "lsgan_generator_loss", "hinge_discriminator_loss", "hinge_generator_loss",
        "wgan_critic_loss", "wgan_generator_loss", "gradient_penalty", "r1_penalty", "drift_penalty"}
    assert reg.get("op", "pack").kind == "op"
    # every docstring writes the objective out (an expectation E[...] or the packing shape)
    for name in reg.names("loss"):
        assert "E[" in reg.get("loss", name).doc, name
    assert "(b/m, m·d)" in reg.get("op", "pack").summary
    # the critic is the penalties' first argument, so a spec writes gradient_penalty(critic, x, x_fake)
    assert list(inspect.signature(gradient_penalty).parameters)[:3] == ["critic", "real", "fake"]


# ---------------------------------------------------------------- values on known inputs

def test_lsgan_losses_have_the_half_factors_of_mao_et_al():
    real, fake = t(1.5, 0.0, 1.0), t(0.5, -1.0)
    # ½·mean((1.5−1)², (0−1)², (1−1)²) + ½·mean(0.5², (−1)²) = ½·(1.25/3) + ½·(1.25/2)
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx(0.5 * 1.25 / 3 + 0.5 * 1.25 / 2)
    # ½·mean((0.5−1)², (−1−1)²) = ½·(0.25 + 4)/2
    assert lsgan_generator_loss(fake).item() == pytest.approx(0.5 * 4.25 / 2)
    # the optimum: real scored 1, fake scored 0 -> 0; a generator whose fakes score 1 -> 0
    assert lsgan_discriminator_loss(t(1.0, 1.0), t(0.0, 0.0)).item() == 0.0
    assert lsgan_generator_loss(t(1.0, 1.0)).item() == 0.0


def test_hinge_losses_on_known_scores():
    real, fake = t(2.0, 0.5, -1.0), t(-2.0, 0.0, 1.0)
    # mean(max(0, 1 − r)) = mean(0, 0.5, 2) ; mean(max(0, 1 + f)) = mean(0, 1, 2)
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(2.5 / 3 + 3 / 3)
    assert hinge_generator_loss(fake).item() == pytest.approx(-(-1.0 / 3))
    # scores beyond the margins cost the discriminator nothing
    assert hinge_discriminator_loss(t(1.0, 3.0), t(-1.0, -5.0)).item() == 0.0


def test_wasserstein_losses_on_known_scores():
    real, fake = t(1.0, 2.0, 3.0), t(1.0, 2.0)
    assert wgan_critic_loss(real, fake).item() == pytest.approx(1.5 - 2.0)
    assert wgan_generator_loss(fake).item() == pytest.approx(-1.5)


def test_drift_penalty_is_epsilon_times_mean_square():
    assert drift_penalty(t(1.0, -2.0, 3.0)).item() == pytest.approx(0.001 * 14 / 3)
    assert drift_penalty(t(1.0, -2.0, 3.0), weight=0.5).item() == pytest.approx(0.5 * 14 / 3)


# ---------------------------------------------------------------- gradient penalty (WGAN-GP)

W = [2.0, 1.0, 2.0]  # ‖w‖ = 3


def linear_critic(w=W) -> nn.Linear:
    critic = nn.Linear(len(w), 1, bias=True)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([w]))
        critic.bias.fill_(0.7)
    return critic


def test_gradient_penalty_of_a_linear_critic_is_lambda_times_norm_minus_one_squared():
    torch.manual_seed(0)
    critic = linear_critic()
    real, fake = torch.randn(16, 3), torch.randn(16, 3)
    # ∇D = w everywhere, whatever the interpolates: λ(‖w‖ − 1)² = 10·(3 − 1)²
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(40.0)
    assert gradient_penalty(critic, real, fake, weight=2.0, target=3.0).item() == pytest.approx(0.0, abs=1e-10)
    assert gradient_penalty(critic, real, fake, weight=1.0, target=0.0).item() == pytest.approx(9.0)


def test_gradient_penalty_reaches_the_critic_parameters_through_create_graph():
    torch.manual_seed(0)
    critic = linear_critic()
    gp = gradient_penalty(critic, torch.randn(8, 3), torch.randn(8, 3))
    (grad_w,) = torch.autograd.grad(gp, critic.weight)
    # d/dw λ(‖w‖ − 1)² = 2λ(‖w‖ − 1)·w/‖w‖ = 2·10·2·w/3
    assert torch.allclose(grad_w, torch.tensor([W]) * 40 / 3)
    # one gradient step on the penalty alone moves ‖w‖ towards the target 1
    critic.weight.data -= 0.01 * grad_w
    assert 1.0 < critic.weight.norm().item() < 3.0


def test_gradient_penalty_norm_runs_over_every_coordinate_of_an_image():
    torch.manual_seed(0)
    w = torch.randn(1, 2, 3, 3)

    class ImageCritic(nn.Module):  # D(x) = ⟨w, x⟩ over (c h w)
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(w.clone())

        def forward(self, x):
            return (x * self.w).flatten(1).sum(1, keepdim=True)

    gp = gradient_penalty(ImageCritic(), torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3), weight=1.0)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_gradient_penalty_interpolates_each_pair_with_its_own_epsilon():
    seen = []

    class Recording(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = linear_critic()

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.lin(x)

    torch.manual_seed(1)
    real = torch.randn(64, 3)
    fake = real + torch.randn(64, 3)  # distinct from real in every coordinate
    gradient_penalty(Recording(), real, fake)
    (mixed,) = seen
    eps = (mixed - fake) / (real - fake)  # per row, the same value in every coordinate
    assert torch.allclose(eps, eps[:, :1].expand_as(eps), atol=1e-4)
    eps = eps[:, 0]
    assert (eps >= 0).all() and (eps <= 1).all()
    assert eps.std() > 0.15  # one draw per sample (uniform: std ≈ 0.29), not one shared ε


def test_gradient_penalty_sends_no_gradient_to_the_generator():
    torch.manual_seed(0)
    generator = nn.Linear(2, 3)
    fake = generator(torch.randn(8, 2))  # requires grad, as in a combined phase
    critic = linear_critic()
    gradient_penalty(critic, torch.randn(8, 3), fake).backward()
    assert generator.weight.grad is None
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_gradient_penalty_with_inputs_that_need_no_grad_and_under_no_grad():
    critic = linear_critic()
    real, fake = torch.randn(4, 3), torch.randn(4, 3)
    assert not real.requires_grad and not fake.requires_grad
    for p in critic.parameters():  # as in a phase that does not update the critic
        p.requires_grad_(False)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(40.0)
    for p in critic.parameters():
        p.requires_grad_(True)
    with torch.no_grad():  # logging or a metric: the value, detached
        gp = gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx(40.0) and gp.grad_fn is None


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.score = linear_critic()
        self.other = linear_critic([0.0, 0.0, 0.5])

    def forward(self, x):
        return {"score": self.score(x), "q": self.other(x)}


def test_gradient_penalty_picks_a_named_output_and_says_which_exist():
    real, fake = torch.randn(4, 3), torch.randn(4, 3)
    assert gradient_penalty(TwoHeads(), real, fake, output="score").item() == pytest.approx(40.0)
    assert gradient_penalty(TwoHeads(), real, fake, output="q").item() == pytest.approx(10 * 0.25)
    with pytest.raises(ValueError, match=r"named outputs \['q', 'score'\].*output="):
        gradient_penalty(TwoHeads(), real, fake)
    with pytest.raises(KeyError, match="no output named 'logit'.*\\['q', 'score'\\]"):
        gradient_penalty(TwoHeads(), real, fake, output="logit")
    with pytest.raises(ValueError, match="single tensor"):
        gradient_penalty(linear_critic(), real, fake, output="score")


def test_gradient_penalty_refuses_mismatched_real_and_fake():
    with pytest.raises(ValueError, match=r"real \(4, 3\) and fake \(5, 3\)"):
        gradient_penalty(linear_critic(), torch.randn(4, 3), torch.randn(5, 3))


# ---------------------------------------------------------------- R1 (Mescheder et al., 2018)

class Quadratic(nn.Module):
    """D(x) = c·‖x‖², so ∇D(x) = 2c·x and ‖∇D(x)‖² = 4c²‖x‖²."""

    def __init__(self, c: float):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c))

    def forward(self, x):
        return self.c * x.pow(2).sum(1, keepdim=True)


def test_r1_penalty_on_a_quadratic_critic():
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.0]])  # ‖x‖² = 5, 1, 9
    critic = Quadratic(0.5)
    r1 = r1_penalty(critic, x, weight=4.0)
    # ½·γ·mean(4c²‖x‖²) = ½·4·mean(5, 1, 9) with c = ½
    assert r1.item() == pytest.approx(0.5 * 4.0 * 15 / 3)
    (grad_c,) = torch.autograd.grad(r1, critic.c)  # d/dc ½γ·mean(4c²‖x‖²) = ½γ·mean(8c‖x‖²)
    assert grad_c.item() == pytest.approx(0.5 * 4.0 * 8 * 0.5 * 15 / 3)
    # zero at a critic that is flat on the data
    assert r1_penalty(Quadratic(0.5), torch.zeros(3, 2)).item() == 0.0


# ---------------------------------------------------------------- PacGAN packing

def test_pack_concatenates_m_consecutive_samples():
    x = torch.arange(12.0).reshape(6, 2)
    packed = pack(x, 2)
    assert packed.shape == (3, 4)
    assert torch.equal(packed[1], torch.cat([x[2], x[3]]))
    assert pack(x, 3).shape == (2, 6) and torch.equal(pack(x, 3)[1], x[3:].flatten())
    assert torch.equal(pack(x, 1), x)
    images = torch.randn(8, 1, 2, 2)
    assert pack(images, 4).shape == (2, 16)
    assert torch.equal(pack(images, 4)[1], images[4:].flatten())


def test_pack_keeps_gradients():
    x = torch.randn(4, 2, requires_grad=True)
    (pack(x, 2) * torch.arange(8.0).reshape(2, 4)).sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]))


def test_pack_explains_a_batch_that_does_not_divide():
    with pytest.raises(ValueError, match="batch of 10 samples cannot be split into packs of m=4.*multiple of 4"):
        pack(torch.randn(10, 2), 4)
    with pytest.raises(ValueError, match="positive integer"):
        pack(torch.randn(4, 2), 0)
    with pytest.raises(ValueError, match="positive integer"):
        pack(torch.randn(4, 2), 2.0)
