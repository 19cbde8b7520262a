"""judge_accuracy and its cached judges, on real 8x8 digit data (no mocks).

The "generators" are graph expressions whose right answer is known: the identity (a translation
that changes nothing), the other domain's real images, a per-example coin flip choosing between
the domains (with the coin as the target, computed in the same pass), the batch shuffled. The
judges are real SmallCNNs trained in seconds on the digits-based domains / attributes / captions.
"""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from pydantic import ValidationError

import lvmgraph.api as lg
from lvmgraph.eval.judge import judge_for
from lvmgraph.eval.runner import ResultNameClash, evaluate
from lvmgraph.experiment import prepare
from lvmgraph.spec.errors import SpecError
from lvmgraph_eval import METRICS

DOMAINS = """\
name: judge_domains
seed: 0
data: {dataset: domains, base: digits, kind: thickness, batch_size: 16}
components:
  net:  {type: mlp, in_shape: [1, 8, 8], out_shape: [1, 8, 8], hidden: [8]}
  coin: {type: uniform, low: 0.0, high: 1.0, shape: [1]}
graph:
  x_ab:     x_a                                          # "translates" nothing: still thin
  x_perfect: x_b                                         # a perfect translator's output: real thick strokes
  flip:     clamp((coin.sample(like=x_a) - 0.5) * 1000000.0, low=0.0, high=1.0)   # (b 1) 0 or 1
  x_mixed:  lerp(x_a, x_b, flip)                          # x_a where flip = 0, x_b where 1
  c_flip:   reshape(flip, shape=[])                       # (b,) the class each x_mixed shows
  loss:     mse(net(x_a), x_b)
phases:
  - {minimize: loss, update: [net]}
train: {steps: 1}
"""

DIGITS = """\
name: judge_digits
seed: 0
data: {dataset: digits, batch_size: 16}
components:
  net: {type: mlp, in_shape: [1, 8, 8], out_shape: [1, 8, 8], hidden: [8]}
graph:
  x_same:     x
  x_shuffled: shuffle(x)
  x_flat:     flatten(x)
  loss:       mse(net(x), x)
phases:
  - {minimize: loss, update: [net]}
train: {steps: 1}
"""

CAPTIONS = """\
name: judge_captions
seed: 0
data: {dataset: captions, base: digits, hold_out: [[1, red]], batch_size: 16}
components:
  net: {type: mlp, in_shape: [3, 8, 8], out_shape: [3, 8, 8], hidden: [8]}
graph:
  x_same: x
  loss:   mse(net(x), x)
phases:
  - {minimize: loss, update: [net]}
train: {steps: 1}
"""

# few epochs keep the file fast; thin vs thick strokes and the digits' classes are learnt anyway
DOMAIN_JUDGE = {"images": ["x_a", "x_b"], "epochs": 4}
CLASS_JUDGE = {"images": "x", "labels": "y", "epochs": 8}


def _exp(tmp_path_factory, text: str, name: str):
    path = tmp_path_factory.mktemp(name) / f"{name}.yaml"
    path.write_text(text)
    return prepare(lg.load(path, ["train.threads=1", "train.progress=false"]), device="cpu")


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    return _exp(tmp_path_factory, DOMAINS, "judge_domains")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return _exp(tmp_path_factory, DIGITS, "judge_digits")


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    return _exp(tmp_path_factory, CAPTIONS, "judge_captions")


def one(exp, **settings):
    return evaluate(exp, [("judge_accuracy", settings)])["judge_accuracy"]


def test_registered_with_documented_settings_and_checked_judge_settings():
    _, params = METRICS["judge_accuracy"]
    for name, info in params.model_fields.items():
        assert info.description, name
    ok = params(output="x_ab", judge=DOMAIN_JUDGE, target=1)
    assert ok.split == "test" and ok.where is None and ok.judge.labels is None
    with pytest.raises(ValidationError, match="needs|add `labels:`"):
        params(output="x_ab", judge={"images": "x"}, target=1)
    with pytest.raises(ValidationError, match="one label field per image field"):
        params(output="x_ab", judge={"images": ["x_a", "x_b"], "labels": ["y_a"]}, target=1)
    with pytest.raises(ValidationError, match="extra"):
        params(output="x_ab", judge={"images": "x", "labels": "y", "lables": "y"}, target=1)


