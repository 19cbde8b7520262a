"""Train every shipped spec at its own budget, evaluate it, and write the results table of docs/BENCHMARKS.md.

    python benchmarks/all_specs.py                       # every specs/*.yaml (Fashion-MNIST rows need the data)
    python benchmarks/all_specs.py --only vae gan_ring8  # re-measure some rows, keep the others
    python benchmarks/all_specs.py --table-only          # rebuild the table from benchmarks/results/

For each spec: evaluate the freshly initialised model ("before", step 0), train it with the
spec's own `train:` budget in one process with the spec's thread count, then run the spec's own
`eval:` section on the final weights ("after"). A row records the steps, the batch size, the
training wall-clock and CPU time (user + system of this process, all threads), the eval time and
every metric's full result with its protocol, in ``benchmarks/results/<spec>.json``.
The table lists the headline figures of each metric beside the published figure for the same
protocol where a paper reports one (``PUBLISHED`` below names the source); "–" means no paper
reports that protocol on that data, and a published figure on different data is never put in
that column (see the notes under the table).

The multi-seed table (GAN mode coverage, InfoGAN code accuracy: 10 seeds each) comes from
``benchmarks/seeds.py``, which records its rows in ``benchmarks/seeds.json``; this script copies
that table into the document too.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- all_specs.py: begin -->", "<!-- all_specs.py: end -->"
SEEDS_BEGIN, SEEDS_END = "<!-- seeds.py: begin -->", "<!-- seeds.py: end -->"

# (metric, key, label, format); FLOORED figures get the result's "floor" appended: what a perfect model scores
FIGURES: dict[str, list[tuple[str, str, str]]] = {
    "reconstruction_error": [("mse", "test recon. MSE", "{:.4f}")],
    "prior_mmd": [("mmd2", "latent MMD² IMQ", "{:.4f}")],
    "prior_ks": [("ks_max", "latent KS max", "{:.3f}")],
    "iwae_nll": [("nll", "test IWAE NLL nats", "{:.2f}"), ("elbo", "test ELBO nats", "{:.2f}")],
    "elbo": [("elbo", "test ELBO nats", "{:.2f}")],
    "evaluator_fd": [("fd", "evaluator FD", "{:.1f}")],
    "evaluator_kid": [("kid", "evaluator KID", "{:.2f}")],
    "precision_recall": [("precision", "precision k=3", "{:.3f}"), ("recall", "recall k=3", "{:.3f}")],
    "density_coverage": [("density", "density k=5", "{:.3f}"), ("coverage", "coverage k=5", "{:.3f}")],
    "mode_coverage": [("modes", "modes captured", "{:.0f}"), ("high_quality", "high-quality %", "{:.1f}"),
                      ("reverse_kl", "mode reverse KL", "{:.3f}")],
    "code_accuracy": [("accuracy", "categorical code accuracy (Hungarian)", "{:.3f}")],
    "class_accuracy": [("accuracy", "requested-class accuracy", "{:.3f}")],
    "parzen_ll": [("log_likelihood", "Parzen log-likelihood", "{:.1f}")],
    "inception_fid": [("fid", "Inception FID", "{:.1f}")],
    "inception_score": [("inception_score", "Inception score", "{:.2f}")],
    "content_preservation": [("accuracy", "content preserved", "{:.3f}")],
    "cycle_error": [("l1", "cycle L1", "{:.4f}")],
    "mask_iou": [("iou", "mask IoU", "{:.3f}"), ("best_fixed_mask", "mask IoU of the best fixed mask", "{:.3f}")],
    "swd": [("swd", "SWD (Laplacian pyramid)", "{:.1f}")],
}
FLOORED = {("prior_mmd", "mmd2"), ("prior_ks", "ks_max"), ("evaluator_fd", "fd"), ("evaluator_kid", "kid"),
           ("inception_fid", "fid")}
# figures of every `judge_accuracy` entry, whatever its result name (`as:`): "<name>: <label>"
JUDGE_FIGURES = [("accuracy", "judged as target", "{:.3f}"),
                 ("agreement", "judged class same as input's", "{:.3f}"),
                 ("reference", "judge's accuracy on real test images", "{:.3f}")]
SCALE: dict[tuple[str, str], float] = {}  # (metric, key) -> factor for display, e.g. 1e3 for a "×10³" label

# published figures on the same data and protocol: (spec, label) -> "figure (source, protocol)"
PUBLISHED: dict[tuple[str, str], str] = {
    ("gan_ring8", "modes captured"): "7.9 (PacGAN2, Lin et al. 2018: 2,500 samples, mean of 10 runs)",
    ("gan_ring8", "high-quality %"): "95.6 (PacGAN2, same table)",
    ("gan_grid25", "modes captured"): "24.8 (PacGAN4, Lin et al. 2018: 2,500 samples, mean of 10 runs)",
    ("gan_grid25", "high-quality %"): "93.6 (PacGAN4, same table)",
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(spec: Path, overrides: list[str]) -> dict:
    """Before/after evaluation and training cost of one spec (in this process)."""
    import torch

    import lvmgraph.api as lg
    from lvmgraph.eval.runner import evaluate
    from lvmgraph.experiment import prepare

    loaded = lg.load(spec, overrides)
    threads = loaded.spec.train.threads
    before = evaluate(prepare(loaded, device="cpu")) if loaded.spec.eval.metrics else {}
    workdir = Path(tempfile.mkdtemp(prefix="lvmgraph-bench-"))
    try:
        wall, cpu = time.perf_counter(), cpu_seconds()
        run = lg.train(spec, out=workdir / "run", overrides=overrides, progress=False, evaluate=False,
                       device="cpu")
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        eval_wall = time.perf_counter()
        after = lg.open_run(run.path, device="cpu").evaluate(write=False)
        eval_wall = time.perf_counter() - eval_wall
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"spec": spec.stem, "overrides": overrides, "steps": loaded.spec.train.steps,
            "batch_size": loaded.spec.data.batch_size, "dataset": loaded.spec.data.dataset,
            "threads": threads or torch.get_num_threads(), "train_wall_s": round(wall, 1),
            "train_cpu_s": round(cpu, 1), "eval_wall_s": round(eval_wall, 1),
            "before": before, "after": after, "commit": git_commit(), "torch": torch.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "measured": time.strftime("%Y-%m-%d")}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "lvmgraph", "plugins", "specs"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except OSError:
        return "unknown"


def figure_items(results: dict) -> list[tuple[str, str, str, str]]:
    """(result name, key, label, format) of the headline figures an eval results dict holds: those
    of FIGURES, for entries under their metric's name or another (`as:`, labelled "<name>: ..."),
    and those of each judge entry."""
    items = []
    for name, r in results.items():
        if not isinstance(r, dict):
            continue
        metric = r.get("metric", name)  # an entry with `as:` records its metric
        if metric in FIGURES:
            prefix = "" if name == metric else f"{name}: "
            items += [(name, key, prefix + label, fmt) for key, label, fmt in FIGURES[metric]]
        elif metric == "judge_accuracy":
            items += [(name, key, f"{name}: {label}", fmt) for key, label, fmt in JUDGE_FIGURES]
    order = list(FIGURES) + ["judge_accuracy"]  # the main table's order, judges last
    return sorted(items, key=lambda item: order.index(_metric(results, item[0])))


def _metric(results: dict, name: str) -> str:
    """The metric behind a result name (an entry with `as:` records it; otherwise the name itself)."""
    return results[name].get("metric", name)


def figures(results: dict) -> dict[str, str]:
    """A metrics dict (as in eval.json) -> {label: formatted figure with its floor}."""
    out = {}
    for metric, key, label, fmt in figure_items(results):
        r = results[metric]
        if not isinstance(r.get(key), (int, float)):
            continue
        kind = _metric(results, metric)
        text = fmt.format(r[key] * SCALE.get((kind, key), 1))
        if kind == "mode_coverage" and key == "modes":
            text += f" / {r['modes_total']}"
        if (kind, key) in FLOORED and isinstance(r.get("floor"), (int, float)):
            text += f" (floor {fmt.format(r['floor'] * SCALE.get((kind, 'floor'), 1))})"
        out[label] = text
    return out


def protocol_note(metric: str, result: dict) -> str:
    p = result.get("protocol", {})
    if metric == "iwae_nll":
        return f"k={p.get('k')}, n={p.get('n')}"
    for key in ("n_generated", "n", "n_samples", "n_per_code"):
        if key in p:
            return f"{key.replace('_', ' ')}={p[key]}"
    return ""


def rows_for(record: dict) -> list[str]:
    name, before, after = record["spec"], figures(record["before"]), figures(record["after"])
    cost = (f"{record['steps']} steps × {record['batch_size']}; {record['train_cpu_s'] / 60:.1f} CPU-min "
            f"({record['train_wall_s'] / 60:.1f} min wall, {record['threads']} thr)")
    lines, first = [], True
    for metric, _key, label, _fmt in figure_items(record["after"]):
        if label not in after:
            continue
        note = protocol_note(_metric(record["after"], metric), record["after"][metric])
        spec_cell = f"`{name}`" if first else ""
        cost_cell = cost if first else ""
        first = False
        lines.append(f"| {spec_cell} | {label}{f' ({note})' if note else ''} | {before.get(label, '–')} | "
                     f"**{after[label]}** | {PUBLISHED.get((name, label), '–')} | {cost_cell} |")
    return lines


def table(records: list[dict], unmeasured: list[str] = (), seeded: dict[str, int] = {}) -> str:
    """``seeded``: spec name -> seeds its own row in seeds.json holds, for specs this script never ran."""
    lines = ["| spec | figure (protocol) | before (step 0) | after | published | budget and CPU time |",
             "|---|---|---|---|---|---|"]
    for record in records:
        lines += rows_for(record)
    for name in unmeasured:  # shipped but never run through this script: say so rather than omit it
        where = (f"; its figures over {seeded[name]} seed{'s' if seeded[name] > 1 else ''} are in \"Across seeds\""
                 if name in seeded else "")
        lines.append(f"| `{name}` | before / after not measured yet: `python benchmarks/all_specs.py --only "
                     f"{name}`{where} | – | – | – | – |")
    commits = sorted({r["commit"] for r in records})
    dates = sorted({r["measured"] for r in records})
    lines += ["", f"Measured by `python benchmarks/all_specs.py` at commit {', '.join(commits)} on "
                  f"{', '.join(dates)}; {records[0]['machine'] if records else ''}, CPU only, torch "
                  f"{records[0]['torch'] if records else ''}. Raw results with every protocol: "
                  "`benchmarks/results/<spec>.json`."]
    return "\n".join(lines)


def replace_between(text: str, begin: str, end: str, body: str, heading: str) -> str:
    """Put ``body`` between the markers, appending a section with ``heading`` if they are missing."""
    if begin not in text:
        text = text.rstrip() + f"\n\n## {heading}\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1]


def write_doc(records: list[dict], path: Path, unmeasured: list[str] = ()) -> None:
    if str(ROOT / "benchmarks") not in sys.path:  # the sibling script, also when imported from tests
        sys.path.insert(0, str(ROOT / "benchmarks"))
    from seeds import JSON as SEEDS_JSON, table as seeds_table

    seeds = json.loads(SEEDS_JSON.read_text()) if SEEDS_JSON.exists() else {}
    seeded = {Path(r["spec"]).stem: len(r["rows"]) for r in seeds.values() if not r.get("variant")}
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    text = replace_between(text, BEGIN, END, table(records, unmeasured, seeded), "Every shipped spec")
    if seeds:
        text = replace_between(text, SEEDS_BEGIN, SEEDS_END, seeds_table(seeds), "Across seeds")
    path.write_text(text)


def load_records(names: list[str]) -> list[dict]:
    return [json.loads((RESULTS / f"{n}.json").read_text()) for n in names if (RESULTS / f"{n}.json").exists()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="SPEC", help="spec names (stems) to re-measure")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every measured spec (the row records it)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from benchmarks/results/")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)

    all_names = sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
    if args.only:
        unknown = sorted(set(args.only) - set(all_names))
        if unknown:
            parser.error(f"no such spec(s) in specs/: {', '.join(unknown)}")
    if not args.table_only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        for name in args.only or all_names:
            print(f"== {name}", file=sys.stderr, flush=True)
            record = measure(ROOT / "specs" / f"{name}.yaml", args.overrides)
            (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
            print("\n".join(rows_for(record)), file=sys.stderr, flush=True)
    records = load_records(all_names)
    measured = {r["spec"] for r in records}
    write_doc(records, args.doc, [n for n in all_names if n not in measured])
    return 0


if __name__ == "__main__":
    sys.exit(main())
