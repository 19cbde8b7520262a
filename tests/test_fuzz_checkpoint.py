"""Fuzzing checkpoints (RELIABILITY.md, "Checkpoints").

1. The loader: a checkpoint damaged in any way hypothesis finds (truncated, bytes flipped, files
   missing or extra, the manifest torn or rewritten, hashes wrong, a pickle that runs code) either
   loads or raises CheckpointError naming the file: never another exception, never a torch
   traceback, never a line of the payload run; ``latest_checkpoint`` falls back to the previous
   good checkpoint.
2. SIGKILL: a child process trains a tiny GAN, checkpointing every step with keep-last 1, and is
   killed at seeded random moments (many inside a save). After every kill the newest checkpoint
   verifies and equals, tensor for tensor, the state an uninterrupted run had at that step; the
   run then resumed to the end equals the uninterrupted run (every tensor and every logged loss).
   Children are forked from this process, so each kill costs a fraction of a second, not an import.
"""
from __future__ import annotations

import builtins
import hashlib
import io
import json
import multiprocessing
import os
import pickle
import random
import re
import shutil
import signal
import time
import traceback
import warnings
from pathlib import Path

import pytest
import torch
from helpers import assert_same
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lvmgraph.api as lg
from lvmgraph.train.checkpoint import (CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint,
                                       save_checkpoint, verify_checkpoint)

