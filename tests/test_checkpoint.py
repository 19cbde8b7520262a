"""Checkpoints: atomic, verified, pruned after commit, loaded without unpickling arbitrary objects."""
from __future__ import annotations

import builtins
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import assert_same

import lvmgraph.api as lg
from lvmgraph.experiment import prepare
from lvmgraph.train.checkpoint import (CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint,
                                       save_checkpoint, verify_checkpoint)
from lvmgraph.train.trainer import Trainer

SPECS = Path(__file__).resolve().parents[1] / "specs"


def sample_state(step: int = 7) -> dict:
    g = torch.Generator().manual_seed(step)
    return {"step": step, "weights": {"w": torch.randn(3, 4, generator=g), "b": torch.arange(5)},
            "list": [torch.ones(2, dtype=torch.float64), 1.5, "text", None, True],
            "rng": torch.get_rng_state(), "nested": {"a": {"b": (1, 2)}}}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- round trip

def test_save_load_round_trip_is_weights_only(tmp_path):
    state = sample_state()
    path = save_checkpoint(tmp_path, 7, state)
    assert path == tmp_path / "step_00000007"
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "state.pt"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["step"] == 7
    assert manifest["files"]["state.pt"]["sha256"] == sha256(path / "state.pt")
    assert manifest["files"]["state.pt"]["bytes"] == (path / "state.pt").stat().st_size
    assert_same(state, load_checkpoint(path))
    # the file itself needs nothing beyond torch's safe loader
    assert_same(state, torch.load(path / "state.pt", weights_only=True))


def test_full_trainer_state_round_trips(tmp_path):
    exp = prepare(lg.load(SPECS / "aae_uniform.yaml", ["train.threads=1", "train.progress=false",
                                                      "components.encoder.hidden=[16]"]), device="cpu")
    tr = Trainer(exp)
    for _ in range(3):
        tr.train_step()
    state = tr.state_dict()
    assert_same(state, load_checkpoint(save_checkpoint(tmp_path, tr.step, state)))
    # Adam moments and step counts are in there
    adam = state["optimizers"][0]["state"][0]
    assert {"exp_avg", "exp_avg_sq", "step"} <= set(adam) and int(adam["step"]) == 3


def test_resaving_a_step_replaces_it(tmp_path):
    save_checkpoint(tmp_path, 5, sample_state(1))
    save_checkpoint(tmp_path, 5, sample_state(2))
    assert [p.name for p in tmp_path.iterdir()] == ["step_00000005"]
    assert_same(sample_state(2), load_checkpoint(tmp_path / "step_00000005"))


# ----------------------------------------------------------------------------- pruning

@pytest.mark.parametrize("keep", [1, 2, 3])
def test_keep_last_n_keeps_the_newest(tmp_path, keep):
    for step in (10, 20, 30, 40, 50):
        save_checkpoint(tmp_path, step, sample_state(step), keep=keep)
        assert list_checkpoints(tmp_path)[-1].name == f"step_{step:08d}"  # the new one is always there
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == [f"step_{s:08d}" for s in (10, 20, 30, 40, 50)[-keep:]]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # nothing else left behind
    assert load_checkpoint(list_checkpoints(tmp_path)[-1])["step"] == 50


# ----------------------------------------------------------------------------- damage

@pytest.fixture
def three(tmp_path) -> list[Path]:
    return [save_checkpoint(tmp_path, s, sample_state(s), keep=5) for s in (1, 2, 3)]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, flip_byte, os.remove])
def test_damaged_state_is_rejected_naming_the_file(three, damage):
    target = three[-1] / "state.pt"
    damage(target)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(three[-1])
    assert str(target) in str(err.value)
    with pytest.raises(CheckpointError):
        verify_checkpoint(three[-1])


def test_missing_or_corrupt_manifest_is_rejected_naming_it(three):
    manifest = three[-1] / "manifest.json"
    manifest.write_text('{"format": 1, "step": 3, "files": {"state.pt": ')  # torn write
    with pytest.raises(CheckpointError, match=str(manifest).replace(".", r"\.")):
        load_checkpoint(three[-1])
    manifest.unlink()
    with pytest.raises(CheckpointError, match=str(manifest).replace(".", r"\.")):
        load_checkpoint(three[-1])
    assert three[-1] not in list_checkpoints(three[-1].parent)  # without a manifest it was never committed


def test_manifest_with_another_format_is_rejected(three):
    manifest = three[-1] / "manifest.json"
    data = json.loads(manifest.read_text())
    data["format"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(three[-1])


def test_latest_falls_back_to_the_previous_good_checkpoint_with_a_warning(three):
    flip_byte(three[-1] / "state.pt")
    with pytest.warns(UserWarning, match="step_00000003"):
        assert latest_checkpoint(three[0].parent) == three[1]
    truncate(three[1] / "state.pt")
    with pytest.warns(UserWarning) as record:
        assert latest_checkpoint(three[0].parent) == three[0]
    assert len(record) == 2
    flip_byte(three[0] / "state.pt")
    with pytest.warns(UserWarning):
        assert latest_checkpoint(three[0].parent) is None


def test_uncommitted_tmp_directory_is_ignored_and_cleaned_up(three):
    root = three[0].parent
    # a save interrupted by a crash in another process: complete files, never renamed into place
    stale = root / ".tmp-step_00000004-999999"
    shutil.copytree(three[-1], stale)
    assert list_checkpoints(root) == three
    assert latest_checkpoint(root) == three[-1]
    save_checkpoint(root, 5, sample_state(5), keep=5)
    assert not stale.exists()
    assert [p.name for p in list_checkpoints(root)][-1] == "step_00000005"


# ----------------------------------------------------------------------------- no arbitrary code

class Payload:
    """Unpickling this runs code that writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def plant(directory: Path, marker: Path, step: int = 9) -> Path:
    """A checkpoint directory whose state.pt is a malicious pickle and whose manifest matches it."""
    directory.mkdir(parents=True)
    torch.save({"step": step, "components": Payload(marker)}, directory / "state.pt")
    manifest = {"format": 1, "step": step, "created": 0.0,
                "files": {"state.pt": {"sha256": sha256(directory / "state.pt"),
                                       "bytes": (directory / "state.pt").stat().st_size}}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    evil = plant(tmp_path / "checkpoints" / "step_00000009", marker)
    verify_checkpoint(evil)  # the hashes match: only the loader stands in the way
    assert latest_checkpoint(evil.parent) == evil
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(evil)
    assert str(evil / "state.pt") in str(err.value)
    assert not marker.exists(), "unpickling ran the payload"

    # the payload is real: an unsafe load does run it
    probe = tmp_path / "probe"
    torch.save({"x": Payload(probe)}, tmp_path / "copy.pt")
    torch.load(tmp_path / "copy.pt", weights_only=False)
    assert probe.read_text() == "ran"
    assert not marker.exists()


def test_opening_a_run_with_a_malicious_checkpoint_refuses(tmp_path):
    run = lg.train(SPECS / "aae_uniform.yaml", out=tmp_path / "run", evaluate=False,
                   overrides=["train.steps=2", "train.threads=1", "train.progress=false",
                              "components.encoder.hidden=[16]", "components.decoder.hidden=[16]",
                              "components.critic.hidden=[16]"])
    marker = tmp_path / "marker"
    plant(run.checkpoints / "step_00000009", marker)  # newer than the real one, so it is picked
    with pytest.raises(CheckpointError, match="state.pt"):
        lg.open_run(run.path)
    with pytest.raises(CheckpointError, match="state.pt"):
        lg.resume(run.path, overrides=["train.steps=12"], evaluate=False)
    assert not marker.exists()
