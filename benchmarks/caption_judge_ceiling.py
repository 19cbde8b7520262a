"""How well the captions data's class judge reads real test images, by input colour and epochs.

    python benchmarks/caption_judge_ceiling.py                     # specs/text2image_fashion.yaml's data
    python benchmarks/caption_judge_ceiling.py --variants 3:keep,3:value,10:value

The text-to-image spec's ``class_from_text`` figure is capped by its class judge's accuracy on
real test images. This script gets that judge from ``judge_for`` (the one the
spec's eval uses, from the cache or trained on the train split of the spec's own captions data,
held-out combinations removed as in the run) once per variant ``EPOCHS:COLOUR`` (colour ``keep`` =
RGB, ``value`` = the brightest channel only, the judge's ``colour: value``) and reports its
accuracy on the whole test split, on the held-out combinations and on the rest, and per domain
(thickness x colour). A variant not in the cache takes a few CPU minutes (3 epochs) on one thread.
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
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "text2image_fashion.yaml"))
    parser.add_argument("--variants", default="3:keep,3:value,10:value",
                        help="comma-separated EPOCHS:COLOUR, colour keep (RGB) or value")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import lvmgraph.api as lg
    from lvmgraph.eval.judge import judge_data, judge_for
    from lvmgraph.experiment import prepare

    exp = prepare(lg.load(args.spec, ["train.threads=1"]), device="cpu")
    bundle = exp.data
    x_test, y_test, _ = judge_data(bundle, "test", ["x"], ["y"])
    held = bundle.test["held_out"].cpu()
    domain = bundle.test["domain"].cpu()
    names = bundle.info["domain_names"]
    print(f"train {len(bundle.train['y'])} images (held-out combinations removed), test {len(y_test)}, "
          f"of which held out {int(held.sum())}", file=sys.stderr)
    name = bundle.info.get("name") or exp.spec.data.dataset
    for variant in args.variants.split(","):
        epochs, colour = variant.split(":")
        start = time.perf_counter()
        judge = judge_for(name, bundle, images=["x"], labels=["y"], epochs=int(epochs), colour=colour)
        right = (judge.predict(x_test) == y_test).double()
        print(json.dumps({"epochs": int(epochs), "colour": colour, "seconds": round(time.perf_counter() - start),
                          "test": round(right.mean().item(), 4), "held_out": round(right[held].mean().item(), 4),
                          "rest": round(right[~held].mean().item(), 4),
                          "by_domain": {names[d]: round(right[domain == d].mean().item(), 3)
                                        for d in range(len(names))}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
