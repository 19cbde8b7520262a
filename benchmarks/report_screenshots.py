"""Screenshots of two run reports for the docs, taken in headless Chromium.

    python benchmarks/report_screenshots.py [--work DIR] [--quick] [--reuse]

Trains ``specs/aae_uniform.yaml`` as shipped (3000 steps, about a minute on 2 CPU cores) and a
shortened ``specs/cyclegan_thin2thick.yaml`` (600 steps on 4096 training images, cycle error
only; the full run and its judges are in docs/BENCHMARKS.md), writes their reports and saves
the top 1280x2400 pixels of each page to docs/images/report_aae_uniform.png and
docs/images/report_cyclegan.png. ``--quick`` trains a tenth as long (to try the script);
``--reuse`` keeps runs already in ``--work`` and only rewrites their reports (``lvmgraph report``).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lvmgraph.api as lg
from lvmgraph.report import PAGE
from lvmgraph.report.browser import loaded_images, screenshot

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def runs(quick: bool) -> dict[str, tuple[Path, list[str]]]:
    cut = 10 if quick else 1
    steps = 600 // cut
    return {
        "report_aae_uniform": (ROOT / "specs" / "aae_uniform.yaml",
                               [f"train.steps={3000 // cut}", f"train.sample_every={500 // cut}"]),
        "report_cyclegan": (ROOT / "specs" / "cyclegan_thin2thick.yaml", [
            f"train.steps={steps}", f"train.sample_every={steps // 6}", f"train.checkpoint_every={steps}",
            f"train.log_every={max(steps // 60, 1)}",
            f"schedules.lr_decay.delay={steps // 2}", f"schedules.lr_decay.steps={steps // 2}",
            "data.limit_train=4096", "data.limit_test=512",
            'eval.metrics=[{cycle_error: {input: x_a, reconstruction: x_aba}}]']),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="train a tenth as long")
    ap.add_argument("--reuse", action="store_true", help="rewrite the reports of runs already in --work")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="lvmgraph-report-"))
    for name, (spec, overrides) in runs(args.quick).items():
        if args.reuse and (work / name / "eval.json").exists():
            page = lg.report(work / name)
        else:
            page = lg.train(spec, out=work / name, overrides=overrides + ["train.progress=false"]).path / PAGE
        broken = [src for src, width in loaded_images(page).items() if not width]
        if broken:
            raise SystemExit(f"{page}: images that did not load: {broken}")
        out = screenshot(page, IMAGES / f"{name}.png")
        print(f"{page}: wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
