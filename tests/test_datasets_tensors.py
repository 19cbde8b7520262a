"""The tensors dataset: arrays from .npz / .npy / .pt files become fields, split by name, by a
second file or by a seeded fraction; a points spec trains on them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lvmgraph.api as lg
from lvmgraph import DataSettingError, DatasetUnavailable
from lvmgraph.spec.errors import SpecError
from lvmgraph_datasets import load_tensors

ROOT = Path(__file__).resolve().parents[1]


def rows(data, split: str) -> list[tuple]:
    fields = getattr(data, split)
    return [tuple(fields["x"][i].tolist()) + (int(fields["y"][i]),) for i in range(len(fields["x"]))]


def test_an_npz_round_trips_with_a_seeded_split(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.integers(0, 4, 50)
    np.savez(tmp_path / "points.npz", x=x, y=y)
    data = load_tensors(path=str(tmp_path / "points.npz"), test_fraction=0.2)
    assert data.fields == ["x", "y"] and data.train["x"].dtype == torch.float32 and data.train["y"].dtype == torch.int64
    assert len(data.test["x"]) == 10 and len(data.train["x"]) == 40
    every = sorted(rows(data, "train") + rows(data, "test"))
    expected = sorted(tuple(np.float32(v).item() for v in r) + (int(c),) for r, c in zip(x, y))
    assert every == expected  # every row once, x and y still aligned
    again, other = (load_tensors(path=str(tmp_path / "points.npz"), test_fraction=0.2, seed=s) for s in (0, 1))
    assert rows(again, "test") == rows(data, "test") != rows(other, "test")
    assert data.info["kind"] == "points" and data.info["num_classes"] == 4


def test_splits_by_name_by_second_file_and_other_formats(tmp_path):
    x_train, x_test = np.ones((6, 1, 4, 4), np.float32) * 0.5, np.zeros((2, 1, 4, 4), np.float32)
    np.savez(tmp_path / "named.npz", x_train=x_train, x_test=x_test, y_train=np.arange(6), y_test=np.arange(2))
    data = load_tensors(path=str(tmp_path / "named.npz"))
    assert torch.equal(data.train["x"], torch.from_numpy(x_train)) and torch.equal(data.test["x"], torch.zeros(2, 1, 4, 4))
    assert data.info["kind"] == "image" and data.info["shape"] == (1, 4, 4) and data.info["num_classes"] == 6

    np.save(tmp_path / "train.npy", np.arange(10.0).reshape(5, 2))
    torch.save({"x": torch.zeros(3, 2)}, tmp_path / "test.pt")
    data = load_tensors(path=str(tmp_path / "train.npy"), test_path=str(tmp_path / "test.pt"))
    assert data.fields == ["x"] and data.train["x"][4].tolist() == [8.0, 9.0] and len(data.test["x"]) == 3

    with pytest.raises(DataSettingError, match=r"outside value_range \[0, 1\]"):
        np.savez(tmp_path / "wide.npz", x_train=x_train * 4 - 2.5, x_test=x_test)  # -0.5
        load_tensors(path=str(tmp_path / "wide.npz"))
    assert load_tensors(path=str(tmp_path / "wide.npz"), value_range=[-1, 1]).info["value_range"] == (-1.0, 1.0)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(DatasetUnavailable, match="missing.npz does not exist"):
        load_tensors(path=str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "ragged.npz", x=np.zeros((5, 2)), y=np.zeros(4))
    with pytest.raises(DataSettingError, match="the arrays differ in length .*x 5, y 4"):
        load_tensors(path=str(tmp_path / "ragged.npz"))
    np.savez(tmp_path / "ok.npz", x=np.zeros((5, 2)))
    with pytest.raises(DataSettingError, match="has no array 'labels'"):
        load_tensors(path=str(tmp_path / "ok.npz"), fields=["x", "labels"])
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DatasetUnavailable, match="cannot read .*junk.npz"):
        load_tensors(path=str(tmp_path / "junk.npz"))


def test_a_points_gan_trains_on_arrays_from_a_file(tmp_path):
    angle = np.random.default_rng(1).uniform(0, 2 * np.pi, 400)
    np.savez(tmp_path / "circle.npz", x=np.stack([np.cos(angle), np.sin(angle)], 1))
    spec = ROOT / "specs" / "gan_ring8.yaml"
    data = f"data={{dataset: tensors, path: {tmp_path / 'circle.npz'}, batch_size: 50}}"
    small = ["components.generator.hidden=[16]", "components.critic.hidden=[16]"]
    run = lg.train(spec, out=tmp_path / "run", evaluate=False, progress=False,
                   overrides=[data, *small, "train.steps=3", "train.log_every=1"])
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]
    with pytest.raises(SpecError, match="data.path: .*ragged.npz: the arrays differ in length"):
        np.savez(tmp_path / "ragged.npz", x=np.zeros((5, 2)), y=np.zeros(4))
        lg.validate(spec, [f"data={{dataset: tensors, path: {tmp_path / 'ragged.npz'}}}"])