def test_domain_judge_identity_other_domain_and_constant_targets(domains):
    n_test = domains.data.test["x_a"].shape[0]
    # a translation that does nothing: judged as its own domain exactly as often as real test images are
    stay = one(domains, output="x_ab", judge=DOMAIN_JUDGE, target=0, n=5000)
    assert stay["n"] == n_test
    assert stay["accuracy"] == pytest.approx(stay["reference_per_target"]["0"], abs=1e-12)
    assert stay["per_target"] == {"0": stay["accuracy"]}
    assert stay["reference"] > 0.9 and stay["accuracy"] > 0.9
    judge = stay["protocol"]["judge"]
    assert judge["mode"] == "classes" and judge["classes"] == 2 and judge["images"] == ["x_a", "x_b"]
    assert judge["epochs"] >= 3 and len(judge["checksum"]) == 64 and "SmallCNN" in judge["architecture"]
    assert stay["protocol"]["class_names"] == ["x_a", "x_b"]
    # ... so as a translation to B it fails: near 0, and exactly the complement
    fail = one(domains, output="x_ab", judge=DOMAIN_JUDGE, target=1, input="x_a", n=5000)
    assert fail["accuracy"] == pytest.approx(1 - stay["accuracy"], abs=1e-12) and fail["accuracy"] < 0.1
    assert fail["input_accuracy"] == fail["accuracy"]  # output = input here
    assert "agreement" not in fail  # a constant target is not the input's own label
    assert fail["confusion"][1][0] == round(n_test * stay["accuracy"])
    # a perfect translator (real images of B) scores the judge's own accuracy on B
    perfect = one(domains, output="x_perfect", judge=DOMAIN_JUDGE, target=1, input="x_a", n=5000)
    assert perfect["accuracy"] == pytest.approx(perfect["reference_per_target"]["1"], abs=1e-12)
    assert perfect["accuracy"] > 0.9 and perfect["input_accuracy"] < 0.1
    # n and batch_size cut the split exactly
    few = one(domains, output="x_perfect", judge=DOMAIN_JUDGE, target=1, n=37, batch_size=10)
    assert few["n"] == 37 and few["protocol"]["n"] == 37


def test_a_target_computed_in_the_graph_comes_from_the_same_draw_as_the_output(domains):
    out = one(domains, output="x_mixed", judge=DOMAIN_JUDGE, target="c_flip", n=5000)
    # each example shows the domain its coin chose: judged right as often as real images are
    assert set(out["per_target"]) == {"0", "1"}
    assert out["accuracy"] > 0.9 and abs(out["accuracy"] - out["reference"]) < 0.06
    again = one(domains, output="x_mixed", judge=DOMAIN_JUDGE, target="c_flip", n=5000)
    assert again["accuracy"] == out["accuracy"]  # seeded
    other = one(domains, output="x_mixed", judge=DOMAIN_JUDGE, target="c_flip", n=5000, seed=7)
    assert other["protocol"]["seed_setting"] == 7
    assert other["confusion"] != out["confusion"]  # other coins: another split between the domains
    assert sum(map(sum, other["confusion"])) == sum(map(sum, out["confusion"]))


def test_class_judge_with_labels_identity_shuffle_and_constant(digits):
    same = one(digits, output="x_same", judge=CLASS_JUDGE, target="y", n=5000)
    assert same["n"] == 359
    assert same["accuracy"] == pytest.approx(same["reference"], abs=1e-12) and same["reference"] > 0.9
    assert same["protocol"]["class_names"] == [str(d) for d in range(10)]
    shuffled = one(digits, output="x_shuffled", judge=CLASS_JUDGE, target="y", n=5000)
    assert shuffled["accuracy"] < 0.3
    # agreement: the output judged as the class the judge sees in its input, whatever the truth
    kept = one(digits, output="x_same", input="x", judge=CLASS_JUDGE, target="y", n=5000)
    assert kept["agreement"] == 1.0 and kept["accuracy"] == same["accuracy"] < 1.0
    lost = one(digits, output="x_shuffled", input="x", judge=CLASS_JUDGE, target="y", n=5000)
    assert lost["agreement"] < 0.3 and lost["input_accuracy"] == same["accuracy"]
    three = one(digits, output="x_same", judge=CLASS_JUDGE, target=3, n=5000)
    confusion = torch.tensor(same["confusion"])
    assert three["accuracy"] == pytest.approx(confusion[:, 3].sum().item() / 359, abs=1e-12)
    with pytest.raises(ValueError, match="outside 0..9"):
        one(digits, output="x_same", judge=CLASS_JUDGE, target=12)
    with pytest.raises(ValueError, match=r"set `output:`"):
        one(digits, output="x_flat", judge=CLASS_JUDGE, target="y")


