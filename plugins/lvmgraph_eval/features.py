"""Sample-quality metrics in the feature space of the run's dataset evaluator.

Axis legend: n examples, f evaluator features; data axes after n (c h w for images).

The features come from ``ctx.evaluator()``: a small classifier trained for the dataset, *not*
Inception. Numbers here are therefore comparable between runs of this project on one dataset
and evaluator (``protocol.evaluator`` records which, with its checksum), never with published
Inception FID/KID. Every metric reports its sample counts after clipping to what the data
has, and the seed of its generated samples.
"""
from __future__ import annotations

from typing import Iterator

import torch
from pydantic import Field

from lvmgraph import Params
from lvmgraph.data.stream import read_whole
from lvmgraph.eval.stats import frechet_distance, gaussian_fit, kid, prdc, rng_from

FEATURE_EXTRACTOR = "lvmgraph evaluator CNN, not Inception"
REAL_SUBSET = "uniform random subset without replacement (seeded) when n < split size, else the whole split"


class FeatureParams(Params):
    data: str = Field("x", description="data field holding the real examples (what the model generates)")
    batch_size: int = Field(500, gt=0, description="examples per generator call and per evaluator call")


class FdParams(FeatureParams):
    n: int = Field(10000, ge=2, description="generated samples and real test examples (clipped to the "
                                            "test split; the floor uses as many train examples)")


class KidParams(FeatureParams):
    n: int = Field(10000, ge=2, description="generated samples and real test examples (clipped to the "
                                            "test split; the floor uses as many train examples)")
    subsets: int = Field(100, gt=0, description="number of random subsets the MMD² is averaged over")
    subset_size: int = Field(1000, ge=2, description="examples per side in each subset (clipped to the "
                                                     "smallest available sample)")


class PrecisionRecallParams(FeatureParams):
    n: int = Field(5000, ge=2, description="generated samples and real test examples (clipped to the test split)")
    k: int = Field(3, gt=0, description="nearest neighbour defining each sample's manifold ball")
    chunk: int = Field(1024, gt=0, description="rows per distance block (bounds memory to chunk × n)")


class DensityCoverageParams(FeatureParams):
    n: int = Field(10000, ge=2, description="generated samples and real test examples (clipped to the test split)")
    k: int = Field(5, gt=0, description="nearest neighbour defining each real sample's ball")
    chunk: int = Field(1024, gt=0, description="rows per distance block (bounds memory to chunk × n)")


# ----------------------------------------------------------------------------- shared helpers

def split_field(ctx, split: str, field: str) -> torch.Tensor:
    """The whole ``field`` tensor of a split, with a clear error for a missing field or empty split."""
    fields = ctx.data.test if split == "test" else ctx.data.train
    if field not in fields:
        raise KeyError(f"data has no field {field!r} (fields: {sorted(fields)}); set `data:`")
    values = read_whole(fields[field])
    if values.shape[0] == 0:
        raise ValueError(f"the {split!r} split is empty")
    return values


def real_subset(ctx, split: str, field: str, n: int) -> torch.Tensor:
    """n examples of a split's field (n ...): a seeded random subset, or the whole split if n ≥ its size."""
    values = split_field(ctx, split, field)
    if n >= values.shape[0]:
        return values
    return values[torch.randperm(values.shape[0], generator=ctx.generator)[:n]]


