"""The translation metrics (content_preservation, cycle_error) on a real spec over the 8x8 digits.

The "translations" are graph expressions whose right answer is known: the identity (content
fully kept, zero cycle error), the input plus a constant c (cycle error exactly c), the batch
shuffled (content of another image: chance accuracy) and an untrained network. The classifier
is the real digits evaluator (trained in seconds, cached for the session by tests/conftest.py).
"""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch.distributions import Normal

import lvmgraph.api as lg
from lvmgraph.eval.context import point_value
from lvmgraph.eval.runner import UnknownValue, evaluate
from lvmgraph.experiment import prepare
from lvmgraph_eval import METRICS

SPEC = """\
name: tiny_translation
seed: 0
data: {dataset: digits, batch_size: 32}
components:
  net: {type: mlp, in_shape: [1, 8, 8], out_shape: [1, 8, 8], hidden: [16]}
graph:
  x_ab:       x
  x_aba:      x_ab + 0.25
  x_shuffled: shuffle(x)
  x_net:      net(x)
  x_flat:     flatten(x)
  loss:       mse(x_net, x)
phases:
  - {minimize: loss, update: [net], optimizer: {type: adam, lr: 1.0e-3}}
train: {steps: 1}
"""

C = 0.25  # pixels are k/16: x + C and its difference with x are exact in float32


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    path = tmp_path_factory.mktemp("translation") / "tiny_translation.yaml"
    path.write_text(SPEC)
    return prepare(lg.load(path, ["train.threads=1", "train.progress=false"]), device="cpu")


def one(exp, name, **settings):
    return evaluate(exp, [(name, settings)])[name]


def test_the_metrics_are_registered_with_documented_settings():
    for name in ("content_preservation", "cycle_error"):
        _, params = METRICS[name]
        for field, info in params.model_fields.items():
            assert info.description, f"{name}.{field}"
    _, params = METRICS["content_preservation"]
    assert params().label == "y" and params(label=None).label is None
    with pytest.raises(ValidationError):
        params(n=0)


def test_identity_translation_keeps_all_content_the_evaluator_sees(exp):
    out = one(exp, "content_preservation", output="x_ab")
    # the output is the input: the same predictions, so accuracy is the reference exactly ...
    assert out["accuracy"] == out["reference"]
    # ... and over the whole test split the reference is the evaluator's own test accuracy
    assert out["protocol"]["n"] == exp.data.test["x"].shape[0] == 359
    assert out["reference"] == pytest.approx(out["protocol"]["evaluator"]["test_accuracy"], abs=1e-12)
    assert out["reference"] > 0.95
    confusion = torch.tensor(out["confusion"])
    assert confusion.sum() == 359
    assert confusion.diagonal().sum().item() / 359 == pytest.approx(out["accuracy"])
    assert sorted(out["per_class"], key=int) == [str(c) for c in range(10)]
    assert min(out["per_class"].values()) > 0.8


def test_without_labels_the_input_prediction_is_the_target(exp):
    out = one(exp, "content_preservation", output="x_ab", label=None, n=100, batch_size=32)
    assert out["accuracy"] == 1.0 and out["reference"] == 1.0
    assert out["protocol"]["n"] == 100
    assert out["protocol"]["label"] == "evaluator prediction on the input"


def test_a_translation_that_loses_the_content_scores_near_chance(exp):
    shuffled = one(exp, "content_preservation", output="x_shuffled")
    untrained = one(exp, "content_preservation", output="x_net")
    for out in (shuffled, untrained):
        assert out["reference"] > 0.95
        assert out["accuracy"] < 0.3  # ten balanced classes: chance is about 0.1
    # the shuffle is drawn from the metric's seed: reproducible
    assert one(exp, "content_preservation", output="x_shuffled")["accuracy"] == shuffled["accuracy"]


def test_cycle_error_is_zero_for_the_identity_and_exactly_c_for_a_shift(exp):
    identity = one(exp, "cycle_error", reconstruction="x_ab")
    assert identity["l1"] == 0.0 and identity["mse"] == 0.0
    shifted = one(exp, "cycle_error", reconstruction="x_aba", n=200, batch_size=64)
    assert shifted["l1"] == C and shifted["mse"] == C * C
    assert shifted["protocol"]["n"] == 200 and shifted["protocol"]["split"] == "test"
    on_train = one(exp, "cycle_error", reconstruction="x_aba", split="train", n=50)
    assert on_train["l1"] == C and on_train["protocol"]["split"] == "train"


def test_outputs_outside_the_data_space_and_unknown_names_fail_clearly(exp):
    with pytest.raises(ValueError, match=r"'x_flat' has shape \(359, 64\).*set `output:`"):
        one(exp, "content_preservation", output="x_flat")
    with pytest.raises(ValueError, match="set `reconstruction:`"):
        one(exp, "cycle_error", reconstruction="x_flat")
    with pytest.raises(UnknownValue, match="did you mean 'x_ab'"):
        one(exp, "cycle_error", reconstruction="x_abc")
    with pytest.raises(KeyError, match="set `label:`"):
        one(exp, "content_preservation", output="x_ab", label="domain")
    with pytest.raises(KeyError, match="set `input:`"):
        one(exp, "cycle_error", input="image", reconstruction="x_ab")


def test_a_distribution_counts_by_its_mean():
    x = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(point_value(Normal(x, 2.0), "x_aba", "reconstruction"), x)
    assert point_value(x, "x_aba", "reconstruction") is x
    with pytest.raises(TypeError, match="set `reconstruction:`"):
        point_value({"logit": x}, "x_aba", "reconstruction")