def test_multi_hot_labels_give_a_multi_label_judge(captions):
    judge = {"images": "x", "labels": "attributes", "epochs": 8}
    same = one(captions, output="x_same", judge=judge, target="attributes", n=5000)
    assert same["protocol"]["judge"]["mode"] == "attributes"
    assert list(same["per_attribute"]) == ["thin", "thick", "red", "green"]
    assert same["accuracy"] == pytest.approx(same["reference"], abs=1e-12)
    assert same["all_attributes"] == pytest.approx(same["reference_all_attributes"], abs=1e-12)
    assert same["per_attribute"]["red"] > 0.95 and same["all_attributes"] > 0.6
    # a constant request: "normal thickness, red" is right for about the sixth of images in that domain
    red = one(captions, output="x_same", judge=judge, target=[0, 0, 1, 0], n=5000)
    assert 0.08 < red["all_attributes"] < 0.3
    assert red["per_attribute"]["red"] == pytest.approx(0.5, abs=0.1)  # half the images are red
    with pytest.raises(ValueError, match=r"multi-hot rows"):
        one(captions, output="x_same", judge=judge, target=1)


def test_where_restricts_to_the_flagged_examples(captions):
    held = captions.data.test["held_out"]
    out = one(captions, output="x_same", judge=CLASS_JUDGE, target="y", where="held_out",
              n=5000)
    assert out["n"] == int(held.sum()) > 0
    assert set(out["per_target"]) == {"1"}  # the held-out combination is (1, red)
    with pytest.raises(ValueError, match="boolean"):
        one(captions, output="x_same", judge=CLASS_JUDGE, target="y", where="y")


def test_with_where_the_reference_is_the_flagged_real_images_and_judge_data_changes_its_training_data(captions):
    held = captions.data.test["held_out"]
    # real images judged: accuracy IS the judge's accuracy on them, whatever it is on the whole split
    own = one(captions, output="x_same", judge=CLASS_JUDGE, target="y", where="held_out", n=5000)
    assert own["accuracy"] == pytest.approx(own["reference"], abs=1e-12)
    assert own["reference_whole_split"] == own["protocol"]["judge"]["test"]["accuracy"]
    # a judge given the held-out combination too learns from more images (the run's data is unchanged)
    full = one(captions, output="x_same", judge={**CLASS_JUDGE, "data": {"hold_out": []}}, target="y",
               where="held_out", n=5000)
    judge = full["protocol"]["judge"]
    assert judge["train_size"] > own["protocol"]["judge"]["train_size"]
    assert judge["key"] != own["protocol"]["judge"]["key"]
    assert full["accuracy"] == pytest.approx(full["reference"], abs=1e-12) and full["n"] == int(held.sum())
    # the judge that never saw red ones misreads real red ones (0.05 of 20 here); the other reads them
    assert own["reference"] < 0.5 < full["reference"]
    assert len(captions.data.train["y"]) == own["protocol"]["judge"]["train_size"]
    with pytest.raises(ValueError, match="hold_outt"):
        one(captions, output="x_same", judge={**CLASS_JUDGE, "data": {"hold_outt": []}}, target="y")


def test_a_judge_blind_to_hue_reads_a_colour_it_never_saw_with_a_class(captions):
    held = one(captions, output="x_same", judge=CLASS_JUDGE, target="y", where="held_out", n=5000)
    blind = one(captions, output="x_same", judge={**CLASS_JUDGE, "colour": "value"}, target="y",
                where="held_out", n=5000)
    judge = blind["protocol"]["judge"]
    assert judge["colour"] == "value" and "(1x8x8" in judge["architecture"]
    assert held["protocol"]["judge"]["colour"] == "keep" and "(3x8x8" in held["protocol"]["judge"]["architecture"]
    assert judge["key"] != held["protocol"]["judge"]["key"]
    assert blind["accuracy"] == pytest.approx(blind["reference"], abs=1e-12)
    # never shown a red 1, the colour judge misreads real ones; the hue-blind judge has seen 1s
    assert held["reference"] < 0.5 < blind["reference"]
    # hue never reaches it: the red and green channels swapped, the same logits (not so for the other)
    x, info = captions.data.test["x"][:64], captions.data.info
    swapped = x[:, [1, 0, 2]]
    blind_judge = judge_for("captions", captions.data, images="x", labels="y", epochs=8, colour="value", quiet=True)
    assert blind_judge.from_cache and blind_judge.key == judge["key"]
    torch.testing.assert_close(blind_judge.logits(swapped, info), blind_judge.logits(x, info), rtol=0, atol=0)
    keep = judge_for("captions", captions.data, images="x", labels="y", epochs=8, quiet=True)
    assert (keep.logits(swapped, info) - keep.logits(x, info)).abs().max() > 1e-2
    with pytest.raises(ValidationError, match="keep|value"):
        METRICS["judge_accuracy"][1](output="x_same", judge={**CLASS_JUDGE, "colour": "grey"}, target="y")


