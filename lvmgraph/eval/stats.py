"""Two-sample statistics and numerically careful reductions used by metrics (and losses).

Also the pure maths of the evaluation plugin (``lvmgraph_eval``): Fréchet distance, KID,
Inception Score, precision/recall/density/coverage, Hungarian-matched accuracy, mode coverage,
Parzen windows.

Axis legend: n, m sample counts, d features (anything after the first axis is flattened),
k importance samples, K classes.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterable, Iterator, NamedTuple, Sequence

import torch
from einops import rearrange

#: the WAE paper's multi-scale IMQ kernel scales (Tolstikhin et al. 2018, appendix / code)
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _as_rows(x: torch.Tensor, what: str) -> torch.Tensor:
    """(n, ...) -> (n d): one flat row per sample."""
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{what} must have at least one sample along its first axis, "
                         f"got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1) if x.dim() != 2 else x


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x (n d), y (m d) -> (n m) squared Euclidean distances.

    Uses ‖a‖² + ‖b‖² − 2a·b so memory is O(nm), not O(nmd); clamped at 0 because the
    expansion can round to tiny negatives for identical rows.
    """
    x2 = (x * x).sum(dim=1, keepdim=True)
    y2 = (y * y).sum(dim=1, keepdim=True)
    return (x2 + rearrange(y2, "m 1 -> 1 m") - 2.0 * x @ y.T).clamp_min(0.0)


def imq_kernel(x: torch.Tensor, y: torch.Tensor, *, scales: Sequence[float] = IMQ_SCALES,
               sigma2: float = 1.0) -> torch.Tensor:
    """x (n d), y (m d) -> (n m) Gram matrix of the multi-scale inverse multiquadratic kernel.

    k(a, b) = Σ_s C_s / (C_s + ‖a − b‖²) with C_s = 2·d·sigma2·s: the kernel of the
    Wasserstein auto-encoder paper, whose base constant 2·d·σ² is the expected squared
    distance between two draws of N(0, σ²I_d). Heavy tails keep gradients alive far from
    the data, unlike an RBF kernel.
    """
    d = x.shape[1]
    dist = squared_distances(x, y)
    gram = torch.zeros_like(dist)
    for s in scales:
        c = 2.0 * d * float(sigma2) * float(s)
        gram = gram + c / (c + dist)
    return gram


