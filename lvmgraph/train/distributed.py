"""Several processes training one model, on PyTorch's process group (docs/DISTRIBUTED.md).

    torchrun --nproc-per-node=2 -m lvmgraph run specs/aae_uniform.yaml     (or: lvmgraph run --nproc 2 ...)

Every process (rank) holds a full replica of the components. At each phase every rank runs the
phase on its own slice of the global batch (``IndexBatcher`` with ``rank``/``world``), then the
gradients of the components the phase updates are averaged across ranks before the optimizer
step, so every rank takes the same step and the replicas stay bit-identical.

Why not ``DistributedDataParallel`` around each component: DDP's reducer expects, per backward,
a gradient for every parameter it registered, and reduces only what flows through ``forward``.
Specs call components through methods (``prior.sample``, ``encoder.encode``: gradients never
reduced), leave parts of a component without a gradient in a phase (a growing generator's later
stages, an unused head: ``find_unused_parameters`` or an error at the next step), and hand whole
components to ops (a gradient penalty calls the critic itself; the op would get the wrapper, not
the component). Averaging the updated components' gradients once the phase's backward is done
is what DDP computes, for any phase (frozen components, several calls, double backward): the
gradient of the mean loss over the global batch (ranks have equal batch sizes and losses are
batch means). The price is no overlap of communication with the backward pass; the gradients go
in few large flat buckets (``BUCKET_BYTES``), all launched before the first is waited on.

Buffers (BatchNorm running statistics) are broadcast from rank 0 after every step, as DDP
broadcasts them before every forward, so replicas end each step identical. Random draws inside
the graph (priors, noise) differ per rank: ranks other than 0 reseed from (seed, rank), and rank 0
keeps the one-process stream. Decisions that must not differ between ranks (a non-finite loss,
a stop signal, what gets logged) go through ``all_true`` / ``any_true`` / ``mean_values``.

With one process (no process group) every method is a no-op and nothing here touches the run.
"""
from __future__ import annotations

import hashlib
import os
import random
import warnings
from typing import Iterable, Sequence

import torch
from torch import nn

BUCKET_BYTES = 25 * 2 ** 20  # DDP's default bucket size