def test_the_judge_is_cached_keyed_and_retrained_when_damaged(domains, tmp_path):
    bundle = domains.data
    first = judge_for("domains", bundle, images=["x_a", "x_b"], epochs=2, cache_dir=tmp_path, quiet=True)
    assert not first.from_cache and (first.cache_dir / "weights.pt").exists()
    again = judge_for("domains", bundle, images=["x_a", "x_b"], epochs=2, cache_dir=tmp_path, quiet=True)
    assert again.from_cache and again.checksum == first.checksum and again.test == first.test
    # other fields or settings are another judge
    swapped = judge_for("domains", bundle, images=["x_b", "x_a"], epochs=2, cache_dir=tmp_path, quiet=True)
    classes = judge_for("domains", bundle, images=["x_a", "x_b"], labels=["y_a", "y_b"], epochs=1,
                        cache_dir=tmp_path, quiet=True)
    assert len({first.key, swapped.key, classes.key}) == 3
    assert classes.num_classes == 10 and classes.settings["epochs"] == 1
    # a damaged weights file is moved aside and the judge trained again, to the same weights
    weights = first.cache_dir / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fixed = judge_for("domains", bundle, images=["x_a", "x_b"], epochs=2, cache_dir=tmp_path, quiet=True)
    assert any("checksum mismatch" in str(w.message) for w in caught)
    assert not fixed.from_cache and fixed.checksum == first.checksum
    assert list(tmp_path.glob("judges/*.corrupt-*"))
    meta = json.loads((fixed.cache_dir / "meta.json").read_text())
    assert meta["checksum"] == fixed.checksum and meta["settings"]["images"] == ["x_a", "x_b"]


# ----------------------------------------------------------------------------- one metric, several entries

def test_the_same_metric_twice_with_as_names(domains, tmp_path):
    spec = DOMAINS + """\
eval:
  metrics:
    - judge_accuracy: {as: to_b, output: x_perfect, judge: {images: [x_a, x_b], epochs: 4}, target: 1}
    - judge_accuracy: {as: stays_a, output: x_ab, judge: {images: [x_a, x_b], epochs: 4}, target: 0}
    - cycle_error: {input: x_a, reconstruction: x_ab}
"""
    path = tmp_path / "named.yaml"
    path.write_text(spec)
    exp = prepare(lg.load(path, ["train.threads=1"]), device="cpu")
    results = evaluate(exp)
    assert list(results) == ["to_b", "stays_a", "cycle_error"]
    assert results["to_b"]["metric"] == results["stays_a"]["metric"] == "judge_accuracy"
    assert results["to_b"]["accuracy"] > 0.9 and results["stays_a"]["accuracy"] > 0.9
    assert results["cycle_error"]["l1"] == 0.0 and "metric" not in results["cycle_error"]
    # a bad setting inside a named entry is still reported at its line
    path.write_text(spec.replace("target: 0}", "target: 0, lables: y}"))
    with pytest.raises(SpecError, match="unknown setting 'lables'"):
        prepare(lg.load(path), device="cpu")


def test_two_entries_with_one_result_name_are_an_error(domains, tmp_path):
    spec = DOMAINS + """\
eval:
  metrics:
    - judge_accuracy: {output: x_perfect, judge: {images: [x_a, x_b]}, target: 1}
    - judge_accuracy: {output: x_ab, judge: {images: [x_a, x_b]}, target: 0}
"""
    path = tmp_path / "clash.yaml"
    path.write_text(spec)
    with pytest.raises(SpecError, match=r"both give a result named 'judge_accuracy'.*as: "):
        lg.load(path)
    settings = {"output": "x_ab", "judge": DOMAIN_JUDGE, "target": 0}
    with pytest.raises(ResultNameClash, match="as: "):
        evaluate(domains, [("judge_accuracy", settings), ("judge_accuracy", settings)])


def test_eval_metrics_option_selects_entries_by_result_or_metric_name():
    from lvmgraph.api import select_metrics
    items = [("judge_accuracy", {"as": "to_b", "target": 1}), ("judge_accuracy", {"as": "stays_a", "target": 0}),
             ("cycle_error", {"input": "x_a"})]
    assert select_metrics(items, ["stays_a"]) == [items[1]]
    assert select_metrics(items, ["judge_accuracy", "cycle_error"]) == items
    assert select_metrics(items, ["prior_ks"]) == [("prior_ks", {})]  # not in the spec: default settings
