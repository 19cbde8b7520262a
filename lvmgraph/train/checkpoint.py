"""Checkpoints that survive crashes and load without unpickling arbitrary objects.

On disk (docs/CHECKPOINTS.md): ``checkpoints/step_00001000/`` holds ``state.pt`` (tensors and
plain containers, read back with ``torch.load(weights_only=True)``) and ``manifest.json``
(format, step, sha256 and size of every file, optional metric), written last. The directory is
assembled under ``.tmp-…``, every file and the directory fsynced, then renamed into place, so a
directory named ``step_*`` with a manifest is complete. Older checkpoints are evicted only
after the new one is committed, keeping the newest ``keep`` plus the best by metric.
"""
from __future__ import annotations

import collections
import hashlib
import io
import json
import math
import os
import re
import shutil
import time
import warnings
from pathlib import Path

import torch

FORMAT = 1
PREFIX = "step_"
STATE = "state.pt"
MANIFEST = "manifest.json"
MODES = ("min", "max")
_MANIFEST_KEYS = {"format", "step", "created", "torch", "files", "metric"}

_COMMITTED = re.compile(r"^step_(\d+)$")
_REPLACED = re.compile(r"^\.old-step_(\d+)-\d+$")  # a committed checkpoint being replaced by a re-save
_SCRATCH = re.compile(r"^\.(tmp|del)-step_\d+-(\d+)$")  # being written / being evicted
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_MANIFEST_BYTES = 1 << 20


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, does not match its manifest, or cannot be saved."""


# ----------------------------------------------------------------------------- durability

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds (Windows): rename is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------- what may be saved

# Exactly the types torch's weights_only unpickler rebuilds; anything else would save but never load.
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), torch.Size, torch.dtype, torch.device)
_TENSORS = (torch.Tensor, torch.nn.Parameter)
_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set)


def _where(path: tuple) -> str:
    return "state" + "".join(f"[{p!r}]" for p in path)


def check_saveable(state, path: tuple = ()) -> None:
    """Raise CheckpointError naming the first value ``torch.load(weights_only=True)`` could not rebuild."""
    kind = type(state)
    if kind in _TENSORS or kind in _LEAVES:
        return
    if kind in _CONTAINERS:
        if kind in (dict, collections.OrderedDict):
            for key, value in state.items():
                check_saveable(key, path + ("<key>",))
                check_saveable(value, path + (key,))
        else:
            for i, value in enumerate(state):
                check_saveable(value, path + (i,))
        return
    raise CheckpointError(
        f"{_where(path)}: a {kind.__module__}.{kind.__qualname__} cannot go in a checkpoint, which holds only "
        "tensors, numbers, strings, None, lists, tuples, sets and dicts (so that loading never unpickles code); "
        "return plain values from that object's state_dict()")


# ----------------------------------------------------------------------------- names

def step_of(path: Path) -> int | None:
    found = _COMMITTED.match(path.name) or _REPLACED.match(path.name)
    return int(found.group(1)) if found else None


def _dir_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Committed checkpoint directories (named ``step_N``, with a manifest), oldest step first.

    A ``.old-step_N-*`` directory counts for step N when ``step_N`` is absent: a re-save of the
    same step was interrupted between moving the old one aside and renaming the new one in."""
    root = Path(root)
    if not root.is_dir():
        return []
    by_step: dict[int, Path] = {}
    replaced: dict[int, Path] = {}
    for p in root.iterdir():
        step = step_of(p)
        if step is None or not p.is_dir() or not (p / MANIFEST).exists():
            continue
        (by_step if _COMMITTED.match(p.name) else replaced)[step] = p
    for step, p in replaced.items():
        by_step.setdefault(step, p)
    return [by_step[s] for s in sorted(by_step)]


# ----------------------------------------------------------------------------- manifest

def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def _is_int(x) -> bool:
    return type(x) is int


