"""Sample-quality statistics against closed forms, written-out definitions and independent references.

Fréchet distance, KID, precision/recall/density/coverage, Hungarian-matched accuracy, the
PacGAN mode statistics and the Parzen window.
"""
import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from lvmgraph.eval.stats import (confusion_matrix, frechet_distance, gaussian_fit, hungarian_accuracy, kid,
                                 kth_neighbour_radii, mode_stats, parzen_log_likelihood, parzen_select_sigma,
                                 polynomial_mmd2_unbiased, prdc)

F64 = torch.float64


def normal(n, d, shift=0.0, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64) * scale + shift


def random_cov(d, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=F64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=F64)


# ----------------------------------------------------------------------------- Fréchet distance

def test_frechet_distance_in_one_dimension_is_the_closed_form():
    # W2²(N(m1, s1²), N(m2, s2²)) = (m1 − m2)² + (s1 − s2)²
    fd = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-0.5]), torch.tensor([[0.25]]))
    assert fd == pytest.approx(1.5 ** 2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    v1, v2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([0.25, 4.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((v1.sqrt() - v2.sqrt()) ** 2).sum()
    assert frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2)) == pytest.approx(expected.item(), rel=1e-12)


def test_frechet_distance_of_non_commuting_covariances_matches_scipy_sqrtm():
    s1, s2 = random_cov(6, 1), random_cov(6, 2)
    assert not torch.allclose(s1 @ s2, s2 @ s1)  # the case where √s1·√s2 is not (s1 s2)^½
    mu1, mu2 = normal(1, 6, seed=3)[0], normal(1, 6, seed=4)[0]
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy())
    reference = ((mu1 - mu2) ** 2).sum().item() + np.trace(s1.numpy() + s2.numpy() - 2 * covmean.real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)


def test_frechet_distance_of_a_gaussian_with_itself_is_zero_even_when_singular():
    x = normal(5, 20)  # 5 samples in 20 dimensions: a rank-4 covariance
    mu, cov = gaussian_fit(x)
    assert torch.linalg.matrix_rank(cov) == 4
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-12  # √(round-off) would be ~1e-7
    # and it still sees a mean shift exactly
    assert frechet_distance(mu, cov, mu + 0.5, cov) == pytest.approx(20 * 0.25, abs=1e-8)


def test_gaussian_fit_matches_numpy_and_frechet_checks_shapes():
    x = normal(30, 4, seed=5)
    mu, cov = gaussian_fit(x)
    assert torch.allclose(mu, x.mean(0))
    assert np.allclose(cov.numpy(), np.cov(x.numpy(), rowvar=False), atol=1e-12)
    with pytest.raises(ValueError, match="at least 2 samples"):
        gaussian_fit(x[:1])
    with pytest.raises(ValueError, match=r"means \(d,\) and covariances \(d, d\)"):
        frechet_distance(mu, cov, mu[:3], cov[:3, :3])


def test_frechet_distance_from_samples_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    same = frechet_distance(*gaussian_fit(normal(4000, 5, seed=1)), *gaussian_fit(normal(4000, 5, seed=2)))
    shifted = frechet_distance(*gaussian_fit(normal(4000, 5, seed=1)),
                               *gaussian_fit(normal(4000, 5, shift=1.0, seed=2)))
    assert 0 <= same < 0.02
    assert shifted == pytest.approx(5.0, abs=0.15)  # ‖shift‖² = 5, covariances equal


# ----------------------------------------------------------------------------- KID

def test_polynomial_mmd_equals_the_u_statistic_written_out():
    x, y = normal(5, 3, seed=1), normal(5, 3, shift=0.4, seed=2)
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
    xx = sum(k(x[i], x[j]) for i, j in pairs) / 20
    yy = sum(k(y[i], y[j]) for i, j in pairs) / 20
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(5)) / 25
    assert polynomial_mmd2_unbiased(x, y).item() == pytest.approx((xx + yy - 2 * xy).item(), rel=1e-12)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_a_shift():
    same, shifted = [], []
    for rep in range(5):
        g = torch.Generator().manual_seed(rep)
        real, other = normal(1000, 8, seed=10 * rep + 1), normal(1000, 8, seed=10 * rep + 2)
        same.append(kid(real, other, subsets=30, subset_size=100, generator=g))
        shifted.append(kid(real, other + 0.3, subsets=30, subset_size=100, generator=g))
    shift_mean = sum(r.mean for r in shifted) / 5
    assert shift_mean > 0.25 and all(r.mean > 0.2 for r in shifted)
    # unbiased: across independent repetitions the estimate averages out to 0 ...
    assert abs(sum(r.mean for r in same) / 5) < 0.03 * shift_mean
    # ... because single estimates scatter on both sides of it
    assert any(r.mean < 0 for r in same) and all((r.values < 0).any() for r in same)
    assert all(abs(r.mean) < 0.1 * shift_mean for r in same)
    assert same[0].values.shape == (30,)
    assert same[0].std == pytest.approx(same[0].values.numpy().std(ddof=0))


