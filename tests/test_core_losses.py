"""Core losses: values against torch.nn.functional and closed forms, KL paths, ELBO bound."""
import math

import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F

from lvmgraph import Prior
from lvmgraph.plugins.registry import Registry
from lvmgraph_core import losses
from lvmgraph_core.losses import kl_per_sample, register_losses
from lvmgraph_core.priors import NormalPrior


def std_normal_log_density(z):
    """(b d) -> (b,) log N(z; 0, I), written out by hand."""
    return (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)


class HandWrittenNormalPrior(Prior):
    """N(0, I) over (d,) with no torch.distributions equivalent, so kl must use Monte Carlo."""

    def _sample(self, n):
        return torch.randn(n, *self.shape)

    def log_prob(self, z):
        return std_normal_log_density(z)


def diagonal_normal(loc, scale):
    return D.Independent(D.Normal(loc, scale), 1)


def closed_form_kl_to_standard_normal(loc, scale):
    """(b d) -> (b,): ½ Σ (μ² + σ² − 1 − log σ²)."""
    return 0.5 * (loc ** 2 + scale ** 2 - 1 - torch.log(scale ** 2)).sum(1)


def test_losses_are_registered_as_losses():
    reg = Registry()
    register_losses(reg.registrar("loss", "core"))
    assert set(reg.names("loss")) == set(losses.LOSSES)
    assert {"bce", "kl", "nll", "elbo", "neg_elbo", "gan_generator_loss"} <= set(reg.names("loss"))
    assert "HIGHER IS BETTER" in reg.get("loss", "elbo").summary


# ---------------------------------------------------------------- reconstruction

def test_bce_mean_matches_torch_and_sum_is_the_per_sample_sum_averaged():
    torch.manual_seed(0)
    p = torch.rand(4, 1, 3, 3) * 0.98 + 0.01
    x = torch.rand(4, 1, 3, 3)
    elementwise = -(x * p.log() + (1 - x) * (1 - p).log())
    assert torch.allclose(losses.bce(p, x), F.binary_cross_entropy(p, x))
    assert torch.allclose(losses.bce(p, x), elementwise.mean())
    assert torch.allclose(losses.bce(p, x, reduction="sum"), elementwise.sum(dim=(1, 2, 3)).mean())
    # the two conventions differ exactly by the number of elements per sample
    assert torch.allclose(losses.bce(p, x, reduction="sum"), 9 * losses.bce(p, x))


def test_bce_logits_equals_bce_of_sigmoid():
    logits, x = torch.randn(5, 7), torch.rand(5, 7)
    for reduction in ("mean", "sum"):
        assert torch.allclose(losses.bce_logits(logits, x, reduction=reduction),
                              losses.bce(torch.sigmoid(logits), x, reduction=reduction), atol=1e-6)


def test_mse_and_l1_by_hand():
    a = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    b = torch.tensor([[0.0, 4.0], [0.0, 2.0]])
    # squared errors: [[1, 4], [0, 9]]; absolute errors: [[1, 2], [0, 3]]
    assert losses.mse(a, b).item() == pytest.approx(14 / 4)
    assert losses.mse(a, b, reduction="sum").item() == pytest.approx((5 + 9) / 2)
    assert losses.l1(a, b).item() == pytest.approx(6 / 4)
    assert losses.l1(a, b, reduction="sum").item() == pytest.approx((3 + 3) / 2)


@pytest.mark.parametrize("loss", ["mse", "l1", "bce", "bce_logits"])
def test_elementwise_losses_refuse_shapes_that_would_broadcast(loss):
    # (4, 1) against (4,) would broadcast to (4, 4): a wrong number, silently
    with pytest.raises(ValueError, match=rf"{loss} compares values of shapes \(4, 1\) and \(4,\)"):
        getattr(losses, loss)(torch.full((4, 1), 0.5), torch.full((4,), 0.5))


def test_unknown_reduction_is_an_error():
    with pytest.raises(ValueError, match="reduction"):
        losses.mse(torch.zeros(2, 2), torch.ones(2, 2), reduction="batchmean")


def test_nll_is_the_per_sample_negative_log_density_averaged():
    torch.manual_seed(0)
    x = torch.randn(6, 3)
    expected = -std_normal_log_density(x).mean()
    p = diagonal_normal(torch.zeros(6, 3), torch.ones(6, 3))
    assert torch.allclose(losses.nll(p, x), expected, atol=1e-5)
    assert torch.allclose(losses.nll(D.Normal(torch.zeros(6, 3), 1.0), x), expected, atol=1e-5)
    bern = D.Bernoulli(probs=torch.full((6, 4), 0.25))
    y = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(6, 1)
    assert losses.nll(bern, y).item() == pytest.approx(-(math.log(0.25) + 3 * math.log(0.75)), rel=1e-5)


# ---------------------------------------------------------------- KL

