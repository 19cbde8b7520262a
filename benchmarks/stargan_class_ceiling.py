"""How much garment-class preservation a perfect StarGAN translation could show under the class judge.

    python benchmarks/stargan_class_ceiling.py                              # specs/stargan_attributes.yaml
    python benchmarks/stargan_class_ceiling.py --variants 3:keep,3:value,10:value --set data.seed=1

The StarGAN spec's ``class_kept`` figures ask the class judge (trained on the run's real images in
all domains, as the spec's eval does) whether a translation keeps the garment class of its input.
The best translation of a test garment to domain d is that same garment rendered in d. This script
renders every base test image in every domain with the spec's own morphology and palette, and per
judge variant ``EPOCHS:COLOUR`` (colour ``keep`` = RGB, ``value`` = the brightest channel only)
reports the judge's accuracy on those renderings (the **accuracy ceiling** of ``class_kept``) and
how often it gives the garment in its own domain and in a target domain the same class (the
**agreement ceiling**; targets uniform over the domains, as the eval draws them), overall and per
target domain. A variant not in the cache takes a few CPU minutes per 3 epochs on one thread.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "stargan_attributes.yaml"),
                        help="a spec whose data is `dataset: attributes`")
    parser.add_argument("--variants", default="3:keep,3:value",
                        help="comma-separated EPOCHS:COLOUR, colour keep (RGB) or value")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a spec override, as `lvmgraph run --set` (e.g. data.seed=1)")
    args = parser.parse_args(argv)

    import torch
    from lvmgraph.api import load
    from lvmgraph.eval.judge import judge_for
    from lvmgraph_datasets.attributes import AttributesParams, DomainTable, load_attributes, render
    from lvmgraph_datasets.derived import finish_images, load_base

    torch.set_num_threads(1)
    loaded = load(args.spec, args.set)
    settings = dict(loaded.params.get(("data",)) or {})
    if loaded.spec.data.dataset != "attributes":
        parser.error(f"{args.spec}: data must be `dataset: attributes`")
    bundle = load_attributes(**settings)
    p = AttributesParams.model_validate(settings)
    table = DomainTable(list(p.thickness), list(p.colours))
    x, y = load_base(p).splits["test"]
    own = bundle.test["domain"]
    n, domains = len(y), len(table.pairs)
    # every test garment in every domain: D tensors (n 3 h w), finished as the data are
    renders = [finish_images(render(x, torch.full((n,), d, dtype=torch.int64), table, p), p) for d in range(domains)]
    for variant in args.variants.split(","):
        epochs, colour = variant.split(":")
        start = time.perf_counter()
        judge = judge_for("attributes", bundle, images=["x"], labels=["y"], epochs=int(epochs), colour=colour)
        pred = torch.stack([judge.predict(r, bundle.info) for r in renders])  # (D n)
        pred_own = pred.gather(0, own[None])[0]  # the garment as the test split shows it
        acc = (pred == y[None]).double().mean(dim=1)
        agree = (pred == pred_own[None]).double().mean(dim=1)
        print(json.dumps({"epochs": int(epochs), "colour": colour, "seconds": round(time.perf_counter() - start),
                          "judge_on_real_test": round(judge.test["accuracy"], 4),
                          "accuracy_ceiling": round(acc.mean().item(), 4),
                          "agreement_ceiling": round(agree.mean().item(), 4),
                          "by_target_domain": {name: {"accuracy": round(acc[d].item(), 3),
                                                      "agreement": round(agree[d].item(), 3)}
                                               for d, name in enumerate(table.names)}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
