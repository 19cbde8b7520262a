"""Evaluator networks (lvmgraph.eval.evaluator) and the optional Inception features (lvmgraph.eval.inception).

Training tests use the bundled 8x8 digits (seconds); the evaluator trained once per module is shared.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import torch

from lvmgraph import DatasetBundle
from lvmgraph.eval import evaluator as evaluator_module
from lvmgraph.eval.evaluator import (Evaluator, EvaluatorCorrupt, EvaluatorMissing, cache_root, canonical_images,
                                     canonical_splits, evaluator_for, evaluator_key, train_evaluator,
                                     training_settings)
from lvmgraph.eval.inception import ENV_VAR, InceptionUnavailable, inception_features
from lvmgraph_datasets import load_digits, load_fashion_mnist, load_toy2d

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """(evaluator, cache root, seconds): the digits evaluator, trained by evaluator_for into a fresh cache."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LVMGRAPH_CACHE", str(root))
        start = time.perf_counter()
        ev = evaluator_for("digits", digits, quiet=True)
        return ev, root, time.perf_counter() - start


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LVMGRAPH_CACHE", str(tmp_path))
    return tmp_path


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LVMGRAPH_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("LVMGRAPH_CACHE")
    assert cache_root() == Path.home() / ".cache" / "lvmgraph"


# ----------------------------------------------------------------------------- training and the cache