def test_kid_with_the_whole_sample_as_subset_is_the_full_u_statistic_every_time():
    x, y = normal(40, 4, seed=1), normal(40, 4, shift=0.2, seed=2)
    out = kid(x, y, subsets=5, subset_size=40, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(out.values, torch.full((5,), polynomial_mmd2_unbiased(x, y).item(), dtype=F64))
    assert out.std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_reproducible_from_its_generator_and_checks_subset_size():
    x, y = normal(100, 4, seed=1), normal(100, 4, seed=2)
    a = kid(x, y, 10, 30, torch.Generator().manual_seed(7))
    b = kid(x, y, 10, 30, torch.Generator().manual_seed(7))
    c = kid(x, y, 10, 30, torch.Generator().manual_seed(8))
    assert torch.equal(a.values, b.values) and not torch.equal(a.values, c.values)
    with pytest.raises(ValueError, match=r"between 2 and the smaller sample \(60\), got 61"):
        kid(x, y[:60], 10, 61)


# ----------------------------------------------------------------------------- precision / recall / density / coverage

def brute_prdc(real, fake, k, inclusive):
    """The definitions with explicit loops over sorted Euclidean distances."""
    le = (lambda a, b: a <= b) if inclusive else (lambda a, b: a < b)

    def radius(points, i):
        return sorted(torch.dist(points[i], p).item() for j, p in enumerate(points) if j != i)[k - 1]

    r_real = [radius(real, i) for i in range(len(real))]
    r_fake = [radius(fake, j) for j in range(len(fake))]
    d = [[torch.dist(a, b).item() for b in fake] for a in real]
    n, m = len(real), len(fake)
    return {
        "precision": sum(any(le(d[i][j], r_real[i]) for i in range(n)) for j in range(m)) / m,
        "recall": sum(any(le(d[i][j], r_fake[j]) for j in range(m)) for i in range(n)) / n,
        "density": sum(le(d[i][j], r_real[i]) for i in range(n) for j in range(m)) / (k * m),
        "coverage": sum(min(d[i]) < r_real[i] if not inclusive else min(d[i]) <= r_real[i]
                        for i in range(n)) / n,
    }


@pytest.mark.parametrize("inclusive", [False, True])
def test_prdc_matches_the_definitions_written_out(inclusive):
    real, fake = normal(25, 2, seed=1), normal(20, 2, shift=0.7, seed=2)
    got = prdc(real, fake, 3, inclusive=inclusive, chunk=7)  # chunk smaller than n: blocks are stitched
    expected = brute_prdc(real, fake, 3, inclusive)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1  # a case where every branch matters


def test_inclusive_ball_test_matters_only_on_ties():
    real = torch.tensor([[0.0], [1.0], [2.0]], dtype=F64)  # each ball radius is exactly 1 (k = 1)
    fake = torch.tensor([[3.0], [10.0]], dtype=F64)  # 3 lies exactly on the ball of the point at 2
    assert prdc(real, fake, 1, inclusive=True)["precision"] == 0.5
    assert prdc(real, fake, 1, inclusive=False)["precision"] == 0.0


def test_kth_neighbour_radii_exclude_the_point_itself():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=F64)
    assert kth_neighbour_radii(x, 1).tolist() == [1.0, 1.0, 4.0, 16.0]  # squared
    assert kth_neighbour_radii(x, 2).tolist() == [9.0, 4.0, 9.0, 36.0]
    with pytest.raises(ValueError, match="more than 4 samples"):
        kth_neighbour_radii(x, 4)


