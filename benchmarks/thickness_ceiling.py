"""How much garment-class agreement a perfect thin <-> thick translation could reach under the judge.

    python benchmarks/thickness_ceiling.py                               # specs/cyclegan_thin2thick.yaml
    python benchmarks/thickness_ceiling.py specs/cyclegan_thin2thick.yaml --epochs 10

The CycleGAN spec's ``class_kept_*`` figures ask the class judge (trained on the run's real thin
and thick images, as the spec's eval does) whether a translation keeps the garment class of its
input. The best translation of a thinned garment is that same garment thickened; this script
builds both versions of every base test image with the spec's own morphology settings and reports
the judge's accuracy on each and how often it gives the two versions the same class (the
**agreement ceiling**; per class too). A translation cannot be expected to beat it by much: the
judge's errors on real images differ between the thin and the thick version of a garment.
The judge comes from the cache, or is trained as the spec's eval would (a few CPU minutes).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "cyclegan_thin2thick.yaml"),
                        help="a spec whose data is `dataset: domains, kind: thickness`")
    parser.add_argument("--epochs", type=int, default=None,
                        help="the class judge's training epochs, as its `judge: {epochs: N}` in the spec "
                             "(default: the judge's own default)")
    args = parser.parse_args(argv)

    import torch
    from lvmgraph.api import load
    from lvmgraph.eval.judge import judge_for
    from lvmgraph_datasets.derived import apply_thickness, finish_images, load_base
    from lvmgraph_datasets.domains import DomainsParams, load_domains

    torch.set_num_threads(1)
    loaded = load(args.spec)
    settings = dict(loaded.params.get(("data",)) or {})
    if loaded.spec.data.dataset != "domains" or settings.get("kind") != "thickness":
        parser.error(f"{args.spec}: data must be `dataset: domains` with `kind: thickness`")
    bundle = load_domains(**settings)
    judge = judge_for("domains", bundle, images=["x_a", "x_b"], labels=["y_a", "y_b"], epochs=args.epochs)
    p = DomainsParams.model_validate(settings)
    x, y = load_base(p).splits["test"]
    thin = judge.predict(finish_images(apply_thickness(x, "thin", p), p), bundle.info)
    thick = judge.predict(finish_images(apply_thickness(x, "thick", p), p), bundle.info)
    print(f"{len(y)} base test images; class judge accuracy on the real test images {judge.test['accuracy']:.3f}")
    print(f"{'class':14s} {'thin acc':>8s} {'thick acc':>9s} {'agreement':>9s}")
    names = bundle.info["class_names"]
    for c, name in enumerate(names):
        m = y == c
        print(f"{name:14s} {(thin[m] == c).float().mean():8.3f} {(thick[m] == c).float().mean():9.3f} "
              f"{(thin[m] == thick[m]).float().mean():9.3f}")
    print(f"{'all':14s} {(thin == y).float().mean():8.3f} {(thick == y).float().mean():9.3f} "
          f"{(thin == thick).float().mean():9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
