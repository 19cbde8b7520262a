"""VAE components: gaussian_encoder, bernoulli_decoder, gaussian_decoder."""
import math

import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F
from pydantic import ValidationError

from lvmgraph import ShapeMismatch
from lvmgraph.plugins.registry import Registry
from lvmgraph_vae.components import register_components

IMAGE_SHAPES = [(1, 8, 8), (1, 28, 28), (1, 32, 32), (3, 40, 40)]
NAMES = ("gaussian_encoder", "bernoulli_decoder", "gaussian_decoder")


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    register_components(reg.registrar("component", "vae"))
    return reg


def build(registry, name, **settings):
    entry = registry.get("component", name)
    return entry.factory(**dict(entry.params(**settings)))


def test_registered_with_documented_params(registry):
    assert set(registry.names("component")) == set(NAMES)
    for name in NAMES:
        entry = registry.get("component", name)
        assert "->" in entry.summary
        assert all(f.description for f in entry.params.model_fields.values())
    assert "q(z|x)" in registry.get("component", "gaussian_encoder").summary


# ----------------------------------------------------------------------------- encoder

@pytest.mark.parametrize("trunk", ["mlp", "conv"])
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_encoder_returns_diagonal_normal(registry, shape, trunk):
    enc = build(registry, "gaussian_encoder", in_shape=list(shape), latent_dim=3, trunk=trunk,
                hidden=[16], channels=[4, 8])
    q = enc(torch.rand(5, *shape))
    assert isinstance(q, D.Independent) and isinstance(q.base_dist, D.Normal)
    assert q.batch_shape == (5,) and q.event_shape == (3,)
    assert q.rsample().shape == (5, 3)
    assert q.log_prob(q.rsample()).shape == (5,)


def test_encoder_std_floor(registry):
    torch.manual_seed(0)
    enc = build(registry, "gaussian_encoder", in_shape=[2], latent_dim=4, hidden=[8], min_std=0.7)
    q = enc(torch.randn(64, 2) * 100)  # extreme inputs push softplus to 0 for some units
    assert (q.stddev >= 0.7).all()
    assert q.stddev.min().item() == pytest.approx(0.7)  # ...where the floor is what remains


def test_encoder_on_points(registry):
    enc = build(registry, "gaussian_encoder", in_shape=[2], latent_dim=2, hidden=[8])
    assert enc(torch.randn(4, 2)).mean.shape == (4, 2)


@pytest.mark.parametrize("trunk", ["mlp", "conv"])
def test_encoder_rsample_gradients_reach_every_parameter(registry, trunk):
    torch.manual_seed(0)
    enc = build(registry, "gaussian_encoder", in_shape=[1, 8, 8], latent_dim=4, trunk=trunk,
                hidden=[16, 16], channels=[4, 8])
    q = enc(torch.rand(6, 1, 8, 8))
    z = q.rsample()
    (z ** 2).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_encoder_rsample_is_mean_plus_std_times_noise(registry):
    torch.manual_seed(0)
    enc = build(registry, "gaussian_encoder", in_shape=[3], latent_dim=2, hidden=[8])
    q = enc(torch.randn(4, 3))
    torch.manual_seed(1)
    z = q.rsample()
    torch.manual_seed(1)
    eps = torch.randn(4, 2)
    torch.testing.assert_close(z, q.mean + q.stddev * eps)


# ----------------------------------------------------------------------------- bernoulli decoder

@pytest.mark.parametrize("trunk", ["mlp", "conv"])
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_bernoulli_decoder_log_prob_is_minus_bce(registry, shape, trunk):
    torch.manual_seed(0)
    dec = build(registry, "bernoulli_decoder", latent_dim=3, out_shape=list(shape), trunk=trunk,
                hidden=[16], channels=[8, 4])
    p = dec(torch.randn(4, 3))
    assert p.batch_shape == (4,) and p.event_shape == shape
    x = torch.rand(4, *shape)  # grey levels, not just {0, 1}
    logits = p.base_dist.logits
    expected = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2, 3))
    torch.testing.assert_close(p.log_prob(x), expected)
    torch.testing.assert_close(p.mean, torch.sigmoid(logits))


def test_bernoulli_decoder_on_vectors(registry):
    dec = build(registry, "bernoulli_decoder", latent_dim=2, out_shape=[5], hidden=[8])
    p = dec(torch.randn(3, 2))
    assert p.event_shape == (5,) and p.log_prob(torch.rand(3, 5)).shape == (3,)


# ----------------------------------------------------------------------------- gaussian decoder

@pytest.mark.parametrize("trunk,shape", [("mlp", (2,)), ("mlp", (1, 8, 8)), ("conv", (3, 40, 40))])
def test_gaussian_decoder_fixed_std_closed_form(registry, trunk, shape):
    torch.manual_seed(0)
    dec = build(registry, "gaussian_decoder", latent_dim=3, out_shape=list(shape), trunk=trunk,
                hidden=[16], channels=[8, 4], std=0.3)
    p = dec(torch.randn(4, 3))
    x = torch.randn(4, *shape)
    mean = p.mean
    assert mean.shape == (4, *shape)
    dims = tuple(range(1, x.dim()))
    by_hand = (-0.5 * ((x - mean) / 0.3) ** 2 - math.log(0.3) - 0.5 * math.log(2 * math.pi)).sum(dims)
    torch.testing.assert_close(p.log_prob(x), by_hand)
    assert not any("log_std" in name for name, _ in dec.named_parameters())