ROOT = Path(__file__).resolve().parents[1]
_EXPLORE = int(os.environ.get("LVMGRAPH_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_EXPLORE or 150, deadline=None, derandomize=not _EXPLORE, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ============================================================================= 1. the loader

def sample_state(step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    return {"step": step, "components": {"w": torch.randn(6, 5, generator=g), "b": torch.arange(7)},
            "optimizers": [{"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(6, 5, generator=g)}},
                            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]}],
            "rng": {"torch": torch.get_rng_state()[:32], "python": list(range(20))}, "note": "text", "none": None}


class Payload:
    """Unpickling this writes a marker file: proof that a loader ran code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",)


class ShellPayload(Payload):
    """The same through a shell command."""

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rewrite_manifest_for(path: Path) -> None:
    """Make the manifest match whatever the files now hold (a damaged write that was then hashed,
    or someone swapping the files on purpose): only the loader itself stands in the way."""
    manifest = {"format": 1, "step": int(path.name.split("_")[1]), "created": 0.0,
                "files": {p.name: {"sha256": sha256(p.read_bytes()), "bytes": p.stat().st_size}
                          for p in sorted(path.iterdir()) if p.name != "manifest.json" and p.is_file()}}
    (path / "manifest.json").write_text(json.dumps(manifest))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2, 2**40) | st.floats() | st.text(max_size=70),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                max_size=3), max_leaves=6)
NAMES = st.sampled_from(["state.pt", "manifest.json", "evil.pt", "../escape", ".hidden", "sub/dir", "x" * 200,
                         "README", "state.pt.tmp", "manifest.json.tmp"])

DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.sampled_from(["state.pt", "manifest.json"]), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.sampled_from(["state.pt", "manifest.json"]), st.lists(st.floats(0, 0.9999),
                                                                                     min_size=1, max_size=4)),
    st.tuples(st.just("splice"), st.sampled_from(["state.pt", "manifest.json"]), st.floats(0, 1),
              st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("remove"), st.sampled_from(["state.pt", "manifest.json"])),
    st.tuples(st.just("extra_file"), st.sampled_from(["README", "evil.pt", ".hidden", "state.pt.tmp"]),
              st.binary(max_size=32)),
    st.tuples(st.just("extra_dir"), st.sampled_from(["sub", "state.pt.d"])),
    st.tuples(st.just("manifest_set"), st.sampled_from(["format", "step", "files", "metric", "created"]), JSON),
    st.tuples(st.just("manifest_file_set"), st.sampled_from(["sha256", "bytes"]), JSON),
    st.tuples(st.just("manifest_list"), NAMES),
    st.tuples(st.just("manifest_text"), JSON),
    st.tuples(st.just("wrong_hash"), st.integers(0, 63)),
    st.tuples(st.just("wrong_size"), st.sampled_from([-5, -1, 1, 7])),
    st.tuples(st.just("evil_pickle"), st.sampled_from(["exec", "system", "raw"])),
    st.tuples(st.just("swap_state"), st.sampled_from(["list", "tensor", "text", "other_step"])),
)


def _manifest(path: Path) -> dict | None:
    """The manifest as JSON when an earlier hit left it a usable object, else None."""
    try:
        m = json.loads((path / "manifest.json").read_text())
        ok = isinstance(m, dict) and isinstance(m.get("files"), dict) and isinstance(m["files"].get("state.pt"), dict)
        return m if ok and {"sha256", "bytes"} <= set(m["files"]["state.pt"]) else None
    except (OSError, ValueError):
        return None


def damage(path: Path, kind: str, *args, marker: Path) -> None:
    """One hit; a hit whose target an earlier hit already removed or garbled does nothing."""
    state, manifest = path / "state.pt", path / "manifest.json"
    if kind in ("truncate", "flip", "splice"):
        file = path / args[0]
        if not file.is_file() or not file.stat().st_size:
            return
        data = bytearray(file.read_bytes())
        if kind == "truncate":
            data = data[: int(args[1] * len(data))]
        elif kind == "flip":
            for at in args[1]:
                data[int(at * len(data))] ^= 0x5A
        else:
            at = int(args[1] * len(data))
            data[at:at + len(args[2])] = args[2]
        file.write_bytes(bytes(data))
    elif kind == "remove":
        (path / args[0]).unlink(missing_ok=True)
    elif kind == "extra_file":
        (path / args[0]).write_bytes(args[1])
    elif kind == "extra_dir":
        (path / args[0]).mkdir(exist_ok=True)
    elif kind == "manifest_text":
        manifest.write_text(json.dumps(args[0]))
    elif kind in ("manifest_set", "manifest_file_set", "manifest_list", "wrong_hash", "wrong_size"):
        m = _manifest(path)
        if m is None:
            return
        entry = m["files"]["state.pt"]
        if kind == "manifest_set":
            m[args[0]] = args[1]
        elif kind == "manifest_file_set":
            entry[args[0]] = args[1]
        elif kind == "manifest_list":
            m["files"][args[0]] = dict(entry)
        elif kind == "wrong_hash":
            if not (isinstance(entry["sha256"], str) and len(entry["sha256"]) == 64):
                return
            digits = list(entry["sha256"])
            digits[args[0]] = "0" if digits[args[0]] != "0" else "1"
            entry["sha256"] = "".join(digits)
        elif kind == "wrong_size" and isinstance(entry["bytes"], int):
            entry["bytes"] += args[0]
        manifest.write_text(json.dumps(m))
    elif kind == "evil_pickle":
        if args[0] == "exec":
            torch.save({"step": 2, "components": Payload(str(marker))}, state)
        elif args[0] == "system":
            torch.save({"step": 2, "x": ShellPayload(str(marker))}, state, pickle_protocol=4)
        else:  # a bare pickle (not torch's zip format) calling os.system
            state.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
        rewrite_manifest_for(path)
    elif kind == "swap_state":
        value = {"list": [1, 2], "tensor": torch.ones(3), "text": "hello", "other_step": sample_state(99)}[args[0]]
        torch.save(value, state)
        rewrite_manifest_for(path)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    for step in (1, 2):
        save_checkpoint(root, step, sample_state(step), keep=5)
    return root


@FUZZ
@given(hits=st.lists(DAMAGE, min_size=1, max_size=3))
def test_a_damaged_checkpoint_loads_or_is_refused_clearly_and_never_runs_code(pristine, tmp_path_factory, hits):
    root = tmp_path_factory.mktemp("fuzzed")
    shutil.rmtree(root)
    shutil.copytree(pristine, root)
    target, good = root / "step_00000002", root / "step_00000001"
    marker = root.parent / f"{root.name}.marker"
    for hit in hits:
        damage(target, *hit, marker=marker)

    try:
        state = load_checkpoint(target)
    except CheckpointError as exc:
        message = str(exc)
        assert message.startswith(str(target)), message  # names the checkpoint's file
        assert "Traceback" not in message and "\n" not in message and len(message) < 600, message
        event("refused: " + re.sub(r"\d+|'.*?'", "N", message[len(str(target)):]).split("(")[0][:60])
        refused = True
    else:
        assert isinstance(state, dict)
        event("loaded")
        refused = False
    assert not marker.exists(), "loading ran code from the checkpoint"

    # verify_checkpoint agrees on the bytes; the loader may refuse more (a pickle that is not plain data)
    try:
        verify_checkpoint(target)
        verified = True
    except CheckpointError:
        verified = False
    assert verified or refused
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        latest = latest_checkpoint(root)
    if verified:
        assert latest == target and not caught
    elif target in list_checkpoints(root):  # committed but damaged: skipped with a warning naming it
        assert latest == good and any(target.name in str(w.message) for w in caught)
    else:  # without a manifest it was never committed
        assert latest == good
    assert load_checkpoint(good)["step"] == 1
    assert not marker.exists()


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_with_a_matching_manifest_never_escape_as_another_error(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("bytes")
    path = save_checkpoint(root, 3, sample_state(3))
    (path / "state.pt").write_bytes(data)
    rewrite_manifest_for(path)
    with pytest.raises(CheckpointError, match="state.pt"):
        load_checkpoint(path)


def test_every_single_byte_of_a_real_checkpoint_is_covered(tmp_path):
    """Flip bytes of a small checkpoint one at a time (every byte of the manifest, every 5th of the state):
    every flip is caught, by the hash or by the manifest check."""
    path = save_checkpoint(tmp_path, 4, {"w": torch.arange(3.0)})
    for name, stride in (("state.pt", 5), ("manifest.json", 1)):
        original = (path / name).read_bytes()
        for i in range(0, len(original), stride):
            data = bytearray(original)
            data[i] ^= 0x01
            (path / name).write_bytes(bytes(data))
            try:
                load_checkpoint(path)
            except CheckpointError:
                continue
            finally:
                (path / name).write_bytes(original)
            # only a flip inside the informational values may pass: 'created' (a time) and 'torch' (a version)
            assert name == "manifest.json", f"a flipped byte {i} in {name} went unnoticed"
            before, after = json.loads(original), json.loads(bytes(data))
            assert {k for k in before if before[k] != after.get(k)} <= {"created", "torch"}, i
            assert before.keys() == after.keys(), i
    assert load_checkpoint(path)["w"].tolist() == [0.0, 1.0, 2.0]


# ============================================================================= 2. SIGKILL

SPEC = ROOT / "specs" / "gan_ring8.yaml"
TINY = ["components.generator.hidden=[8]", "components.critic.hidden=[8]", "data.batch_size=16",
        "data.n_train=256", "data.n_test=64", "train.threads=1", "train.progress=false", "train.log_every=3",
        "train.checkpoint_every=1", "train.sample_every=100000", "eval.metrics=[]"]
FOREVER = 10**6  # the killed run's nominal length; it is finished with --set train.steps=N at the end
_CTX = multiprocessing.get_context("fork")


def _child(run_dir: str, fresh: bool, overrides: list[str], started, record: str | None) -> None:
    """Train or resume; tell the parent when the first step is done; optionally record every step's state."""
    try:
        states = {}

        def callback(trainer):
            started.set()
            if record:  # serialised now: a state_dict holds the live tensors, which keep changing
                buffer = io.BytesIO()
                torch.save(trainer.state_dict(), buffer)
                states[trainer.step] = buffer.getvalue()

        if fresh:
            # lvmgraph seeds torch but not Python's `random`, whose state it checkpoints: give every fresh run
            # the same one, so that the killed run and the uninterrupted one can be compared bit for bit
            random.seed(0)
            lg.train(SPEC, out=run_dir, overrides=overrides, evaluate=False, progress=False, callbacks=(callback,))
        else:
            lg.resume(run_dir, overrides=overrides, evaluate=False, progress=False, callbacks=(callback,))
        if record:
            torch.save(states, record)
        started.set()
    except BaseException:  # noqa: BLE001 - report and leave with a failure code the parent checks
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def _run_child(run_dir: Path, fresh: bool, overrides: list[str], record: Path | None = None,
               timeout: float = 120.0) -> None:
    started = _CTX.Event()
    p = _CTX.Process(target=_child, args=(str(run_dir), fresh, overrides, started, str(record) if record else None))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail(f"the child training {run_dir} did not finish within {timeout} s")
    assert p.exitcode == 0, f"the child training {run_dir} failed (exit code {p.exitcode}); see its stderr"


def _warm_up() -> None:
    """Import, in this process, what a run imports lazily, so forked children start at once."""
    from lvmgraph.eval import artifacts, images  # noqa: F401  (matplotlib for the sample grid)
    from lvmgraph.train import logging as _logging  # noqa: F401
    lg.load(SPEC, TINY)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimizer imports torch._dynamo (seconds)
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        pass


class KillLog:
    def __init__(self):
        self.kills = 0
        self.in_save = 0  # kills that left a checkpoint half written, half replaced or half evicted
        self.before_first = 0
        self.steps: list[int] = []  # the newest checkpoint's step after each kill
        self.leftovers: set[str] = set()


def _check_after_kill(run_dir: Path, log: KillLog, seen: dict) -> None:
    """The run directory holds a loadable newest checkpoint (or none yet); remember its state for later."""
    ckpts = run_dir / "checkpoints"
    leftovers = {p.name for p in ckpts.glob(".*") if p.name.startswith((".tmp-", ".old-", ".del-"))}
    if leftovers - log.leftovers:  # new ones (their names hold the killed child's pid)
        log.in_save += 1
    log.leftovers = leftovers
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no committed checkpoint may be damaged by a kill
        latest = latest_checkpoint(ckpts)
    for path in list_checkpoints(ckpts):
        verify_checkpoint(path)  # every committed one verifies, not just the newest
    if latest is None:
        assert not log.steps, "a kill lost every checkpoint after one had been committed"
        log.before_first += 1
        return
    state = load_checkpoint(latest)
    step = int(state["step"])
    assert not log.steps or step >= log.steps[-1], f"a kill went back from step {log.steps[-1]} to {step}"
    log.steps.append(step)
    seen[step] = state


def _kill_runs(base: Path, seed: int, kills: int, overrides: list[str]) -> tuple[Path, KillLog, dict]:
    """Start, kill, resume, kill, ... one run until ``kills`` kills have happened."""
    rng = random.Random(seed)
    run_dir = base / "killed"
    log, seen = KillLog(), {}
    while log.kills < kills:
        if run_dir.exists() and latest_checkpoint(run_dir / "checkpoints") is None:
            shutil.rmtree(run_dir)  # killed before the first checkpoint: start over, as a user would
        fresh = not run_dir.exists()
        started = _CTX.Event()
        p = _CTX.Process(target=_child, args=(str(run_dir), fresh,
                                              [*overrides, f"train.steps={FOREVER}"] if fresh else [], started, None))
        p.start()
        if log.kills < 3:  # as soon as a fresh run has its directory: before its first checkpoint
            deadline = time.monotonic() + 60
            while not (run_dir / "spec.yaml").exists() and time.monotonic() < deadline:
                time.sleep(0.001)
        elif rng.random() < 0.1:
            time.sleep(rng.uniform(0.0, 0.2))  # during start-up: spec, data, build, metrics rewind, first step
        else:
            if not started.wait(60):
                p.kill()
                p.join()
                pytest.fail("a child never finished its first step")
            time.sleep(rng.uniform(0.0, 0.15))
        assert p.is_alive(), f"the child ended by itself (exit code {p.exitcode})"
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        assert p.exitcode == -signal.SIGKILL
        log.kills += 1
        _check_after_kill(run_dir, log, seen)
    return run_dir, log, seen


def _sigkill_fuzz(base: Path, seed: int, kills: int, keep: int, finished_kills: int) -> KillLog:
    overrides = [*TINY, f"train.keep_checkpoints={keep}", f"seed={seed % 3}"]
    _warm_up()
    run_dir, log, seen = _kill_runs(base, seed, kills, overrides)
    assert log.steps, "no kill came after a checkpoint"
    total = max(log.steps) + 7  # a few more steps past the furthest kill, ending off the log schedule

    # the same run without interruption, recording its state after every step
    record = base / "reference.pt"
    _run_child(base / "straight", True, [*overrides, f"train.steps={total}"], record=record)
    reference = {step: torch.load(io.BytesIO(data), weights_only=True)
                 for step, data in torch.load(record, weights_only=True).items()}
    for step, state in seen.items():  # every checkpoint a kill left behind is the uninterrupted run's state
        assert_same(state, reference[step], f"checkpoint at step {step}")

    # resume the killed run to the end: identical to the uninterrupted one, tensors and logged losses
    _run_child(run_dir, False, [f"train.steps={total}"])
    _assert_same_run(run_dir, base / "straight", total)

    # kills while resuming the finished run (it re-saves its last step: the replace-in-place path)
    rng = random.Random(seed + 1)
    for _ in range(finished_kills):
        started = _CTX.Event()
        p = _CTX.Process(target=_child, args=(str(run_dir), False, [], started, None))
        p.start()
        time.sleep(rng.uniform(0.0, 0.2))
        if p.is_alive():  # (a child that already finished is simply checked)
            os.kill(p.pid, signal.SIGKILL)
            log.kills += 1
        p.join()
        _check_after_kill(run_dir, log, seen)
        assert log.steps[-1] == total
        assert_same(seen[total], reference[total], "the finished run's checkpoint")
    _run_child(run_dir, False, [])  # one more resume repairs anything a kill left half done (the last log row)
    _assert_same_run(run_dir, base / "straight", total)
    return log


def _assert_same_run(a: Path, b: Path, total: int) -> None:
    sa, sb = (load_checkpoint(latest_checkpoint(run / "checkpoints")) for run in (a, b))
    assert sa["step"] == sb["step"] == total
    assert_same(sa, sb, "final state")
    rows = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    assert rows == [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == total


def test_sigkill_at_random_moments_never_loses_a_checkpoint_and_resume_is_exact(tmp_path, capsys):
    started = time.perf_counter()
    log = _sigkill_fuzz(tmp_path, seed=0, kills=52, keep=1, finished_kills=4)
    assert log.kills >= 52
    assert log.in_save >= 5, "few kills landed inside a save; the fuzz is not testing what it should"
    with capsys.disabled():
        print(f"\nSIGKILL fuzz: {log.kills} kills, {log.in_save} inside a save, {log.before_first} before the "
              f"first checkpoint, steps reached {log.steps[-1]}, {time.perf_counter() - started:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("seed, keep", [(1, 1), (2, 2), (3, 3)])
def test_sigkill_many_more_kills(tmp_path, seed, keep, capsys):
    log = _sigkill_fuzz(tmp_path, seed=seed, kills=300, keep=keep, finished_kills=20)
    assert log.in_save >= 10
    with capsys.disabled():
        print(f"\nSIGKILL fuzz seed {seed} keep {keep}: {log.kills} kills, {log.in_save} inside a save")


def test_a_pickled_payload_beside_a_checkpoint_is_never_loaded(tmp_path):
    """A malicious file dropped into a committed checkpoint makes it refused, and is never unpickled."""
    marker = tmp_path / "marker"
    good = save_checkpoint(tmp_path / "ck", 1, sample_state(1), keep=5)
    path = save_checkpoint(tmp_path / "ck", 2, sample_state(2), keep=5)
    with open(path / "evil.pt", "wb") as f:
        pickle.dump(Payload(str(marker)), f)
    with pytest.raises(CheckpointError, match="evil.pt: not in the manifest"):
        load_checkpoint(path)
    with pytest.warns(UserWarning, match="evil.pt"):
        assert latest_checkpoint(tmp_path / "ck") == good
    assert not marker.exists()