def test_digits_evaluator_learns_and_is_saved_with_its_checksum(trained, digits):
    ev, root, _ = trained
    assert not ev.from_cache and ev.dataset == "digits"
    assert ev.accuracy >= 0.9
    folder = root / "evaluators" / f"digits-{ev.key[:16]}"
    assert ev.cache_dir == folder and sorted(p.name for p in folder.iterdir()) == ["meta.json", "weights.pt"]
    assert [p.name for p in (root / "evaluators").iterdir()] == [folder.name]  # no temporary folder left
    data = (folder / "weights.pt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == ev.checksum
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["accuracy"] == ev.accuracy and meta["checksum"] == ev.checksum and meta["key"] == ev.key
    assert meta["settings"]["seed"] == 0 and meta["settings"]["epochs"] >= 3 and meta["created"]
    state = torch.load(folder / "weights.pt", weights_only=True)
    assert all(torch.equal(state[k], v.cpu()) for k, v in ev.model.state_dict().items())
    assert ev.describe() == {"dataset": "digits", "architecture": ev.architecture, "test_accuracy": ev.accuracy,
                             "checksum": ev.checksum, "key": ev.key, "feature_dim": 128,
                             "cache_dir": str(folder)}
    assert ev.architecture.startswith("SmallCNN(1x8x8")


def test_logits_reproduce_the_reported_accuracy_and_features_feed_them(trained, digits):
    ev, _, _ = trained
    x, y = digits.test["x"], digits.test["y"]
    logits = ev.logits(x, digits.info, batch_size=100)
    features = ev.features(x, digits.info, batch_size=77)
    assert logits.shape == (len(y), ev.num_classes) == (359, 10)
    assert features.shape == (len(y), ev.feature_dim) == (359, 128)
    assert not features.requires_grad and not logits.requires_grad
    assert (logits.argmax(1) == y).sum().item() / len(y) == ev.accuracy
    # features are the penultimate layer: the last linear layer maps them to the logits
    with torch.no_grad():
        assert torch.allclose(ev.model.out(features), logits, atol=1e-5)
    # eval mode: no dropout, batch statistics frozen, so batching does not matter
    assert torch.allclose(ev.features(x[:10]), features[:10], atol=1e-6)
    assert ev.logits(x[:0]).shape == (0, 10)


def test_second_call_is_a_cache_hit_without_training(trained, digits, monkeypatch):
    ev, root, train_seconds = trained
    monkeypatch.setenv("LVMGRAPH_CACHE", str(root))
    weights = ev.cache_dir / "weights.pt"
    mtime = weights.stat().st_mtime_ns
    start = time.perf_counter()
    again = evaluator_for("digits", digits, train_if_missing=False)
    assert again.from_cache and again.key == ev.key and again.checksum == ev.checksum
    assert again.accuracy == ev.accuracy
    assert weights.stat().st_mtime_ns == mtime
    assert time.perf_counter() - start < train_seconds
    assert torch.equal(again.features(digits.test["x"]), ev.features(digits.test["x"]))


def test_train_if_missing_false_names_the_command_and_creates_nothing(cache, digits):
    with pytest.raises(EvaluatorMissing) as err:
        evaluator_for("digits", digits, train_if_missing=False)
    assert "lvmgraph evaluator train --dataset digits" in str(err.value)
    assert str(cache / "evaluators") in str(err.value)
    assert not (cache / "evaluators").exists()


def test_the_key_covers_data_settings_and_code(digits, tmp_path, monkeypatch):
    splits = canonical_splits(digits)
    settings = training_settings(digits.info, len(splits["train"][0]), epochs=None, seed=0)
    key = evaluator_key("digits", splits, settings)
    assert evaluator_key("digits", canonical_splits(load_digits()), settings) == key  # same data, same key

    x = digits.train["x"].clone()
    x[17, 0, 3, 4] = 1.0 - x[17, 0, 3, 4]  # one pixel flipped
    flipped = DatasetBundle(train={"x": x, "y": digits.train["y"]}, test=dict(digits.test), info=digits.info)
    assert evaluator_key("digits", canonical_splits(flipped), settings) != key
    y = digits.test["y"].clone()
    y[0] = (y[0] + 1) % 10  # one label changed
    relabelled = DatasetBundle(train=dict(digits.train), test={"x": digits.test["x"], "y": y}, info=digits.info)
    assert evaluator_key("digits", canonical_splits(relabelled), settings) != key
    assert evaluator_key("mnist", splits, settings) != key
    assert evaluator_key("digits", splits, {**settings, "seed": 1}) != key

    # a change to evaluator.py (here: one more comment line) invalidates every cached evaluator
    source = Path(evaluator_module.__file__).read_text()
    edited = tmp_path / "evaluator.py"
    edited.write_text(source + "# changed\n")
    monkeypatch.setattr(evaluator_module, "__file__", str(edited))
    assert evaluator_key("digits", splits, settings) != key


def test_other_data_retrains_into_its_own_folder(trained, digits, monkeypatch):
    ev, root, _ = trained
    monkeypatch.setenv("LVMGRAPH_CACHE", str(root))
    other = evaluator_for("digits", load_digits(seed=3), quiet=True)  # another train/test shuffle
    assert not other.from_cache and other.key != ev.key
    assert other.cache_dir != ev.cache_dir and other.cache_dir.parent == ev.cache_dir.parent
    assert other.accuracy >= 0.9


def test_a_corrupted_weights_file_is_detected_then_retrained_identically(trained, digits, tmp_path):
    ev, root, _ = trained
    evaluators = tmp_path / "evaluators"
    folder = evaluators / ev.cache_dir.name
    folder.mkdir(parents=True)
    for name in ("weights.pt", "meta.json"):
        (folder / name).write_bytes((ev.cache_dir / name).read_bytes())
    data = bytearray((folder / "weights.pt").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped, the zip still opens
    (folder / "weights.pt").write_bytes(bytes(data))

    with pytest.raises(EvaluatorCorrupt) as err:
        evaluator_for("digits", digits, train_if_missing=False, cache_dir=tmp_path)
    message = str(err.value)
    assert str(folder / "weights.pt") in message and "checksum mismatch" in message
    assert "lvmgraph evaluator train --dataset digits" in message
    assert isinstance(err.value, EvaluatorMissing)

    with pytest.warns(UserWarning, match="checksum mismatch") as record:
        again = evaluator_for("digits", digits, cache_dir=tmp_path, quiet=True)
    assert str(folder / "weights.pt") in str(record[0].message)
    assert not again.from_cache and again.cache_dir == folder
    # training is seeded and deterministic: the retrained weights are the original bytes
    assert again.checksum == ev.checksum and again.accuracy == ev.accuracy
    assert (folder / "weights.pt").read_bytes() == (ev.cache_dir / "weights.pt").read_bytes()
    aside = [p for p in evaluators.iterdir() if p.name.startswith(f"{folder.name}.corrupt-")]
    assert len(aside) == 1 and (aside[0] / "weights.pt").read_bytes() == bytes(data)


def test_unreadable_metadata_is_corrupt_too(trained, digits, tmp_path):
    ev, _, _ = trained
    folder = tmp_path / "evaluators" / ev.cache_dir.name
    folder.mkdir(parents=True)
    (folder / "weights.pt").write_bytes((ev.cache_dir / "weights.pt").read_bytes())
    (folder / "meta.json").write_text('{"accuracy": 0.99, "chec')  # torn write
    with pytest.raises(EvaluatorCorrupt, match="meta.json: unreadable evaluator metadata"):
        evaluator_for("digits", digits, train_if_missing=False, cache_dir=tmp_path)


def test_train_evaluator_does_not_cache_and_its_settings_change_the_key(trained, digits, cache):
    ev, _, _ = trained
    quick = train_evaluator("digits", digits, epochs=2, seed=5, quiet=True)
    assert isinstance(quick, Evaluator) and quick.cache_dir is None and not quick.from_cache
    assert quick.settings["epochs"] == 2 and quick.settings["seed"] == 5
    assert quick.key != ev.key and quick.describe()["cache_dir"] is None
    assert list(cache.iterdir()) == []
    assert 0.0 <= quick.accuracy <= 1.0 and quick.checksum != ev.checksum


def test_only_image_datasets_with_labels_get_an_evaluator(cache):
    with pytest.raises(ValueError, match="kind 'points'"):
        evaluator_for("toy2d", load_toy2d(n_train=20, n_test=10))
    assert not (cache / "evaluators").exists()


# ----------------------------------------------------------------------------- canonical images

@pytest.mark.parametrize("pad_to", [None, 11, 16])
def test_prepare_undoes_value_range_and_padding(trained, digits, pad_to):
    ev, _, _ = trained
    run_data = load_digits(value_range=(-1.0, 1.0), pad_to=pad_to)
    side = pad_to or 8
    assert run_data.info["shape"] == (1, side, side) and run_data.info["native_shape"] == (1, 8, 8)
    assert run_data.train["x"].min() == -1.0
    prepared = ev.prepare(run_data.test["x"], run_data.info)
    assert prepared.shape == (359, 1, 8, 8) and prepared.dtype == torch.float32
    assert torch.equal(prepared, digits.test["x"])  # k/16 pixel values survive the affine maps exactly
    assert torch.equal(ev.features(run_data.test["x"], run_data.info), ev.features(digits.test["x"]))


def test_prepare_clamps_and_turns_rgb_grey_for_a_grey_evaluator(trained, digits):
    ev, _, _ = trained
    x = digits.test["x"][:5]
    assert torch.equal(ev.prepare(x * 1.5 - 0.25, digits.info), (x * 1.5 - 0.25).clamp(0, 1))
    assert torch.allclose(ev.prepare(x.expand(-1, 3, -1, -1), digits.info), x, atol=1e-6)
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1.0
    assert torch.allclose(ev.prepare(red, digits.info), torch.full((1, 1, 8, 8), 0.299))
    assert torch.equal(ev.prepare((x * 255).round().to(torch.uint8), digits.info), (x * 255).round() / 255)
    assert torch.equal(ev.prepare(x[:, 0], digits.info), x)  # (n, h, w) is one channel


def test_prepare_rejects_images_from_another_dataset(trained):
    ev, _, _ = trained
    fashion_like = {"value_range": (0.0, 1.0), "shape": (1, 28, 28), "native_shape": (1, 28, 28), "name": "x"}
    with pytest.raises(ValueError, match="native size is 28x28 .* evaluator takes 8x8"):
        ev.prepare(torch.rand(2, 1, 28, 28), fashion_like)
    with pytest.raises(ValueError, match="smaller than the evaluator's 8x8"):
        ev.prepare(torch.rand(2, 1, 6, 6), {"value_range": (0.0, 1.0)})
    with pytest.raises(ValueError, match="must already be canonical"):
        ev.features(torch.rand(2, 1, 12, 12))  # padded images without the info that says so


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs the dataset-fashion-mnist package")
def test_idx_datasets_report_their_native_shape():
    bundle = load_fashion_mnist(limit_train=4, limit_test=4, pad_to=32, value_range=(-1.0, 1.0))
    assert bundle.info["shape"] == (1, 32, 32) and bundle.info["native_shape"] == (1, 28, 28)
    plain = load_fashion_mnist(limit_train=4, limit_test=4)
    assert plain.info["native_shape"] == plain.info["shape"] == (1, 28, 28)
    prepared = canonical_images(bundle.test["x"], bundle.info, input_shape=(1, 28, 28))
    # k/255 pixel values round in float32 through the [-1, 1] map and back, by at most an ulp or two
    assert prepared.shape == (4, 1, 28, 28) and torch.allclose(prepared, plain.test["x"], rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- Inception

def test_inception_without_weights_says_how_to_provide_them(no_network, monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(InceptionUnavailable) as err:
        inception_features(torch.rand(2, 1, 28, 28))
    message = str(err.value)
    assert ENV_VAR in message and "Inception_V3_Weights.IMAGENET1K_V1" in message
    assert "not the TF-FID" in message and "never downloads" in message

    missing = tmp_path / "inception.pth"
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(InceptionUnavailable, match=f"{missing}: no such file \\(from \\${ENV_VAR}\\)"):
        inception_features(torch.rand(2, 1, 28, 28))


def test_inception_rejects_a_file_that_is_not_inception_weights(trained, no_network, tmp_path):
    ev, _, _ = trained
    with pytest.raises(InceptionUnavailable, match="not a torchvision Inception-v3 state dict"):
        inception_features(torch.rand(1, 1, 8, 8), weights=ev.cache_dir / "weights.pt")


def test_inception_features_from_a_local_state_dict(no_network, monkeypatch, tmp_path):
    from torchvision.models import inception_v3
    torch.manual_seed(0)
    # a randomly initialised network stands in for the ImageNet weights: same keys and shapes
    state = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    path = tmp_path / "inception.pth"
    torch.save(state, path)
    monkeypatch.setenv(ENV_VAR, str(path))
    grey = torch.rand(2, 1, 28, 28)
    features = inception_features(grey, batch_size=1)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    # grey is replicated to three channels; features are per image, whatever the batch
    assert torch.allclose(inception_features(grey.expand(-1, 3, -1, -1)), features, atol=1e-4)
    assert not torch.allclose(features[0], features[1])


# ----------------------------------------------------------------------------- the real thing (slow)

@pytest.mark.slow
@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs the dataset-fashion-mnist package")
def test_fashion_mnist_evaluator_reaches_the_issue_bar(cache, monkeypatch):
    """The evaluator the Fashion-MNIST metrics use: the full 60,000/10,000 split, default settings."""
    from lvmgraph.plugins.manager import get_registry
    monkeypatch.delenv("LVMGRAPH_DATA", raising=False)
    bundle = get_registry().get("dataset", "fashion_mnist").factory()
    assert bundle.info["source"] == str(FASHION_DIR) and len(bundle) == 60000
    start = time.perf_counter()
    ev = evaluator_for("fashion_mnist", bundle)
    seconds = time.perf_counter() - start
    print(f"fashion_mnist evaluator: test accuracy {ev.accuracy:.4f}, trained in {seconds:.0f} s "
          f"({ev.settings['epochs']} epochs, {torch.get_num_threads()} threads)")
    assert ev.accuracy >= 0.90
    assert ev.architecture.startswith("SmallCNN(1x28x28") and ev.cache_dir.parent == cache / "evaluators"
    assert evaluator_for("fashion_mnist", bundle, train_if_missing=False).checksum == ev.checksum