def mmd_imq(x: torch.Tensor, y: torch.Tensor, *, scales: Sequence[float] = IMQ_SCALES,
            sigma2: float = 1.0, unbiased: bool = True) -> torch.Tensor:
    """x (n d), y (m d) -> scalar MMD² between the two samples under the IMQ kernel.

    MMD²(P, Q) = E k(x, x') + E k(y, y') − 2 E k(x, y) (Gretton et al. 2012). The unbiased
    U-statistic drops the i = j terms of the within-sample sums (so it can be slightly
    negative when P = Q); the biased V-statistic keeps them and is always ≥ 0. Differentiable
    in both arguments, so it doubles as the WAE-MMD penalty. Extra axes after the first
    are flattened.
    """
    x, y = _as_rows(x, "x"), _as_rows(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd_imq needs samples of the same dimension, got {x.shape[1]} and {y.shape[1]}")
    n, m = x.shape[0], y.shape[0]
    if unbiased and (n < 2 or m < 2):
        raise ValueError("the unbiased MMD estimate needs at least 2 samples on each side")
    k_xx = imq_kernel(x, x, scales=scales, sigma2=sigma2)
    k_yy = imq_kernel(y, y, scales=scales, sigma2=sigma2)
    k_xy = imq_kernel(x, y, scales=scales, sigma2=sigma2)
    if unbiased:
        within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
        within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    else:
        within_x = k_xx.mean()
        within_y = k_yy.mean()
    return within_x + within_y - 2.0 * k_xy.mean()


def ks_per_axis(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """x (n d), y (m d) -> d two-sample Kolmogorov–Smirnov statistics, one per axis.

    D = sup_t |F_x(t) − F_y(t)| with F the empirical CDFs; the supremum is attained at one
    of the pooled sample points, where both CDFs are read off by binary search in the
    sorted samples. Same value as ``scipy.stats.ks_2samp(...).statistic``.
    """
    x, y = _as_rows(x, "x").detach(), _as_rows(y, "y").detach()
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"ks_per_axis needs samples of the same dimension, "
                         f"got {x.shape[1]} and {y.shape[1]}")
    x = rearrange(x.double().cpu(), "n d -> d n").contiguous()
    y = rearrange(y.double().cpu(), "m d -> d m").contiguous()
    x_sorted, y_sorted = x.sort(dim=1).values, y.sort(dim=1).values
    pooled = torch.cat([x_sorted, y_sorted], dim=1)
    # right=True counts the points ≤ t, i.e. the right-continuous empirical CDF
    cdf_x = torch.searchsorted(x_sorted, pooled, right=True).double() / x.shape[1]
    cdf_y = torch.searchsorted(y_sorted, pooled, right=True).double() / y.shape[1]
    return (cdf_x - cdf_y).abs().max(dim=1).values.tolist()


def log_mean_exp(a: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """a (..., k, ...) -> log(mean(exp(a))) along ``dim``, without overflow or underflow.

    logsumexp shifts by the maximum before exponentiating; subtracting log k turns the
    sum into a mean (the IWAE bound is log_mean_exp of the log importance weights).
    """
    return torch.logsumexp(a, dim=dim, keepdim=keepdim) - math.log(a.shape[dim])


@contextlib.contextmanager
def rng_from(generator: torch.Generator, device: torch.device | str = "cpu") -> Iterator[int]:
    """Run the block with torch's global RNG seeded from ``generator``, then restore it.

    Metrics sample through APIs that only use the global RNG (``Distribution.sample``,
    ``prior.sample``); forking keeps evaluation from shifting the training run's random
    stream and makes a metric reproducible from the evaluation seed. Yields the seed used.
    """
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    device = torch.device(device)
    if device.type == "cpu":
        devices, kwargs = [], {}
    else:  # fork only the accelerator the model lives on
        index = device.index if device.index is not None else getattr(torch, device.type).current_device()
        devices, kwargs = [index], {"device_type": device.type}
    with torch.random.fork_rng(devices=devices, **kwargs):
        torch.manual_seed(seed)
        yield seed


def take_examples(batches: Iterable[dict[str, torch.Tensor]], n: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches (dicts of tensors sharing a first axis) -> the same batches cut to ``n`` examples in all.

    Makes a metric's "n test points" exact whatever the loader's notion of ``limit``.
    """
    left = int(n)
    for batch in batches:
        if left <= 0:
            return
        size = next(iter(batch.values())).shape[0]
        if size > left:
            batch = {name: value[:left] for name, value in batch.items()}
            size = left
        left -= size
        yield batch


# ============================================================================= sample-quality statistics
# Pure functions behind the evaluation plugin (lvmgraph_eval). Everything is computed in
# float64 on the inputs' device unless said otherwise; inputs may be any float dtype.

def _float64_rows(x, what: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    return _as_rows(x, what).to(torch.float64)


def gaussian_fit(features) -> tuple[torch.Tensor, torch.Tensor]:
    """features (n d) -> mean (d,) and unbiased covariance (d d), in float64.

    The covariance divides by n − 1, like ``numpy.cov(features, rowvar=False)`` used by the
    reference FID code (pytorch-fid, TTUR).
    """
    x = _float64_rows(features, "features")
    if x.shape[0] < 2:
        raise ValueError(f"a Gaussian fit needs at least 2 samples, got {x.shape[0]}")
    mu = x.mean(dim=0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Symmetric positive semi-definite (d d) -> its symmetric square root, via eigh.

    Eigenvalues that round to tiny negatives are clamped to 0 (a covariance is PSD).
    """
    w, v = torch.linalg.eigh((s + s.T) / 2)
    return (v * w.clamp_min(0.0).sqrt()) @ v.T


def frechet_distance(mu1, s1, mu2, s2) -> float:
    """Two Gaussians N(mu1, s1), N(mu2, s2) over d dims -> squared Fréchet (2-Wasserstein) distance.

    d² = ‖mu1 − mu2‖² + Tr(s1 + s2 − 2 (s1 s2)^½)  (Dowson & Landau 1982; the FID formula of
    Heusel et al. 2017). Tr (s1 s2)^½ is the sum of square roots of the eigenvalues of
    s1 s2, which equal those of the symmetric PSD s1^½ s2 s1^½ = (s1^½ s2^½)(s1^½ s2^½)ᵀ
    (AB and BA share eigenvalues), i.e. the sum of the singular values of s1^½ s2^½. The
    symmetric roots come from ``eigh`` (round-off negatives clamped to 0) and the singular
    values from an SVD: real and non-negative by construction, so the imaginary round-off
    parts of ``scipy.linalg.sqrtm`` on the non-symmetric product never arise. Unlike
    square-rooting the eigenvalues of s1^½ s2 s1^½, no square root follows the product, so
    round-off ε in a null space both covariances share stays ε rather than √ε: singular
    covariances (n ≤ d) are fine, and a fit against itself gives 0 to ~1e-14. Not clamped at
    the end: a result of −1e-14 is round-off around 0.
    """
    mu1, mu2 = (torch.as_tensor(m).to(torch.float64).reshape(-1) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s).to(torch.float64) for s in (s1, s2))
    d = mu1.shape[0]
    if mu2.shape[0] != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"frechet_distance needs means (d,) and covariances (d, d) of one d; got "
                         f"{tuple(mu1.shape)}, {tuple(s1.shape)}, {tuple(mu2.shape)}, {tuple(s2.shape)}")
    trace_cross = torch.linalg.svdvals(_psd_sqrt(s1) @ _psd_sqrt(s2)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + s1.trace() + s2.trace() - 2.0 * trace_cross)


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3) -> torch.Tensor:
    """x (... n d), y (... m d) -> (... n m) Gram matrices of k(a, b) = (aᵀb / d + 1)^degree, KID's kernel."""
    return (x @ y.transpose(-1, -2) / x.shape[-1] + 1.0) ** degree


