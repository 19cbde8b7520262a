"""Two-sample statistics: IMQ MMD², per-axis KS, log-mean-exp, the forked evaluation RNG."""
import math

import pytest
import torch

from lvmgraph.eval.stats import imq_kernel, ks_per_axis, log_mean_exp, mmd_imq, rng_from, take_examples


def normal(n, d, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


# ----------------------------------------------------------------------------- MMD

def test_imq_kernel_matches_its_definition_on_a_hand_case():
    x = torch.tensor([[0.0, 0.0]])
    y = torch.tensor([[3.0, 4.0]])  # squared distance 25, d = 2
    scales = (0.5, 2.0)
    expected = sum((2 * 2 * s) / (2 * 2 * s + 25.0) for s in scales)
    assert imq_kernel(x, y, scales=scales).item() == pytest.approx(expected)
    # sigma2 multiplies C exactly like a scale does
    assert imq_kernel(x, y, scales=(1.0,), sigma2=3.0).item() == pytest.approx(12 / 37)


def test_mmd_of_one_sample_with_itself_is_zero_when_biased():
    x = normal(50, 3)
    assert mmd_imq(x, x, unbiased=False).item() == pytest.approx(0.0, abs=1e-10)


def test_unbiased_mmd_between_draws_of_one_distribution_is_near_zero_and_can_go_negative():
    values = [mmd_imq(normal(200, 2, seed=s), normal(200, 2, seed=100 + s)).item() for s in range(6)]
    shifted = mmd_imq(normal(200, 2), normal(200, 2, shift=0.5, seed=1)).item()
    assert max(abs(v) for v in values) < 0.1 * shifted
    assert min(values) < 0  # unbiased: no diagonal terms, fluctuates around 0


def test_unbiased_mmd_equals_the_u_statistic_written_out():
    x, y = normal(5, 2, seed=1), normal(4, 2, seed=2)
    k = lambda a, b: imq_kernel(a[None], b[None]).item()  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd_imq(x, y).item() == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_mmd_grows_with_the_mean_shift():
    base = normal(300, 4)
    values = [mmd_imq(base, normal(300, 4, shift=s, seed=7)).item() for s in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values)
    assert values[-1] > 20 * abs(values[0])


def test_mmd_is_symmetric():
    x, y = normal(40, 3, seed=1), normal(60, 3, shift=0.3, seed=2)
    for unbiased in (True, False):
        assert mmd_imq(x, y, unbiased=unbiased).item() == pytest.approx(
            mmd_imq(y, x, unbiased=unbiased).item(), rel=1e-9)


def test_mmd_flattens_extra_axes():
    x, y = normal(30, 12, seed=1), normal(30, 12, shift=0.5, seed=2)
    as_images = mmd_imq(x.reshape(30, 3, 2, 2), y.reshape(30, 3, 2, 2))
    assert as_images.item() == pytest.approx(mmd_imq(x, y).item())


def test_mmd_gradient_pulls_the_sample_towards_the_target():
    target = normal(200, 2)
    x = normal(200, 2, shift=1.0, seed=3).requires_grad_(True)
    loss = mmd_imq(x, target)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # descending moves the sample (shifted by +1) back towards the target on every axis ...
    assert (-x.grad.mean(dim=0) < 0).all()
    # ... and a small step (0.05 per coordinate on average) lowers the discrepancy
    with torch.no_grad():
        stepped = x - 0.05 * math.sqrt(x.numel()) * x.grad / x.grad.norm()
    assert mmd_imq(stepped, target).item() < loss.item()


def test_unbiased_mmd_needs_two_samples_and_matching_dimensions():
    with pytest.raises(ValueError, match="at least 2"):
        mmd_imq(torch.zeros(1, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="same dimension"):
        mmd_imq(torch.zeros(4, 2), torch.zeros(4, 3))


# ----------------------------------------------------------------------------- KS

def test_ks_hand_cases():
    # interleaved: F_x - F_y is 1/2 at t = 0 and t = 2, 0 at t = 1 and t = 3
    assert ks_per_axis(torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [3.0]])) == [0.5]
    # disjoint supports: the CDFs are 1 apart between the samples
    assert ks_per_axis(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[4.0], [5.0]])) == [1.0]
    # ties across samples: x = {1, 1, 2}, y = {1, 2, 2}: at t = 1, 2/3 vs 1/3
    assert ks_per_axis(torch.tensor([[1.0], [1.0], [2.0]]), torch.tensor([[1.0], [2.0], [2.0]])) == [
        pytest.approx(1 / 3)]


def test_ks_is_per_axis():
    x = normal(400, 3)
    y = normal(400, 3, seed=1)
    y[:, 1] += 2.0  # only the middle axis differs
    same_a, shifted, same_b = ks_per_axis(x, y)
    assert same_a < 0.12 and same_b < 0.12
    assert shifted > 0.6


def test_ks_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    x, y = normal(137, 2, seed=4), normal(90, 2, shift=0.3, seed=5)
    ours = ks_per_axis(x, y)
    for axis in range(2):
        ref = stats.ks_2samp(x[:, axis].numpy(), y[:, axis].numpy()).statistic
        assert ours[axis] == pytest.approx(ref, abs=1e-12)


# ----------------------------------------------------------------------------- helpers

def test_log_mean_exp_is_stable_and_correct():
    a = torch.tensor([[1000.0, 1000.0 + math.log(3.0)], [-1000.0, -1000.0]], dtype=torch.float64)
    out = log_mean_exp(a, dim=1)
    assert out[0].item() == pytest.approx(1000.0 + math.log(2.0))  # log((e^1000 + 3e^1000)/2)
    assert out[1].item() == pytest.approx(-1000.0)
    small = torch.randn(4, 5, dtype=torch.float64)
    assert torch.allclose(log_mean_exp(small, dim=0, keepdim=True), small.exp().mean(0, keepdim=True).log())


def test_rng_from_is_reproducible_and_leaves_the_global_stream_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    draws = []
    for _ in range(2):
        with rng_from(torch.Generator().manual_seed(9)) as seed:
            draws.append(torch.rand(2))
    assert torch.equal(draws[0], draws[1]) and isinstance(seed, int)
    assert torch.equal(torch.rand(3), expected_next)


def test_take_examples_cuts_to_exactly_n():
    batches = [{"x": torch.arange(4), "y": torch.arange(4) * 10} for _ in range(3)]
    taken = list(take_examples(iter(batches), 6))
    assert [len(b["x"]) for b in taken] == [4, 2]
    assert taken[1]["y"].tolist() == [0, 10]
