"""Core priors: sampling statistics, devices and dtypes, densities against closed forms."""
import math

import pytest
import torch
import torch.distributions as D
from pydantic import ValidationError

from lvmgraph import Prior
from lvmgraph.plugins.registry import Registry
from lvmgraph_core.priors import register_priors

N = 20_000


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    register_priors(reg.registrar("prior", "core"))
    return reg


def build(registry, name, **settings):
    entry = registry.get("prior", name)
    return entry.factory(**dict(entry.params(**settings)))


ALL = [
    ("normal", dict(shape=[3])),
    ("uniform", dict(shape=[2, 2])),
    ("mixture_of_gaussians", dict(shape=[2])),
    ("categorical", dict(n_classes=4)),
    ("swiss_roll", dict(shape=[2])),
]
WITH_DENSITY = [entry for entry in ALL if entry[0] != "swiss_roll"]


def test_all_registered_as_priors(registry):
    assert set(registry.names("prior")) == {name for name, _ in ALL}
    for name, settings in ALL:
        assert isinstance(build(registry, name, **settings), Prior)
        assert "->" in registry.get("prior", name).summary


@pytest.mark.parametrize("name,settings", ALL)
def test_sample_shapes_n_like_and_forward(registry, name, settings):
    prior = build(registry, name, **settings)
    assert prior.sample(5).shape == (5, *prior.shape)
    assert prior.sample(like=torch.zeros(7, 99)).shape == (7, *prior.shape)
    assert prior(n=2).shape == (2, *prior.shape)
    assert prior.sample(3).dtype == torch.float32


@pytest.mark.parametrize("name,settings", ALL)
def test_samples_follow_dtype_of_the_prior(registry, name, settings):
    prior = build(registry, name, **settings).to(torch.float64)
    assert prior.sample(4).dtype == torch.float64
    if name != "swiss_roll":
        assert prior.log_prob(prior.sample(4)).dtype == torch.float64


@pytest.mark.parametrize("name,settings", ALL)
def test_samples_follow_device_of_the_prior(registry, name, settings):
    devices = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        prior = build(registry, name, **settings).to(device)
        if name == "categorical" and device == "meta":
            continue  # multinomial has no meta kernel
        assert prior.sample(4).device.type == device


@pytest.mark.parametrize("name,settings", WITH_DENSITY)
def test_log_prob_matches_distribution(registry, name, settings):
    torch.manual_seed(0)
    prior = build(registry, name, **settings)
    z = prior.sample(64)
    lp = prior.log_prob(z)
    assert lp.shape == (64,)
    torch.testing.assert_close(lp, prior.distribution().log_prob(z))
    assert prior.distribution().event_shape == prior.shape


# ----------------------------------------------------------------------------- normal

def test_normal_moments_and_density(registry):
    torch.manual_seed(0)
    prior = build(registry, "normal", shape=[2, 3], loc=1.5, scale=0.5)
    z = prior.sample(N)
    assert abs(z.mean().item() - 1.5) < 0.01
    assert abs(z.std().item() - 0.5) < 0.01
    # per-coordinate independence: off-diagonal correlations vanish
    corr = torch.corrcoef(z.reshape(N, 6).T)
    assert (corr - torch.eye(6)).abs().max() < 0.05
    by_hand = (-0.5 * ((z - 1.5) / 0.5) ** 2 - math.log(0.5) - 0.5 * math.log(2 * math.pi)).sum((1, 2))
    torch.testing.assert_close(prior.log_prob(z), by_hand)


def test_normal_has_analytic_kl_to_a_posterior(registry):
    prior = build(registry, "normal", shape=[4])
    q = D.Independent(D.Normal(torch.ones(3, 4), 2 * torch.ones(3, 4)), 1)
    kl = D.kl_divergence(q, prior.distribution())
    by_hand = 4 * 0.5 * (4 + 1 - 1 - math.log(4))  # sum over d of (s^2 + mu^2 - 1 - log s^2) / 2
    torch.testing.assert_close(kl, torch.full((3,), by_hand))


# ----------------------------------------------------------------------------- uniform

def test_uniform_range_mean_and_density(registry):
    torch.manual_seed(0)
    prior = build(registry, "uniform", shape=[2], low=-3, high=1)
    z = prior.sample(N)
    assert z.min() >= -3 and z.max() < 1
    assert (z.mean(0) - (-1)).abs().max() < 0.05
    assert (z.var(0) - 16 / 12).abs().max() < 0.05
    torch.testing.assert_close(prior.log_prob(z[:5]), torch.full((5,), -2 * math.log(4)))
    assert prior.log_prob(torch.tensor([[2.0, 0.0]])).item() == -math.inf


# ----------------------------------------------------------------------------- mixture of Gaussians

def test_mog_means_on_a_circle(registry):
    prior = build(registry, "mixture_of_gaussians", shape=[3], n_components=8, radius=4.0)
    means = prior.component_means
    assert means.shape == (8, 3)
    torch.testing.assert_close(means[:, :2].norm(dim=1), torch.full((8,), 4.0))
    assert (means[:, 2] == 0).all()
    angles = torch.atan2(means[:, 1], means[:, 0])
    step = torch.remainder(angles.roll(-1) - angles, 2 * math.pi)
    torch.testing.assert_close(step, torch.full((8,), 2 * math.pi / 8))


