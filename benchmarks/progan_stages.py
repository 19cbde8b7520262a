"""Train a progressive GAN spec and keep a sample grid from the end of every stage.

    python benchmarks/progan_stages.py SPEC --out RUN_DIR [--set KEY=VALUE ...] [--n 16]
                                       [--picture docs/images/progan_stages.png]

The run is an ordinary ``lvmgraph.api.train`` run (checkpoints, metrics, eval.json); a training
callback adds ``RUN_DIR/stages/stage_<i>_<res>px.png`` after the last step of each stage, drawn by
the sampling generator (the EMA copy when the spec has one) from the same prior draws every time,
so the rows show one set of latents growing from 4x4 to the full size. ``--picture`` writes the
stages as one picture, a row per stage (each stage's images are upsampled to the full size by the
generator itself, as the trainer shows them to D).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import torch

import lvmgraph.api as lg
from lvmgraph.eval.artifacts import GRID_SEED, as_tensor
from lvmgraph.eval.images import save_comparison_grid, save_image_grid
from lvmgraph.experiment import generate


class StageGrids:
    """Training callback: after the last step of each stage, draw n samples and save their grid."""

    def __init__(self, out: Path, n: int):
        self.out, self.n = out, n
        self.rows: list[tuple[str, torch.Tensor]] = []

    def __call__(self, trainer) -> None:
        plan, step = trainer.plan, trainer.step
        if plan is None:
            raise SystemExit("this spec has no stages:, so it does not grow")
        if step != plan.total and plan.index_at(step) == plan.index_at(step - 1):
            return
        index = plan.index_at(step - 1)
        resolution = plan.stages[index].resolution
        exp = trainer.exp
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(GRID_SEED)
            images = as_tensor(generate(exp, self.n)).detach().float().cpu()
        value_range = tuple(exp.data.info.get("value_range", (0, 1)))
        self.out.mkdir(parents=True, exist_ok=True)
        save_image_grid(images, self.out / f"stage_{index}_{resolution}px.png", value_range=value_range,
                        min_tile=32)
        self.rows.append((f"{resolution} px (step {step})", images))
        self.value_range = value_range


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec")
    p.add_argument("--out", required=True, help="the run directory (must not exist)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--n", type=int, default=16, help="samples per stage grid")
    p.add_argument("--picture", help="also write all stages as one PNG, a row per stage")
    args = p.parse_args(argv)
    grids = StageGrids(Path(args.out) / "stages", args.n)
    before = resource.getrusage(resource.RUSAGE_SELF)
    run = lg.train(args.spec, out=args.out, overrides=args.overrides, progress=False, callbacks=[grids],
                   evaluate=False)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    results = lg.open_run(run.path).evaluate()
    summary = {"spec": args.spec, "overrides": args.overrides, "train_cpu_seconds": round(cpu, 1),
               "threads": torch.get_num_threads(), "stages": [label for label, _ in grids.rows],
               "results": results}
    (Path(args.out) / "stages" / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if args.picture:
        save_comparison_grid([images for _, images in grids.rows], args.picture, columns=args.n,
                             value_range=grids.value_range, min_tile=32)
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=2))
    for name, result in results.items():
        print(name, json.dumps(result, default=str)[:300])
    return 0


if __name__ == "__main__":
    sys.exit(main())
