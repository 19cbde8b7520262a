"""The registry of training state: every piece of state a run needs to continue exactly is
registered once, under a name, with how to read and restore it.

``Trainer.state_dict`` / ``load_state_dict`` are built from this registry, so a new kind of state
is checkpointed as soon as it is registered, and a checkpoint that does not fit the run is refused
before anything is restored:

- an entry the run registers but the checkpoint lacks, or one the checkpoint holds but the run
  does not register, is a ``StateMismatch`` naming every such entry, one line each;
- entries are restored in registration order (the step before the stage before the optimizers,
  the RNG states last), and *guard* entries (the resume conditions, ``exactness.py``) run before
  the completeness check, so a changed spec is reported with its own reasons.

A later kind of state (per-rank RNG states and the world size of a multi-process run, say)
is one more ``register`` call in ``Trainer._register_state`` (or a replaced ``rng`` entry).

The other half of completeness is ``hidden_state``: a component that keeps tensors outside its
``state_dict`` would lose them in every checkpoint, so ``prepare`` refuses it at build time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .checkpoint import CheckpointError


class StateMismatch(CheckpointError, ValueError):
    """A checkpoint does not fit the run it is loaded into (missing or unknown entries, a changed
    spec); the message has one line per problem and says what to do."""


@dataclass(frozen=True)
class StateEntry:
    name: str
    get: Callable[[], Any]
    set: Callable[[Any], None]
    what: str  # one phrase for messages: "the optimizers' moments and step counts"
    missing: str | None = None  # a better message when a checkpoint lacks it (default: generic)
    guard: bool = False  # restored before the completeness check (it checks the checkpoint itself)


class TrainingState:
    """Named get/set pairs; ``state_dict`` is ``{name: get()}`` in registration order."""

    def __init__(self):
        self._entries: dict[str, StateEntry] = {}

    def register(self, name: str, get: Callable[[], Any], set: Callable[[Any], None], *, what: str,
                 missing: str | None = None, guard: bool = False) -> None:
        if name in self._entries:
            raise ValueError(f"training state '{name}' is registered twice")
        self._entries[name] = StateEntry(name, get, set, what, missing, guard)

    def replace(self, name: str, get: Callable[[], Any], set: Callable[[Any], None]) -> None:
        """Swap how a registered entry is read and restored (e.g. RNG states gathered from every rank)."""
        entry = self._entries[name]
        self._entries[name] = StateEntry(name, get, set, entry.what, entry.missing, entry.guard)

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[StateEntry]:
        return list(self._entries.values())

    def state_dict(self) -> dict:
        return {name: entry.get() for name, entry in self._entries.items()}

    def problems(self, state: dict) -> list[str]:
        """Why ``state`` does not fit the registered entries (empty when every key matches)."""
        out = []
        for name, entry in self._entries.items():
            if name not in state:
                out.append(entry.missing or
                           f"the checkpoint has no '{name}' ({entry.what}): it was written by another spec or "
                           f"an lvmgraph that did not save it, so this run cannot continue exactly from it")
        for name in state:
            if name not in self._entries:
                out.append(f"the checkpoint holds '{name}', which this run does not keep: it was written by "
                           f"another spec or lvmgraph version (this run keeps: {', '.join(self._entries)})")
        return out

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise StateMismatch(f"a checkpoint's state is a dict of {', '.join(self._entries)}, "
                                f"not a {type(state).__name__}")
        for entry in self._entries.values():
            if entry.guard and entry.name in state:
                _restore(entry, state[entry.name])
        problems = self.problems(state)
        if problems:
            raise StateMismatch("the checkpoint does not fit this run:\n  " + "\n  ".join(problems))
        for entry in self._entries.values():
            if not entry.guard:
                _restore(entry, state[entry.name])


def _restore(entry: StateEntry, value: Any) -> None:
    try:
        entry.set(value)
    except StateMismatch:
        raise
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:  # e.g. torch's key mismatch
        raise StateMismatch(f"cannot restore '{entry.name}' ({entry.what}) from the checkpoint: {exc}") from exc


# ---- components that keep state outside their state_dict -------------------------------------

_MODULE_INTERNALS = frozenset(vars(nn.Module()))


def _holds_state(value: Any, covered: set[int], depth: int = 0) -> str | None:
    """What in ``value`` a state dict would miss: tensors, modules or generators, also inside
    (nested) lists, tuples, dicts and sets; None when there is nothing. ``covered``: the ids of
    the parameters, buffers and submodules the state dict has (aliases of them are fine, as the
    weight list an ``nn.LSTM`` keeps)."""
    if isinstance(value, (torch.Tensor, nn.Module)) and id(value) in covered:
        return None
    if isinstance(value, torch.Tensor):
        return "a tensor"
    if isinstance(value, nn.Module):
        return f"a {type(value).__name__} module"
    if isinstance(value, torch.Generator):
        return "a torch.Generator (its position would not be saved)"
    if depth < 3 and isinstance(value, (list, tuple, set, frozenset, dict)):
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            found = _holds_state(item, covered, depth + 1)
            if found:
                kind = "dict" if isinstance(value, dict) else type(value).__name__
                return f"a {kind} holding {found.split(' (')[0]}"
    return None


def hidden_state(module: nn.Module) -> list[tuple[str, str]]:
    """[(attribute path, what it holds)] for every attribute of ``module`` or its submodules that
    holds tensors, modules or generators outside the parameters, buffers and submodules a
    ``state_dict`` covers. Such state silently resets when a run resumes from a checkpoint.

    Not found (no way to tell them from settings): plain Python numbers a module updates as it
    runs, such as a call counter; keep those in a buffer too.
    """
    covered = {id(x) for x in (*module.parameters(), *module.buffers(), *module.modules())}
    out = []
    for prefix, sub in module.named_modules():
        # torch's older nn.utils.spectral_norm / weight_norm keep the normalised weight as a plain
        # attribute that a forward pre-hook recomputes from saved parameters and buffers
        derived = {getattr(hook, "name", None) for hook in sub._forward_pre_hooks.values()}
        for attr, value in vars(sub).items():
            if attr in _MODULE_INTERNALS or attr in derived:
                continue
            found = _holds_state(value, covered)
            if found:
                out.append((f"{prefix}.{attr}" if prefix else attr, found))
    return out


def hidden_state_message(name: str, module: nn.Module, found: list[tuple[str, str]]) -> str:
    where = "; ".join(f"'{attr}' is {what}" for attr, what in found)
    return (f"component '{name}' ({type(module).__module__}.{type(module).__name__}) keeps state outside its "
            f"state_dict, which a checkpoint would lose: {where}. Register tensors with "
            f"self.register_buffer(name, tensor) (persistent=False for a constant), modules in nn.ModuleList / "
            f"nn.ModuleDict, parameters in nn.ParameterList; draw random numbers from torch's global RNG")
