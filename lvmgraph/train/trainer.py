"""The training loop: for every step, for every phase, minimise its weighted losses.

    for step:                      one batch per step (each extra `repeat` draws a fresh one)
        for phase in phases:       skipped unless step % every == 0
            loss = sum(weight * term)  over the sub-graph the terms need
            backward; clip; optimizer step on the phase's components only

A spec with ``stages:`` (progressive growing) also has a stage plan: before each step the
trainer hands the stage's resolution and fade-in alpha to every component that grows (see
``Growable``), sets the stage's batch size, and when a stage starts adds the parameters it brings
to the optimizers of the phases that update the component, with fresh optimizer state.

Under torchrun (several processes, ``self.replicas``; see ``distributed``) each process takes its
slice of the global batch, gradients are averaged before every optimizer step, decisions are
agreed between the processes, and only rank 0 writes the run directory.
"""
from __future__ import annotations

import contextlib
import math
import random
import sys
import time
import warnings
from typing import Callable

import torch
from torch import nn

from ..data.loader import IndexBatcher
from ..data.stream import StreamBatcher
from ..experiment import Experiment
from ..spec.errors import SpecError
from . import distributed
from .checkpoint import save_checkpoint
from .exactness import compare, conditions
from .logging import Loggers, LossMeter
from .numerics import any_non_finite, weighted_sum
from .plan import StepPlan
from .rundir import RunDir
from .speed import batch_channels_last, compile_components, modules_channels_last
from .stages import Growable, StagePlan
from .state import StateMismatch, TrainingState


class NonFiniteLoss(FloatingPointError):
    """A loss became NaN or infinite; raised before the optimizer step, so no parameter is touched."""


class TrainingStopped(Exception):
    """SIGTERM or SIGINT arrived: the step under way was finished and checkpointed, then training
    stopped. ``lvmgraph resume RUN`` continues exactly where it stopped."""

    def __init__(self, step: int, signal_name: str, saved: bool):
        self.step, self.signal_name, self.saved = step, signal_name, saved
        where = "a checkpoint was saved at that step" if saved else "no run directory, so nothing was saved"
        super().__init__(f"{signal_name} received: stopped after step {step}; {where}")