def polynomial_mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int = 3) -> torch.Tensor:
    """x (... m d), y (... m d) -> unbiased MMD² (...) under the cubic polynomial kernel, as in the KID code.

    (Σ_{i≠j} k(x_i, x_j) + Σ_{i≠j} k(y_i, y_j)) / (m(m − 1)) − 2 Σ_{i,j} k(x_i, y_j) / m²
    (Bińkowski et al. 2018, ``polynomial_mmd`` with ``unbiased``; the cross term keeps its
    diagonal). Can be negative when both samples come from one distribution. Leading axes
    are batches of independent pairs of subsets.
    """
    m = x.shape[-2]
    if y.shape[-2] != m or m < 2:
        raise ValueError(f"the KID estimate needs two subsets of one size >= 2, got {x.shape[-2]} and {y.shape[-2]}")
    k_xx, k_yy, k_xy = (polynomial_kernel(a, b, degree) for a, b in ((x, x), (y, y), (x, y)))
    off_diagonal = (k_xx.sum((-1, -2)) - k_xx.diagonal(dim1=-2, dim2=-1).sum(-1)
                    + k_yy.sum((-1, -2)) - k_yy.diagonal(dim1=-2, dim2=-1).sum(-1))
    return off_diagonal / (m * (m - 1)) - 2.0 * k_xy.sum((-1, -2)) / (m * m)


#: Gram-matrix entries per KID block: bounds memory (3 × 8 bytes × this) while keeping calls few
KID_BLOCK_ELEMENTS = 4_000_000


class KidResult(NamedTuple):
    """KID averaged over subsets, its spread across subsets, and the per-subset MMD² (subsets,)."""

    mean: float
    std: float
    values: torch.Tensor