def test_gaussian_decoder_learns_its_std(registry):
    torch.manual_seed(0)
    dec = build(registry, "gaussian_decoder", latent_dim=2, out_shape=[3], hidden=[8])
    assert dec(torch.randn(2, 2)).stddev.shape == (2, 3)
    torch.testing.assert_close(dec(torch.randn(2, 2)).stddev, torch.ones(2, 3))  # log-std starts at 0
    # data whose per-dimension noise differs: the learned std should track it
    z = torch.randn(512, 2)
    x = torch.randn(512, 3) * torch.tensor([0.1, 1.0, 3.0])
    opt = torch.optim.Adam(dec.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        (-dec(z).log_prob(x).mean()).backward()
        opt.step()
    std = dec(z[:1]).stddev[0]
    torch.testing.assert_close(std, torch.tensor([0.1, 1.0, 3.0]), rtol=0.15, atol=0.0)


def test_gaussian_decoder_sigmoid_mean(registry):
    dec = build(registry, "gaussian_decoder", latent_dim=2, out_shape=[1, 8, 8], hidden=[8],
                std=0.1, mean_activation="sigmoid")
    mean = dec(torch.randn(3, 2) * 10).mean
    assert (mean >= 0).all() and (mean <= 1).all()


# ----------------------------------------------------------------------------- errors and params

def test_wrong_shapes_name_the_setting(registry):
    enc = build(registry, "gaussian_encoder", in_shape=[1, 8, 8], latent_dim=2, hidden=[8])
    with pytest.raises(ShapeMismatch, match="in_shape"):
        enc(torch.zeros(2, 1, 28, 28))
    for name in ("bernoulli_decoder", "gaussian_decoder"):
        dec = build(registry, name, latent_dim=2, out_shape=[4], hidden=[8])
        with pytest.raises(ShapeMismatch, match="latent_dim") as err:
            dec(torch.zeros(2, 5))
        assert name in str(err.value)


GOOD = {
    "gaussian_encoder": dict(in_shape=[2], latent_dim=2),
    "bernoulli_decoder": dict(latent_dim=2, out_shape=[1, 8, 8]),
    "gaussian_decoder": dict(latent_dim=2, out_shape=[2]),
}


@pytest.mark.parametrize("name", NAMES)
def test_params_reject_unknown_keys(registry, name):
    params = registry.get("component", name).params
    params(**GOOD[name])
    with pytest.raises(ValidationError, match="latent_size"):
        params(**GOOD[name], latent_size=3)


@pytest.mark.parametrize("name,bad", [
    ("gaussian_encoder", dict(in_shape=[2], latent_dim=0)),
    ("gaussian_encoder", dict(in_shape=[2], latent_dim=2, trunk="rnn")),
    ("gaussian_encoder", dict(in_shape=[2], latent_dim=2, trunk="conv")),
    ("gaussian_encoder", dict(in_shape=[2], latent_dim=2, min_std=-1)),
    ("gaussian_encoder", dict(in_shape=[1, 2, 2], latent_dim=2, trunk="conv", channels=[4, 4, 4])),
    ("bernoulli_decoder", dict(latent_dim=2, out_shape=[1, 28, 28], trunk="conv", channels=[8, 8, 8])),
    ("bernoulli_decoder", dict(latent_dim=2, out_shape=[784], trunk="conv")),
    ("gaussian_decoder", dict(latent_dim=2, out_shape=[2], std=0)),
    ("gaussian_decoder", dict(latent_dim=2, out_shape=[2], activation="gelu")),
])
def test_params_reject_bad_values(registry, name, bad):
    with pytest.raises(ValidationError):
        registry.get("component", name).params(**bad)


# ----------------------------------------------------------------------------- learning

def test_tiny_vae_on_digits_improves_its_elbo(registry):
    datasets = pytest.importorskip("sklearn.datasets")
    torch.manual_seed(0)
    x = torch.tensor(datasets.load_digits().data[:512], dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
    enc = build(registry, "gaussian_encoder", in_shape=[1, 8, 8], latent_dim=4, hidden=[64])
    dec = build(registry, "bernoulli_decoder", latent_dim=4, out_shape=[1, 8, 8], hidden=[64])
    prior = D.Independent(D.Normal(torch.zeros(4), torch.ones(4)), 1)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)

    def negative_elbo():
        q = enc(x)
        return (-dec(q.rsample()).log_prob(x) + D.kl_divergence(q, prior)).mean()

    losses = []
    for _ in range(200):
        opt.zero_grad()
        loss = negative_elbo()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert end < 0.75 * start, (start, end)
