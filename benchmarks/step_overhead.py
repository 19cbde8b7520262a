"""Where lvmgraph's time over a hand-written loop goes, per training step.

    python benchmarks/step_overhead.py                       # the 2-D GAN (specs/gan_ring8.yaml)
    python benchmarks/step_overhead.py --case dcgan_fashion_mnist --rounds 40

``step_time.py`` measures the whole step against the plain loop; this script splits the
difference. One Trainer runs the spec, and its phase routine is swapped, block by block, between
versions that add the trainer's per-phase work one piece at a time:

  bare        the executor evaluates the phase's loss, backward, optimizer step: nothing else
  +finite     the loss read once to check that it is finite
  +gradients  the fused check that no gradient holds a NaN or Inf
  +schedule   the learning-rate schedule applied
  +meter      the loss added to the meter
  shipped     ``Trainer.run_phase`` itself (its difference to +meter is what is not itemised)

and ``plain`` is step_time.py's hand-written loop (same modules copied, same data, same
optimizers). All run in turns of ``--block`` steps, in a rotating order, on the same machine at
the same time; the figure is the mean CPU time of a step and its difference to ``bare`` (what
that piece costs) and to ``plain``. The versions are written here from the trainer's own parts,
so they do the same arithmetic as the trainer; ``shipped`` is the trainer unchanged.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_time  # noqa: E402 - the cases and the plain loop

PIECES = ("finite", "gradients", "schedule", "meter")


def phase_routine(trainer, pieces: frozenset):
    """A phase of ``trainer`` doing only the core work plus ``pieces`` (see the module doc)."""
    from lvmgraph.train.numerics import weighted_sum

    def run_phase(i, phase):
        ex, opt, plan = trainer.executor, trainer.optimizers[i], trainer.step_plan.phases[i]
        ex.set_trainable(plan.update)
        opt.zero_grad(set_to_none=True)
        values = ex.evaluate(plan.terms, updated=plan.updated, token=ex.claim_run(plan.terms, plan.updated))
        loss = weighted_sum((trainer._weight(w), values[t].float()) for t, w in zip(plan.terms, plan.weights))
        if "finite" in pieces and not math.isfinite(loss.item()):
            raise FloatingPointError(f"phase {phase.label}: loss is not finite")
        loss.backward()
        if "gradients" in pieces and trainer._non_finite_gradients(plan.update, opt):
            raise FloatingPointError(f"phase {phase.label}: a gradient is not finite")
        if "schedule" in pieces and phase.lr_schedule:
            factor = float(trainer.exp.schedules[phase.lr_schedule](ex.step))
            for group, base in zip(opt.param_groups, trainer.base_lrs[i]):
                group["lr"] = base * factor
        opt.step()
        ex.mark_updated(plan.update)
        if plan.ema:
            trainer._update_ema(plan.ema)
        if "meter" in pieces:
            for t in plan.terms:
                trainer.meter.add(t, values[t])
        return loss
    return run_phase


def measure(case: step_time.Case, rounds: int, block: int, warmup: int = 50) -> dict:
    from lvmgraph.train.trainer import Trainer
    runners = step_time.build(case)
    lvmgraph, plain = runners["lvmgraph"], runners["plain"]
    trainer = lvmgraph.trainer
    versions = {"bare": phase_routine(trainer, frozenset())}
    for k in range(len(PIECES)):
        versions["+" + PIECES[k]] = phase_routine(trainer, frozenset(PIECES[:k + 1]))
    versions["shipped"] = Trainer.run_phase.__get__(trainer)

    def run_version(routine):
        def step():
            trainer.run_phase = routine
            lvmgraph.step()
        return step
    steps = {name: run_version(routine) for name, routine in versions.items()}
    steps["plain"] = plain.step
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.process_time()
            for _ in range(block):
                steps[name]()
            times[name].append((time.process_time() - start) / block)
    mean = {name: statistics.fmean(ts) * 1e6 for name, ts in times.items()}
    return {"case": case.name, "rounds": rounds, "block": block, "mean_us": mean,
            "minus_bare_us": {n: mean[n] - mean["bare"] for n in mean},
            "over_plain": {n: mean[n] / mean["plain"] for n in mean}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", default="gan_ring8", choices=sorted(step_time.CASES))
    p.add_argument("--rounds", type=int, default=150)
    p.add_argument("--block", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = measure(step_time.CASES[args.case], args.rounds, args.block)
    print(f"{result['case']}: mean CPU time per step over {args.rounds} rounds of {args.block} steps")
    print("| version | µs / step | minus bare | / plain |")
    print("|---|---|---|---|")
    for name, us in result["mean_us"].items():
        print(f"| {name} | {us:.0f} | {result['minus_bare_us'][name]:+.0f} | {result['over_plain'][name]:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
