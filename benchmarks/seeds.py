"""Mode coverage of the 2-D GAN specs over several seeds: mean ± standard error, as a markdown table.

    python benchmarks/gan_modes.py specs/gan_ring8.yaml --seeds 10
    python benchmarks/gan_modes.py specs/gan_grid25.yaml --seeds 10 --jobs 2 --json benchmarks/gan_modes.json
    python benchmarks/gan_modes.py specs/gan_ring8.yaml --seeds 10 --pack 1 --label "GAN (no packing)"

Each seed trains the spec from scratch with ``seed=S`` and ``data.seed=S`` (a new initialisation,
batch order and training draw of the mixture) and evaluates the ``mode_coverage`` metric of
``plugins/lvmgraph_eval`` (PacGAN/VEEGAN protocol: 2,500 generated points, nearest mode, high
quality within 3σ, a mode counts as captured with at least one high-quality point), on the EMA
generator when the spec keeps one. ``--pack M`` is the PacGAN switch: the critic sees packs of M
points (the spec's ``d_real``/``d_fake`` are rewritten to ``critic(pack(x, M))`` and the critic's
``in_shape`` to [2M]; M = 1 is the plain GAN). ``--track K`` also evaluates every K steps (for tuning).
With ``--json`` the rows are merged into that file under their label (other labels are kept).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = (("modes", "modes"), ("high_quality", "high quality %"), ("reverse_kl", "reverse KL"))


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / √n; 0 for one value)."""
    values = [float(v) for v in values]
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, se


def train_one(spec: str, seed: int, overrides: list[str], track: int | None) -> dict:
    """Train one seed in this process; returns the final mode-coverage figures (and the track)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from lvmgraph.eval.runner import evaluate
    from lvmgraph.experiment import prepare
    from lvmgraph.spec.load import load_spec
    from lvmgraph.train.trainer import Trainer

    loaded = load_spec(spec, [*overrides, f"seed={seed}", f"data.seed={seed}", "train.progress=false"])
    exp = prepare(loaded, device="cpu")
    trainer = Trainer(exp, None, progress=False)
    history = []

    def measure() -> dict:
        out = evaluate(exp, [("mode_coverage", {})])["mode_coverage"]
        return {k: out[k] for k, _ in FIGURES} | {"modes_total": out["modes_total"], "counts": out["counts"]}

    if track:
        def watch(t: Trainer) -> None:
            if t.step % track == 0:
                history.append({"step": t.step, **{k: v for k, v in measure().items() if k in dict(FIGURES)}})
        trainer.callbacks.append(watch)
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    return {"seed": seed, "steps": trainer.step, "train_seconds": round(seconds, 1), **measure(),
            **({"track": history} if track else {})}


def summarise(rows: list[dict]) -> dict:
    out = {"seeds": len(rows)}
    for key, _ in FIGURES:
        values = [r[key] for r in rows if not math.isnan(r[key])]
        out[key] = mean_se(values) if values else (float("nan"), float("nan"))
    out["train_seconds"] = mean_se([r["train_seconds"] for r in rows])
    out["all_modes"] = sum(r["modes"] == r["modes_total"] for r in rows)
    return out


def table(results: dict[str, dict]) -> str:
    lines = ["| run | seeds | modes | high quality % | reverse KL | seeds with all modes | train s / seed |",
             "|---|---|---|---|---|---|---|"]
    for label, res in results.items():
        s = res["summary"]
        cells = [f"{s[k][0]:.3g} ± {s[k][1]:.2g}" for k, _ in FIGURES]
        lines.append(f"| {label} | {s['seeds']} | {' | '.join(cells)} | {s['all_modes']}/{s['seeds']} "
                     f"| {s['train_seconds'][0]:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="a toy2d GAN spec, e.g. specs/gan_ring8.yaml")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override, as `lvmgraph run --set` (repeatable)")
    parser.add_argument("--pack", type=int, help="pack M points per critic input (1 = plain GAN)")
    parser.add_argument("--label", help="row label (default: the spec's stem plus overrides)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel (one thread each)")
    parser.add_argument("--track", type=int, help="also measure every K steps and print the curve")
    parser.add_argument("--json", type=Path, help="merge the rows into this JSON file (e.g. benchmarks/gan_modes.json)")
    args = parser.parse_args(argv)

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    label = args.label or " ".join([Path(args.spec).stem, *([f"pack={args.pack}"] if args.pack else []),
                                    *args.overrides])
    if args.pack:
        args.overrides = [f"components.critic.in_shape=[{2 * args.pack}]",
                          f"graph.d_real=critic(pack(x, {args.pack}))",
                          f"graph.d_fake=critic(pack(x_fake, {args.pack}))", *args.overrides]
    work = [(args.spec, s, args.overrides, args.track) for s in seeds]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(train_one, *zip(*work)))
    else:
        rows = [train_one(*w) for w in work]
    for r in rows:
        print(f"seed {r['seed']}: modes {r['modes']}, high quality {r['high_quality']:.1f}%, "
              f"reverse KL {r['reverse_kl']:.3f}, {r['train_seconds']} s, counts {r['counts']}", file=sys.stderr)
        for h in r.get("track", []):
            print(f"    step {h['step']}: modes {h['modes']}, hq {h['high_quality']:.1f}%, "
                  f"rkl {h['reverse_kl']:.3f}", file=sys.stderr)
    results = {label: {"spec": args.spec, "overrides": args.overrides, "rows": rows, "summary": summarise(rows)}}
    print(table(results))
    if args.json:
        merged = json.loads(args.json.read_text()) if args.json.exists() else {}
        merged.update(results)
        args.json.write_text(json.dumps(merged, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