def test_mog_samples_cluster_around_their_components(registry):
    torch.manual_seed(0)
    prior = build(registry, "mixture_of_gaussians", shape=[2], n_components=10, radius=4.0, std=0.5)
    z, k = prior.sample_with_components(N)
    counts = torch.bincount(k, minlength=10)
    assert (counts > 0.08 * N).all() and (counts < 0.12 * N).all()
    for c in range(10):
        assigned = z[k == c]
        assert (assigned.mean(0) - prior.component_means[c]).norm() < 0.05
        assert abs(assigned.std(0).mean().item() - 0.5) < 0.03
    # plain samples, assigned to their nearest mean, use every component too
    z = prior.sample(N)
    nearest = torch.cdist(z, prior.component_means).argmin(1)
    assert (torch.bincount(nearest, minlength=10) > 0.08 * N).all()


def test_mog_density_by_hand(registry):
    prior = build(registry, "mixture_of_gaussians", shape=[2], n_components=4, radius=2.0, std=0.5)
    z = torch.tensor([[2.0, 0.0], [0.0, 0.0], [-1.0, 1.5]])
    means = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    sq = ((z[:, None, :] - means[None]) ** 2).sum(-1)
    per_component = -sq / (2 * 0.25) - 2 * math.log(0.5) - math.log(2 * math.pi)
    by_hand = torch.logsumexp(per_component, dim=1) - math.log(4)
    torch.testing.assert_close(prior.log_prob(z), by_hand, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- categorical

def test_categorical_one_hot_rows_with_given_frequencies(registry):
    torch.manual_seed(0)
    probs = [0.1, 0.2, 0.3, 0.4]
    prior = build(registry, "categorical", n_classes=4, probs=probs)
    assert prior.shape == (4,)
    y = prior.sample(N)
    assert set(y.unique().tolist()) == {0.0, 1.0}
    assert (y.sum(1) == 1).all()
    assert (y.mean(0) - torch.tensor(probs)).abs().max() < 0.015
    torch.testing.assert_close(prior.log_prob(torch.eye(4)), torch.tensor(probs).log())


def test_categorical_defaults_to_uniform(registry):
    torch.manual_seed(0)
    prior = build(registry, "categorical", n_classes=5)
    assert (prior.sample(N).mean(0) - 0.2).abs().max() < 0.015


# ----------------------------------------------------------------------------- swiss roll

def test_swiss_roll_points_lie_on_the_spiral(registry):
    torch.manual_seed(0)
    prior = build(registry, "swiss_roll", noise=0.0, scale=2.0)
    z = prior.sample(1000)
    r = z.norm(dim=1)
    # radius grows linearly with the angle t in [1.5 pi, 4.5 pi]: r = scale * t / (4.5 pi)
    assert r.min() >= 2.0 / 3 - 1e-4 and r.max() <= 2.0 + 1e-4
    t = r / 2.0 * 4.5 * math.pi
    torch.testing.assert_close(z / r[:, None], torch.stack([t.cos(), t.sin()], 1), atol=1e-4, rtol=0)


def test_swiss_roll_noise_and_extent(registry):
    torch.manual_seed(0)
    z = build(registry, "swiss_roll", noise=0.05, scale=1.0).sample(N)
    assert z.abs().max() < 1.3
    assert z.std(0).min() > 0.3  # spread over the square, not collapsed


def test_swiss_roll_has_no_density(registry):
    prior = build(registry, "swiss_roll")
    with pytest.raises(NotImplementedError, match="no closed-form density"):
        prior.log_prob(torch.zeros(3, 2))
    with pytest.raises(NotImplementedError, match="adversarial prior"):
        prior.distribution()


# ----------------------------------------------------------------------------- params

@pytest.mark.parametrize("name,settings", ALL)
def test_params_reject_unknown_keys(registry, name, settings):
    with pytest.raises(ValidationError, match="sigma"):
        registry.get("prior", name).params(**settings, sigma=1.0)


@pytest.mark.parametrize("name,bad", [
    ("normal", dict(shape=[2], scale=0)),
    ("normal", dict(shape=[])),
    ("uniform", dict(shape=[2], low=1, high=1)),
    ("uniform", dict(shape=[2], low=2, high=-2)),
    ("mixture_of_gaussians", dict(shape=[1])),
    ("mixture_of_gaussians", dict(shape=[2], std=-0.1)),
    ("mixture_of_gaussians", dict(shape=[2], n_components=0)),
    ("categorical", dict(n_classes=3, probs=[0.5, 0.5, 0.1])),
    ("categorical", dict(n_classes=3, probs=[0.5, 0.5])),
    ("categorical", dict(n_classes=2, probs=[1.5, -0.5])),
    ("swiss_roll", dict(shape=[3])),
    ("swiss_roll", dict(scale=0)),
])
def test_params_reject_bad_values(registry, name, bad):
    with pytest.raises(ValidationError):
        registry.get("prior", name).params(**bad)


def test_categorical_accepts_probs_within_tolerance(registry):
    registry.get("prior", "categorical").params(n_classes=3, probs=[1 / 3, 1 / 3, 1 / 3])