def test_analytic_kl_to_a_standard_normal_matches_the_closed_form():
    torch.manual_seed(0)
    loc, scale = torch.randn(8, 4), torch.rand(8, 4) + 0.3
    q = diagonal_normal(loc, scale)
    expected = closed_form_kl_to_standard_normal(loc, scale)
    # prior without a batch axis, as a Prior component would give it
    p = diagonal_normal(torch.zeros(4), torch.ones(4))
    assert torch.allclose(kl_per_sample(q, p), expected, atol=1e-5)
    assert torch.allclose(losses.kl(q, p), expected.mean(), atol=1e-5)
    # a scalar Normal(0, 1) is broadcast over the coordinates and summed per sample
    assert torch.allclose(kl_per_sample(q, D.Normal(0.0, 1.0)), expected, atol=1e-5)
    # a plain (non-Independent) q over (b d) gives per-sample values too
    assert torch.allclose(kl_per_sample(D.Normal(loc, scale), D.Normal(0.0, 1.0)), expected, atol=1e-5)


def test_kl_of_identical_distributions_is_zero():
    loc, scale = torch.randn(5, 3), torch.rand(5, 3) + 0.5
    q = diagonal_normal(loc, scale)
    assert torch.allclose(kl_per_sample(q, diagonal_normal(loc.clone(), scale.clone())), torch.zeros(5), atol=1e-6)


def test_kl_to_the_core_normal_prior_is_analytic_and_exact():
    torch.manual_seed(0)
    loc, scale = torch.randn(6, 3), torch.rand(6, 3) + 0.3
    q = diagonal_normal(loc, scale)
    prior = NormalPrior(shape=[3])
    first, second = losses.kl(q, prior), losses.kl(q, prior)
    assert torch.equal(first, second)                       # no sampling involved
    assert torch.allclose(first, closed_form_kl_to_standard_normal(loc, scale).mean(), atol=1e-5)


def test_monte_carlo_kl_against_a_prior_without_a_distribution_approaches_the_analytic_value():
    torch.manual_seed(0)
    loc, scale = torch.randn(4, 2), torch.rand(4, 2) + 0.5
    q = diagonal_normal(loc, scale)
    prior = HandWrittenNormalPrior([2])
    with pytest.raises(NotImplementedError):
        prior.distribution()
    estimate = kl_per_sample(q, prior, samples=4000)
    expected = closed_form_kl_to_standard_normal(loc, scale)
    assert torch.allclose(estimate, expected, atol=0.08)
    single = kl_per_sample(q, prior)
    assert not torch.allclose(single, expected, atol=1e-4)  # one draw really is a noisy estimate


def test_monte_carlo_kl_for_a_pair_without_an_analytic_kl():
    # KL(Normal || StudentT) has no registered closed form: compare with numerical quadrature
    torch.manual_seed(0)
    loc, scale = torch.tensor([[0.5], [-1.0]]), torch.tensor([[0.8], [1.5]])
    q = diagonal_normal(loc, scale)
    p = D.Independent(D.StudentT(df=torch.tensor([4.0]), loc=torch.zeros(1), scale=torch.ones(1)), 1)
    with pytest.raises(NotImplementedError):
        D.kl_divergence(q, p.expand((2,)))
    grid = torch.linspace(-15, 15, 30001, dtype=torch.float64)
    q_grid = D.Normal(loc.double(), scale.double())                        # (2 1) against (n,)
    log_q = q_grid.log_prob(grid)
    log_p = D.StudentT(torch.tensor(4.0, dtype=torch.float64)).log_prob(grid)
    quadrature = torch.trapezoid(log_q.exp() * (log_q - log_p), grid)      # (2,)
    estimate = kl_per_sample(q, p, samples=4000)
    assert torch.allclose(estimate.double(), quadrature, atol=0.04)


def test_kl_gradients_reach_q_through_both_paths():
    for prior in (NormalPrior(shape=[2]), HandWrittenNormalPrior([2])):
        loc = torch.full((3, 2), 1.0, requires_grad=True)
        losses.kl(diagonal_normal(loc, torch.ones(3, 2)), prior, samples=2000).backward()
        # d/dμ of mean_b ½Σμ² = μ / b
        assert torch.allclose(loc.grad, torch.full((3, 2), 1.0 / 3), atol=0.05), type(prior).__name__