def read_manifest(path: str | Path) -> dict:
    """The checkpoint's manifest, checked against the format (not yet against the files)."""
    path = Path(path)
    file = path / MANIFEST
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    if not file.exists():
        raise CheckpointError(f"{file}: missing, so this checkpoint was never committed "
                              "(a save interrupted before its manifest was written)")
    try:
        if file.is_symlink() or not file.is_file():
            raise ValueError("not a regular file")
        if file.stat().st_size > _MAX_MANIFEST_BYTES:
            raise ValueError(f"{file.stat().st_size} bytes, far more than any manifest")
        manifest = json.loads(file.read_bytes().decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{file}: unreadable manifest ({exc})") from None
    bad = _manifest_problem(manifest)
    if bad:
        raise CheckpointError(f"{file}: {bad}")
    step = step_of(path)
    if step is not None and step != manifest["step"]:
        raise CheckpointError(f"{file}: says step {manifest['step']} but the directory is {path.name}")
    return manifest


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _manifest_problem(m) -> str | None:
    if not isinstance(m, dict):
        return f"a manifest is a JSON object, found {type(m).__name__}"
    if not (_is_int(m.get("format")) and m["format"] == FORMAT):
        return f"checkpoint format {_short(m.get('format'))}, expected {FORMAT} (written by another lvmgraph version?)"
    unknown = sorted(set(m) - _MANIFEST_KEYS, key=str)
    if unknown:
        return f"unknown key {_short(unknown[0])} (format {FORMAT} has {', '.join(sorted(_MANIFEST_KEYS))})"
    if not (_is_int(m.get("step")) and m["step"] >= 0):
        return f"'step' must be a whole number >= 0, found {_short(m.get('step'))}"
    files = m.get("files")
    if not isinstance(files, dict) or STATE not in files:
        return f"'files' must list {STATE} with its sha256 and size"
    for name, meta in files.items():
        if not _FILE_NAME.match(name) or name == MANIFEST:
            return f"'files' lists {_short(name)}, which is not a plain file name inside the checkpoint"
        if not (isinstance(meta, dict) and set(meta) == {"sha256", "bytes"} and isinstance(meta["sha256"], str)
                and _SHA256.match(meta["sha256"]) and _is_int(meta["bytes"]) and meta["bytes"] >= 0):
            return f"'files.{name}' must be {{sha256: 64 hex digits, bytes: size}}, found {_short(meta)}"
    metric = m.get("metric")
    if metric is not None:
        value = metric.get("value") if isinstance(metric, dict) else None
        if not (isinstance(metric, dict) and set(metric) == {"value", "mode"} and metric["mode"] in MODES and (
                value is None or (type(value) in (int, float) and math.isfinite(value)))):
            return f"'metric' must be {{value: finite number or null, mode: min or max}}, found {_short(metric)}"
    return None


# ----------------------------------------------------------------------------- verify and load

def _check_listing(path: Path, manifest: dict) -> None:
    for entry in path.iterdir():
        if entry.name == MANIFEST:
            continue
        if entry.name not in manifest["files"]:
            raise CheckpointError(f"{entry}: not in the manifest, so this is not the checkpoint that was "
                                  "written; remove the extra file")
        if entry.is_symlink() or not entry.is_file():
            raise CheckpointError(f"{entry}: not a regular file; a checkpoint holds regular files only")
    for name in manifest["files"]:
        if not (path / name).exists():
            raise CheckpointError(f"{path / name}: missing (listed in the manifest)")


def _read_verified(file: Path, meta: dict, keep: bool) -> bytes | None:
    """Hash the file (keeping its bytes when ``keep``); raise if size or hash differ from the manifest."""
    size = file.stat().st_size
    if size != meta["bytes"]:
        raise CheckpointError(f"{file}: {size} bytes, the manifest says {meta['bytes']} (truncated or modified)")
    h, parts = hashlib.sha256(), []
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
            if keep:
                parts.append(chunk)
    if h.hexdigest() != meta["sha256"]:
        raise CheckpointError(f"{file}: contents do not match the manifest's sha256 (modified or damaged)")
    return b"".join(parts) if keep else None


def _verify(path: Path, keep_state: bool) -> tuple[dict, bytes | None]:
    """The manifest, the listing and every file's size and sha256 checked -> (manifest, the state's
    bytes when ``keep_state``, read in the same pass that hashed them)."""
    manifest = read_manifest(path)
    _check_listing(path, manifest)
    state = None
    for name, meta in manifest["files"].items():
        data = _read_verified(path / name, meta, keep=keep_state and name == STATE)
        state = data if data is not None else state
    return manifest, state


def verify_checkpoint(path: str | Path) -> dict:
    """Check the manifest, that the directory holds exactly its files, and every size and sha256.
    Returns the manifest; raises CheckpointError naming the offending file."""
    return _verify(Path(path), keep_state=False)[0]


def load_checkpoint(path: str | Path, *, map_location="cpu") -> dict:
    """Verify one checkpoint directory and load its state, never unpickling anything but tensors and
    plain containers. Raises CheckpointError (naming the file) for anything damaged or unsafe."""
    path = Path(path)
    _, data = _verify(path, keep_state=True)
    try:
        with warnings.catch_warnings():  # torch's own notes about odd pickles: the error below says it
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad or unsafe checkpoint
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path / STATE}: cannot be loaded safely ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path / STATE}: holds a {type(state).__name__}, not a checkpoint's dict")
    return state


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest checkpoint that verifies; damaged newer ones are skipped with a warning each."""
    for path in reversed(list_checkpoints(root)):
        try:
            verify_checkpoint(path)
            return path
        except CheckpointError as exc:
            warnings.warn(f"skipping a damaged checkpoint: {exc}", stacklevel=2)
    return None


def _metric_of(path: Path, mode: str | None = None) -> tuple[float, str] | None:
    try:
        metric = read_manifest(path).get("metric")
    except CheckpointError:
        return None
    if not metric or metric["value"] is None or (mode is not None and metric["mode"] != mode):
        return None
    return float(metric["value"]), metric["mode"]


def _best(paths: list[Path], mode: str | None, trusted: Path | None = None) -> Path | None:
    """The verified checkpoint with the best metric (ties: the earliest). ``mode`` None: the mode
    the newest checkpoint with a metric recorded."""
    scored = [(p, m) for p in paths if (m := _metric_of(p, mode)) is not None]
    if not scored:
        return None
    mode = mode or scored[-1][1][1]
    scored = [(p, value) for p, (value, m) in scored if m == mode]
    scored.sort(key=lambda item: item[1] if mode == "min" else -item[1])  # stable: earliest first on ties
    for p, _ in scored:
        if p == trusted:
            return p
        try:
            verify_checkpoint(p)
            return p
        except CheckpointError:
            continue
    return None


def best_checkpoint(root: str | Path, mode: str | None = None) -> Path | None:
    """The verified checkpoint whose manifest records the best metric (``mode`` min or max; default:
    the mode the checkpoints were saved with), or None when none records one."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    return _best(list_checkpoints(root), mode)