def kid(x, y, subsets: int = 100, subset_size: int = 1000,
        generator: torch.Generator | None = None) -> KidResult:
    """Features x (n d), y (m d) -> Kernel Inception Distance statistics (Bińkowski et al. 2018).

    For each of ``subsets`` rounds, draws ``subset_size`` rows of x and of y uniformly
    without replacement (independently per round, from ``generator``) and computes the
    unbiased cubic-polynomial MMD² above; returns the mean over rounds, the standard
    deviation over rounds (population std, ddof 0, as torch-fidelity reports it) and the
    per-round values. ``subset_size`` must not exceed either sample: callers clip it and
    say so.
    """
    x, y = _float64_rows(x, "x"), _float64_rows(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"kid needs features of one dimension, got {x.shape[1]} and {y.shape[1]}")
    if subsets < 1:
        raise ValueError(f"kid needs at least one subset, got {subsets}")
    if not 2 <= subset_size <= min(x.shape[0], y.shape[0]):
        raise ValueError(f"kid subset_size must be between 2 and the smaller sample "
                         f"({min(x.shape[0], y.shape[0])}), got {subset_size}")
    picks = [(torch.randperm(x.shape[0], generator=generator)[:subset_size],
              torch.randperm(y.shape[0], generator=generator)[:subset_size]) for _ in range(subsets)]
    per_block = max(1, KID_BLOCK_ELEMENTS // subset_size ** 2)  # subsets computed in one batched call
    values = []
    for start in range(0, subsets, per_block):
        block = picks[start:start + per_block]
        xs = x[torch.stack([px for px, _ in block]).to(x.device)]  # (s m d)
        ys = y[torch.stack([py for _, py in block]).to(y.device)]
        values.append(polynomial_mmd2_unbiased(xs, ys).cpu())
    values = torch.cat(values)
    return KidResult(values.mean().item(), values.std(unbiased=False).item(), values)


class InceptionScore(NamedTuple):
    """The Inception Score averaged over splits, its spread across splits, and the per-split scores (splits,)."""

    mean: float
    std: float
    values: torch.Tensor


def inception_score_from_probs(probs, splits: int = 10) -> InceptionScore:
    """Class probabilities p(y|x) (n K) -> the Inception Score of Salimans et al. (2016).

    The rows are cut into ``splits`` consecutive parts (sizes differ by at most one, as
    ``i·n // splits`` boundaries give, like the authors' code); in each part
    IS = exp(E_x KL(p(y|x) ‖ p(y))), with p(y) the mean of the part's rows. Returns the mean
    and standard deviation (ddof 0, as the authors' ``np.std``) over parts. 0·log 0 counts as
    0, so one-hot rows are fine. IS lies in [1, K]: 1 when every row is the same, K when the
    rows are one-hot and spread evenly over all K classes.
    """
    p = _float64_rows(probs, "probs")
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"the Inception Score needs between 1 and n = {n} splits, got {splits}")
    if bool((p < 0).any()) or not torch.allclose(p.sum(dim=1), torch.ones_like(p[:, 0]), atol=1e-6):
        raise ValueError("inception_score_from_probs needs rows of probabilities (non-negative, summing "
                         "to 1): apply softmax to logits first")
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(dim=0, keepdim=True)
        # xlogy gives 0·log 0 = 0; where p(y) = 0 every p(y|x) in the part is 0 as well
        kl = (torch.special.xlogy(part, part) - torch.special.xlogy(part, marginal)).sum(dim=1)
        scores.append(kl.mean().exp())
    values = torch.stack(scores).cpu()
    return InceptionScore(values.mean().item(), values.std(unbiased=False).item(), values)


