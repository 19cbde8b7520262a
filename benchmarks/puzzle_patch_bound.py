"""How much of the garment class do K unplaced key patches carry? A classifier that sees only them.

    python benchmarks/puzzle_patch_bound.py                          # sides 10, 12, 14; K = 3
    python benchmarks/puzzle_patch_bound.py --sizes 10 --steps 8000  # one side, longer
    python benchmarks/puzzle_patch_bound.py --no-write               # print only

PuzzleGAN (specs/puzzlegan_fashion.yaml) completes a Fashion-MNIST garment from K key patches
given without their positions, and is scored by whether the evaluator still sees the garment's
class in the completion. A completion cannot reliably keep a class its patches do not reveal,
so this script measures the information the patches carry: a classifier is trained on the
same input the generator gets and tested on the patches of test images.

- Data: the spec's own (Fashion-MNIST padded to 32, in [-1, 1]), loaded through the spec.
- Patches: ``key_patches(x, k=K, size=p, min_ink=0.25)``, the op of the spec's graph (random key
  positions, random order, positions dropped). Training draws new patches for every batch (as
  the generator's training does); the test patches are one draw per test image under a fixed
  seed.
- Classifier (order-invariant, as the part encoder): one shared conv net per patch, conv3x3 32 -
  BN - ReLU, conv3x3 32 - BN - ReLU, max-pool 2, conv3x3 64 - BN - ReLU, flatten, linear 256;
  the K features are summed, then ReLU - linear 256 - ReLU - dropout 0.2 - linear 10. Adam lr
  2e-3 under a one-cycle schedule, batch 64, ``--steps`` steps, weight decay 1e-4; one thread.
- Figure: accuracy on all 10,000 test images (standard error about 0.004). It is an estimate
  from below of what the patches determine (a better classifier could do better, none can
  leak positions: there are none). Read it against the evaluator's own 0.92 on real images:
  class preservation of completions near the bound needs the completion to be as clear as a
  real garment.

Results go to ``benchmarks/results/puzzle_patch_bound.json`` (with ``--no-write``: printed only).
Seeded (``--seed``, default 0): the same command gives the same figures on the same machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
from lvmgraph_puzzlegan.patches import key_patches  # noqa: E402  (the spec's own op)

SPEC = ROOT / "specs" / "puzzlegan_fashion.yaml"
OUT = ROOT / "benchmarks" / "results" / "puzzle_patch_bound.json"
MIN_INK = 0.25  # the template's key_patches setting


class PatchSetClassifier(nn.Module):
    """patches (b K c p p) -> class logits (b classes): shared per-patch encoder, features summed over K."""

    def __init__(self, *, channels: int, size: int, classes: int, width: int = 256):
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.encoder = nn.Sequential(*block(channels, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64),
                                     nn.Flatten(), nn.Linear(64 * (size // 2) ** 2, width))
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Linear(width, classes))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        b = patches.shape[0]
        parts = rearrange(self.encoder(rearrange(patches, "b k c p q -> (b k) c p q")), "(b k) d -> b k d", b=b)
        return self.head(parts.sum(dim=1))  # the sum: any order of the patches gives the same logits


def load_fashion():
    """The spec's data: (train x, train y, test x, test y), images padded to 32 in [-1, 1]."""
    from lvmgraph.experiment import load_data
    from lvmgraph.plugins import get_registry
    from lvmgraph.spec.load import load_spec

    loaded = load_spec(SPEC, [])
    loaded.raise_if_errors()
    bundle = load_data(loaded, get_registry())
    return bundle.train["x"], bundle.train["y"].long(), bundle.test["x"], bundle.test["y"].long()


def test_patches(x: torch.Tensor, k: int, size: int, seed: int) -> torch.Tensor:
    """One fixed draw of key patches per test image, under its own seed (the global RNG is restored)."""
    with torch.random.fork_rng():
        torch.manual_seed(10_000 + seed)
        return torch.cat([key_patches(chunk, k, size, MIN_INK)["patches"] for chunk in x.split(1000)])


def bound(data, *, k: int, size: int, steps: int, batch: int, seed: int) -> dict:
    """Train the patch-set classifier on fresh training patches, test on fixed test patches -> figures."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = PatchSetClassifier(channels=x_train.shape[1], size=size, classes=int(y_train.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    start = time.process_time()
    model.train()
    for step in range(steps):
        index = torch.randint(0, x_train.shape[0], (batch,))
        patches = key_patches(x_train[index], k, size, MIN_INK)["patches"]
        loss = F.cross_entropy(model(patches), y_train[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    train_cpu = time.process_time() - start
    model.eval()
    patches = test_patches(x_test, k, size, seed)
    with torch.no_grad():
        pred = torch.cat([model(chunk).argmax(1) for chunk in patches.split(1000)])
    correct = (pred == y_test)
    per_class = [correct[y_test == c].double().mean().item() for c in range(int(y_test.max()) + 1)]
    return {"k": k, "size": size, "accuracy": correct.double().mean().item(), "per_class": per_class,
            "n_test": int(y_test.shape[0]), "steps": steps, "batch": batch, "seed": seed,
            "train_cpu_s": round(train_cpu, 1), "final_train_loss": round(loss.item(), 4)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 12, 14], help="patch sides p")
    ap.add_argument("--k", type=int, default=3, help="patches per image")
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print only; leave the results file alone")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    data = load_fashion()
    rows = []
    for size in args.sizes:
        row = bound(data, k=args.k, size=size, steps=args.steps, batch=args.batch, seed=args.seed)
        rows.append(row)
        print(f"K={row['k']} p={row['size']:>2}: test accuracy {row['accuracy']:.4f} "
              f"(train {row['train_cpu_s']:.0f} CPU-s, last loss {row['final_train_loss']})", flush=True)
    if not args.no_write:
        old = json.loads(OUT.read_text()) if OUT.exists() else {"rows": []}
        keep = [r for r in old["rows"] if (r["k"], r["size"], r["steps"], r["seed"])
                not in {(n["k"], n["size"], n["steps"], n["seed"]) for n in rows}]
        OUT.write_text(json.dumps({
            "what": "test accuracy of a classifier that sees only K unplaced key patches (benchmarks/puzzle_patch_bound.py)",
            "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
            "rows": sorted(keep + rows, key=lambda r: (r["k"], r["size"], r["steps"], r["seed"]))}, indent=1) + "\n")
        print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
