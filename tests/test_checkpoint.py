"""Checkpoints: atomic, verified, pruned after commit, loaded without unpickling arbitrary objects."""
from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import assert_same

import lvmgraph.api as lg
from lvmgraph.experiment import prepare
from lvmgraph.train.checkpoint import (CheckpointError, best_checkpoint, latest_checkpoint, list_checkpoints,
                                       load_checkpoint, save_checkpoint, verify_checkpoint)
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


# ----------------------------------------------------------------------------- the commit protocol

def test_files_are_fsynced_and_the_manifest_committed_last(tmp_path, monkeypatch):
    """The order that makes a committed directory complete: data fsynced, then the manifest written to a
    temporary name, fsynced and renamed, the directory fsynced, then renamed into place and its parent fsynced."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the file behind a descriptor")
    events = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, Path.rename

    def fsync(fd):
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(src).name, Path(dst).name))
        return real_replace(src, dst)

    def rename(self, target):
        events.append(("rename", self.name, Path(target).name))
        return real_rename(self, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(Path, "rename", rename)
    (tmp_path / "ck").mkdir()
    save_checkpoint(tmp_path / "ck", 3, sample_state(3))
    tmp = f".tmp-step_00000003-{os.getpid()}"
    assert events == [("fsync", "state.pt"), ("fsync", "manifest.json.tmp"),
                      ("replace", "manifest.json.tmp", "manifest.json"), ("fsync", tmp),
                      ("rename", tmp, "step_00000003"), ("fsync", "ck")]
    manifest = json.loads((tmp_path / "ck" / "step_00000003" / "manifest.json").read_text())
    assert set(manifest) == {"format", "step", "created", "torch", "files"} and manifest["torch"] == torch.__version__


def test_a_state_that_would_not_load_is_refused_at_save_time_naming_the_value(tmp_path):
    class Opaque:
        pass

    state = sample_state()
    state["components"] = {"pool": {"items": [torch.ones(1), Opaque()]}}
    with pytest.raises(CheckpointError, match=r"state\['components'\]\['pool'\]\['items'\]\[1\]: a .*Opaque"):
        save_checkpoint(tmp_path, 1, state)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing half written
    with pytest.raises(CheckpointError, match="not a list"):
        save_checkpoint(tmp_path, 1, [1, 2])
    # everything torch's safe loader rebuilds is accepted
    ok = {"t": torch.ones(2), "p": torch.nn.Parameter(torch.zeros(1)), "size": torch.Size([2]), "dtype": torch.int8,
          "device": torch.device("cpu"), "set": {1, 2}, "bytes": b"x", "complex": 1j, "tuple": (1, "a", None)}
    assert_same(ok, load_checkpoint(save_checkpoint(tmp_path, 2, ok)))


def test_an_interrupted_resave_leaves_the_old_checkpoint_findable(tmp_path):
    """Re-saving step 5 moves the old one aside as .old-step_5-PID before renaming the new one in; a crash
    between the two renames must not lose step 5."""
    save_checkpoint(tmp_path, 4, sample_state(4), keep=5)
    save_checkpoint(tmp_path, 5, sample_state(5), keep=5)
    aside = tmp_path / ".old-step_00000005-999999"
    (tmp_path / "step_00000005").rename(aside)  # the crash
    assert list_checkpoints(tmp_path)[-1] == aside
    assert latest_checkpoint(tmp_path) == aside
    assert_same(sample_state(5), load_checkpoint(aside))
    save_checkpoint(tmp_path, 5, sample_state(6), keep=5)  # the resumed run re-saves step 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000004", "step_00000005"]
    assert_same(sample_state(6), load_checkpoint(tmp_path / "step_00000005"))


def test_an_interrupted_eviction_is_not_a_checkpoint_and_is_cleaned_up(tmp_path):
    save_checkpoint(tmp_path, 1, sample_state(1), keep=5)
    half = tmp_path / ".del-step_00000000-999999"  # evictions rename first, then delete
    shutil.copytree(tmp_path / "step_00000001", half)
    (half / "state.pt").unlink()
    assert list_checkpoints(tmp_path) == [tmp_path / "step_00000001"]
    save_checkpoint(tmp_path, 2, sample_state(2), keep=5)
    assert not half.exists()


def test_checkpoints_sort_by_step_number_not_by_name(tmp_path):
    for step in (7, 99_999_999, 100_000_000):  # by name, step_100000000 would sort first
        save_checkpoint(tmp_path, step, sample_state(1), keep=5)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000007", "step_99999999", "step_100000000"]
    assert latest_checkpoint(tmp_path).name == "step_100000000"


def test_saving_an_earlier_step_removes_the_abandoned_future(tmp_path):
    """A run resumed from step 2 (because step 3 was damaged) that saves step 3 again owns the future."""
    three = [save_checkpoint(tmp_path, s, sample_state(s), keep=5) for s in (1, 2, 3, 4)]
    flip_byte(three[3] / "state.pt")
    with pytest.warns(UserWarning, match="step_00000004"):
        assert latest_checkpoint(tmp_path) == three[2]
    with pytest.warns(UserWarning, match="removing step_00000004"):
        save_checkpoint(tmp_path, 3, sample_state(30), keep=5)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000001", "step_00000002", "step_00000003"]
    assert_same(sample_state(30), load_checkpoint(tmp_path / "step_00000003"))


# ----------------------------------------------------------------------------- best by metric

def names(root: Path) -> list[str]:
    return [p.name[len("step_"):].lstrip("0") or "0" for p in list_checkpoints(root)]


@pytest.mark.parametrize("mode, best", [("min", 20), ("max", 40)])
def test_keep_last_n_plus_the_best_by_metric(tmp_path, mode, best):
    metrics = {10: 0.5, 20: 0.1, 30: 0.4, 40: 0.9, 50: 0.3, 60: 0.35}
    for step, value in metrics.items():
        save_checkpoint(tmp_path, step, sample_state(step), keep=2, metric=value, mode=mode)
        assert names(tmp_path)[-1] == str(step)  # the newest is always kept
    assert names(tmp_path) == sorted({str(best), "50", "60"}, key=int)
    assert best_checkpoint(tmp_path) == tmp_path / f"step_{best:08d}"
    manifest = json.loads((tmp_path / f"step_{best:08d}" / "manifest.json").read_text())
    assert manifest["metric"] == {"value": metrics[best], "mode": mode}


def test_best_is_kept_when_later_saves_carry_no_metric_and_ties_keep_the_earliest(tmp_path):
    save_checkpoint(tmp_path, 1, sample_state(1), keep=1, metric=0.2)
    save_checkpoint(tmp_path, 2, sample_state(2), keep=1, metric=0.2)  # a tie: the earlier stays best
    save_checkpoint(tmp_path, 3, sample_state(3), keep=1)               # no evaluation at this step
    save_checkpoint(tmp_path, 4, sample_state(4), keep=1)
    assert names(tmp_path) == ["1", "4"]
    assert best_checkpoint(tmp_path).name == "step_00000001"
    save_checkpoint(tmp_path, 5, sample_state(5), keep=1, metric=float("nan"))  # never the best
    save_checkpoint(tmp_path, 6, sample_state(6), keep=1, metric=0.1)
    assert names(tmp_path) == ["6"]  # the new best is also the newest


def test_a_damaged_best_does_not_count_and_the_newest_is_never_evicted(tmp_path):
    save_checkpoint(tmp_path, 1, sample_state(1), keep=1, metric=0.1)
    save_checkpoint(tmp_path, 2, sample_state(2), keep=1, metric=0.2)
    assert names(tmp_path) == ["1", "2"]
    flip_byte(tmp_path / "step_00000001" / "state.pt")
    assert best_checkpoint(tmp_path).name == "step_00000002"  # the best that verifies
    save_checkpoint(tmp_path, 3, sample_state(3), keep=1, metric=0.9)
    assert names(tmp_path) == ["2", "3"]  # 2 is now the best good one; 3 the newest
    assert latest_checkpoint(tmp_path).name == "step_00000003"


def test_metric_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        save_checkpoint(tmp_path, 1, sample_state(1), metric=0.1, mode="lowest")
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(tmp_path, -1, sample_state(1))
    with pytest.raises(ValueError, match="mode"):
        best_checkpoint(tmp_path, mode="up")
    assert best_checkpoint(tmp_path) is None


# ----------------------------------------------------------------------------- a stricter reader

@pytest.mark.parametrize("edit, words", [
    (lambda m: m.update(step=8), "says step 8 but the directory is step_00000003"),
    (lambda m: m.update(extra=1), "unknown key 'extra'"),
    (lambda m: m["files"].clear(), "must list state.pt"),
    (lambda m: m["files"].update({"../state.pt": m["files"]["state.pt"]}), "not a plain file name"),
    (lambda m: m["files"]["state.pt"].update(sha256="abc"), "64 hex digits"),
    (lambda m: m["files"]["state.pt"].update(bytes=True), "64 hex digits"),
    (lambda m: m.update(metric={"value": 1.0, "mode": "best"}), "'metric' must be"),
    (lambda m: m.update(format=True), "checkpoint format True"),
])
def test_a_manifest_that_does_not_follow_the_format_is_refused(three, edit, words):
    manifest = three[-1] / "manifest.json"
    data = json.loads(manifest.read_text())
    edit(data)
    manifest.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=re.escape(words)) as err:
        load_checkpoint(three[-1])
    assert str(err.value).startswith(str(manifest))


def test_a_manifest_with_duplicate_keys_is_refused(three):
    manifest = three[-1] / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text.replace('"step": 3', '"step": 3, "step": 3', 1))
    with pytest.raises(CheckpointError, match="duplicate key 'step'"):
        load_checkpoint(three[-1])


@pytest.mark.parametrize("extra", ["notes.txt", "state.pt.tmp", ".hidden"])
def test_a_file_the_manifest_does_not_list_is_refused_naming_it(three, extra):
    (three[-1] / extra).write_text("x")
    with pytest.raises(CheckpointError, match=re.escape(f"{extra}: not in the manifest")):
        load_checkpoint(three[-1])
    with pytest.warns(UserWarning, match=re.escape(extra)):
        assert latest_checkpoint(three[0].parent) == three[1]


def test_loading_what_is_not_a_checkpoint_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_checkpoint(tmp_path / "step_00000001")
    (tmp_path / "step_00000001").mkdir()
    with pytest.raises(CheckpointError, match="never committed"):
        load_checkpoint(tmp_path / "step_00000001")
