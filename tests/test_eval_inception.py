"""The Inception metrics (inception_fid, inception_score) and the Inception Score maths.

A randomly initialised torchvision Inception-v3 stands in for the ImageNet weights: same keys
and shapes, saved to a local file the metrics read like the real one. Its batch-norm statistics
are set from one batch of noise images so activations keep a usable scale through the ~90
layers (with the default running statistics they shrink to ~1e-8). Inception at 299x299 is slow
on a CPU, so every metric call here sees a few dozen 8x8 digits at most.

The Inception Score itself is checked on hand-made probability matrices against closed forms.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import lvmgraph.api as lg
from lvmgraph.cli import main as cli_main
from lvmgraph.eval.inception import (ENV_VAR, FEATURE_DIM, NUM_CLASSES, InceptionUnavailable, inception_features,
                                     inception_logits, inception_outputs, load_inception, weights_sha256)
from lvmgraph.eval.runner import evaluate
from lvmgraph.eval.stats import frechet_distance, gaussian_fit, inception_score_from_probs
from lvmgraph.experiment import prepare
from lvmgraph_eval import METRICS

SPEC = """\
name: tiny_inception
seed: 0
data: {dataset: digits, batch_size: 32}
components:
  net:    {type: mlp, in_shape: [1, 8, 8], out_shape: [1, 8, 8], hidden: [16]}
  pixels: {type: uniform, shape: [1, 8, 8], low: 0.0, high: 1.0}
graph:
  z:       pixels.sample(like=x)
  x_noise: z * 1.0
  x_grey:  z * 0.0 + 0.5
  x_net:   net(x)
  loss:    mse(x_net, x)
phases:
  - {minimize: loss, update: [net], optimizer: {type: adam, lr: 1.0e-3}}
sample: {set: {z: pixels}, output: x_noise}
train: {steps: 1}
"""

POINTS_SPEC = """\
name: tiny_points
seed: 0
data: {dataset: toy2d, name: ring8, batch_size: 32, n_train: 64, n_test: 32}
components:
  prior:     {type: normal, shape: [2]}
  generator: {type: mlp, in_shape: [2], out_shape: [2], hidden: [8]}
graph:
  z:      prior.sample(like=x)
  x_fake: generator(z)
  loss:   mse(x_fake, x)
phases:
  - {minimize: loss, update: [generator], optimizer: {type: adam, lr: 1.0e-3}}
sample: {set: {z: prior}, output: x_fake}
train: {steps: 1}
"""

FAST = ["train.threads=1", "train.progress=false"]


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A seeded random Inception-v3 state dict with batch-norm statistics from noise images."""
    from torchvision.models import inception_v3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = inception_v3(weights=None, aux_logits=True, init_weights=False)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None  # running statistics = this batch's statistics
        model.train()
        with torch.no_grad():
            model(torch.randn(8, 3, 299, 299))
    path = tmp_path_factory.mktemp("inception") / "inception_v3_random.pth"
    torch.save(model.state_dict(), path)
    return path


def experiment(tmp_path: Path, text: str = SPEC, *sets: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return prepare(lg.load(path, [*FAST, *sets]), device="cpu")


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return experiment(tmp_path_factory.mktemp("spec"))


def one(exp, name, **settings):
    return evaluate(exp, [(name, settings)])[name]


# ----------------------------------------------------------------------------- the Inception Score maths

def one_hot_rows(labels, k) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(labels), k).double()


@pytest.mark.parametrize("splits", [1, 4])
def test_one_hot_predictions_spread_evenly_over_k_classes_score_k(splits):
    k = 5
    probs = one_hot_rows(torch.arange(40) % k, k)  # every split of 10 rows holds each class twice
    score = inception_score_from_probs(probs, splits)
    assert score.mean == pytest.approx(k, abs=1e-12) and score.std == pytest.approx(0.0, abs=1e-12)
    assert score.values.shape == (splits,)


def test_identical_predictions_score_one():
    k = 7
    assert inception_score_from_probs(one_hot_rows([3] * 20, k), 2).mean == pytest.approx(1.0, abs=1e-12)
    soft = torch.softmax(torch.randn(k, generator=torch.Generator().manual_seed(0), dtype=torch.float64), 0)
    assert inception_score_from_probs(soft.expand(20, k), 4).mean == pytest.approx(1.0, abs=1e-12)
    assert inception_score_from_probs(torch.full((20, k), 1 / k), 4).mean == pytest.approx(1.0, abs=1e-12)


def test_the_score_is_per_split_with_the_std_across_splits():
    # split 1: all class 0 (IS 1); split 2: half class 1, half class 2 (IS 2) -> mean 1.5, std 0.5
    probs = one_hot_rows([0, 0, 0, 0, 1, 2, 1, 2], 4)
    score = inception_score_from_probs(probs, 2)
    assert score.values.tolist() == pytest.approx([1.0, 2.0], abs=1e-12)
    assert score.mean == pytest.approx(1.5) and score.std == pytest.approx(0.5)
    # uneven splits cut at i·n // splits, as the authors' code: 10 rows in 3 -> 3, 3, 4
    probs = one_hot_rows([0, 0, 0, 1, 1, 1, 2, 2, 3, 3], 4)
    assert inception_score_from_probs(probs, 3).values.tolist() == pytest.approx([1.0, 1.0, 2.0], abs=1e-12)


def test_the_score_of_soft_predictions_matches_the_definition_and_lies_in_one_to_k():
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(3 * torch.randn(30, 6, generator=g, dtype=torch.float64), dim=1)
    marginal = probs.mean(0)
    expected = math.exp((probs * (probs.log() - marginal.log())).sum(1).mean().item())
    assert inception_score_from_probs(probs, 1).mean == pytest.approx(expected, rel=1e-12)
    assert 1.0 <= inception_score_from_probs(probs, 3).mean <= 6.0