def generate(ctx, n: int, batch_size: int, given: dict | None = None,
             like: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """n generated outputs in chunks of ≤ batch_size, each (k ...) detached.

    ``given`` maps graph values to tensors with n rows; each chunk gets its rows. When
    ``like`` (real examples) is given, every chunk must have its per-example shape.
    """
    for start in range(0, n, batch_size):
        k = min(batch_size, n - start)
        if given is None:
            out = ctx.sample(k)
        else:
            out = ctx.sample(k, given={name: value[start:start + k] for name, value in given.items()})
        if not isinstance(out, torch.Tensor) or out.shape[0] != k:
            raise ValueError(f"ctx.sample({k}) returned {type(out).__name__} "
                             f"{tuple(getattr(out, 'shape', ()))}, expected a tensor with {k} rows")
        if like is not None and out.shape[1:] != like.shape[1:]:
            raise ValueError(f"the model generates examples of shape {tuple(out.shape[1:])} but the real "
                             f"data have shape {tuple(like.shape[1:])}; check the spec's `sample:` output")
        yield out.detach()


def features_of(ctx, ev, chunks) -> torch.Tensor:
    """Evaluator features of an iterable of example chunks -> (n f) float64 on the CPU."""
    out = []
    with torch.no_grad():
        for x in chunks:
            feats = ev.features(x.to(ctx.device), info=ctx.data.info)
            out.append(feats.reshape(feats.shape[0], -1).detach().to("cpu", torch.float64))
    return torch.cat(out)


def chunks_of(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, x.shape[0], batch_size):
        yield x[start:start + batch_size]


def generated_features(ctx, ev, n: int, batch_size: int, like: torch.Tensor) -> tuple[torch.Tensor, int]:
    """n generated samples -> their evaluator features (n f), and the seed the samples were drawn with."""
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        feats = features_of(ctx, ev, generate(ctx, n, batch_size, like=like))
    return feats, seed


def feature_sets(ctx, s, *, with_train: bool) -> tuple[dict[str, torch.Tensor], dict]:
    """Evaluator features of n generated samples, n real test examples and (optionally) as many
    real train examples, with the protocol entries describing them."""
    ev = ctx.evaluator()
    test = split_field(ctx, "test", s.data)
    n = min(s.n, test.shape[0])
    fake, seed = generated_features(ctx, ev, n, s.batch_size, like=test)
    sets = {"fake": fake,
            "test": features_of(ctx, ev, chunks_of(real_subset(ctx, "test", s.data, n), s.batch_size))}
    protocol = {"n_requested": s.n, "n_generated": n, "n_real_test": n,
                "clipped_to_test_split": n < s.n}
    if with_train:
        n_train = min(n, split_field(ctx, "train", s.data).shape[0])
        sets["train"] = features_of(ctx, ev, chunks_of(real_subset(ctx, "train", s.data, n_train), s.batch_size))
        protocol["n_real_train"] = n_train
    protocol.update({"real_subset": REAL_SUBSET, "data": s.data, "feature_extractor": FEATURE_EXTRACTOR,
                     "feature_dim": fake.shape[1], "evaluator": ev.describe(), "seed": seed})
    return sets, protocol


# ----------------------------------------------------------------------------- metrics

def evaluator_fd(ctx, **settings) -> dict:
    """Fréchet distance between Gaussian fits of evaluator features: generated vs real test examples.

    The FID formula of Heusel et al. (2017), d² = ‖μ_g − μ_r‖² + Tr(Σ_g + Σ_r − 2(Σ_g Σ_r)^½),
    with means and unbiased covariances of n generated samples and n real test examples
    (default 10,000, clipped to the test split and stated in the protocol), but in the
    feature space of the lvmgraph evaluator CNN, *not* Inception: key ``fd``, never "fid".
    ``floor`` is the same distance between n real train examples and the test examples: what a
    perfect generator scores at this n (the estimate is biased upwards at finite n, so compare
    ``fd`` with ``floor``, and runs only at equal n). Tr(Σ_g Σ_r)^½ is computed as the sum of
    singular values of Σ_g^½ Σ_r^½ (symmetric roots by eigh): real and non-negative, with
    no imaginary round-off to discard (see ``lvmgraph.eval.stats.frechet_distance``).
    """
    s = FdParams(**settings)
    sets, protocol = feature_sets(ctx, s, with_train=True)
    real = gaussian_fit(sets["test"])
    return {
        "fd": frechet_distance(*gaussian_fit(sets["fake"]), *real),
        "floor": frechet_distance(*gaussian_fit(sets["train"]), *real),
        "protocol": {**protocol, "statistic": "Fréchet distance between Gaussian fits (mean, covariance "
                                              "with n − 1), generated vs test; floor: train vs test"},
    }


def evaluator_kid(ctx, **settings) -> dict:
    """Kernel distance (KID, Bińkowski et al. 2018) in evaluator feature space: generated vs real test.

    Unbiased MMD² with the cubic polynomial kernel k(a, b) = (aᵀb / f + 1)³, computed on
    ``subsets`` (default 100) pairs of random subsets of ``subset_size`` (default 1,000;
    clipped to the smallest sample, stated in the protocol) and reported as ``kid`` (mean)
    and ``kid_std`` (std across subsets, ddof 0). ``floor`` / ``floor_std``: the same between
    real train and real test examples. Unlike FD the estimate is unbiased: it fluctuates
    around 0 for matching distributions and can be slightly negative. Evaluator CNN features,
    not Inception.
    """
    s = KidParams(**settings)
    sets, protocol = feature_sets(ctx, s, with_train=True)
    size = min(s.subset_size, *(f.shape[0] for f in sets.values()))
    score = kid(sets["fake"], sets["test"], s.subsets, size, ctx.generator)
    floor = kid(sets["train"], sets["test"], s.subsets, size, ctx.generator)
    return {
        "kid": score.mean, "kid_std": score.std, "floor": floor.mean, "floor_std": floor.std,
        "protocol": {**protocol, "kernel": "polynomial (aᵀb / f + 1)^3, f = feature_dim",
                     "estimator": "unbiased MMD², mean and std (ddof 0) over subsets",
                     "subsets": s.subsets, "subset_size": size, "subset_size_requested": s.subset_size,
                     "subset_sampling": "without replacement within a subset, independent across subsets"},
    }


def precision_recall(ctx, **settings) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019) in evaluator feature space.

    Each real example's ball reaches its k-th nearest real neighbour (k = 3); precision is
    the fraction of generated samples inside at least one real ball (fidelity), recall the
    fraction of real examples inside at least one generated ball built the same way
    (diversity). n generated samples and n real test examples (default 5,000, clipped to
    the test split). Ball test ≤, as in the authors' code; Euclidean distance.
    """
    s = PrecisionRecallParams(**settings)
    sets, protocol = feature_sets(ctx, s, with_train=False)
    out = prdc(sets["test"], sets["fake"], s.k, inclusive=True, chunk=s.chunk)
    return {"precision": out["precision"], "recall": out["recall"],
            "protocol": {**protocol, "k": s.k, "distance": "Euclidean", "ball_test": "<= k-th NN distance"}}


def density_coverage(ctx, **settings) -> dict:
    """Density and coverage (Naeem et al. 2020) in evaluator feature space, k = 5.

    Only real examples get balls (to their k-th nearest real neighbour). density = the mean
    number of real balls holding a generated sample, divided by k (expected value 1 when the
    distributions match; not bounded by 1, unlike precision); coverage = the
    fraction of real balls holding at least one generated sample (≈ 1 − 2^−k ≈ 0.97 for
    matching distributions with equal n). n each side (default 10,000, clipped to the test
    split). Ball test <, as in the authors' ``prdc`` package; Euclidean distance.
    """
    s = DensityCoverageParams(**settings)
    sets, protocol = feature_sets(ctx, s, with_train=False)
    out = prdc(sets["test"], sets["fake"], s.k, inclusive=False, chunk=s.chunk)
    return {"density": out["density"], "coverage": out["coverage"],
            "protocol": {**protocol, "k": s.k, "distance": "Euclidean", "ball_test": "< k-th NN distance"}}
