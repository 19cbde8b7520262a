"""Train the core specs, evaluate them before and after training, and write docs/BENCHMARKS.md.

    python benchmarks/core_specs.py                 # all rows (Fashion-MNIST rows need the data)
    python benchmarks/core_specs.py --only aae_uniform

Each row states the spec, the steps, the wall-clock training time on this machine and the
metrics from the spec's own eval section; "before" is the same evaluation at step 0
(the freshly initialised model), so the improvement is measured rather than asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

import lvmgraph.api as lg

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["aae_uniform", "aae_swiss_roll", "vae", "hybrid_vae_mixture_critic", "hybrid_aae_latent_classifier",
         "vae_fashion_mnist", "aae_fashion_mnist"]
# the figures each row reports: (metric, key, label)
FIGURES = {
    "prior_ks": [("ks_max", "latent KS max (floor)")],
    "prior_mmd": [("mmd2", "latent MMD² IMQ (floor)")],
    "reconstruction_error": [("mse", "test recon. MSE")],
    "iwae_nll": [("nll", "test IWAE NLL nats"), ("elbo", "test ELBO nats")],
    "evaluator_fd": [("fd", "evaluator FD (real-vs-real floor)")],
    "precision_recall": [("precision", "precision k=3"), ("recall", "recall k=3")],
}
# published figures to compare with, where a paper reports one on the same data and protocol
PUBLISHED: dict[tuple[str, str], str] = {}


def figures(results: dict) -> dict[str, str]:
    out = {}
    for metric, items in FIGURES.items():
        if metric not in results:
            continue
        r = results[metric]
        for key, label in items:
            text = f"{r[key]:.4g}"
            if "floor" in r and "floor" in label and isinstance(r["floor"], (int, float)):
                text += f" ({r['floor']:.3g})"
            if metric == "iwae_nll" and key == "nll":
                p = r.get("protocol", {})
                text += f" (k={p.get('k')}, n={p.get('n')})"
            out[label] = text
    return out


def run_spec(name: str, workdir: Path) -> dict:
    spec = ROOT / "specs" / f"{name}.yaml"
    before_dir = workdir / f"{name}-before"
    lg.train(spec, out=before_dir, overrides=["train.steps=0"], progress=False)
    before = json.loads((before_dir / "eval.json").read_text())["results"]
    start = time.perf_counter()
    run = lg.train(spec, out=workdir / name, progress=False, evaluate=False)
    seconds = time.perf_counter() - start
    after = lg.open_run(run.path).evaluate()
    steps = lg.load(spec).spec.train.steps
    return {"spec": name, "steps": steps, "train_seconds": round(seconds, 1),
            "before": figures(before), "after": figures(after)}


def write_table(rows: list[dict], path: Path) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Measured by `python benchmarks/core_specs.py` (re-run it to reproduce; it rewrites this section).",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU only.",
        "",
        "## Core specs: before (step 0) vs after training",
        "",
        "| spec | steps | train time | figure | before | after | published |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for label, after in row["after"].items():
            lines.append(f"| `specs/{row['spec']}.yaml` | {row['steps']} | {row['train_seconds']} s | {label} | "
                         f"{row['before'].get(label, '–')} | {after} | {PUBLISHED.get((row['spec'], label), '–')} |")
    lines += ["", "Floors in parentheses are the same statistic between two independent prior samples of the",
              "same size: what a perfect match scores. IWAE NLL (Burda et al., 2016) is on grey-level",
              "Fashion-MNIST treated as Bernoulli targets, so it is not comparable to binarised-MNIST tables.", ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "core_specs.json"))
    args = parser.parse_args()
    names = args.only or SPECS
    results_file = Path(args.json)
    rows = {r["spec"]: r for r in (json.loads(results_file.read_text()) if results_file.exists() else [])}
    workdir = Path(tempfile.mkdtemp(prefix="lvmgraph-bench-"))
    try:
        for name in names:
            print(f"== {name}", flush=True)
            rows[name] = run_spec(name, workdir)
            print(json.dumps(rows[name], indent=1), flush=True)
            results_file.write_text(json.dumps([rows[n] for n in SPECS if n in rows], indent=1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_table([rows[n] for n in SPECS if n in rows], Path(args.out))


if __name__ == "__main__":
    main()
