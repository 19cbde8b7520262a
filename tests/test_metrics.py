"""Metrics against models whose answers are known in closed form.

The VAE metrics run on a linear-Gaussian model: z ~ N(0, I), x | z ~ N(Wz + b, σ²I), so
p(x) = N(b, WWᵀ + σ²I) and the exact posterior is Gaussian. The prior-matching metrics run on
"encoders" whose codes are prior draws, or prior draws shifted by +2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

from lvmgraph import DatasetBundle, Prior
from lvmgraph.plugins.registry import Registry
from lvmgraph_aae.metrics import prior_mmd
from lvmgraph_aae.metrics import register_metrics as register_aae_metrics
from lvmgraph_core.metrics import reconstruction_error
from lvmgraph_core.metrics import register_metrics as register_core_metrics
from lvmgraph_core.priors import UniformPrior
from lvmgraph_vae.metrics import elbo, iwae_nll
from lvmgraph_vae.metrics import register_metrics as register_vae_metrics

DTYPE = torch.float64  # exactness checks below are to ~1e-9


# ----------------------------------------------------------------------------- a real, small context

@dataclass
class GraphContext:
    """An EvalContext over a hand-written graph: ``nodes`` compute values, in order, from earlier ones.

    Values given in ``inputs`` (data fields or overrides such as ``z``) are never recomputed,
    exactly like the real graph's overrides.
    """

    nodes: dict[str, Callable[[dict], Any]]
    components: dict[str, nn.Module]
    data: DatasetBundle
    device: torch.device = torch.device("cpu")
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    spec: Any = None

    def evaluate(self, outputs, inputs):
        values = dict(inputs)
        with torch.no_grad():
            for name, compute in self.nodes.items():
                if all(o in values for o in outputs):
                    break
                if name not in values:
                    values[name] = compute(values)
        return {o: values[o] for o in outputs}

    def batches(self, split="test", batch_size=500, limit=None):
        fields = getattr(self.data, split)
        n = len(next(iter(fields.values())))
        n = n if limit is None else min(n, limit)
        for start in range(0, n, batch_size):
            yield {name: t[start:min(start + batch_size, n)].to(self.device) for name, t in fields.items()}

    def sample(self, n):
        z = self.components["prior"].sample(n)
        return self.evaluate([list(self.nodes)[-1]], {"z": z})[list(self.nodes)[-1]]


class StandardNormal(Prior):
    """N(0, I) over (n, *shape) in float64."""

    def _sample(self, n):
        return torch.randn(n, *self.shape, dtype=DTYPE)

    def distribution(self):
        zeros = torch.zeros(self.shape, dtype=DTYPE)
        return Independent(Normal(zeros, torch.ones_like(zeros)), len(self.shape))


class LinearGaussianDecoder(nn.Module):
    """z (b d) -> p(x|z) = N(Wz + b, σ²I) over (b D), as a factorised Normal with batch shape (b D)."""

    def __init__(self, *, data_dim=4, latent_dim=2, sigma=0.5, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(data_dim, latent_dim, generator=g, dtype=DTYPE)
        self.b = torch.randn(data_dim, generator=g, dtype=DTYPE)
        self.sigma = sigma

    def forward(self, z):
        return Normal(z @ self.W.T + self.b, self.sigma)

    def marginal(self):
        """p(x) = N(b, WWᵀ + σ²I)."""
        eye = torch.eye(self.W.shape[0], dtype=DTYPE)
        return MultivariateNormal(self.b, self.W @ self.W.T + self.sigma ** 2 * eye)

    def posterior(self, x):
        """x (b D) -> mean (b d) and shared covariance (d d) of the exact p(z|x)."""
        eye = torch.eye(self.W.shape[1], dtype=DTYPE)
        cov = torch.linalg.inv(eye + self.W.T @ self.W / self.sigma ** 2)
        return (x - self.b) @ self.W @ cov / self.sigma ** 2, cov

    def draw(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.W.shape[1], generator=g, dtype=DTYPE)
        return z @ self.W.T + self.b + self.sigma * torch.randn(n, self.W.shape[0], generator=g, dtype=DTYPE)


class ExactEncoder(nn.Module):
    """x -> the true posterior p(z|x), a full-covariance Gaussian."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, x):
        mean, cov = self.decoder.posterior(x)
        return MultivariateNormal(mean, covariance_matrix=cov)


