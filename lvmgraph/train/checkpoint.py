"""Checkpoints that survive crashes and load without unpickling arbitrary objects.

On disk: ``checkpoints/step_00001000/`` holding ``state.pt`` (tensors and plain containers,
read back with ``torch.load(weights_only=True)``) and ``manifest.json`` (format, step, sha256
of every file), written last. The directory is assembled under a temporary name, fsynced and
renamed into place, so a directory with a valid manifest is always complete. Older
checkpoints are pruned only after the new one is committed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import torch

FORMAT = 1
PREFIX = "step_"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not match its manifest."""


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(root: str | Path, step: int, state: dict, *, keep: int = 3) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".tmp-{PREFIX}{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(state, tmp / "state.pt")
    _fsync_file(tmp / "state.pt")
    manifest = {"format": FORMAT, "step": step, "created": time.time(),
                "files": {"state.pt": {"sha256": _sha256(tmp / "state.pt"), "bytes": (tmp / "state.pt").stat().st_size}}}
    with open(tmp / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step (e.g. resume at a checkpoint): replace atomically
        old = root / f".old-{final.name}-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    _fsync_dir(root)
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    complete = list_checkpoints(root)
    for path in complete[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)
    for stale in root.glob(f".tmp-{PREFIX}*"):
        if stale.is_dir() and not stale.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stale, ignore_errors=True)


def list_checkpoints(root: str | Path) -> list[Path]:
    """Committed checkpoint directories (with a manifest), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "manifest.json").exists()]
    return sorted(found, key=lambda p: p.name)


def verify_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path / 'manifest.json'}: unreadable manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {manifest.get('format')!r}, expected {FORMAT}")
    for name, meta in manifest.get("files", {}).items():
        file = path / name
        if not file.exists():
            raise CheckpointError(f"{file}: missing")
        if file.stat().st_size != meta["bytes"] or _sha256(file) != meta["sha256"]:
            raise CheckpointError(f"{file}: contents do not match the manifest (truncated or modified)")
    return manifest


def load_checkpoint(path: str | Path, *, map_location="cpu") -> dict:
    """Verify and load one checkpoint directory."""
    path = Path(path)
    verify_checkpoint(path)
    try:
        return torch.load(path / "state.pt", map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
        raise CheckpointError(f"{path / 'state.pt'}: cannot load ({exc})") from None


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest checkpoint that verifies; falls back to older ones with a warning."""
    for path in reversed(list_checkpoints(root)):
        try:
            verify_checkpoint(path)
            return path
        except CheckpointError as exc:
            warnings.warn(f"skipping a damaged checkpoint: {exc}", stacklevel=2)
    return None