def test_prdc_of_one_distribution_is_near_full_with_density_one_and_the_expected_coverage():
    real, fake = normal(1500, 4, seed=1), normal(1500, 4, seed=2)
    pr = prdc(real, fake, 3, inclusive=True)
    dc = prdc(real, fake, 5)
    assert pr["precision"] > 0.9 and pr["recall"] > 0.9
    assert dc["density"] == pytest.approx(1.0, abs=0.06)  # E[density] = 1 (Naeem et al., 2020)
    # E[coverage] = 1 − Π_{i<k} (N − 1 − i) / (M + N − 1 − i) for N real, M fake points
    expected = 1 - math.prod((1499 - i) / (2999 - i) for i in range(5))
    assert dc["coverage"] == pytest.approx(expected, abs=0.015)


def test_prdc_separates_fidelity_from_diversity():
    real = normal(1000, 2, seed=1)
    collapsed = normal(1000, 2, seed=2, scale=0.2)  # inside the data, covering only its core
    off = normal(1000, 2, seed=3, shift=8.0)  # outside the data
    c = prdc(real, collapsed, 3, inclusive=True)
    o = prdc(real, off, 3, inclusive=True)
    assert c["precision"] > 0.95 and c["recall"] < 0.3
    assert o["precision"] < 0.1 and o["recall"] < 0.1
    dc = prdc(real, collapsed, 5)
    # inside the data each sample lands in about k real balls (density ≈ 1), but most real balls stay empty
    assert 0.8 < dc["density"] < 1.2 and dc["coverage"] < 0.3
    assert prdc(real, off, 5) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


# ----------------------------------------------------------------------------- Hungarian accuracy

def test_hungarian_accuracy_of_a_permuted_perfect_labelling_is_one_with_the_permutation():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 10, (500,), generator=g)
    perm = torch.randperm(10, generator=g)
    pred = torch.argsort(perm)[target]  # pred p means class perm[p]
    accuracy, mapping = hungarian_accuracy(pred, target)
    assert accuracy == 1.0
    assert mapping == {p: int(perm[p]) for p in range(10)}


def test_hungarian_accuracy_of_a_random_labelling_is_near_chance():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randint(0, 10, (20000,), generator=g), torch.randint(0, 10, (20000,), generator=g)
    accuracy, mapping = hungarian_accuracy(pred, target)
    assert 0.1 <= accuracy < 0.11  # best of 10! matchings: only slightly above 1/10
    assert sorted(mapping) == list(range(10)) and sorted(mapping.values()) == list(range(10))


def test_hungarian_beats_per_code_majority_when_two_codes_share_a_favourite():
    # code 0: 6 × class 0, 4 × class 1; code 1: 5 × class 0, 1 × class 1.
    # Majority vote maps both to class 0; the one-to-one optimum is 0 -> 1, 1 -> 0 (4 + 5 = 9)
    # rather than 0 -> 0, 1 -> 1 (6 + 1 = 7).
    pred = torch.tensor([0] * 10 + [1] * 6)
    target = torch.tensor([0] * 6 + [1] * 4 + [0] * 5 + [1])
    assert confusion_matrix(pred, target).tolist() == [[6, 4], [5, 1]]
    accuracy, mapping = hungarian_accuracy(pred, target)
    assert mapping == {0: 1, 1: 0} and accuracy == pytest.approx(9 / 16)


def test_hungarian_with_more_codes_than_classes_counts_unmatched_codes_as_errors():
    pred = torch.tensor([0, 0, 1, 1, 2, 2])
    target = torch.tensor([0, 0, 1, 1, 1, 0])
    accuracy, mapping = hungarian_accuracy(pred, target, num_pred=3, num_target=2)
    assert accuracy == pytest.approx(4 / 6) and mapping == {0: 0, 1: 1}
    with pytest.raises(ValueError, match="labels out of range"):
        confusion_matrix(pred, target, 2, 2)


# ----------------------------------------------------------------------------- mode statistics

RING = torch.tensor([[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)] for i in range(8)], dtype=F64)