class PoorEncoder(nn.Module):
    """x -> a diagonal Gaussian with a shrunk mean and twice the true marginal spread."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, x):
        mean, cov = self.decoder.posterior(x)
        return Normal(0.8 * mean, 2 * cov.diagonal().sqrt().expand_as(mean))


def vae_context(encoder_cls, n=500, seed=0):
    decoder = LinearGaussianDecoder()
    encoder = encoder_cls(decoder)
    x = decoder.draw(n, seed=1)
    nodes = {"q": lambda v: encoder(v["x"]), "z": lambda v: v["q"].sample(), "p_x": lambda v: decoder(v["z"])}
    ctx = GraphContext(nodes, {"prior": StandardNormal([2]), "encoder": encoder, "decoder": decoder},
                       DatasetBundle(train={"x": x}, test={"x": x}),
                       generator=torch.Generator().manual_seed(seed))
    exact_nll = -decoder.marginal().log_prob(x).mean().item()
    return ctx, exact_nll


def closed_form_elbo(ctx):
    """For a diagonal Gaussian q and the linear-Gaussian model: E_q log p(x|z), KL(q‖N(0,I)), per example."""
    x = ctx.data.test["x"]
    dec, q = ctx.components["decoder"], ctx.components["encoder"](x)
    m, s2 = q.mean, q.variance
    D, var = x.shape[1], dec.sigma ** 2
    residual = (x - m @ dec.W.T - dec.b).pow(2).sum(1) + s2 @ dec.W.pow(2).sum(0)
    rec = -0.5 * D * math.log(2 * math.pi * var) - residual / (2 * var)
    kl = 0.5 * (s2 + m ** 2 - 1 - s2.log()).sum(1)
    return rec.mean().item(), kl.mean().item()


def metric_registry():
    reg = Registry()
    register_core_metrics(reg.registrar("metric", "core"))
    register_vae_metrics(reg.registrar("metric", "vae"))
    register_aae_metrics(reg.registrar("metric", "aae"))
    return reg


def run(reg, name, ctx, **settings):
    """Call a metric the way the framework does: settings validated by its params model first."""
    entry = reg.get("metric", name)
    return entry.factory(ctx, **dict(entry.params(**settings)))


# ----------------------------------------------------------------------------- registration

def test_metrics_are_registered_with_documented_params():
    reg = metric_registry()
    assert reg.names("metric") == ["elbo", "iwae_nll", "prior_ks", "prior_mmd", "reconstruction_error"]
    for entry in reg.entries("metric"):
        assert entry.summary, entry.name
        for name, info in entry.params.model_fields.items():
            assert info.description, f"{entry.name}.{name}"
    iwae = reg.get("metric", "iwae_nll").params
    assert iwae(k=5000).k == 5000
    with pytest.raises(ValidationError):
        iwae(k=5001)
    with pytest.raises(ValidationError):
        iwae(samples=10)  # unknown setting
    with pytest.raises(ValidationError):
        reg.get("metric", "prior_mmd").params(scales=[1.0, -2.0])


# ----------------------------------------------------------------------------- reconstruction_error

def recon_context(x, reconstruct):
    return GraphContext({"x_hat": lambda v: reconstruct(v["x"])}, {},
                        DatasetBundle(train={"x": x}, test={"x": x}))


def binary_images(n=40):
    return (torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.5).float()


def test_identity_autoencoder_has_zero_reconstruction_error():
    out = run(metric_registry(), "reconstruction_error", recon_context(binary_images(), lambda x: x),
              batch_size=16)
    assert out["mse"] == 0.0
    assert 0.0 <= out["bce"] < 1e-5  # only the clamp to [1e-6, 1 - 1e-6] keeps it from 0
    assert out["protocol"]["n"] == 40 and out["protocol"]["split"] == "test"


def test_reconstruction_error_matches_torch_on_an_imperfect_reconstruction():
    x = binary_images()
    squash = lambda t: 0.8 * t + 0.1  # noqa: E731
    out = reconstruction_error(recon_context(x, squash), batch_size=7, n=30)
    assert out["mse"] == pytest.approx(F.mse_loss(squash(x[:30]), x[:30]).item(), rel=1e-6)
    assert out["bce"] == pytest.approx(F.binary_cross_entropy(squash(x[:30]), x[:30]).item(), rel=1e-6)
    assert out["protocol"]["n"] == 30


def test_reconstruction_error_uses_a_distributions_mean_and_skips_bce_off_the_unit_range():
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0)) * 3
    out = reconstruction_error(recon_context(x, lambda t: Normal(t + 0.5, 1.0)))
    assert out["mse"] == pytest.approx(0.25)
    assert "bce" not in out


# ----------------------------------------------------------------------------- iwae_nll and elbo

@pytest.mark.parametrize("k", [1, 10, 100])
def test_iwae_with_the_exact_posterior_is_the_exact_nll_for_every_k(k):
    ctx, exact = vae_context(ExactEncoder, n=200)
    out = run(metric_registry(), "iwae_nll", ctx, k=k, n=200, batch_size=64)
    # log w = log p(x) for every z when q is the true posterior
    assert out["nll"] == pytest.approx(exact, abs=1e-9)
    assert out["elbo"] == pytest.approx(-exact, abs=1e-9)
    assert out["protocol"]["k"] == k and out["protocol"]["n"] == 200


def test_iwae_with_a_poor_encoder_tightens_towards_the_exact_nll_as_k_grows():
    ctx, exact = vae_context(PoorEncoder)
    reg = metric_registry()
    results = {k: run(reg, "iwae_nll", ctx, k=k, chunk=32) for k in (1, 10, 100)}
    nll = {k: r["nll"] for k, r in results.items()}
    assert nll[1] > nll[10] > nll[100]
    assert nll[1] - exact > 1.0  # the poor encoder's single-sample bound is loose ...
    assert abs(nll[100] - exact) < 0.05 * (nll[1] - exact)  # ... and k = 100 nearly closes the gap
    for r in results.values():
        assert -r["nll"] >= r["elbo"]  # IWAE bound ≥ ELBO on the same draws (Jensen)
        assert r["gap"] >= 0 and r["nll_k1"] == pytest.approx(-r["elbo"])
    assert results[1]["gap"] == pytest.approx(0.0, abs=1e-12)
    # the mean of log w estimates the ELBO whatever k is
    rec, kl = closed_form_elbo(ctx)
    assert results[100]["elbo"] == pytest.approx(rec - kl, abs=0.05)


def test_iwae_chunking_changes_memory_not_results():
    reg = metric_registry()
    whole = run(reg, "iwae_nll", vae_context(PoorEncoder, n=50)[0], k=30, chunk=30)
    chunked = run(reg, "iwae_nll", vae_context(PoorEncoder, n=50)[0], k=30, chunk=7)
    assert chunked["nll"] == pytest.approx(whole["nll"], abs=1e-12)


def test_iwae_is_reproducible_and_leaves_the_training_rng_alone():
    torch.manual_seed(5)
    expected_next = torch.rand(4)
    torch.manual_seed(5)
    first = iwae_nll(vae_context(PoorEncoder, n=50, seed=3)[0], k=20)
    second = iwae_nll(vae_context(PoorEncoder, n=50, seed=3)[0], k=20)
    assert first == second
    assert torch.equal(torch.rand(4), expected_next)


def test_elbo_metric_uses_the_analytic_kl_and_matches_the_closed_form():
    ctx, exact = vae_context(PoorEncoder, n=500)
    out = run(metric_registry(), "elbo", ctx)
    rec, kl = closed_form_elbo(ctx)
    assert out["protocol"]["kl"] == "analytic"
    assert out["kl"] == pytest.approx(kl, rel=1e-9)
    # one latent draw per point: the reconstruction term is noisy (sd of the mean ≈ 0.3 nats here)
    assert out["reconstruction"] == pytest.approx(rec, abs=1.0)
    assert out["elbo"] == pytest.approx(out["reconstruction"] - out["kl"])
    assert out["elbo"] < -exact


def test_elbo_metric_falls_back_to_a_sampled_kl_and_is_exact_for_the_true_posterior():
    ctx, exact = vae_context(ExactEncoder, n=100)
    out = elbo(ctx, batch_size=30)
    assert out["protocol"]["kl"] == "single-sample"  # no torch KL for full-covariance vs diagonal
    assert out["elbo"] == pytest.approx(-exact, abs=1e-9)


def test_vae_metrics_name_the_setting_to_fix():
    ctx, _ = vae_context(ExactEncoder, n=10)
    with pytest.raises(KeyError, match="prior"):
        iwae_nll(ctx, k=2, prior="missing")
    with pytest.raises(TypeError, match="posterior"):
        iwae_nll(ctx, k=2, posterior="z")  # a tensor, not a distribution


# ----------------------------------------------------------------------------- prior_mmd and prior_ks

def code_context(shift, n=500, d=2):
    """An 'encoder' whose codes for the data are prior draws plus ``shift``."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(11), dtype=DTYPE)
    return GraphContext({"z": lambda v: v["x"] + shift}, {"prior": StandardNormal([d])},
                        DatasetBundle(train={"x": x}, test={"x": x}))