@contextlib.contextmanager
def stop_requests(on_signal, *, second_sigint_interrupts: bool = True):
    """While training: SIGTERM and a first SIGINT call ``on_signal(name)`` instead of killing the
    process mid-step (a second SIGINT interrupts at once, unless ``second_sigint_interrupts`` is
    off: under torchrun, which forwards the terminal's Ctrl-C to processes that already got it).
    Only the main thread may install signal handlers; elsewhere (a notebook worker thread) nothing
    is installed."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # a signal the process ignores (SIGINT under nohup or in a background job) stays ignored
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)
                if signal.getsignal(sig) is not signal.SIG_IGN}

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and second_sigint_interrupts:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: stop now
        on_signal(name)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, _, gauss = random.getstate()
    random.setstate((version, tuple(int(x) for x in state["python"]), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_ema(exp, state: dict) -> None:
    """Restore EMA copies from a checkpoint; a checkpoint without them (ema added later) starts them afresh."""
    saved = state.get("ema", {})
    for name, module in exp.ema.items():
        if name in saved:
            module.load_state_dict(saved[name])
        else:
            module.load_state_dict(exp.modules[name].state_dict())


class Trainer:
    def __init__(self, exp: Experiment, run: RunDir | None = None, *, progress: bool | None = None,
                 callbacks: tuple[Callable, ...] = ()):
        self.exp = exp
        self.run = run
        self.spec = exp.spec
        self.train_cfg = exp.spec.train
        self.replicas = distributed.current()
        self.progress = (self.train_cfg.progress if progress is None else progress) and self.replicas.is_main
        self.callbacks = list(callbacks)
        if self.train_cfg.threads:
            torch.set_num_threads(self.train_cfg.threads)
        if self.train_cfg.channels_last:
            modules_channels_last(exp.modules, *exp.ema.values())
        if self.train_cfg.compile:
            compile_components(exp.modules)
        self.executor = exp.executor()
        self.step_plan = StepPlan(self.spec.phases, exp.ema)
        self.plan: StagePlan | None = None
        self.stage_index = 0
        self.growing: list[str] = []
        if self.spec.stages is not None:  # (stage schedules without stages: prepare() refused the spec)
            self._setup_stages()
        self.optimizers = [self._make_optimizer(i, phase) for i, phase in enumerate(self.spec.phases)]
        self.base_lrs = [[g["lr"] for g in opt.param_groups] for opt in self.optimizers]
        precision = self.train_cfg.precision
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scalers = [torch.amp.GradScaler(exp.device.type) if precision == "fp16" else None
                        for _ in self.optimizers]
        data = self.spec.data
        batcher = dict(batch_size=data.batch_size, device=exp.device, seed=self.spec.seed, shuffle=data.shuffle,
                       drop_last=data.drop_last, rank=self.replicas.rank, world=self.replicas.world,
                       augment=exp.data.augment)
        # streamed (data.stream): the same batches, decoded by DataLoader workers (lvmgraph/data/stream.py)
        self.loader = (StreamBatcher(exp.data.train, workers=data.workers, **batcher) if exp.data.streamed
                       else IndexBatcher(exp.data.train, **batcher))
        # every rank checkpoints together (each sends its RNG state) when rank 0 has a run directory
        self.saving = self.replicas.broadcast(run is not None)
        if self.replicas.active:  # start from rank 0's weights; draw per-rank noise from here on
            self.replicas.sync_modules([*exp.modules.values(), *exp.ema.values()])
            self.replicas.seed_rank(self.spec.seed)
        self.world_size = self.replicas.world  # recorded by the exactness entry of every checkpoint
        self._gathered_ranks: list = []  # every rank's own state, gathered by save() for the replicas entry
        self.meter = LossMeter()
        self.step = 0
        self.loggers: Loggers | None = None  # train.loggers, open while fit() runs
        self.last_losses: dict[str, float] = {}
        self.logged_at: int | None = None  # the step of last_losses
        self.skipped = 0  # updates dropped for a non-finite loss or gradient (train.nonfinite: skip)
        if self.plan is not None:
            self._apply_stage(0)
        self.state = self._register_state()
        self.resume_warnings: list[str] = []

    # ---- construction ------------------------------------------------------
    def _setup_stages(self) -> None:
        # prepare() has checked the plan against the components and data (stage_plan_problems)
        self.plan = StagePlan(self.spec.stages, self.spec.data.batch_size)
        self.growing = [name for name, m in self.exp.modules.items() if isinstance(m, Growable)]
        for schedule in self.exp.schedules.values():
            if hasattr(schedule, "bind_stages"):
                schedule.bind_stages(self.plan)

    def _component_params(self, name: str) -> list[nn.Parameter]:
        """The parameters of a component an optimizer holds now: those of the stages reached so far."""
        module = self.exp.modules[name]
        if self.plan is not None and name in self.growing:
            return list(module.stage_parameters(self.plan.stages[self.stage_index].resolution))
        return list(module.parameters())

    def _make_optimizer(self, i: int, phase) -> torch.optim.Optimizer:
        params = [p for c in phase.update for p in self._component_params(c)]
        if not params:
            raise SpecError([self.exp.loaded.source.problem(
                f"the components {phase.update} have no trainable parameters", ("phases", i, "update"))],
                file=self.exp.loaded.path)
        entry = self.exp.registry.get("optimizer", phase.optimizer.type)
        settings = self.exp.loaded.params.get(("phases", i))
        return entry.factory(params, **(dict(settings) if settings is not None else {}))

    # ---- stages (progressive growing) ---------------------------------------
    def _enter_stage(self, index: int) -> None:
        """Stage ``index`` starts: the parameters it brings join the optimizers of the phases that
        update their component, as a new param group (the phase's settings, fresh state); the
        parameters already there keep their state."""
        self.stage_index = index
        for i, (phase, opt) in enumerate(zip(self.spec.phases, self.optimizers)):
            held = {id(p) for group in opt.param_groups for p in group["params"]}
            new = [p for c in phase.update if c in self.growing for p in self._component_params(c)
                   if id(p) not in held]
            new = list({id(p): p for p in new}.values())  # a component listed twice adds its parameters once
            if new:
                opt.add_param_group({"params": new})
                self.base_lrs[i].append(opt.param_groups[-1]["lr"])

    def _apply_stage(self, step: int) -> None:
        """Before ``step``: enter every stage up to the step's (one at a time, so a resumed run adds
        the same param groups in the same order), then hand resolution and alpha to every growing
        component and its EMA copy, and set the stage's batch size."""
        plan = self.plan
        target = plan.index_at(step)
        while self.stage_index < target:
            self._enter_stage(self.stage_index + 1)
        resolution, alpha = plan.resolution_at(step), plan.alpha_at(step)
        for name in self.growing:
            self.exp.modules[name].set_stage(resolution, alpha)
            if name in self.exp.ema:
                self.exp.ema[name].set_stage(resolution, alpha)
        self.loader.batch_size = plan.at(step).batch_size

    # ---- state ---------------------------------------------------------------
    world_size = 1  # processes training together (recorded; a multi-process trainer sets it)

    def _register_state(self) -> TrainingState:
        """Every piece of state a resumed run needs, once, in the order it is restored: a checkpoint
        is exactly these entries (see lvmgraph/train/state.py)."""
        state = TrainingState()
        state.register("exactness", self._conditions, self._check_conditions, guard=True,
                       what="what an exact resume depends on: spec, torch, threads, device, world size")
        state.register("step", lambda: self.step, self._set_step, what="the steps trained")
        state.register("components", self.exp.modules.state_dict, self.exp.modules.load_state_dict,
                       what="every component's parameters and buffers (image pools, stage buffers)")
        state.register("ema", lambda: {name: m.state_dict() for name, m in self.exp.ema.items()},
                       lambda saved: load_ema(self.exp, {"ema": saved}), what="the EMA copies")
        if self.plan is not None:  # the last stage entered: its param groups are in the optimizers
            state.register("stage", lambda: self.stage_index, self._load_stage, what="the stage reached",
                           missing="the checkpoint was written without a stage plan, but this spec has stages:; "
                                   "resume it with the spec it was trained with")
        state.register("optimizers", lambda: [o.state_dict() for o in self.optimizers], self._load_optimizers,
                       what="every phase's optimizer (moments, step counts, param groups)")
        state.register("scalers", lambda: [s.state_dict() if s is not None else {} for s in self.scalers],
                       self._load_scalers, what="the fp16 gradient scalers")
        stateful = {name: s for name, s in self.exp.schedules.items() if callable(getattr(s, "state_dict", None))}
        if stateful:  # schedules are functions of the step; one that keeps a position of its own says so
            state.register("schedules", lambda: {name: s.state_dict() for name, s in stateful.items()},
                           lambda saved: [s.load_state_dict(saved[name]) for name, s in stateful.items()],
                           what="the schedules that keep a position of their own")
        state.register("data", self.loader.state_dict, self.loader.load_state_dict,
                       what="the data position (epoch, place in it, order, shuffling generator)")
        state.register("meter", self.meter.state_dict, self.meter.load_state_dict,
                       what="the losses accumulated since the last log row")
        state.register("skipped", lambda: self.skipped, lambda n: setattr(self, "skipped", int(n)),
                       what="the updates skipped for a non-finite loss")
        state.register("rng", rng_state, set_rng_state, what="the torch, CUDA and Python RNG states")
        # several processes: each rank's RNG streams, open log interval and weight digest (rank 0's are
        # also the entries above); [] from a one-process run. Restored after rng: it overrides it per rank.
        state.register("replicas", lambda: {"ranks": self._gathered_ranks}, self._load_replica_state,
                       what="every process's own RNG states and open log interval (multi-process runs)")
        return state

    def state_dict(self) -> dict:
        return self.state.state_dict()

    def _replica_state(self) -> dict:
        """What differs between ranks and exact resume needs: RNG streams and open log intervals."""
        return {"rng": rng_state(), "meter": self.meter.state_dict(),
                "digest": self.replicas.digest([*self.exp.modules.values(), *self.exp.ema.values()])}

    def _load_replica_state(self, saved: dict | None) -> None:
        """Each rank resumes its own RNG stream and log interval when the checkpoint was written by as
        many processes as there are now; otherwise the run continues, but not exactly."""
        ranks = saved["ranks"] if saved else None  # [] from a one-process run
        world = len(ranks) if ranks else 1
        if world == self.replicas.world:
            if ranks:
                set_rng_state(ranks[self.replicas.rank]["rng"])
                self.meter.load_state_dict(ranks[self.replicas.rank]["meter"])
            return
        # (another process count: the exactness entry has put the reason in resume_warnings)
        if not self.replicas.is_main:
            self.meter = LossMeter()
        self.replicas.seed_rank(self.spec.seed, self.step)

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint; ``resume_warnings`` then lists why the resumed run may differ
        from an uninterrupted one (empty when it continues exactly)."""
        self.resume_warnings = []
        self.state.load_state_dict(state)

    def _conditions(self) -> dict:
        return conditions(self.exp.loaded.resolved(), self.exp.device, self.world_size)

    def _check_conditions(self, saved: dict) -> None:
        refusals, self.resume_warnings = compare(saved, self._conditions())
        if refusals:
            raise StateMismatch("the model or its phases changed since the checkpoint was written, so its state "
                                "does not describe this model:\n  " + "\n  ".join(refusals) +
                                "\nresume with the spec the run was trained with, or start a new run")

    def _set_step(self, step) -> None:
        self.step = int(step)

    def _load_optimizers(self, saved: list) -> None:
        if len(saved) != len(self.optimizers):
            raise StateMismatch(f"the checkpoint has {len(saved)} phases' optimizers, the spec has "
                                f"{len(self.optimizers)} phases")
        for opt, s in zip(self.optimizers, saved):
            opt.load_state_dict(s)

    def _load_scalers(self, saved: list) -> None:
        for scaler, s in zip(self.scalers, saved):
            if scaler is not None and s:  # (fp32 before: a fresh scaler)
                scaler.load_state_dict(s)

    def _load_stage(self, saved) -> None:
        """Re-enter the checkpoint's stages so the optimizers have its param groups, refusing a stage
        plan that puts the steps already trained in another stage."""
        saved, step = int(saved), self.step
        expected = self.plan.index_at(max(step - 1, 0))
        if saved != expected:
            have = self.plan.stages[expected].resolution
            raise ValueError(
                f"the checkpoint at step {step} was trained into stage {saved}, but this spec's stages put "
                f"step {step - 1} in stage {expected} (resolution {have}); keep the stages up to the current one as "
                "the run's spec.yaml has them (only later stages, and the current one's remaining length, may change)")
        while self.stage_index < saved:
            self._enter_stage(self.stage_index + 1)

    def save(self) -> None:
        if not self.saving:
            return
        ranks = self.replicas.all_gather(self._replica_state()) if self.replicas.active else None
        if ranks and len({r["digest"] for r in ranks}) > 1:  # (a bug, or non-deterministic hardware)
            warnings.warn(f"step {self.step}: the replicas' weights differ between processes; "
                          "rank 0's are copied to every process", stacklevel=2)
            self.replicas.sync_modules([*self.exp.modules.values(), *self.exp.ema.values()])
        if self.run is not None:
            cfg = self.train_cfg
            # only a value logged at this very step describes these weights; otherwise no metric
            metric = self.last_losses.get(cfg.best) if cfg.best and self.logged_at == self.step else None
            self._gathered_ranks = ranks or []
            state = self.state_dict()
            save_checkpoint(self.run.checkpoints, self.step, state, keep=cfg.keep_checkpoints,
                            metric=metric, mode=cfg.best_mode)

    # ---- one step ----------------------------------------------------------
    def _weight(self, w) -> float:
        return float(self.exp.schedules[w](self.executor.step)) if isinstance(w, str) else float(w)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.exp.device.type, dtype=self.autocast_dtype)

    def run_phase(self, i: int, phase) -> torch.Tensor | None:
        if self.train_cfg.detect_anomaly:
            with torch.autograd.detect_anomaly(check_nan=True):
                return self._run_phase(i, phase)
        return self._run_phase(i, phase)

    def _run_phase(self, i: int, phase) -> torch.Tensor | None:
        ex, opt, scaler = self.executor, self.optimizers[i], self.scalers[i]
        plan = self.step_plan.phases[i]  # the phase's constants, worked out once (plan.py)
        terms = plan.terms
        ex.set_trainable(plan.update)
        opt.zero_grad(set_to_none=True)
        with self._autocast():
            values = ex.evaluate(terms, updated=plan.updated, token=ex.claim_run(terms, plan.updated))
            with torch.no_grad():
                watched = ex.evaluate(plan.log, updated=plan.updated) if plan.log else {}
        loss = weighted_sum((self._weight(w), values[t].float()) for t, w in zip(terms, plan.weights))
        # one read of the scalar: cheaper than isfinite() (several kernels on CPU) and then bool()
        finite = math.isfinite(loss.item())
        if not self.replicas.all_true(finite):  # every rank skips or raises together
            bad = {t: float(values[t].detach()) for t in terms}
            where = "" if not self.replicas.active else (
                f" on process {self.replicas.rank}" if not finite else " on another process")
            return self._non_finite(opt, f"step {ex.step}, phase '{phase.label}': loss is not finite{where} ({bad})")
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if self.replicas.active:
            self.replicas.average_gradients(p for c in phase.update for p in self.exp.modules[c].parameters())
        if scaler is None:
            # (with fp16 the GradScaler skips steps with Inf gradients itself, by design)
            bad_grads = self._non_finite_gradients(plan.update, opt)
            if bad_grads:
                return self._non_finite(opt, f"step {ex.step}, phase '{phase.label}': the gradient of "
                                             f"{', '.join(bad_grads)} is not finite (loss {float(loss.detach()):.4g})")
        if phase.lr_schedule:
            factor = float(self.exp.schedules[phase.lr_schedule](ex.step))
            for group, base in zip(opt.param_groups, self.base_lrs[i]):
                group["lr"] = base * factor
        if phase.clip_grad_norm:
            if scaler is not None:
                scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, phase.clip_grad_norm)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        ex.mark_updated(plan.update)
        if plan.ema:
            self._update_ema(plan.ema)
        for t in terms:
            self.meter.add(t, values[t])
        for name, value in watched.items():
            self.meter.add(name, torch.as_tensor(value).float().mean())
        if len(terms) > 1:
            self.meter.add(plan.label, loss)
        return loss

    def _non_finite_gradients(self, components, opt: torch.optim.Optimizer) -> list[str]:
        """The components whose gradients hold a NaN or Inf: one fused check of the gradients the
        optimizer would apply in the common (all finite) case, the per-component search only when
        something is wrong."""
        if not any_non_finite([p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]):
            return []
        grads = {c: [p.grad for p in self.exp.modules[c].parameters() if p.grad is not None] for c in components}
        return [c for c, gs in grads.items() if any(not torch.isfinite(g).all() for g in gs)]

    def _non_finite(self, opt: torch.optim.Optimizer, what: str) -> None:
        """A non-finite loss or gradient: raise before the optimizer step, or (train.nonfinite: skip)
        drop this phase's update and count it, raising once more than train.max_skips are skipped."""
        opt.zero_grad(set_to_none=True)
        cfg = self.train_cfg
        if cfg.nonfinite == "skip" and self.skipped < cfg.max_skips:
            self.skipped += 1
            self.meter.add("nonfinite_skipped", torch.tensor(1.0))
            return None
        bound = f" after {self.skipped} skipped updates (train.max_skips {cfg.max_skips})" if cfg.nonfinite == "skip" else ""
        raise NonFiniteLoss(f"{what}; no parameters were updated at this step{bound}")

    @torch.no_grad()
    def _update_ema(self, updated) -> None:
        """ema <- decay * ema + (1 - decay) * weights, after every update of the component; buffers copied."""
        for name in updated:
            if name not in self.exp.ema:
                continue
            decay = self.train_cfg.ema[name]
            avg, live = self.exp.ema[name], self.exp.modules[name]
            for pa, pl in zip(avg.parameters(), live.parameters()):
                pa.lerp_(pl.detach(), 1.0 - decay)
            for ba, bl in zip(avg.buffers(), live.buffers()):
                ba.copy_(bl)

    def _next_batch(self) -> dict:
        batch = self.loader.next()
        return batch_channels_last(batch) if self.train_cfg.channels_last else batch

    def train_step(self) -> None:
        step = self.step
        if self.plan is not None:
            self._apply_stage(step)
            self.meter.add("stage/resolution", torch.tensor(float(self.plan.resolution_at(step))))
            self.meter.add("stage/alpha", torch.tensor(self.plan.alpha_at(step)))
        # the step's phase runs, grouped by the batch they use (each extra critic iteration sees a
        # fresh batch); the executor is told a batch's runs so it can share values between them
        phases = self.spec.phases
        for runs in self.step_plan.batches(step):
            self.executor.begin(self._next_batch(), step, [run for _, run in runs])
            for plan, _ in runs:
                self.run_phase(plan.index, phases[plan.index])
        self.replicas.sync_buffers([*self.exp.modules.values(), *self.exp.ema.values()])
        self.step = step + 1

    # ---- the loop ------------------------------------------------------------
    def fit(self, steps: int | None = None) -> None:
        total = self.train_cfg.steps if steps is None else steps
        cfg = self.train_cfg
        sample_every = cfg.sample_every or cfg.checkpoint_every
        if self.run is not None and self.loggers is None:
            self.loggers = Loggers.open(self.exp, self.run.path)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, initial=self.step, desc=self.spec.name, unit="step", dynamic_ncols=True)
        self.exp.modules.train()
        started = time.perf_counter()
        stop: list[str] = []  # the signal that asked training to stop, if any
        try:
            with stop_requests(stop.append, second_sigint_interrupts=not self.replicas.active):
                self._loop(total, cfg, sample_every, bar, started, stop)
        finally:
            self.executor.trainable_all()
            self.loader.close()  # a streamed dataset's workers; a later fit restarts them where it stopped
            if bar is not None:
                bar.close()
            if self.loggers is not None:
                self.loggers.close()
                self.loggers = None

    def _loop(self, total: int, cfg, sample_every: int, bar, started: float, stop: list) -> None:
        """Steps until ``total``: log, sample and checkpoint on schedule; stop cleanly on a signal."""
        saved_at = None
        first_step = self.step
        while self.step < total:
            self.train_step()
            if bar is not None:
                bar.update(1)
            if self.step % cfg.log_every == 0:
                self._log(time.perf_counter() - started, bar)
            elif self.step == total:
                # an off-schedule last row: the interval stays open (and is checkpointed open), so a
                # run extended by `resume` logs exactly the rows an uninterrupted run would
                self._log(time.perf_counter() - started, bar, peek=True)
            if self.run is not None and (self.step % sample_every == 0 or self.step == total):
                self._write_samples()
            if self.step % cfg.checkpoint_every == 0 or self.step == total:
                self.save()
                saved_at = self.step
            for cb in self.callbacks:
                cb(self)
            if self.step < total and self.replicas.any_true(bool(stop)):  # a signal to one rank stops all
                # the step is complete: checkpoint it (the open log interval is part of the
                # state), so a resume continues exactly as an uninterrupted run would
                if saved_at != self.step:
                    self.save()
                self.replicas.barrier()  # no process exits (torchrun then ends the others) before the save
                raise TrainingStopped(self.step, stop[0] if stop else "another process's signal",
                                      saved=self.saving)
        if self.step == first_step and self.replicas.any_true(bool(self.meter.counts)):
            self._log(time.perf_counter() - started, bar, peek=True)  # resumed at the end: rewrite the last row
        if saved_at != self.step:
            self.save()  # resuming at the end (steps unchanged) still leaves a checkpoint

    def _log(self, elapsed: float, bar, peek: bool = False) -> None:
        values = self.replicas.mean_values(self.meter.peek() if peek else self.meter.flush())
        if not values:
            return
        self.last_losses, self.logged_at = values, self.step
        row = {"step": self.step, **values}
        if self.run is not None:
            self.run.append_metrics(row)
            if self.loggers is not None:
                self.loggers.log(self.step, values)
        if bar is not None:
            bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)

    def _write_samples(self) -> None:
        from ..eval.artifacts import write_sample_grid
        write_sample_grid(self.exp, self.run, self.step)  # the PNG is the record; loggers get scalars only
