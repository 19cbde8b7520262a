"""The evaluation plugin's metrics on generators whose right answer is known.

A small real context stands in for a trained run: ``sample(n, given)`` draws from a
hand-written generator with torch's global RNG (as a model's prior does), and
``evaluator()`` returns a tiny but real evaluator (fixed linear features, a nearest-template
classifier). The generators either match the data exactly, are shifted, collapse onto part
of it, or are deterministic functions of the condition they are given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from lvmgraph import DatasetBundle
from lvmgraph.eval.stats import frechet_distance, gaussian_fit
from lvmgraph.plugins.registry import Registry
from lvmgraph_datasets.toy2d import load_toy2d
from lvmgraph_eval import register_metrics

K = 4  # classes of the tiny image dataset
SHAPE = (1, 3, 3)  # its images
NOISE = 0.5


# ----------------------------------------------------------------------------- a real, small context

def templates(seed=0) -> torch.Tensor:
    """K well separated class templates (K 1 3 3)."""
    return 2.0 * torch.randn(K, *SHAPE, generator=torch.Generator().manual_seed(seed))


TEMPLATES = templates()


def draw_images(labels: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """labels (n,) -> template[label] + N(0, NOISE²) per pixel (n 1 3 3)."""
    return TEMPLATES[labels] + NOISE * torch.randn(labels.shape[0], *SHAPE, generator=g)


def image_data(n_train=600, n_test=400) -> DatasetBundle:
    g = torch.Generator().manual_seed(1)
    y_train, y_test = torch.randint(0, K, (n_train,), generator=g), torch.randint(0, K, (n_test,), generator=g)
    return DatasetBundle(train={"x": draw_images(y_train, g), "y": y_train},
                         test={"x": draw_images(y_test, g), "y": y_test},
                         info={"name": "tiny", "kind": "image", "num_classes": K,
                               "class_names": [f"t{i}" for i in range(K)], "value_range": None})


class TinyEvaluator:
    """features: x flattened times a fixed matrix W; logits: minus squared distance to each template."""

    def __init__(self, info: dict, projection: torch.Tensor | None = None):
        self.info = info
        self.W = torch.eye(math.prod(SHAPE)) if projection is None else projection
        self.calls = 0

    def _check(self, x, info):
        assert info is self.info, "the metric must pass the dataset's info"
        assert x.shape[1:] == SHAPE
        self.calls += 1

    def features(self, x, *, info):
        self._check(x, info)
        return x.reshape(x.shape[0], -1) @ self.W

    def logits(self, x, *, info):
        self._check(x, info)
        return -torch.cdist(x.reshape(x.shape[0], -1), TEMPLATES.reshape(K, -1)) ** 2

    def describe(self):
        return {"dataset": self.info["name"], "architecture": f"linear {tuple(self.W.shape)}",
                "test_accuracy": 1.0, "checksum": "tiny-0"}


@dataclass
class GenContext:
    """An EvalContext over a hand-written generator ``make(n, given) -> (n ...)`` using the global RNG."""

    data: DatasetBundle
    make: Callable[[int, dict | None], torch.Tensor]
    ev: Any = None
    device: torch.device = torch.device("cpu")
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    components: dict = field(default_factory=dict)
    spec: Any = None
    calls: list = field(default_factory=list)  # (n, given) per sample() call
    outputs: list = field(default_factory=list)

    def sample(self, n, given=None):
        self.calls.append((n, given))
        out = self.make(n, given)
        self.outputs.append(out)
        return out

    def evaluator(self):
        if self.ev is None:
            raise ValueError(f"no evaluator for dataset {self.data.info.get('name')!r}")
        return self.ev

    def evaluate(self, outputs, inputs):
        raise NotImplementedError("these metrics only sample")

    def batches(self, split="test", batch_size=500, limit=None):
        fields = getattr(self.data, split)
        n = len(next(iter(fields.values())))
        n = n if limit is None else min(n, limit)
        for start in range(0, n, batch_size):
            yield {name: t[start:min(start + batch_size, n)] for name, t in fields.items()}


def image_context(make, projection=None, seed=0) -> GenContext:
    data = image_data()
    return GenContext(data, make, TinyEvaluator(data.info, projection), generator=torch.Generator().manual_seed(seed))


def like_data(n, given=None, shift=0.0, classes=K):
    """Unconditional samples from the data distribution (optionally shifted / restricted to the first classes)."""
    return draw_images(torch.randint(0, classes, (n,))) + shift


def registry() -> Registry:
    reg = Registry()
    register_metrics(reg.registrar("metric", "eval"))
    return reg


def run(name, ctx, **settings):
    """Call a metric the way the runner does: settings validated by its params model first."""
    entry = registry().get("metric", name)
    return entry.factory(ctx, **dict(entry.params(**settings)))


# ----------------------------------------------------------------------------- registration

def test_metrics_are_registered_with_documented_params_and_the_protocol_defaults():
    reg = registry()
    assert reg.names("metric") == ["class_accuracy", "code_accuracy", "content_preservation", "cycle_error",
                                   "density_coverage", "evaluator_fd", "evaluator_kid", "inception_fid",
                                   "inception_score", "judge_accuracy", "mode_coverage", "parzen_ll", "precision_recall"]
    for entry in reg.entries("metric"):
        assert entry.summary, entry.name
        for name, info in entry.params.model_fields.items():
            assert info.description, f"{entry.name}.{name}"
    params = {e.name: e.params() for e in reg.entries("metric") if e.name != "judge_accuracy"}  # it has required settings
    assert params["evaluator_fd"].n == 10000
    assert (params["evaluator_kid"].subsets, params["evaluator_kid"].subset_size) == (100, 1000)
    assert (params["precision_recall"].k, params["precision_recall"].n) == (3, 5000)
    assert params["density_coverage"].k == 5
    assert (params["mode_coverage"].n, params["mode_coverage"].threshold) == (2500, 3.0)
    parzen = params["parzen_ll"]
    assert (parzen.n_samples, parzen.n_valid) == (10000, 1000)
    assert np.allclose(parzen.sigmas, np.logspace(-1, 0, 10))
    with pytest.raises(ValidationError):
        reg.get("metric", "evaluator_fd").params(samples=10)  # unknown setting
    with pytest.raises(ValidationError):
        reg.get("metric", "class_accuracy").params(encoding="onehot")


# ----------------------------------------------------------------------------- evaluator_fd / evaluator_kid

def test_evaluator_fd_is_near_its_real_vs_real_floor_for_the_data_distribution_and_sees_a_shift():
    same = run("evaluator_fd", image_context(like_data), batch_size=128)
    shifted = run("evaluator_fd", image_context(lambda n, g: like_data(n, shift=0.5)), batch_size=128)
    # identity features: a shift by 0.5 in all 9 pixels moves the mean by ‖δ‖² = 9 · 0.25
    assert shifted["fd"] == pytest.approx(9 * 0.25, abs=0.4)
    assert same["fd"] < 0.4 and same["floor"] < 0.4 and shifted["fd"] > 5 * same["fd"]
    assert shifted["floor"] == same["floor"]  # the floor never involves the generator


def test_evaluator_fd_states_its_protocol_and_clips_to_the_test_split():
    ctx = image_context(like_data)
    out = run("evaluator_fd", ctx, batch_size=128)
    p = out["protocol"]
    assert (p["n_requested"], p["n_generated"], p["n_real_test"], p["n_real_train"]) == (10000, 400, 400, 400)
    assert p["clipped_to_test_split"] is True
    assert p["feature_extractor"] == "lvmgraph evaluator CNN, not Inception" and "fid" not in out
    assert p["evaluator"] == ctx.ev.describe() and p["feature_dim"] == 9 and isinstance(p["seed"], int)
    # generated in chunks of at most batch_size, exactly n in all
    assert [n for n, _ in ctx.calls] == [128, 128, 128, 16]
    # the reported distance is the Fréchet distance of the generated samples' and the test set's features
    generated = torch.cat(ctx.outputs).reshape(400, -1).double()
    real = ctx.data.test["x"].reshape(400, -1).double()  # n = split size: the whole split
    expected = frechet_distance(*gaussian_fit(generated), *gaussian_fit(real))
    assert out["fd"] == pytest.approx(expected, rel=1e-9)


def test_metrics_are_reproducible_from_the_evaluation_seed_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = run("evaluator_fd", image_context(like_data, seed=5), n=200)
    assert torch.equal(torch.get_rng_state(), state)
    b = run("evaluator_fd", image_context(like_data, seed=5), n=200)
    c = run("evaluator_fd", image_context(like_data, seed=6), n=200)
    assert a == b and a["fd"] != c["fd"]
    # n below the split size: seeded random subsets of the real splits, stated in the protocol
    assert a["protocol"]["n_real_test"] == 200 and a["protocol"]["clipped_to_test_split"] is False
    assert a["floor"] != c["floor"]


def test_evaluator_kid_is_near_zero_for_the_data_distribution_and_clips_the_subset_size():
    projection = torch.randn(9, 6, generator=torch.Generator().manual_seed(3)) / 6  # features of unit scale
    same = run("evaluator_kid", image_context(like_data, projection), subsets=20, subset_size=100)
    shifted = run("evaluator_kid", image_context(lambda n, g: like_data(n, shift=0.5), projection),
                  subsets=20, subset_size=100)
    assert shifted["kid"] > 0.4 and abs(same["kid"]) < 0.08 and abs(same["floor"]) < 0.08
    assert shifted["floor"] == same["floor"] and same["kid_std"] > 0
    p = same["protocol"]
    assert (p["subsets"], p["subset_size"], p["n_generated"], p["feature_dim"]) == (20, 100, 400, 6)
    assert p["kernel"].startswith("polynomial") and "unbiased" in p["estimator"]
    # the default subset size (1000) is clipped to the 400 examples available and stated; every
    # subset is then the whole sample, so the spread across subsets vanishes
    clipped = run("evaluator_kid", image_context(like_data, projection), subsets=5)
    assert (clipped["protocol"]["subset_size"], clipped["protocol"]["subset_size_requested"]) == (400, 1000)
    assert clipped["kid_std"] < 1e-9


def test_a_dataset_without_an_evaluator_fails_clearly():
    ctx = GenContext(image_data(), like_data, ev=None)
    with pytest.raises(ValueError, match="no evaluator for dataset 'tiny'"):
        run("evaluator_fd", ctx)


def test_generated_samples_of_the_wrong_shape_are_reported():
    ctx = image_context(lambda n, g: torch.zeros(n, 9))
    with pytest.raises(ValueError, match=r"generates examples of shape \(9,\) but the real data have "
                                         r"shape \(1, 3, 3\)"):
        run("precision_recall", ctx)


# ----------------------------------------------------------------------------- precision / recall, density / coverage

def test_precision_recall_are_high_for_the_data_distribution_and_recall_drops_for_a_collapsed_generator():
    same = run("precision_recall", image_context(like_data))
    half = run("precision_recall", image_context(lambda n, g: like_data(n, classes=2)))
    # 400 points in 9-D with k = 3 underestimate the manifolds a little: ≈ 0.85 for a perfect generator
    assert same["precision"] > 0.75 and same["recall"] > 0.75
    assert half["precision"] > 0.75  # every sample is realistic ...
    assert 0.3 < half["recall"] < 0.6 * same["recall"]  # ... but only half of the data is reachable
    p = same["protocol"]
    assert (p["k"], p["n_generated"], p["n_real_test"], p["n_requested"]) == (3, 400, 400, 5000)


def test_density_coverage_for_the_data_distribution_and_for_a_collapsed_generator():
    same = run("density_coverage", image_context(like_data))
    half = run("density_coverage", image_context(lambda n, g: like_data(n, classes=2)))
    assert same["density"] == pytest.approx(1.0, abs=0.2) and same["coverage"] > 0.85
    assert 0.35 < half["coverage"] < 0.65
    assert same["protocol"]["k"] == 5


# ----------------------------------------------------------------------------- mode_coverage

def ring_context(mode_indices, std=0.01, name="ring8"):
    data = load_toy2d(name=name, n_train=50, n_test=50)
    modes = data.info["modes"]

    def make(n, given):
        pick = torch.tensor(mode_indices)[torch.randint(0, len(mode_indices), (n,))]
        return modes[pick] + std * torch.randn(n, 2)

    return GenContext(data, make)


def test_a_generator_on_four_of_eight_ring_modes_captures_exactly_four():
    out = run("mode_coverage", ring_context([0, 2, 4, 6]))
    assert (out["modes"], out["modes_total"]) == (4, 8)
    assert out["high_quality"] > 98.0  # percent; 3σ holds 98.9% of a 2-D Gaussian
    assert [c > 0 for c in out["counts"]] == [True, False] * 4
    assert out["reverse_kl"] == pytest.approx(math.log(2), abs=0.02)  # KL(uniform on 4 ‖ uniform on 8)
    assert out["protocol"]["n"] == 2500 and sum(out["counts"]) == round(out["high_quality"] * 25)


def test_a_generator_on_all_modes_captures_them_all_with_reverse_kl_near_zero():
    ring = run("mode_coverage", ring_context(list(range(8))))
    assert ring["modes"] == 8 and ring["high_quality"] > 98.0 and 0 <= ring["reverse_kl"] < 0.01
    grid = run("mode_coverage", ring_context(list(range(25)), std=0.05, name="grid25"))
    assert (grid["modes"], grid["modes_total"]) == (25, 25) and grid["reverse_kl"] < 0.02
    assert grid["protocol"]["mode_std"] == 0.05


def test_far_off_and_blurry_points_are_low_quality():
    far = GenContext(load_toy2d(n_train=50, n_test=50), lambda n, g: torch.full((n, 2), 3.0))
    out = run("mode_coverage", far)
    assert out["modes"] == 0 and out["high_quality"] == 0.0 and math.isnan(out["reverse_kl"])
    # on the right modes but 10× too spread out: all modes reached, few points within 3σ
    blurry = run("mode_coverage", ring_context(list(range(8)), std=0.1))
    assert blurry["modes"] == 8 and blurry["high_quality"] < 10.0


def test_mode_coverage_needs_a_mixture_dataset():
    ctx = image_context(like_data)
    with pytest.raises(ValueError, match=r"needs a Gaussian-mixture dataset .* 'tiny' has neither"):
        run("mode_coverage", ctx)


# ----------------------------------------------------------------------------- parzen_ll

GRID = np.logspace(-1, 0, 10).tolist()
CENTRES = torch.tensor([[a, b] for a in (0.0, 5.0, 10.0) for b in (0.0, 5.0, 10.0)])


def clusters(n, tau, g=None):
    """n points (n 1 2): a random one of 9 well separated centres plus N(0, τ²) per coordinate."""
    pick = torch.randint(0, 9, (n,), generator=g)
    return (CENTRES[pick] + tau * torch.randn(n, 2, generator=g)).reshape(n, 1, 2)


def test_parzen_ll_chooses_the_data_scale_and_reports_the_closed_form_likelihood():
    tau = GRID[4]
    g = torch.Generator().manual_seed(0)
    data = DatasetBundle(train={"x": clusters(1500, tau, g)}, test={"x": clusters(500, tau, g)},
                         info={"name": "clusters", "value_range": None})
    # a generator that emits exactly the centres: its Parzen window with σ = τ is the data density
    ctx = GenContext(data, lambda n, given: CENTRES[torch.randint(0, 9, (n,))].reshape(n, 1, 2))
    out = run("parzen_ll", ctx, n_samples=900, n_valid=500)
    assert out["sigma"] == pytest.approx(tau) and out["sigma_at_grid_edge"] is False
    assert max(out["validation"].values()) == out["validation"][f"{tau:.6g}"]
    # the reported mean equals the mixture of Gaussians on the generated samples, written with torch.distributions
    centres = torch.cat(ctx.outputs).reshape(900, 2).double()
    window = MixtureSameFamily(Categorical(torch.ones(900, dtype=torch.float64)),
                               Independent(Normal(centres, tau), 1))
    test = data.test["x"].reshape(500, 2).double()
    ll = window.log_prob(test)
    assert out["log_likelihood"] == pytest.approx(ll.mean().item(), rel=1e-9)
    assert out["stderr"] == pytest.approx(ll.std(unbiased=False).item() / math.sqrt(500), rel=1e-9)
    # and it is close to the log-likelihood under the true data density
    truth = MixtureSameFamily(Categorical(torch.ones(9)), Independent(Normal(CENTRES, tau), 1))
    assert out["log_likelihood"] == pytest.approx(truth.log_prob(test.float()).mean().item(), abs=0.05)
    p = out["protocol"]
    assert (p["n_samples"], p["n_valid"], p["n_test"], p["dimensions"]) == (900, 500, 500, 2)
    assert p["units"] == "nats per example" and p["sigmas"] == pytest.approx(GRID)


def test_parzen_ll_flags_a_sigma_at_the_edge_of_the_grid():
    g = torch.Generator().manual_seed(1)
    data = DatasetBundle(train={"x": clusters(300, 2.0, g)}, test={"x": clusters(100, 2.0, g)})
    ctx = GenContext(data, lambda n, given: CENTRES[torch.randint(0, 9, (n,))].reshape(n, 1, 2))
    out = run("parzen_ll", ctx, n_samples=300)
    assert out["sigma"] == pytest.approx(1.0) and out["sigma_at_grid_edge"] is True
    assert out["protocol"]["n_valid"] == 300  # clipped to the train split


# ----------------------------------------------------------------------------- class_accuracy / code_accuracy

def conditional(mapping: Callable[[torch.Tensor], torch.Tensor], name="y", encoding="index", size=K):
    """A generator whose output is template[mapping(condition)]: deterministic in the condition."""

    def make(n, given):
        value = given[name]
        if encoding == "index":
            assert value.dtype == torch.long and value.shape == (n,)
            index = value
        else:
            assert value.dtype == torch.float32 and value.shape == (n, size)
            assert torch.equal(value.sum(1), torch.ones(n))
            index = value.argmax(1)
        return TEMPLATES[mapping(index)] + 0.01 * torch.randn(n, *SHAPE)

    return make


@pytest.mark.parametrize("encoding", ["index", "one_hot"])
def test_class_accuracy_of_a_faithful_conditional_generator_is_one(encoding):
    ctx = image_context(conditional(lambda k: k, name="c", encoding=encoding))
    out = run("class_accuracy", ctx, given="c", encoding=encoding, n_per_class=30, batch_size=8)
    assert out["accuracy"] == 1.0 and out["per_class"] == {str(k): 1.0 for k in range(K)}
    assert out["confusion"] == (30 * torch.eye(K, dtype=torch.long)).tolist()
    assert [n for n, _ in ctx.calls] == [8, 8, 8, 6] * K
    p = out["protocol"]
    assert (p["n_per_class"], p["num_classes"], p["given"], p["encoding"]) == (30, K, "c", encoding)
    assert p["evaluator"] == ctx.ev.describe()


def test_class_accuracy_per_class_shows_which_conditions_are_ignored():
    # classes 2 and 3 come out as class 0
    ctx = image_context(conditional(lambda k: torch.where(k >= 2, torch.zeros_like(k), k)))
    out = run("class_accuracy", ctx, n_per_class=25)
    assert out["accuracy"] == 0.5
    assert out["per_class"] == {"0": 1.0, "1": 1.0, "2": 0.0, "3": 0.0}
    assert [row[0] for row in out["confusion"]] == [25, 0, 25, 25]


def test_code_accuracy_matches_a_permuted_code_to_the_classes():
    perm = torch.tensor([2, 0, 3, 1])
    ctx = image_context(conditional(lambda j: perm[j], name="c", encoding="one_hot"))
    out = run("code_accuracy", ctx, n_codes=K, n_per_code=20)
    assert out["accuracy"] == 1.0 and out["error"] == 0.0
    assert out["mapping"] == {str(j): int(perm[j]) for j in range(K)}
    assert out["per_code"] == {str(j): 1.0 for j in range(K)}
    assert out["protocol"]["matching"].startswith("Hungarian")


def test_code_accuracy_with_noise_and_with_more_codes_than_classes():
    perm = torch.tensor([1, 2, 3, 0])

    def noisy(n, given):  # a quarter of the samples ignore the code
        code = given["c"].argmax(1)
        wrong = torch.rand(n) < 0.25
        return TEMPLATES[torch.where(wrong, torch.randint(0, K, (n,)), perm[code])]

    out = run("code_accuracy", image_context(noisy), n_codes=K, n_per_code=400)
    assert out["accuracy"] == pytest.approx(0.75 + 0.25 / K, abs=0.03)
    assert out["mapping"] == {str(j): int(perm[j]) for j in range(K)}
    # 6 codes, 4 classes: codes 4 and 5 duplicate classes 0 and 1 and are left unmatched
    six = conditional(lambda j: torch.tensor([0, 1, 2, 3, 0, 1])[j], name="c", encoding="one_hot", size=6)
    out = run("code_accuracy", image_context(six), n_codes=6, n_per_code=10)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert sorted(out["mapping"].values()) == [0, 1, 2, 3] and len(out["mapping"]) == 4
    assert sorted(out["per_code"].values()) == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