def test_kl_rejects_non_positive_samples_and_non_distributions():
    q = diagonal_normal(torch.zeros(2, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="samples"):
        losses.kl(q, D.Normal(0.0, 1.0), samples=0)
    with pytest.raises(TypeError):
        losses.kl(q, 3.0)


# ---------------------------------------------------------------- ELBO on a linear-Gaussian model

def linear_gaussian(seed=0):
    """z ~ N(0, I_2), x | z ~ N(W z + c, σ² I_3): log p(x) and p(z|x) are known exactly."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(3, 2, generator=g, dtype=torch.float64)
    c = torch.randn(3, generator=g, dtype=torch.float64)
    sigma = 0.7
    x = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)
    marginal = D.MultivariateNormal(c, W @ W.T + sigma ** 2 * torch.eye(3, dtype=torch.float64))
    post_cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + W.T @ W / sigma ** 2)
    post_mean = post_cov @ W.T @ (x - c) / sigma ** 2
    return W, c, sigma, x, marginal.log_prob(x), post_mean, post_cov


def elbo_on_copies(q_mean, q_cov, n=20000):
    """elbo/neg_elbo over n copies of x, each with its own z ~ q: the Monte Carlo average is the ELBO."""
    W, c, sigma, x, _, _, _ = linear_gaussian()
    q = D.MultivariateNormal(q_mean, q_cov).expand((n,))
    prior = D.MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    z = q.rsample()
    p_x = diagonal_normal(z @ W.T + c, torch.full((n, 3), sigma, dtype=torch.float64))
    xs = x.expand(n, 3)
    return losses.elbo(q, prior, p_x, xs), losses.neg_elbo(q, prior, p_x, xs)


def test_elbo_with_the_exact_posterior_equals_log_evidence():
    torch.manual_seed(0)
    *_, log_px, post_mean, post_cov = linear_gaussian()
    value, negated = elbo_on_copies(post_mean, post_cov)
    assert value.item() == pytest.approx(log_px.item(), abs=0.03)
    assert torch.equal(negated, -value)


def test_elbo_with_a_wrong_posterior_is_below_log_evidence_by_the_kl_gap():
    torch.manual_seed(0)
    *_, log_px, post_mean, post_cov = linear_gaussian()
    q_mean, q_cov = post_mean + torch.tensor([0.8, -0.5], dtype=torch.float64), 0.5 * post_cov
    gap = D.kl_divergence(D.MultivariateNormal(q_mean, q_cov), D.MultivariateNormal(post_mean, post_cov))
    assert gap.item() > 0.5
    value, negated = elbo_on_copies(q_mean, q_cov)
    assert value.item() < log_px.item()
    assert value.item() == pytest.approx((log_px - gap).item(), abs=0.05)
    assert torch.equal(negated, -value)


# ---------------------------------------------------------------- adversarial

def test_gan_losses_at_an_undecided_discriminator():
    zeros = torch.zeros(8, 1)
    assert losses.gan_discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert losses.gan_generator_loss(zeros).item() == pytest.approx(math.log(2))
    assert losses.gan_minimax_generator_loss(zeros).item() == pytest.approx(-math.log(2))


def test_gan_losses_against_their_definitions():
    real, fake = torch.tensor([[2.0], [-1.0], [0.5]]), torch.tensor([[-3.0], [1.0]])
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected_d = -d_real.log().mean() - (1 - d_fake).log().mean()   # batches of different sizes
    assert losses.gan_discriminator_loss(real, fake).item() == pytest.approx(expected_d.item(), rel=1e-5)
    assert losses.gan_generator_loss(fake).item() == pytest.approx(-d_fake.log().mean().item(), rel=1e-5)
    assert losses.gan_minimax_generator_loss(fake).item() == pytest.approx((1 - d_fake).log().mean().item(),
                                                                           rel=1e-5)


def test_non_saturating_generator_loss_keeps_gradients_when_fakes_are_rejected():
    fake = torch.full((4, 1), -8.0, requires_grad=True)     # D is sure these are fake
    losses.gan_generator_loss(fake).backward()
    non_saturating = fake.grad.abs().sum().item()
    fake.grad = None
    losses.gan_minimax_generator_loss(fake).backward()
    assert non_saturating > 100 * fake.grad.abs().sum().item()


def test_cross_entropy_matches_torch_for_indices_and_one_hot_targets():
    torch.manual_seed(0)
    logits, y = torch.randn(6, 4), torch.tensor([0, 3, 1, 1, 2, 0])
    expected = F.cross_entropy(logits, y)
    assert torch.allclose(losses.cross_entropy(logits, y), expected)
    assert torch.allclose(losses.cross_entropy(logits, F.one_hot(y, 4).float()), expected)


def test_accuracy_counts_argmax_hits():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0], [0.0, 5.0]])
    assert losses.accuracy(logits, torch.tensor([0, 1, 1, 0])).item() == 0.5
    assert losses.accuracy(logits, torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]])).item() == 1.0


def test_mode_seeking_on_known_distances_and_its_gradient_pushes_outputs_apart():
    z1, z2 = torch.zeros(2, 4), torch.full((2, 4), 2.0)           # mean |dz| = 2 per example
    x1 = torch.zeros(2, 1, 2, 2)
    x2 = torch.tensor([1.0, 3.0]).reshape(2, 1, 1, 1).expand(2, 1, 2, 2).clone()  # mean |dx| = 1 and 3
    ratio = (1 / 2 + 3 / 2) / 2
    assert losses.mode_seeking(x1, x2, z1, z2, eps=0.0).item() == pytest.approx(1 / ratio)
    # a generator that ignores its noise: identical outputs give 1/eps
    assert losses.mode_seeking(x1, x1, z1, z2, eps=1e-3).item() == pytest.approx(1e3)
    # descending the loss moves the two outputs apart
    x2 = x2.requires_grad_()
    losses.mode_seeking(x1, x2, z1, z2).backward()
    assert (x2.grad < 0).all()  # larger x2 (already above x1) lowers the loss
    with pytest.raises(ValueError, match="one per example"):
        losses.mode_seeking(x1, x1, z1[:1], z2[:1])
