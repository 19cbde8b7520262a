"""Step time of lvmgraph against hand-written PyTorch: the same model, data and batch, three ways.

    python benchmarks/step_time.py                       # all cases; writes the JSON and the table
    python benchmarks/step_time.py --steps 100 --only gan_ring8 --no-write

For each case (a shipped spec), one training step is run

  lvmgraph    ``Trainer.train_step()`` on the spec as shipped (its executor, meter and checks);
  plain       a hand-written loop: the spec's own modules (copies of the built components, so
              the same weights), the dataset preloaded as one tensor and batched by index, the
              same optimizers, losses and step order — the fastest plain way to write it;
  dataloader  the same loop fed by ``torch.utils.data.DataLoader`` over a per-sample Dataset of
              the already-decoded tensors (the cheapest DataLoader; ``num_workers=0``, as the CPU
              is shared with the training);
  torchvision for the image cases, the usual style of torchvision's examples: its own dataset
              class (``torchvision.datasets.FashionMNIST``, read from the local IDX files) turning
              each sample into a PIL image and through ``transforms``, then the same DataLoader.

All three do the same arithmetic: before timing, the script runs a few steps of each from the
same weights and seed and checks that they produce the same losses. Each step is timed on its
own after a warm-up; the variants take turns in short blocks, in a rotating order (A B C, B C A,
C A B, ...), so that load from other processes and the cost of following another variant fall on
all alike. The headline figure is the mean CPU time of a step (process time; with one thread it
is the step's own work, which other processes inflate far less than the wall-clock time): the
mean is the throughput a user gets, once-per-epoch costs (a new DataLoader iterator, a reshuffle)
included, which a median leaves out. The median CPU time and the wall-clock times are recorded
too. lvmgraph's difference to each other variant is also taken round by round (the blocks of one
round run back to back, so slow drifts in the machine's load cancel) and reported with its 95%
interval: lvmgraph is faster than a variant when the whole interval is below zero. The ratios to plain go to ``benchmarks/results/step_time.json`` and to the table in
docs/BENCHMARKS.md (between the ``step_time.py`` markers), with the machine they ran on.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
JSON_OUT = ROOT / "benchmarks" / "results" / "step_time.json"
DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- step_time.py: begin -->", "<!-- step_time.py: end -->"
VARIANTS = ("lvmgraph", "plain", "dataloader", "torchvision")


# ---------------------------------------------------------------- the hand-written steps
# Each takes the modules (by spec name), one optimizer per phase, the batch's x and the step
# number, runs the spec's phases in order and returns the losses it minimised.

def _gan_step(m, opts, critic_input: Callable, gen_name: str, critic_name: str, noise_name: str,
              lr: float | None = None):
    """Non-saturating GAN: the discriminator on real and generated, then the generator through it.
    Generates once per step (the discriminator sees the fakes detached), as pytorch/examples/dcgan does."""
    from lvmgraph_core.losses import gan_discriminator_loss, gan_generator_loss
    G, D = m[gen_name], m[critic_name]

    def step(x, step_no):
        if lr is not None:  # the spec's linear decay of the learning rate to 0 over 20000 steps
            for opt in opts:
                for group in opt.param_groups:
                    group["lr"] = lr * (1.0 - min(step_no / 20000, 1.0))
        fake = G(m[noise_name].sample(like=x))
        D.requires_grad_(True)
        opts[0].zero_grad(set_to_none=True)
        d_loss = gan_discriminator_loss(D(critic_input(x)), D(critic_input(fake.detach())))
        d_loss.backward()
        opts[0].step()
        D.requires_grad_(False)  # the generator's loss flows through D without computing D's weight gradients
        opts[1].zero_grad(set_to_none=True)
        g_loss = gan_generator_loss(D(critic_input(fake)))
        g_loss.backward()
        opts[1].step()
        return [d_loss.detach(), g_loss.detach()]
    return step


def dcgan_step(m, opts):
    return _gan_step(m, opts, lambda v: v, "generator", "discriminator", "noise")


def ring8_step(m, opts):
    from lvmgraph_gan.ops import pack
    return _gan_step(m, opts, lambda v: pack(v, 2), "generator", "critic", "prior", lr=1e-3)


def vae_step(m, opts):
    """-ELBO = E_q[-log p(x|z)] + KL(q(z|x) || p(z)), one reparameterised draw."""
    from lvmgraph_core.losses import kl, nll
    enc, dec, prior = m["encoder"], m["decoder"], m["prior"]

    def step(x, step_no):
        opts[0].zero_grad(set_to_none=True)
        q = enc(x)
        loss = nll(dec(q.rsample()), x) + kl(q, prior)
        loss.backward()
        opts[0].step()
        return [loss.detach()]
    return step


# ---------------------------------------------------------------- torchvision's own dataset class

def fashion_mnist_transforms(pad: int, to_symmetric: bool):
    """The transforms torchvision's examples chain for these specs' data: pad 28 -> 32 with
    background, to a [0, 1] tensor, then to [-1, 1] when the spec's value range is."""
    from torchvision import transforms
    steps = [transforms.Pad(pad)] if pad else []
    steps.append(transforms.ToTensor())
    if to_symmetric:
        steps.append(transforms.Normalize((0.5,), (0.5,)))
    return transforms.Compose(steps)


