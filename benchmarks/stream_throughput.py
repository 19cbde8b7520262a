"""Training images per second: an image_folder held in memory against the same folder streamed.

    python benchmarks/stream_throughput.py                      # 2000 PNGs of 64x64 RGB, resized to 32
    python benchmarks/stream_throughput.py --images 200 --workers 0 2 --batches 20

Writes ``--images`` random PNG files into a temporary folder, then times ``--batches`` batches of
``--batch-size`` from each batcher the trainer would use: ``IndexBatcher`` (tensors in memory;
its load time, which decodes every image once, is reported apart) and ``StreamBatcher`` with each
number of ``--workers`` (decoding every batch's images; the workers' start-up is included, so a
short measurement understates them). Only the data side is timed, no model: the figure says how
many images a second the loader can feed, to compare with a model's own step rate.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lvmgraph.data.loader import IndexBatcher
from lvmgraph.data.stream import StreamBatcher
from lvmgraph_datasets import load_image_folder, stream_image_folder


def write_folder(root: Path, n: int, side: int) -> None:
    rng = np.random.default_rng(0)
    for label in range(2):
        (root / f"class{label}").mkdir(parents=True)
        for i in range(n // 2):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / f"class{label}/{i}.png")


def rate(batcher, batches: int, batch_size: int) -> float:
    start = time.perf_counter()
    for _ in range(batches):
        batcher.next()
    return batches * batch_size / (time.perf_counter() - start)


def main(argv=None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--side", type=int, default=64, help="side of the written PNGs")
    parser.add_argument("--size", type=int, default=32, help="data.size: the side the loader delivers")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pictures"
        write_folder(root, args.images, args.side)
        settings = dict(root=str(root), size=args.size, flip="horizontal")
        kw = dict(batch_size=args.batch_size, device=torch.device("cpu"), seed=0)
        start = time.perf_counter()
        data = load_image_folder(**settings)
        load_s = time.perf_counter() - start
        memory = rate(IndexBatcher(data.train, augment=data.augment, **kw), args.batches, args.batch_size)
        lines.append(f"in memory: {memory:,.0f} images/s (after {load_s:.1f} s decoding {args.images} images "
                     f"of {args.side}px to {args.size}px)")
        streamed = stream_image_folder(**settings)
        for workers in args.workers:
            batcher = StreamBatcher(streamed.train, augment=streamed.augment, workers=workers, **kw)
            speed = rate(batcher, args.batches, args.batch_size)
            lines.append(f"streamed, {workers} worker{'s' if workers != 1 else ''}: {speed:,.0f} images/s")
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    main()
