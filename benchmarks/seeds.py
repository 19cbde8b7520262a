"""One spec trained from scratch under several seeds: its eval figures as mean ± standard error.

    python benchmarks/seeds.py specs/gan_ring8.yaml --seeds 10 --jobs 2
    python benchmarks/seeds.py specs/gan_ring8.yaml --seeds 10 --pack 1 --label "GAN, no packing"
    python benchmarks/seeds.py specs/infogan_digits.yaml --seeds 10 --jobs 2
    python benchmarks/seeds.py specs/cyclegan_thin2thick.yaml --seeds 3 --runs runs/   # keep the runs
    python benchmarks/seeds.py --table-only            # print the table of benchmarks/seeds.json

Each seed S trains the spec with ``seed=S`` and ``data.seed=S`` (a new initialisation, batch
order and, for the synthetic mixtures, a new training draw) and runs the spec's own ``eval:``
section on the final weights (the EMA weights when the spec keeps them). The headline figures
of every metric (``all_specs.FIGURES``) are summarised as mean ± standard error of the mean
over seeds. Rows are merged into ``benchmarks/seeds.json`` under their label, which
``all_specs.py`` turns into the multi-seed table of docs/BENCHMARKS.md: other labels are kept, and
so are the label's rows for other seeds when the spec and overrides are the same (so seeds can be
run one session at a time: ``--first-seed 2 --seeds 1`` adds seed 2); a seed run again replaces
its own row.

``--pack M`` is the PacGAN switch for the 2-D GAN specs: the critic sees packs of M points
(``d_real``/``d_fake`` become ``critic(pack(x, M))`` and the critic's ``in_shape`` [2M];
M = 1 is the plain GAN). ``--track K`` also evaluates every K steps (for tuning).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from all_specs import FIGURES, PUBLISHED, SCALE, cpu_seconds, figure_items  # noqa: E402  (the same headline figures as the main table)

ROOT = Path(__file__).resolve().parents[1]
JSON = ROOT / "benchmarks" / "seeds.json"


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / √n; 0 for one value)."""
    values = [float(v) for v in values]
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, se


def figure_order(key: str) -> int:
    """Position of "metric.key" in FIGURES, so tables list figures in the order the main table does."""
    order = [f"{m}.{k}" for m, items in FIGURES.items() for k, _label, _fmt in items]
    return order.index(key) if key in order else len(order)


def headline(results: dict) -> dict[str, float]:
    """eval results -> {"metric.key": value} for the headline figures (judge entries by their `as:` name)."""
    out = {}
    for metric, key, _label, _fmt in figure_items(results):
        if isinstance(results[metric].get(key), (int, float)):
            out[f"{metric}.{key}"] = float(results[metric][key])
    return out