def torchvision_fashion_mnist(folder: Path, transform) -> torch.utils.data.Dataset:
    """``torchvision.datasets.FashionMNIST(train=True)`` on the IDX files found on this machine,
    unpacked into ``folder`` in torchvision's ``FashionMNIST/raw/`` layout (nothing is downloaded)."""
    import gzip
    import shutil

    from lvmgraph_datasets.idx import FASHION_MNIST, find_idx_files
    from torchvision import datasets
    _, files = find_idx_files(FASHION_MNIST, None)
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for path in files.values():
        target = raw / path.name.removesuffix(".gz")
        if not target.exists():
            with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return datasets.FashionMNIST(str(folder), train=True, transform=transform, download=False)


@dataclass(frozen=True)
class Case:
    name: str
    spec: str
    make_step: Callable  # (modules, optimizers) -> step(x, step_no) -> losses
    steps: int  # default number of timed steps per variant
    block: int  # steps per turn when interleaving
    # the transforms of torchvision's own dataset class for this data, if it has one
    torchvision_transform: Callable | None = None


CASES = {c.name: c for c in [
    Case("dcgan_fashion_mnist", "specs/dcgan_fashion_mnist.yaml", dcgan_step, steps=200, block=5,
         torchvision_transform=lambda: fashion_mnist_transforms(pad=2, to_symmetric=True)),
    Case("vae_fashion_mnist", "specs/vae_fashion_mnist.yaml", vae_step, steps=600, block=20,
         torchvision_transform=lambda: fashion_mnist_transforms(pad=0, to_symmetric=False)),
    Case("gan_ring8", "specs/gan_ring8.yaml", ring8_step, steps=4000, block=50),  # no torchvision dataset
]}


# ---------------------------------------------------------------- the three runners

def _optimizers(exp, modules) -> list[torch.optim.Optimizer]:
    """One optimizer per phase, built as the spec says, over ``modules``' parameters."""
    out = []
    for i, phase in enumerate(exp.spec.phases):
        entry = exp.registry.get("optimizer", phase.optimizer.type)
        settings = exp.loaded.params.get(("phases", i))
        params = [p for c in phase.update for p in modules[c].parameters()]
        out.append(entry.factory(params, **(dict(settings) if settings is not None else {})))
    return out


