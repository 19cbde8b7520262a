"""Generate along a line between two captions' embeddings: the INT idea, as a picture.

    python -m lvmgraph_text2image.interpolate RUN_DIR "a red sneaker" "a thick green ankle boot" \\
        [--steps 8] [--rows 4] [--seed 0] [--out interpolation.png]

Axis legend: r rows (noise draws), s steps (interpolation weights), d embedding width.

Each row keeps one noise draw z; across the columns the text embedding moves from phi(caption A)
(left) to phi(caption B) (right): phi = (1 - beta) phi_A + beta phi_B, beta = 0 ... 1. The run's
graph must compute the embedding as ``phi`` from the data fields ``text`` and ``text_length``
(the family:text2image template does) and feed the generator through the value ``phi_g``;
``--embedding`` / ``--generator-input`` name other values.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from einops import repeat

from lvmgraph.eval.artifacts import as_tensor
from lvmgraph.experiment import Experiment, generate


def encode_captions(exp: Experiment, captions: list[str]) -> dict[str, torch.Tensor]:
    """Captions -> {text (n L), text_length (n,)} with the run's dataset vocabulary, on its device."""
    from lvmgraph_datasets.captions import encode_caption
    info = exp.data.info
    if "vocabulary" not in info:
        raise ValueError(f"dataset '{info.get('name')}' has no caption vocabulary; use the captions dataset")
    length = int(info["max_caption_length"])
    text = torch.stack([encode_caption(c, info["vocabulary"], length=length) for c in captions])
    return exp.to_device({"text": text, "text_length": (text != 0).sum(dim=1)})


def caption_embeddings(exp: Experiment, captions: list[str], embedding: str = "phi") -> torch.Tensor:
    """Captions -> their sentence embeddings (n d): the graph value ``embedding`` for those texts."""
    from lvmgraph.graph.execute import Executor
    modules = exp.sampling_modules()
    ex = Executor(exp.graph, modules, exp.schedules, exp.device)
    was_training = modules.training
    modules.eval()
    try:
        ex.begin(encode_captions(exp, captions), 0)
        with torch.no_grad():
            return ex.evaluate([embedding])[embedding]
    finally:
        modules.train(was_training)


def interpolation(exp: Experiment, caption_a: str, caption_b: str, *, steps: int = 8, rows: int = 4,
                  seed: int = 0, embedding: str = "phi", generator_input: str = "phi_g") -> torch.Tensor:
    """-> images (r*s c h w), row-major: row i shares noise, column j has beta = j / (s - 1)."""
    if steps < 2 or rows < 1:
        raise ValueError("interpolation needs steps >= 2 and rows >= 1")
    phi = caption_embeddings(exp, [caption_a, caption_b], embedding)  # (2 d)
    beta = torch.linspace(0.0, 1.0, steps, device=phi.device)[:, None]
    line = (1 - beta) * phi[0] + beta * phi[1]  # (s d)
    given = {generator_input: repeat(line, "s d -> (r s) d", r=rows)}
    noise = {value: prior for value, prior in exp.spec.sample.set.items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for value, prior in noise.items():  # one draw per row, shared across the row
            draws = exp.sampling_modules()[prior].sample(n=rows)
            given[value] = repeat(draws, "r ... -> (r s) ...", s=steps)
        return as_tensor(generate(exp, rows * steps, given=given)).detach().cpu()


def main(argv: list[str] | None = None) -> int:
    import lvmgraph.api as lg
    from lvmgraph.eval.images import save_image_grid
    ap = argparse.ArgumentParser(prog="python -m lvmgraph_text2image.interpolate", description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("caption_a")
    ap.add_argument("caption_b")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedding", default="phi")
    ap.add_argument("--generator-input", default="phi_g")
    ap.add_argument("--out", default="interpolation.png")
    args = ap.parse_args(argv)
    exp = lg.open_run(args.run).experiment
    images = interpolation(exp, args.caption_a, args.caption_b, steps=args.steps, rows=args.rows, seed=args.seed,
                           embedding=args.embedding, generator_input=args.generator_input)
    path = save_image_grid(images, Path(args.out), nrow=args.steps,
                           value_range=tuple(exp.data.info.get("value_range", (0.0, 1.0))), min_tile=32)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
