"""What an exact resume depends on, recorded in every checkpoint and compared when a run resumes.

A resumed run equals an uninterrupted one only under the conditions it was trained in: the same
model and phases, the same settings, the same torch, thread count, device and world size. Each
checkpoint records them (``conditions``); ``compare`` sorts every difference into

- a refusal: the model or the phases' structure changed (component types and settings, the
  graph, which phases there are, what each updates and minimises, its optimizer type, the
  dataset, stages added or removed). The saved state no longer describes this model;
- a warning, one line per reason: any other spec setting (learning rates, loss weights, batch
  size, `repeat`/`every`, later stages, ...) and the environment (torch version, thread count,
  device, world size). The run continues, but not bit for bit;
- nothing: settings that do not touch the training computation (``IGNORED``), e.g. ``train.steps``.
"""
from __future__ import annotations

import hashlib
import json

import torch

#: spec paths whose changes a resume may make freely: they do not change what is computed
IGNORED = (("name",), ("description",), ("train", "steps"), ("train", "log_every"), ("train", "checkpoint_every"),
           ("train", "sample_every"), ("train", "keep_checkpoints"), ("train", "best"), ("train", "best_mode"),
           ("train", "progress"), ("train", "detect_anomaly"), ("train", "nonfinite"), ("train", "max_skips"),
           ("train", "device"), ("train", "threads"),  # (the device and thread count in use are compared instead)
           ("data", "eval_batch_size"), ("data", "stream"), ("data", "workers"),  # (the same batches either way)
           ("sample",), ("eval",))

#: spec paths where any change is a new model: refused
STRUCTURE = (("components",), ("graph",), ("data", "dataset"))


def _without(spec: dict, paths) -> dict:
    spec = json.loads(json.dumps(spec))  # a deep copy
    for path in paths:
        node = spec
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return spec


def spec_digest(resolved: dict) -> tuple[str, str]:
    """(canonical JSON, sha256) of the parts of a resolved spec that a resume compares."""
    text = json.dumps(_without(resolved, IGNORED), sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(text.encode()).hexdigest()


def conditions(resolved: dict, device: torch.device, world_size: int = 1) -> dict:
    """What this process trains under, as a checkpoint records it."""
    text, digest = spec_digest(resolved)
    return {"spec": text, "spec_sha256": digest, "torch": str(torch.__version__), "threads": torch.get_num_threads(),
            "device": device.type, "world_size": int(world_size)}


def _flat(value, path=()) -> dict:
    """{key path: leaf} of a resolved spec; dicts and lists of dicts (phases, stages) are opened up,
    lists of plain values (``update: [a, b]``) are leaves."""
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in _flat(item, (*path, key)).items()}
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, (*path, i)).items()}
    return {path: value}


def _show(path) -> str:
    return ".".join(map(str, path))


def _json(value) -> str:
    return json.dumps(value, sort_keys=True) if value is not None else "nothing"


def _phase_structure(phase: dict) -> dict:
    minimize = phase.get("minimize")
    terms = sorted([minimize] if isinstance(minimize, str) else (minimize or {}))
    return {"update": phase.get("update"), "minimised terms": terms,
            "optimizer type": (phase.get("optimizer") or {}).get("type")}


def _phase_refusals(old: list, new: list) -> list[str]:
    if len(old) != len(new):
        return [f"the spec has {len(new)} phases, the checkpoint was trained with {len(old)}"]
    out = []
    for i, (a, b) in enumerate(zip(old, new)):
        sa, sb = _phase_structure(a), _phase_structure(b)
        out += [f"phases.{i} {key} changed from {_json(sa[key])} to {_json(sb[key])}" for key in sa if sa[key] != sb[key]]
    return out


def compare(saved: dict, now: dict) -> tuple[list[str], list[str]]:
    """(refusals, warnings) of resuming a checkpoint with ``saved`` conditions under ``now``; each
    entry one line naming what changed, from what, to what."""
    refusals, warnings = [], []
    if saved["spec_sha256"] != now["spec_sha256"]:
        old, new = json.loads(saved["spec"]), json.loads(now["spec"])
        flat_old, flat_new = _flat(old), _flat(new)
        for path in sorted(set(flat_old) | set(flat_new), key=_show):
            a, b = flat_old.get(path), flat_new.get(path)
            if a != b:
                structure = any(path[:len(p)] == p for p in STRUCTURE)
                (refusals if structure else warnings).append(f"{_show(path)} changed from {_json(a)} to {_json(b)}")
        refusals += _phase_refusals(old.get("phases") or [], new.get("phases") or [])
        if (old.get("stages") is None) != (new.get("stages") is None):
            refusals.append("stages: was " + ("removed" if new.get("stages") is None else "added"))
    for key, what in (("torch", "torch version"), ("threads", "thread count"), ("device", "device"),
                      ("world_size", "world size")):
        if saved[key] != now[key]:
            why = (": the data order is the same, but each process's batch slice and random draws differ"
                   if key == "world_size" else "")
            warnings.append(f"{what} changed from {saved[key]} to {now[key]}{why}")
    return refusals, warnings