def kth_neighbour_radii(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """x (n d) -> (n,) squared distance from each row to its k-th nearest *other* row.

    The radius of the k-NN ball the manifold estimates of improved precision/recall and
    density/coverage use. Each row's own zero distance is the first of the k + 1 smallest.
    """
    n = x.shape[0]
    if n < k + 1:
        raise ValueError(f"k-nearest-neighbour radii with k = {k} need more than {k} samples, got {n}")
    radii = [squared_distances(x[start:start + chunk], x).topk(k + 1, dim=1, largest=False).values[:, k]
             for start in range(0, n, chunk)]
    return torch.cat(radii)


def prdc(real, fake, k: int, *, inclusive: bool = False, chunk: int = 1024) -> dict[str, float]:
    """Features real (n d), fake (m d) -> precision, recall, density, coverage with k-NN balls.

    With B(a, S) the ball around a reaching its k-th nearest neighbour within S:
    - precision = fraction of fakes inside ∪_i B(real_i, real) (Kynkäänniemi et al. 2019);
    - recall = fraction of reals inside ∪_j B(fake_j, fake);
    - density = (1 / (k m)) Σ_j #{i : fake_j ∈ B(real_i, real)} (Naeem et al. 2020; its
      expectation is 1 when fake and real come from one distribution);
    - coverage = fraction of reals whose ball B(real_i, real) holds at least one fake.
    ``inclusive`` chooses the ball test: ≤ as in Kynkäänniemi et al.'s code, < as in Naeem
    et al.'s ``prdc`` package; they differ only on exact ties. Euclidean distances (compared
    squared); memory O(chunk · max(n, m)).
    """
    real, fake = _float64_rows(real, "real"), _float64_rows(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"prdc needs features of one dimension, got {real.shape[1]} and {fake.shape[1]}")
    inside = torch.le if inclusive else torch.lt
    real_radii = kth_neighbour_radii(real, k, chunk)
    fake_radii = kth_neighbour_radii(fake, k, chunk)
    fake_in_real_balls = torch.zeros(fake.shape[0], dtype=torch.bool, device=fake.device)
    balls_holding_fake = torch.zeros(fake.shape[0], dtype=torch.float64, device=fake.device)
    real_in_fake_balls, real_ball_covered = [], []
    for start in range(0, real.shape[0], chunk):
        dist = squared_distances(real[start:start + chunk], fake)  # (c m)
        in_real_ball = inside(dist, real_radii[start:start + chunk, None])
        fake_in_real_balls |= in_real_ball.any(dim=0)
        balls_holding_fake += in_real_ball.sum(dim=0)
        real_in_fake_balls.append(inside(dist, fake_radii[None, :]).any(dim=1))
        real_ball_covered.append(in_real_ball.any(dim=1))
    return {
        "precision": fake_in_real_balls.double().mean().item(),
        "recall": torch.cat(real_in_fake_balls).double().mean().item(),
        "density": (balls_holding_fake.mean() / k).item(),
        "coverage": torch.cat(real_ball_covered).double().mean().item(),
    }


def confusion_matrix(pred, target, num_pred: int | None = None, num_target: int | None = None) -> torch.Tensor:
    """Integer labels pred (n,), target (n,) -> counts (num_pred num_target), row = pred, column = target."""
    pred, target = torch.as_tensor(pred).long().reshape(-1).cpu(), torch.as_tensor(target).long().reshape(-1).cpu()
    if pred.shape != target.shape or pred.numel() == 0:
        raise ValueError(f"confusion_matrix needs two non-empty label vectors of one length, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    num_pred = int(pred.max()) + 1 if num_pred is None else num_pred
    num_target = int(target.max()) + 1 if num_target is None else num_target
    if pred.min() < 0 or target.min() < 0 or pred.max() >= num_pred or target.max() >= num_target:
        raise ValueError(f"labels out of range: pred in [{int(pred.min())}, {int(pred.max())}] for "
                         f"{num_pred} values, target in [{int(target.min())}, {int(target.max())}] for {num_target}")
    counts = torch.zeros(num_pred * num_target, dtype=torch.long)
    counts.index_add_(0, pred * num_target + target, torch.ones_like(pred))
    return counts.reshape(num_pred, num_target)


def hungarian_accuracy(pred, target, num_pred: int | None = None,
                       num_target: int | None = None) -> tuple[float, dict[int, int]]:
    """Labels pred (n,), target (n,) -> best accuracy over one-to-one relabellings, and the relabelling.

    Builds the confusion matrix C[p, t] and finds the assignment p -> t maximising the
    matched count Σ C[p, map(p)] (Kuhn–Munkres, ``scipy.optimize.linear_sum_assignment``);
    accuracy = matched / n. The unsupervised-clustering accuracy used for InfoGAN's
    categorical code. With more pred values than target values, the unmatched pred values
    count as errors (and are absent from the mapping).
    """
    from scipy.optimize import linear_sum_assignment

    counts = confusion_matrix(pred, target, num_pred, num_target)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    matched = int(counts[torch.as_tensor(rows), torch.as_tensor(cols)].sum())
    return matched / int(counts.sum()), {int(r): int(c) for r, c in zip(rows, cols)}


class ModeStats(NamedTuple):
    """Result of :func:`mode_stats`; the fields are documented there."""

    modes: int
    high_quality: float
    counts: torch.Tensor
    nearest: torch.Tensor
    is_high_quality: torch.Tensor
    reverse_kl: float


def mode_stats(samples, modes, std: float, threshold: float = 3.0) -> ModeStats:
    """Points (n d), mode centres (m d), mode σ -> the PacGAN/VEEGAN mode-coverage statistics.

    Each sample is assigned to its nearest mode (Euclidean; the mixtures are isotropic with
    one σ, so this equals the normalised distance of the PacGAN code). A sample is
    *high quality* when that distance is below ``threshold``·σ (strict, as in the PacGAN
    code). ``counts`` (m,) is the histogram of high-quality samples over modes; a mode is
    *captured* when its count is ≥ 1. Fields: ``modes`` (number captured), ``high_quality``
    (fraction of samples, 0..1), ``counts``, ``nearest`` (n,), ``is_high_quality`` (n,),
    ``reverse_kl``.

    reverse_kl = KL(p_gen ‖ p_true) = Σ_j p_j log(p_j / (1/m)) in nats, where p_gen = counts
    / Σ counts and p_true is the true mixture's uniform weight over modes: the direction
    PacGAN calls reverse KL (model first). No epsilon is needed in this direction: an empty
    generated mode contributes 0·log 0 = 0 and the uniform target is positive everywhere.
    It is 0 for an even spread over all modes, log(m/c) for an even spread over c modes,
    at most log m; NaN when no sample is high quality (p_gen undefined).
    """
    x = _float64_rows(samples, "samples")
    centres = _float64_rows(modes, "modes").to(x.device)
    if x.shape[1] != centres.shape[1]:
        raise ValueError(f"samples have {x.shape[1]} coordinates but modes have {centres.shape[1]}")
    distance, nearest = squared_distances(x, centres).min(dim=1)
    is_hq = distance.sqrt() < threshold * float(std)
    m = centres.shape[0]
    counts = torch.zeros(m, dtype=torch.long, device=x.device).index_add_(
        0, nearest[is_hq], torch.ones_like(nearest[is_hq]))
    total = int(counts.sum())
    if total:
        p = counts[counts > 0].double() / total
        reverse_kl = float((p * (p * m).log()).sum())
    else:
        reverse_kl = float("nan")
    return ModeStats(modes=int((counts > 0).sum()), high_quality=total / x.shape[0], counts=counts.cpu(),
                     nearest=nearest.cpu(), is_high_quality=is_hq.cpu(), reverse_kl=reverse_kl)


def parzen_log_likelihood(centres, points, sigma, batch_size: int = 100) -> torch.Tensor:
    """Kernel centres (N D), points (n D), σ -> log-density of each point in nats (float64).

    The Gaussian Parzen window of Breuleux et al. (2011) used by the GAN and AAE papers:
    p(x) = (1/N) Σ_i N(x; c_i, σ²I), so
    log p(x) = logsumexp_i(−‖x − c_i‖² / 2σ²) − log N − (D/2) log(2πσ²).
    A float σ gives (n,); a sequence of s values gives (s n), reusing each batch's squared
    distances for every σ. Points are processed ``batch_size`` at a time (memory O(batch · N)).
    """
    c = _float64_rows(centres, "centres")
    x = _float64_rows(points, "points").to(c.device)
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"parzen centres have {c.shape[1]} dimensions but points have {x.shape[1]}")
    single = isinstance(sigma, (int, float))
    sigmas = torch.tensor([float(sigma)] if single else [float(s) for s in sigma], dtype=torch.float64,
                          device=x.device)
    if sigmas.numel() == 0 or bool((sigmas <= 0).any()):
        raise ValueError(f"parzen σ must be positive, got {sigma}")
    n_centres, dim = c.shape
    normaliser = math.log(n_centres) + 0.5 * dim * torch.log(2 * math.pi * sigmas ** 2)  # (s,)
    out = []
    for start in range(0, x.shape[0], batch_size):
        dist = squared_distances(x[start:start + batch_size], c)  # (b N)
        scaled = -dist[None] / (2 * sigmas[:, None, None] ** 2)  # (s b N)
        out.append(torch.logsumexp(scaled, dim=2) - normaliser[:, None])
    ll = torch.cat(out, dim=1)
    return ll[0] if single else ll


def parzen_select_sigma(centres, valid, sigmas: Sequence[float], batch_size: int = 100) -> tuple[float, list[float]]:
    """Centres (N D), validation points (n D), a σ grid -> the σ with the highest mean validation
    log-likelihood, and the mean log-likelihood for every σ (the cross-validation of the GAN paper)."""
    means = parzen_log_likelihood(centres, valid, list(sigmas), batch_size).mean(dim=1)
    return float(sigmas[int(means.argmax())]), means.tolist()