def launched_world() -> int:
    """The number of processes the launcher (torchrun) started; 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_main() -> bool:
    """Whether this process will be rank 0, known before any process group exists."""
    return launched_world() <= 1 or int(os.environ.get("RANK", "0")) == 0


class Replicas:
    """This process's place among the training processes, and the collective operations training
    needs. ``Replicas()`` is the one-process case, where every operation returns at once."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.rank, self.world, self.local_rank = rank, world, local_rank

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Replicas(rank={self.rank}, world={self.world})"

    # ---- agreement -----------------------------------------------------------
    def _reduce_flag(self, flag: bool, op) -> bool:
        import torch.distributed as dist
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._device())
        dist.all_reduce(t, op=op)
        return bool(t.item())

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` holds on every rank (a non-finite loss anywhere is one everywhere)."""
        if not self.active:
            return bool(flag)
        import torch.distributed as dist
        return self._reduce_flag(flag, dist.ReduceOp.MIN)

    def any_true(self, flag: bool) -> bool:
        """True when ``flag`` holds on some rank (a stop signal one rank received stops them all)."""
        if not self.active:
            return bool(flag)
        import torch.distributed as dist
        return self._reduce_flag(flag, dist.ReduceOp.MAX)

    def barrier(self) -> None:
        """Wait until every rank is here (e.g. rank 0 has committed the checkpoint of a stop)."""
        if self.active:
            import torch.distributed as dist
            dist.barrier()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (any picklable value)."""
        if not self.active:
            return obj
        import torch.distributed as dist
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        import torch.distributed as dist
        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def mean_values(self, values: dict[str, float]) -> dict[str, float]:
        """Logged means averaged over the ranks that have each name (every rank, in practice), so
        metrics.jsonl describes the global batch, as a one-process run with the larger batch would."""
        if not self.active:
            return values
        rows = self.all_gather(values)
        names = list(dict.fromkeys(k for row in rows for k in row))
        return {k: sum(row[k] for row in rows if k in row) / sum(k in row for row in rows) for k in names}

    # ---- replicas --------------------------------------------------------------
    def _device(self) -> torch.device:
        import torch.distributed as dist
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def broadcast_tensors(self, tensors: Sequence[torch.Tensor]) -> None:
        """Overwrite ``tensors`` on every rank with rank 0's, in flat buckets."""
        if not self.active:
            return
        import torch.distributed as dist
        for bucket in _buckets([t for t in tensors if t.numel()]):
            flat = torch.cat([t.detach().reshape(-1) for t in bucket])
            dist.broadcast(flat, src=0)
            _unflatten_into(flat, bucket)

    def sync_modules(self, modules: Iterable[nn.Module]) -> None:
        """Every rank gets rank 0's parameters and buffers (as DDP does when it wraps a module)."""
        if self.active:
            with torch.no_grad():
                self.broadcast_tensors([t for m in modules for t in (*m.parameters(), *m.buffers())])

    def sync_buffers(self, modules: Iterable[nn.Module]) -> None:
        """Rank 0's buffers (BatchNorm running statistics) everywhere: each rank's own forward passes
        updated them from its own slice of the batch."""
        if self.active:
            self.broadcast_tensors([b for m in modules for b in m.buffers()])

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Each parameter's ``.grad`` becomes its mean over the ranks. A parameter without a gradient
        (not reached by this phase's loss) has none on every rank, since every rank runs the same
        graph; a NaN on one rank makes the mean NaN on all, so the finite check after is agreed."""
        if not self.active:
            return
        import torch.distributed as dist
        unique = {id(p): p for p in params}  # a component listed twice, or nested in another, counts once
        grads = [p.grad for p in unique.values() if p.grad is not None]
        pending = []
        for bucket in _buckets(grads):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            pending.append((dist.all_reduce(flat, async_op=True), flat, bucket))
        for work, flat, bucket in pending:
            work.wait()
            _unflatten_into(flat.div_(self.world), bucket)

    def digest(self, modules: Iterable[nn.Module]) -> str:
        """sha256 of every parameter and buffer: equal on every rank while the replicas are identical."""
        h = hashlib.sha256()
        for m in modules:
            for t in (*m.parameters(), *m.buffers()):
                h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
                         if t.numel() else b"")
        return h.hexdigest()

    def seed_rank(self, seed: int, step: int = 0) -> None:
        """Ranks other than 0 draw their own noise: reseed from (seed, rank, step); rank 0 keeps its
        stream, the one a one-process run would have."""
        if self.rank == 0:
            return
        derived = int.from_bytes(hashlib.sha256(f"{seed}/{self.rank}/{step}".encode()).digest()[:8], "little")
        torch.manual_seed(derived)
        random.seed(derived)


def _buckets(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Consecutive runs of tensors of one dtype and device, each at most BUCKET_BYTES (or one tensor)."""
    out: list[list[torch.Tensor]] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        last = out[-1] if out else None
        if last is None or last[0].dtype != t.dtype or last[0].device != t.device or size + nbytes > BUCKET_BYTES:
            out.append([t])
            size = nbytes
        else:
            last.append(t)
            size += nbytes
    return out


def _unflatten_into(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


# ---- the process group ---------------------------------------------------------------

_joined = False  # whether `setup` made the process group (one the caller made is theirs to end)


def current() -> Replicas:
    """The replicas of the process group this process belongs to; ``Replicas()`` without one."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return Replicas(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Replicas()


def setup(device: torch.device) -> Replicas:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT, LOCAL_RANK): gloo on the CPU, NCCL on CUDA, where each process takes
    the GPU of its LOCAL_RANK. Without a launcher (WORLD_SIZE unset or 1): one process, nothing
    to join. A process group that already exists is used as it is."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return current()
    if launched_world() <= 1:
        return Replicas()
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed, so it cannot train in several processes")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a note about the default device id)
        dist.init_process_group(backend)
    global _joined
    _joined = True
    return current()


def shutdown() -> None:
    """Leave the process group (at the end of a command, so NCCL does not warn at exit). Also on
    an error path, where another process may be gone: so no collective here."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def leave_together(replicas: Replicas) -> None:
    """After training, every process leaves the process group at once (a barrier, then the
    teardown), before rank 0 goes on alone to evaluate. A process that exited while its peer was
    still connected aborted at interpreter exit now and then ("terminate called without an active
    exception"; measured on a loaded machine: 3 of 60 two-process resumes, against 1 of 209 with
    this); ``python -m lvmgraph`` skips that teardown under torchrun for the rest (__main__.py)."""
    global _joined
    if replicas.active:
        replicas.barrier()
        if _joined:
            shutdown()
            _joined = False


def launch(nproc: int, argv: Sequence[str]) -> int:
    """``lvmgraph run --nproc N ...``: run the same command in N local processes under torchrun's
    elastic agent (``--standalone``: a free local port, one node). Returns the exit code of the
    lowest rank that exited with an error code (e.g. 75 for a stop by SIGTERM; torchrun ends the
    other processes by a signal once one has exited), 1 if all were killed, else 0."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "lvmgraph", *argv])
    try:
        run(args)
    except ChildFailedError as exc:
        codes = [failure.exitcode for _, failure in sorted(exc.failures.items())]
        return next((code for code in codes if code > 0), 1)
    return 0


def without_nproc(argv: Sequence[str]) -> list[str]:
    """The command line without ``--nproc N`` / ``--nproc=N``: what each launched process runs."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out