class LvmgraphRunner:
    def __init__(self, exp):
        from lvmgraph.train.trainer import Trainer
        self.trainer = Trainer(exp, None, progress=False)
        exp.modules.train()

    def step(self) -> list[float]:
        """One step; its losses are read back from the meter only when checking (``losses``)."""
        self.trainer.train_step()

    def losses(self) -> list[float]:
        values = self.trainer.meter.flush()  # the means since the last flush: this step's with one step
        return [values[p.label] for p in self.trainer.spec.phases]


class PlainRunner:
    """The dataset as one preloaded tensor, batches by index into a seeded permutation."""

    def __init__(self, case: Case, exp):
        self.modules = copy.deepcopy(exp.modules).train()
        self.run = case.make_step(self.modules, _optimizers(exp, self.modules))
        self.x = exp.data.train["x"]
        self.batch_size = exp.spec.data.batch_size
        self.generator = torch.Generator().manual_seed(exp.spec.seed)
        self.order, self.position, self.step_no = torch.randperm(len(self.x), generator=self.generator), 0, 0

    def step(self) -> list[torch.Tensor]:
        if self.position + self.batch_size > len(self.x):
            self.order, self.position = torch.randperm(len(self.x), generator=self.generator), 0
        x = self.x[self.order[self.position:self.position + self.batch_size]]
        self.position += self.batch_size
        losses = self.run(x, self.step_no)
        self.step_no += 1
        return losses


class PerSample(torch.utils.data.Dataset):
    def __init__(self, fields: dict[str, torch.Tensor]):
        self.fields = fields

    def __len__(self) -> int:
        return len(next(iter(self.fields.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.fields.items()}


class DataLoaderRunner:
    """A per-sample Dataset (by default the decoded tensors), a shuffling DataLoader collating every
    batch; ``x`` is the batch's ``"x"`` or, for torchvision's (image, label) pairs, its first item."""

    def __init__(self, case: Case, exp, data: torch.utils.data.Dataset | None = None):
        self.modules = copy.deepcopy(exp.modules).train()
        self.run = case.make_step(self.modules, _optimizers(exp, self.modules))
        data = PerSample(exp.data.train) if data is None else data
        # the same order as the other two: the sampler draws randperm from a generator seeded alike (the
        # loader's own generator only gives each epoch's worker seed, which must not consume the sampler's)
        sampler = torch.utils.data.RandomSampler(data, generator=torch.Generator().manual_seed(exp.spec.seed))
        self.loader = torch.utils.data.DataLoader(data, batch_size=exp.spec.data.batch_size, sampler=sampler,
                                                  drop_last=True, generator=torch.Generator(), num_workers=0)
        self.batches = iter(self.loader)
        self.step_no = 0

    def step(self) -> list[torch.Tensor]:
        try:
            batch = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            batch = next(self.batches)
        losses = self.run(batch["x"] if isinstance(batch, dict) else batch[0], self.step_no)
        self.step_no += 1
        return losses


def build(case: Case, overrides=(), folder: Path | None = None) -> dict:
    """The runners on one freshly built spec, all from the same initial weights; ``folder`` holds
    the unpacked files of torchvision's dataset (cases that have one; a temporary folder if None)."""
    import tempfile

    import lvmgraph.api as lg
    exp = lg.validate(ROOT / case.spec, overrides=["train.progress=false", *overrides], device="cpu")
    runners = {"plain": PlainRunner(case, exp), "dataloader": DataLoaderRunner(case, exp)}  # copies before any step
    if case.torchvision_transform is not None:
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="step_time_tv_"))
        data = torchvision_fashion_mnist(folder, case.torchvision_transform())
        runners["torchvision"] = DataLoaderRunner(case, exp, data)
    return {"lvmgraph": LvmgraphRunner(exp), **runners}