# ----------------------------------------------------------------------------- save

def save_checkpoint(root: str | Path, step: int, state: dict, *, keep: int = 3,
                    metric: float | None = None, mode: str = "min") -> Path:
    """Write ``state`` as the committed checkpoint ``root/step_<step>`` and evict old ones.

    Kept afterwards: this checkpoint, the newest ``keep`` (``keep <= 0``: all), and the verified one
    with the best ``metric`` (lowest for ``mode="min"``) among those saved with a metric.
    Checkpoints of later steps (the future of a run that was resumed from an earlier one) are
    removed. Re-saving an existing step replaces it."""
    if not _is_int(step) or step < 0:
        raise ValueError(f"step must be a whole number >= 0, not {step!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    if metric is not None:
        metric = float(metric)
    if not isinstance(state, dict):
        raise CheckpointError(f"a checkpoint's state is a dict, not a {type(state).__name__}")
    check_saveable(state)

    root = Path(root)
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        _fsync_dir(root.parent)
    final = root / _dir_name(step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    _write_durably(tmp / STATE, data)
    manifest = {"format": FORMAT, "step": step, "created": time.time(), "torch": torch.__version__,
                "files": {STATE: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}}}
    if metric is not None:
        manifest["metric"] = {"value": metric if math.isfinite(metric) else None, "mode": mode}
    # the manifest last, itself atomically: a directory is committed only once it is complete
    _write_durably(tmp / (MANIFEST + ".tmp"), json.dumps(manifest, indent=1).encode())
    os.replace(tmp / (MANIFEST + ".tmp"), tmp / MANIFEST)
    _fsync_dir(tmp)

    if final.exists():  # re-saving a step: the old one stays findable (as .old-) until the new one is in
        old = root / f".old-{final.name}-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        tmp.rename(final)
        _fsync_dir(root)
        _evict(old)
    else:
        tmp.rename(final)
        _fsync_dir(root)
    _prune(root, keep, final, mode if metric is not None else None)
    return final


def _evict(path: Path) -> None:
    """Rename out of the committed namespace first, so a crash mid-delete never leaves a torn ``step_*``."""
    gone = path.parent / f".del-{_dir_name(step_of(path))}-{os.getpid()}"
    try:
        if gone.exists():
            shutil.rmtree(gone)
        path.rename(gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def _prune(root: Path, keep: int, newest: Path, mode: str | None) -> None:
    step = step_of(newest)
    complete = list_checkpoints(root)
    future = [p for p in complete if step_of(p) > step]
    for path in future:
        warnings.warn(f"removing {path.name}: this run continued from an earlier checkpoint, "
                      f"so it is no longer this run's future", stacklevel=3)
        _evict(path)
    complete = [p for p in complete if step_of(p) <= step]
    kept = set(complete if keep <= 0 else complete[-keep:]) | {newest}
    best = _best(complete, mode, trusted=newest)
    if best is not None:
        kept.add(best)
    for path in complete:
        if path not in kept:
            _evict(path)
    # leftovers of crashed saves and evictions in other processes, and replaced steps
    for path in root.iterdir():
        scratch = _SCRATCH.match(path.name)
        replaced = _REPLACED.match(path.name)
        if scratch and scratch.group(2) != str(os.getpid()) or (replaced and path not in kept):
            shutil.rmtree(path, ignore_errors=True)
