"""An InfoGAN picture: one row per value of the categorical code, the same noise down each column.

    python benchmarks/infogan_grid.py RUN_DIR [--out grid.png] [--cols 10] [--code c]
                                             [--sweep u:0] [--seed 0] [--order code|matched]

Every row fixes the categorical code (``--code``, default: the value in ``sample.set`` drawn
from a ``categorical`` prior) to one category; every column shares its noise and continuous
codes across rows, so reading down a column shows what the category alone changes.
``--sweep u:0`` instead varies dimension 0 of the continuous code ``u`` across the columns,
from its prior's low to high (noise fixed per image grid), showing what that code controls.
``--order matched`` sorts the rows by the class the run's ``code_accuracy`` result (in
eval.json) matched each code to, so a good digits run reads 0, 1, ..., 9 from the top.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import lvmgraph.api as lg
from lvmgraph.eval.artifacts import as_tensor
from lvmgraph.eval.images import save_image_grid
from lvmgraph.experiment import generate


def categorical_code(exp, name: str | None) -> tuple[str, int]:
    """(value name, number of categories) of the code the rows fix."""
    sample_set = exp.spec.sample.set
    if name is None:
        found = [v for v, prior in sample_set.items() if type(exp.modules[prior]).__name__ == "CategoricalPrior"]
        if not found:
            raise SystemExit(f"no value of sample.set {dict(sample_set)} is drawn from a categorical prior; "
                             "name it with --code")
        name = found[0]
    if name not in sample_set:
        raise SystemExit(f"--code {name!r} is not in sample.set {sorted(sample_set)}")
    prior = exp.modules[sample_set[name]]
    return name, int(prior.shape[0])


def row_order(run_dir: Path, k: int, order: str) -> list[int]:
    if order == "code":
        return list(range(k))
    path = run_dir / "eval.json"
    result = json.loads(path.read_text())["results"].get("code_accuracy") if path.exists() else None
    if not result:
        raise SystemExit(f"--order matched needs a code_accuracy result in {path}; run `lvmgraph eval {run_dir}`")
    mapping = {int(code): cls for code, cls in result["mapping"].items()}
    # matched codes by their class, unmatched ones (more codes than classes) last
    return sorted(range(k), key=lambda j: (j not in mapping, mapping.get(j, 0), j))


def grid_inputs(exp, code: str, k: int, cols: int, rows: list[int], sweep: str | None) -> dict:
    """Inputs for len(rows) * cols samples, row-major: code fixed per row, the rest shared per column."""
    sample_set = exp.spec.sample.set
    shared = {v: exp.modules[prior].sample(n=cols) for v, prior in sample_set.items() if v != code}
    if sweep:
        name, _, index = sweep.partition(":")
        if name not in shared:
            raise SystemExit(f"--sweep {sweep!r}: {name!r} is not a continuous value of sample.set {sorted(shared)}")
        prior = exp.modules[sample_set[name]]
        low, high = float(getattr(prior, "low", -1.0)), float(getattr(prior, "high", 1.0))
        for other in shared:  # one noise draw for the whole grid: only the swept coordinate moves
            shared[other] = shared[other][:1].expand(cols, *shared[other].shape[1:]).clone()
        shared[name][:, int(index or 0)] = torch.linspace(low, high, cols)
    given = {v: t.repeat(len(rows), *[1] * (t.dim() - 1)) for v, t in shared.items()}
    codes = torch.tensor(rows).repeat_interleave(cols)
    given[code] = F.one_hot(codes, k).float()
    return given


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="PNG path (default RUN_DIR/infogan_grid.png)")
    ap.add_argument("--cols", type=int, default=10, help="samples per row")
    ap.add_argument("--code", default=None, help="graph value of the categorical code (default: found in sample.set)")
    ap.add_argument("--sweep", default=None, metavar="NAME:DIM", help="vary one continuous code across the columns")
    ap.add_argument("--order", choices=["code", "matched"], default="code", help="row order")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    run = lg.open_run(args.run_dir, device="cpu")
    exp = run.experiment
    code, k = categorical_code(exp, args.code)
    rows = row_order(args.run_dir, k, args.order)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(args.seed)
        given = grid_inputs(exp, code, k, args.cols, rows, args.sweep)
        images = as_tensor(generate(exp, len(rows) * args.cols, given=given)).cpu()
    out = args.out or args.run_dir / "infogan_grid.png"
    save_image_grid(images, out, nrow=args.cols, value_range=tuple(exp.data.info.get("value_range", (0, 1))),
                    min_tile=32)
    print(f"wrote {out}: rows = {code} values {rows} (step {run.step})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