def check_agreement(case: Case, steps: int = 3, overrides=(), folder: Path | None = None) -> None:
    """The variants do the same work: from the same weights and seed they give the same losses."""
    runners = build(case, overrides, folder)
    losses = {}
    for name, runner in runners.items():
        torch.manual_seed(1234)
        losses[name] = []
        for _ in range(steps):
            out = runner.step()
            losses[name].append(runner.losses() if out is None else [float(v) for v in out])
    for name in [v for v in VARIANTS[1:] if v in runners]:
        diff = max(abs(a - b) for sa, sb in zip(losses["lvmgraph"], losses[name]) for a, b in zip(sa, sb))
        if diff > 1e-4:
            raise AssertionError(f"{case.name}: the {name} loop's losses differ from lvmgraph's by {diff:.3g}: "
                                 f"{losses[name]} vs {losses['lvmgraph']}; the variants do not do the same work")


def time_case(case: Case, steps: int, warmup: int, overrides=(), folder: Path | None = None,
              block: int | None = None) -> dict:
    """Mean and median step time of each variant, the variants interleaved in blocks of ``block``
    (default ``case.block``) steps, and lvmgraph's paired difference to each other variant."""
    runners = build(case, overrides, folder)
    for runner in runners.values():
        for _ in range(warmup):
            runner.step()
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    wall: dict[str, list[float]] = {name: [] for name in runners}
    block = min(block or case.block, steps)
    order, turn = list(runners.items()), 0
    rounds: list[dict[str, float]] = []  # per round, each variant's mean CPU time in its block
    while len(cpu["plain"]) < steps:
        n = min(block, steps - len(cpu["plain"]))
        # the order rotates (ABC, BCA, CAB, ...): no variant always runs first after the others' blocks
        turn += 1
        for name, runner in order[turn % len(order):] + order[:turn % len(order)]:
            for _ in range(n):
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                runner.step()
                cpu[name].append(time.process_time() - start_cpu)
                wall[name].append(time.perf_counter() - start_wall)
        rounds.append({name: statistics.fmean(cpu[name][-n:]) for name in runners})
    def ms(stat, times):
        return {name: round(stat(ts) * 1e3, 4) for name, ts in times.items()}

    def to_plain(times):
        return {f"{name}/plain": t / times["plain"] for name, t in times.items() if name != "plain"}

    mean_cpu, median_cpu = ms(statistics.fmean, cpu), ms(statistics.median, cpu)
    mean_wall, median_wall = ms(statistics.fmean, wall), ms(statistics.median, wall)
    return {"spec": case.spec, "steps": steps, "warmup": warmup, "block": block,
            "batch_size": runners["plain"].batch_size,
            "mean_ms": mean_cpu, "median_ms": median_cpu, "mean_wall_ms": mean_wall, "median_wall_ms": median_wall,
            "ratio": to_plain(mean_cpu), "median_ratio": to_plain(median_cpu), "wall_ratio": to_plain(mean_wall),
            "paired": {f"lvmgraph-{name}": paired_difference(rounds, "lvmgraph", name)
                       for name in runners if name != "lvmgraph"}}


def paired_difference(rounds: list[dict[str, float]], a: str, b: str) -> dict:
    """a's step time minus b's, as a fraction of the plain loop's, from the rounds' blocks: the
    blocks of one round run back to back, so their difference is free of the slower drifts in the
    machine's load that move whole rounds. Mean over rounds and its 95% interval (mean ± 1.96
    standard errors; 30 or more rounds in the shipped cases, where the normal quantile is close)."""
    diffs = [(r[a] - r[b]) / r["plain"] for r in rounds]
    mean = statistics.fmean(diffs)
    half = 1.96 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.inf
    return {"rounds": len(diffs), "mean": mean, "low": mean - half, "high": mean + half}


# ---------------------------------------------------------------- machine and table

def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "load_avg_1min": round(os.getloadavg()[0], 2)}