def train_one(spec: str, seed: int, overrides: list[str], track: int | None, runs: Path | None = None) -> dict:
    """Train one seed in this process (one torch thread) -> its headline figures and cost.

    With ``runs``, the seed's run directory (checkpoints, sample grids, metrics, eval.json) is kept
    as ``runs/<spec stem>_seed<S>``, so its pictures can be looked at and it can be evaluated again."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from lvmgraph.eval.runner import evaluate
    from lvmgraph.experiment import prepare
    from lvmgraph.spec.load import load_spec
    from lvmgraph.train.trainer import Trainer

    loaded = load_spec(spec, [*overrides, f"seed={seed}", f"data.seed={seed}", "train.progress=false",
                              "train.threads=1"])
    exp = prepare(loaded, device="cpu")
    run = None
    if runs is not None:
        from lvmgraph.train.rundir import RunDir

        run = RunDir.create(loaded.spec.name, runs / f"{Path(spec).stem}_seed{seed}")
        run.write_spec(loaded.resolved(), str(spec))
    trainer = Trainer(exp, run, progress=False)
    history = []
    if track:
        def watch(t: Trainer) -> None:
            if t.step % track == 0:
                history.append({"step": t.step, **headline(evaluate(exp))})
        trainer.callbacks.append(watch)
    cpu, wall = cpu_seconds(), time.perf_counter()
    trainer.fit()
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    results = evaluate(exp)
    if run is not None:
        run.write_json("eval.json", {"step": trainer.step, "results": results})
    extra = {"counts": results["mode_coverage"]["counts"]} if "mode_coverage" in results else {}
    labels = {f"{name}.{key}": [label, fmt] for name, key, label, fmt in figure_items(results)}
    return {"seed": seed, "steps": trainer.step, "train_cpu_s": round(cpu, 1), "train_wall_s": round(wall, 1),
            "figures": headline(results), "labels": labels, **extra, **({"track": history} if track else {})}


def summarise(rows: list[dict]) -> dict:
    keys = sorted({k for r in rows for k in r["figures"]})
    out = {k: mean_se([r["figures"][k] for r in rows if not math.isnan(r["figures"].get(k, math.nan))])
           for k in keys}
    out["train_cpu_s"] = mean_se([r["train_cpu_s"] for r in rows])
    return out


def labelled(key: str, rows: list[dict] = ()) -> tuple[str, str]:
    """"metric.key" -> (its table label, its format): as the rows recorded it, else from FIGURES."""
    for row in rows:
        if key in row.get("labels", {}):
            return tuple(row["labels"][key])
    metric, name = key.split(".", 1)
    for k, label, fmt in FIGURES.get(metric, []):
        if k == name:
            return label, fmt
    return key, "{:.4g}"


def table(results: dict[str, dict]) -> str:
    lines = ["| run | seeds | figure | mean ± s.e. | published | all seeds | steps | CPU-min / seed |",
             "|---|---|---|---|---|---|---|---|"]
    for label, res in results.items():
        rows, s = res["rows"], res["summary"]
        first = True
        for key in sorted((k for k in s if k != "train_cpu_s"), key=figure_order):
            name, fmt = labelled(key, rows)
            scale = SCALE.get(tuple(key.split(".", 1)), 1)
            mean, se = s[key]
            mean_fmt = "{:.1f}" if fmt == "{:.0f}" else fmt  # a mean of counts keeps one decimal
            published = PUBLISHED.get((Path(res["spec"]).stem, name), "–") if not res.get("variant") else "–"
            values = ", ".join(fmt.format(r["figures"][key] * scale) for r in rows if key in r["figures"])
            head = (f"| {label} | {len(rows)} |" if first else "| | |")
            tail = (f"{rows[0]['steps']} | {s['train_cpu_s'][0] / 60:.1f} |" if first else " | |")
            lines.append(f"{head} {name} | {mean_fmt.format(mean * scale)} ± {mean_fmt.format(se * scale)} | "
                         f"{published} | {values} | {tail}")
            first = False
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", help="a spec, e.g. specs/gan_ring8.yaml")
    parser.add_argument("--seeds", type=int, default=10, help="seeds first..first+N-1 (default 10)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override, as `lvmgraph run --set` (repeatable)")
    parser.add_argument("--pack", type=int, help="2-D GAN specs: pack M points per critic input (1 = plain GAN)")
    parser.add_argument("--label", help="row label (default: the spec's stem plus overrides)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel (one thread each)")
    parser.add_argument("--track", type=int, help="also evaluate every K steps and print the curve")
    parser.add_argument("--runs", type=Path, help="keep each seed's run directory under this folder")
    parser.add_argument("--json", type=Path, default=JSON, help="merge the rows into this file")
    parser.add_argument("--no-json", action="store_true", help="do not record the rows (tuning runs)")
    parser.add_argument("--table-only", action="store_true", help="print the table of --json and stop")
    args = parser.parse_args(argv)
    if args.table_only:
        print(table(json.loads(args.json.read_text())))
        return 0
    if not args.spec:
        parser.error("a spec is required (or --table-only)")

    label = args.label or " ".join([Path(args.spec).stem, *([f"pack={args.pack}"] if args.pack else []),
                                    *args.overrides])
    overrides = list(args.overrides)
    if args.pack:
        overrides = [f"components.critic.in_shape=[{2 * args.pack}]",
                     f"graph.d_real=critic(pack(x, {args.pack}))",
                     f"graph.d_fake=critic(pack(x_fake, {args.pack}))", *overrides]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    work = [(args.spec, s, overrides, args.track, args.runs) for s in seeds]
    rows = []
    with ProcessPoolExecutor(args.jobs) if args.jobs > 1 else nullcontext() as pool:
        results_in_order = pool.map(train_one, *zip(*work)) if pool else (train_one(*w) for w in work)
        for r in results_in_order:  # report each seed as it finishes: runs take minutes
            rows.append(r)
            figs = ", ".join(f"{k} {v:.4g}" for k, v in r["figures"].items())
            print(f"seed {r['seed']}: {figs}; {r['train_cpu_s']} CPU-s {r.get('counts', '')}", file=sys.stderr,
                  flush=True)
            for h in r.get("track", []):
                print(f"    step {h['step']}: " + ", ".join(f"{k} {v:.4g}" for k, v in h.items() if k != "step"),
                      file=sys.stderr, flush=True)
    merged = json.loads(args.json.read_text()) if args.json.exists() else {}
    rows = merge_rows(merged.get(label), args.spec, overrides, rows)
    results = {label: {"spec": args.spec, "overrides": overrides, "rows": rows, "summary": summarise(rows),
                       "measured": time.strftime("%Y-%m-%d"),
                       # a run that changed the spec is not what the published figure describes
                       "variant": bool(overrides)}}
    print(table(results))
    if not args.no_json:
        merged.update(results)
        args.json.write_text(json.dumps(merged, indent=1) + "\n")
    return 0


def merge_rows(recorded: dict | None, spec: str, overrides: list[str], rows: list[dict]) -> list[dict]:
    """The label's recorded rows plus the new ones, by seed (a new row replaces its seed's old one).
    Rows recorded for another spec or other overrides are dropped: they measured something else."""
    if not recorded or recorded.get("spec") != spec or recorded.get("overrides") != overrides:
        return sorted(rows, key=lambda r: r["seed"])
    by_seed = {r["seed"]: r for r in recorded["rows"]} | {r["seed"]: r for r in rows}
    return [by_seed[s] for s in sorted(by_seed)]


if __name__ == "__main__":
    sys.exit(main())