def around(modes, n_each, std=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([m + std * torch.randn(n_each, 2, generator=g, dtype=F64) for m in modes])


def test_points_around_four_of_eight_ring_modes_capture_exactly_four():
    stats = mode_stats(around(RING[::2], 625), RING, 0.01)  # 2,500 points at modes 0, 2, 4, 6
    assert stats.modes == 4
    assert stats.high_quality > 0.98  # within 3σ with probability 1 − e^{-4.5} ≈ 0.989 in 2-D
    assert [c > 0 for c in stats.counts.tolist()] == [True, False] * 4
    # an even spread over 4 of 8 modes: KL(uniform on 4 ‖ uniform on 8) = log 2
    assert stats.reverse_kl == pytest.approx(math.log(2), abs=0.01)


def test_points_around_all_eight_modes_capture_eight_with_reverse_kl_near_zero():
    stats = mode_stats(around(RING, 2500 // 8 + 1), RING, 0.01)
    assert stats.modes == 8 and stats.high_quality > 0.98
    assert 0 <= stats.reverse_kl < 0.005
    p = stats.counts.double() / stats.counts.sum()
    assert stats.reverse_kl == pytest.approx((p * (8 * p).log()).sum().item(), rel=1e-12)


def test_far_off_points_are_low_quality_and_the_threshold_is_three_sigma():
    far = torch.tensor([[0.0, 0.0], [3.0, 3.0]], dtype=F64)  # centre of the ring, far outside
    stats = mode_stats(far, RING, 0.01)
    assert stats.modes == 0 and stats.high_quality == 0.0 and math.isnan(stats.reverse_kl)
    edge = torch.stack([RING[1] * (1 + 0.029), RING[1] * (1 + 0.031)])  # 2.9σ and 3.1σ out of mode 1
    stats = mode_stats(edge, RING, 0.01)
    assert stats.is_high_quality.tolist() == [True, False] and stats.nearest.tolist() == [1, 1]
    assert stats.modes == 1 and stats.reverse_kl == pytest.approx(math.log(8))  # all mass on one mode


# ----------------------------------------------------------------------------- Parzen window

def test_parzen_log_likelihood_matches_the_closed_form_mixture():
    centres = torch.tensor([[0.0], [1.0], [3.0]], dtype=F64)
    points = torch.tensor([[0.5], [2.0], [-1.0], [10.0]], dtype=F64)
    sigma = 0.7

    def closed_form(x):
        dens = sum(math.exp(-(x - c) ** 2 / (2 * sigma ** 2)) / math.sqrt(2 * math.pi * sigma ** 2)
                   for c in (0.0, 1.0, 3.0)) / 3
        return math.log(dens)

    got = parzen_log_likelihood(centres, points, sigma, batch_size=3)
    assert got.tolist() == pytest.approx([closed_form(x) for x in (0.5, 2.0, -1.0, 10.0)], rel=1e-12)
    # a grid of σ gives one row per σ, equal to the single-σ calls
    grid = parzen_log_likelihood(centres, points, [0.3, sigma])
    assert grid.shape == (2, 4) and torch.allclose(grid[1], got)


def test_parzen_in_many_dimensions_is_the_product_of_one_dimensional_kernels():
    c = torch.tensor([[0.0, 1.0, 2.0]], dtype=F64)
    x = torch.tensor([[0.5, 0.0, 2.5]], dtype=F64)
    expected = sum(-0.5 * math.log(2 * math.pi * 0.25) - (a - b) ** 2 / (2 * 0.25) for a, b in zip(x[0], c[0]))
    assert parzen_log_likelihood(c, x, 0.5).item() == pytest.approx(expected.item(), rel=1e-12)
    # far from every centre the log-sum-exp stays finite (a naive exp would underflow to log 0)
    assert math.isfinite(parzen_log_likelihood(c, x + 100.0, 0.1).item())


@pytest.mark.parametrize("tau_index", [3, 6])
def test_parzen_sigma_selection_picks_the_scale_of_the_data_around_the_centres(tau_index):
    grid = np.logspace(-1, 0, 10).tolist()
    tau = grid[tau_index]
    centres = torch.tensor(list(itertools.product([0.0, 10.0, 20.0], repeat=2)), dtype=F64)
    g = torch.Generator().manual_seed(tau_index)
    valid = centres[torch.randint(0, 9, (3000,), generator=g)] + tau * torch.randn(3000, 2, generator=g, dtype=F64)
    sigma, means = parzen_select_sigma(centres, valid, grid)
    assert sigma == pytest.approx(tau)  # the maximum-likelihood width of the well-separated mixture
    assert len(means) == 10 and means[tau_index] == max(means)
