"""The WAE plugin: the ``mmd_penalty`` loss (Tolstikhin et al. 2018) and WAE-MMD training.

tests/data/wae/wae_digits.yaml is the plugin's template (``extends: family:wae``): an MLP
WAE-MMD on the 8x8 digits, one phase minimising ``rec_loss + 10·mmd`` over [encoder, decoder].
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import lvmgraph.api as lg
from lvmgraph.eval.runner import evaluate
from lvmgraph.eval.stats import mmd_imq
from lvmgraph.experiment import prepare
from lvmgraph.spec.errors import SpecError
from lvmgraph.train.trainer import Trainer
from lvmgraph_wae import mmd_penalty

DATA = Path(__file__).resolve().parent / "data" / "wae"
WAE_DIGITS = DATA / "wae_digits.yaml"
FAST = ["train.threads=1", "train.progress=false"]
WAE_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def reference_mmd(x: torch.Tensor, y: torch.Tensor, scales, sigma2: float) -> torch.Tensor:
    """The WAE authors' estimator written out (float64, explicit pairwise differences): for
    each scale s, C = 2·d·σ²·s; within-sample kernel means over i ≠ j, cross term over all n·m pairs."""
    x, y = x.double(), y.double()
    n, m, d = x.shape[0], y.shape[0], x.shape[1]

    def gram(a, b, c):
        return c / (c + ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    total = torch.zeros((), dtype=torch.float64)
    for s in scales:
        c = 2.0 * d * sigma2 * s
        xx, yy, xy = gram(x, x, c), gram(y, y, c), gram(x, y, c)
        total = total + (xx.sum() - xx.trace()) / (n * (n - 1)) + (yy.sum() - yy.trace()) / (m * (m - 1)) \
            - 2.0 * xy.sum() / (n * m)
    return total


# ----------------------------------------------------------------------------- the loss

def test_mmd_penalty_is_the_wae_estimator_written_out():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=g) * 1.5 + 0.3
    y = torch.randn(9, 3, generator=g)
    for sigma2 in (1.0, 2.0):
        want = reference_mmd(x, y, WAE_SCALES, sigma2)
        got = mmd_penalty(x.double(), y.double(), sigma2=sigma2)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # the defaults are the paper's: the 7 scales and σ² = 1
    torch.testing.assert_close(mmd_penalty(x, y), reference_mmd(x, y, WAE_SCALES, 1.0).float(), rtol=1e-5, atol=1e-6)
    # a single scale and a different σ² change the kernel as the formula says
    torch.testing.assert_close(mmd_penalty(x.double(), y.double(), scales=[0.5], sigma2=2.0),
                               reference_mmd(x, y, [0.5], 2.0), rtol=1e-10, atol=1e-12)
    # and it is the evaluation metric's estimator (prior_mmd uses mmd_imq)
    torch.testing.assert_close(mmd_penalty(x, y, sigma2=2.0), mmd_imq(x, y, sigma2=2.0))


def test_mmd_penalty_near_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(1)
    n, d = 400, 8
    prior = torch.randn(n, d, generator=g)
    same = torch.randn(n, d, generator=g)
    noise = torch.randn(n, d, generator=g)
    values = [float(mmd_penalty(noise + shift, prior)) for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert abs(float(mmd_penalty(same, prior))) < 0.01, values
    assert abs(values[0]) < 0.01, values
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert values[1] > 3 * abs(values[0]) and values[-1] > 0.5, values
    # a wrong spread is caught too, not only a wrong mean (codes collapsed near 0)
    assert float(mmd_penalty(0.1 * noise, prior)) > 0.5


def test_mmd_penalty_gradient_pulls_codes_towards_the_prior():
    g = torch.Generator().manual_seed(2)
    prior = torch.randn(200, 4, generator=g)
    z = (torch.randn(200, 4, generator=g) + 1.0).requires_grad_(True)
    mmd_penalty(z, prior).backward()
    # descending the penalty moves the shifted codes' mean back towards 0 along every axis
    assert (z.grad.sum(0) > 0).all(), z.grad.sum(0)
    with torch.no_grad():
        moved = z - 50.0 * z.grad
    assert float(mmd_penalty(moved, prior)) < float(mmd_penalty(z.detach(), prior))


def test_mmd_penalty_rejects_what_it_cannot_estimate():
    z = torch.randn(5, 2)
    with pytest.raises(ValueError, match="at least 2"):
        mmd_penalty(z[:1], z)
    with pytest.raises(ValueError, match="scales"):
        mmd_penalty(z, z, scales=[1.0, 0.0])
    with pytest.raises(ValueError, match="sigma2"):
        mmd_penalty(z, z, sigma2=0.0)
    with pytest.raises(TypeError, match=r"q\.rsample\(\)"):
        mmd_penalty(torch.distributions.Normal(z, 1.0), z)


def test_misspelt_setting_is_reported_at_its_line_with_a_suggestion():
    with pytest.raises(SpecError) as err:
        lg.validate(DATA / "bad_scales.yaml", FAST)
    text = str(err.value)
    assert "bad_scales.yaml" in text and "line 4" in text and "graph.mmd" in text, text
    assert "did you mean 'scales='" in text, text


# ----------------------------------------------------------------------------- in a phase

def test_wae_phase_gradient_reaches_the_encoder_through_the_penalty():
    exp = prepare(lg.load(WAE_DIGITS, [*FAST, "data.batch_size=32"]), device="cpu")
    tr = Trainer(exp)
    batch = tr.loader.next()
    tr.executor.begin(batch, 0)
    mods = exp.modules
    enc, dec, prior = copy.deepcopy(mods["encoder"]), copy.deepcopy(mods["decoder"]), mods["prior"]
    phase = tr.spec.phases[0]
    assert dict(phase.terms) == {"rec_loss": 1.0, "mmd": 10.0}

    rng = torch.get_rng_state()
    loss = tr.run_phase(0, phase)

    # the same objective by hand, with the same prior draws (the phase's only random numbers)
    torch.set_rng_state(rng)
    x = batch["x"]
    z = enc(x)
    z_prior = prior.sample(like=z)
    rec = ((dec(z) - x) ** 2).flatten(1).sum(1).mean()
    mmd = mmd_imq(z, z_prior)
    want = rec + 10.0 * mmd
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    enc_want = torch.autograd.grad(want, list(enc.parameters()), retain_graph=True)
    enc_rec_only = torch.autograd.grad(rec, list(enc.parameters()), retain_graph=True)
    dec_want = torch.autograd.grad(want, list(dec.parameters()))
    for p, g in zip(mods["encoder"].parameters(), enc_want):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
    for p, g in zip(mods["decoder"].parameters(), dec_want):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
    # the penalty's share of the encoder gradient is not negligible
    diff = sum(float((a - b).abs().sum()) for a, b in zip(enc_want, enc_rec_only))
    size = sum(float(a.abs().sum()) for a in enc_want)
    assert diff > 0.05 * size, (diff, size)


# ----------------------------------------------------------------------------- learning

def test_wae_mmd_learns_to_reconstruct_and_match_the_prior():
    metrics = [("reconstruction_error", {}), ("prior_mmd", {})]
    exp = prepare(lg.load(WAE_DIGITS, FAST), device="cpu")
    before = evaluate(exp, metrics)
    Trainer(exp).fit()  # 300 steps
    after = evaluate(exp, metrics)

    mse0, mse1 = before["reconstruction_error"]["mse"], after["reconstruction_error"]["mse"]
    mmd0, mmd1 = before["prior_mmd"]["mmd2"], after["prior_mmd"]["mmd2"]
    floor = after["prior_mmd"]["floor"]
    assert mse1 < 0.25 * mse0, (mse0, mse1)
    # without the penalty (weight 0) the codes stay about as far from N(0, I) as at step 0
    assert mmd1 < 0.1 * mmd0, (mmd0, mmd1)
    # the codes are informative: better than predicting the mean image for every input
    x = exp.data.test["x"]
    constant = float(((x - exp.data.train["x"].mean(0)) ** 2).mean())
    assert mse1 < 0.7 * constant, (mse1, constant)
    assert mmd1 > floor  # honest: 300 steps do not reach the two-prior-samples floor