def table(record: dict) -> str:
    m = record["machine"]

    def cell(values: dict, key: str, fmt: str) -> str:
        return format(values[key], fmt) if key in values else "–"

    def interval(r: dict, other: str) -> str:
        d = r.get("paired", {}).get(f"lvmgraph-{other}")
        return "–" if d is None else f"{100 * d['mean']:+.1f} ({100 * d['low']:+.1f} … {100 * d['high']:+.1f})"

    lines = ["| spec | batch | lvmgraph ms | plain ms | DataLoader ms | torchvision ms | **lvmgraph / plain** "
             "| DataLoader / plain | torchvision / plain | **lvmgraph − DataLoader**, % of plain (95% interval) "
             "| lvmgraph − torchvision, % of plain | median: lvmgraph / plain | median: DataLoader / plain "
             "| wall-clock: lvmgraph / plain |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in record["cases"].items():
        ms, ratio, median, wall = r["mean_ms"], r["ratio"], r["median_ratio"], r["wall_ratio"]
        lines.append(f"| `{name}` | {r['batch_size']} | {ms['lvmgraph']:.2f} | {ms['plain']:.2f} | "
                     f"{ms['dataloader']:.2f} | {cell(ms, 'torchvision', '.2f')} | **{ratio['lvmgraph/plain']:.3f}** "
                     f"| {ratio['dataloader/plain']:.3f} | {cell(ratio, 'torchvision/plain', '.3f')} "
                     f"| **{interval(r, 'dataloader')}** | {interval(r, 'torchvision')} | {median['lvmgraph/plain']:.3f} | {median['dataloader/plain']:.3f} "
                     f"| {wall['lvmgraph/plain']:.3f} |")
    steps = ", ".join(f"{r['steps']}" for r in record["cases"].values())
    lines += ["", f"Mean CPU time of one step (the process's user + system time; one thread) over {steps} "
                  f"timed steps per variant after {record['warmup']} warm-up steps, the variants interleaved "
                  f"in rounds of one block each (the paired differences are per round); "
                  f"measured {record['measured']} at commit {record['commit']} on {m['cpu']}, {m['cores']} cores, "
                  f"{m['threads']} torch thread(s), torch {m['torch']}, Python {m['python']}; 1-minute load "
                  f"average {m['load_avg_1min']} at the start"
                  + (f" ({', '.join(record['overrides'])} for lvmgraph)" if record.get("overrides") else "")
                  + (f". {record['note']}" if record.get("note") else ".")]
    return "\n".join(lines)


def write_doc(record: dict, path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from all_specs import replace_between
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_between(text, BEGIN, END, table(record), "Step time against plain PyTorch"))


def _commit() -> str:
    import subprocess
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except OSError:
        return "?"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), metavar="CASE",
                        help=f"cases to measure (default all: {', '.join(CASES)})")
    parser.add_argument("--steps", type=int, help="timed steps per variant (default: per case, 200 to 4000)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps per variant first")
    parser.add_argument("--block", type=int, help="steps per variant and round (default: per case, 5 to 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for all variants")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override for the lvmgraph variant (e.g. train.precision=bf16)")
    parser.add_argument("--note", default="", help="a sentence about the conditions, put under the table")
    parser.add_argument("--json", type=Path, default=JSON_OUT)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    overrides = [f"train.threads={args.threads}", *args.overrides]
    record = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": _commit(),
              "machine": machine(), "warmup": args.warmup, "overrides": args.overrides, "note": args.note,
              "cases": {}}
    import tempfile
    with tempfile.TemporaryDirectory(prefix="step_time_tv_") as folder:  # torchvision's unpacked files
        for name in args.only or CASES:
            case = CASES[name]
            check_agreement(case, overrides=overrides, folder=Path(folder))
            record["cases"][name] = time_case(case, args.steps or case.steps, args.warmup, overrides, Path(folder),
                                               args.block)
            r = record["cases"][name]
            print(f"{name}: mean CPU {r['mean_ms']} ms, ratios {r['ratio']}; median CPU ratios "
                  f"{r['median_ratio']}; wall ratios {r['wall_ratio']}", flush=True)
    print(table(record))
    if not args.no_write:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        write_doc(record, args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