def test_prior_mmd_is_at_the_floor_for_prior_codes_and_far_above_for_shifted_codes():
    reg = metric_registry()
    matched = run(reg, "prior_mmd", code_context(0.0), n=500)
    shifted = run(reg, "prior_mmd", code_context(2.0), n=500)
    assert abs(matched["mmd2"] - matched["floor"]) < 0.01
    assert abs(matched["floor"]) < 0.01
    assert shifted["mmd2"] > 100 * 0.01
    assert matched["protocol"]["n"] == 500 and matched["protocol"]["kernel"] == "imq"


def uniform_code_context(shift, n=2000, half_width=4.0):
    """Codes that are draws of U[−w, w]² (plus ``shift``), against the real uniform prior component."""
    x = (torch.rand(n, 2, generator=torch.Generator().manual_seed(12), dtype=DTYPE) * 2 - 1) * half_width
    return GraphContext({"z": lambda v: v["x"] + shift},
                        {"prior": UniformPrior(shape=[2], low=-half_width, high=half_width)},
                        DatasetBundle(train={"x": x}, test={"x": x}))


def test_prior_mmd_auto_variance_scales_the_kernel_to_a_uniform_prior():
    reg = metric_registry()
    default = run(reg, "prior_mmd", uniform_code_context(0.0), n=2000)
    assert default["protocol"]["sigma2"] == 1.0 and default["protocol"]["prior_variance"] == 1.0  # N(0, I) default
    matched = run(reg, "prior_mmd", uniform_code_context(0.0), n=2000, prior_variance="auto")
    # U[−4, 4] has variance 8² / 12 = 16/3 per axis; the sample estimate is within ~2% (one sd) at n = 2000
    assert matched["protocol"]["sigma2"] == pytest.approx(16 / 3, rel=0.06)
    assert matched["protocol"]["prior_variance"] == "auto"
    # two samples of one distribution: at the floor, near 0, whatever the kernel's width
    assert abs(matched["mmd2"]) < 0.01 and abs(matched["floor"]) < 0.01
    assert abs(matched["mmd2"] - matched["floor"]) < 0.01
    # the scaled kernel still sees a shift of a quarter of the box's width
    shifted = run(reg, "prior_mmd", uniform_code_context(2.0), n=2000, prior_variance="auto")
    assert shifted["mmd2"] > 10 * 0.01
    # an explicit value is used as given: C = 2·d·σ²·s
    explicit = run(reg, "prior_mmd", uniform_code_context(0.0), n=2000, prior_variance=16 / 3)
    assert explicit["protocol"]["sigma2"] == 16 / 3
    with pytest.raises(ValidationError):
        reg.get("metric", "prior_mmd").params(prior_variance=0.0)
    with pytest.raises(ValidationError):
        reg.get("metric", "prior_mmd").params(prior_variance="wide")


def test_prior_ks_is_at_the_floor_for_prior_codes_and_far_above_for_shifted_codes():
    reg = metric_registry()
    matched = run(reg, "prior_ks", code_context(0.0, d=3), n=400, batch_size=128)
    shifted = run(reg, "prior_ks", code_context(2.0, d=3), n=400)
    # at n = 400 the KS statistic of two samples of one distribution is rarely above ~0.1
    assert matched["ks_max"] < 0.12 and matched["floor"] < 0.12
    assert sorted(matched["per_axis"]) == ["0", "1", "2"]
    assert matched["ks_max"] == max(matched["per_axis"].values())
    # N(2, 1) vs N(0, 1): the population KS distance is 2Φ(1) − 1 ≈ 0.68
    assert min(shifted["per_axis"].values()) > 0.55
    assert matched["protocol"]["n"] == 400


def test_prior_metrics_leave_the_training_rng_alone_and_are_reproducible():
    torch.manual_seed(1)
    expected_next = torch.rand(3)
    torch.manual_seed(1)
    first, second = (prior_mmd(code_context(0.5), n=200) for _ in range(2))
    assert first == second
    assert torch.equal(torch.rand(3), expected_next)