def test_the_score_rejects_what_is_not_a_probability_matrix():
    with pytest.raises(ValueError, match="between 1 and n = 4 splits"):
        inception_score_from_probs(torch.full((4, 2), 0.5), 5)
    with pytest.raises(ValueError, match="apply softmax"):
        inception_score_from_probs(torch.randn(4, 3), 1)


# ----------------------------------------------------------------------------- the network

def test_one_pass_gives_pool_features_and_imagenet_logits(weights, no_network):
    digits = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    features, logits = inception_outputs(digits, weights, batch_size=2)
    assert features.shape == (3, FEATURE_DIM) and logits.shape == (3, NUM_CLASSES)
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    model = load_inception(weights)
    assert isinstance(model.fc, nn.Identity) and model.imagenet_fc.out_features == NUM_CLASSES
    # the logits are the network's own classifier on the features; the older API still works
    assert torch.allclose(model.imagenet_fc(features), logits, atol=1e-4)
    assert torch.allclose(inception_features(digits, weights), features, atol=1e-4)
    assert torch.allclose(inception_logits(digits, weights), logits, atol=1e-4)
    assert weights_sha256(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_the_frechet_distance_of_inception_features_with_themselves_is_zero(weights, exp, no_network):
    features = inception_features(exp.data.test["x"][:6], weights)
    fit = gaussian_fit(features)
    scale = fit[1].trace().item()
    assert scale > 0
    assert abs(frechet_distance(*fit, *fit)) < 1e-9 * scale


# ----------------------------------------------------------------------------- the metrics

def test_inception_fid_of_noise_is_far_above_the_real_floor(weights, exp, no_network):
    out = one(exp, "inception_fid", n=16, batch_size=16, weights=str(weights))
    assert 0 < out["floor"] < out["fid"]  # train vs test digits are closer than noise vs test digits
    assert out["fid"] > 2 * out["floor"]
    p = out["protocol"]
    assert p["feature_extractor"] == "torchvision Inception-v3 (IMAGENET1K_V1) pool3, 2048-d"
    assert p["weights"] == str(weights) and p["weights_sha256"] == weights_sha256(weights)
    assert p["resize"] == "299x299 bilinear" and "not the TF-FID" in p["note"]
    assert (p["n_generated"], p["n_real_test"], p["n_real_train"], p["feature_dim"]) == (16, 16, 16, 2048)
    assert p["clipped_to_test_split"] is False


def test_inception_score_of_identical_images_is_one_and_of_noise_at_least_one(weights, exp, tmp_path,
                                                                               monkeypatch, no_network):
    monkeypatch.setenv(ENV_VAR, str(weights))  # the environment variable instead of the setting
    noise = one(exp, "inception_score", n=20, splits=2, batch_size=10)
    assert noise["is"] >= 1.0 and noise["is_std"] >= 0.0
    assert noise["protocol"]["n"] == 20 and noise["protocol"]["splits"] == 2
    assert noise["protocol"]["weights"] == str(weights) and "not the TF-FID" in noise["protocol"]["note"]
    grey = one(experiment(tmp_path, SPEC, "sample.output=x_grey"), "inception_score", n=10, splits=2)
    assert grey["is"] == pytest.approx(1.0, abs=1e-6) and grey["is_std"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("metric", ["inception_fid", "inception_score"])
def test_without_weights_the_metric_says_how_to_provide_them(metric, exp, tmp_path, monkeypatch, no_network):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(InceptionUnavailable) as err:
        one(exp, metric, n=10)
    message = str(err.value)
    assert message.startswith(f"metric {metric}: no Inception-v3 weights file given")
    assert ENV_VAR in message and "set `weights:`" in message and "never downloads" in message
    missing = tmp_path / "inception.pth"
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(InceptionUnavailable, match=f"{missing}: no such file \\(from \\${ENV_VAR}\\)"):
        one(exp, metric, n=10)


def test_a_file_that_is_not_an_inception_state_dict_is_rejected_clearly(exp, tmp_path, no_network):
    small = tmp_path / "linear.pth"
    torch.save(nn.Linear(3, 2).state_dict(), small)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    for path in (small, text):
        with pytest.raises(InceptionUnavailable, match=f"{path}: not a torchvision Inception-v3 state dict"):
            one(exp, "inception_fid", n=10, weights=str(path))


def test_points_data_is_refused_before_looking_for_weights(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    points = experiment(tmp_path, POINTS_SPEC)
    for metric in ("inception_fid", "inception_score"):
        with pytest.raises(ValueError, match=f"{metric} needs image data.*kind 'points'"):
            one(points, metric, n=10)


def test_settings_are_validated():
    _, fid_params = METRICS["inception_fid"]
    _, is_params = METRICS["inception_score"]
    assert fid_params().n == 10000 and fid_params().weights is None
    assert (is_params().n, is_params().splits) == (10000, 10)
    for params in (fid_params, is_params):
        for name, info in params.model_fields.items():
            assert info.description, name


def test_more_splits_than_samples_names_the_settings(exp):
    with pytest.raises(ValueError, match="set `n:` to at least `splits:`"):
        one(exp, "inception_score", n=5, splits=10)


def test_the_cli_reports_missing_weights_as_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(ENV_VAR, raising=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    run = lg.train(spec, out=tmp_path / "run", overrides=FAST, evaluate=False)
    capsys.readouterr()
    assert cli_main(["eval", str(run.path), "--metrics", "inception_score"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: metric inception_score: no Inception-v3 weights file given")
    assert ENV_VAR in err and "Traceback" not in err
