"""Pictures a run writes: sample grids during training and, for a 2-D latent, the latent plot."""
from __future__ import annotations

from pathlib import Path

import torch

from ..experiment import Experiment, generate, generate_outputs, grid_rows, test_batch
from ..graph.execute import Executor

GRID_SEED = 1234  # the same prior draws at every step, so grids show progress rather than noise


def as_tensor(value) -> torch.Tensor:
    """Generated outputs may be distributions (use their mean) or tensors."""
    if isinstance(value, torch.distributions.Distribution):
        return value.mean
    if isinstance(value, dict):
        raise TypeError("sample.output is a dict of outputs; name one of them, e.g. output: value.image")
    return value


def write_sample_grid(exp: Experiment, run, step: int, n: int | None = None) -> Path | None:
    if exp.spec.sample is None:
        return None
    from .images import save_image_grid, save_points_plot
    n = n or exp.spec.sample.n
    path = run.samples / f"step_{step:08d}.png"
    grid = exp.spec.sample.grid
    with torch.random.fork_rng(devices=[]):  # never disturb the training RNG
        torch.manual_seed(GRID_SEED)
        if grid:  # rows such as input, translation, reconstruction
            from .images import save_comparison_grid
            rows = [r.detach().float().cpu() for r in grid_rows(generate_outputs(exp, n, grid), grid)]
            return save_comparison_grid(rows, path, value_range=tuple(exp.data.info.get("value_range", (0, 1))),
                                        min_tile=32)
        out = as_tensor(generate(exp, n)).detach().float().cpu()
    kind = exp.data.info.get("kind", "image" if out.dim() == 4 else "points")
    if kind == "image" and out.dim() == 4:
        save_image_grid(out, path, value_range=tuple(exp.data.info.get("value_range", (0, 1))), min_tile=32)
    elif out.dim() == 2 and out.shape[1] == 2:
        ref = exp.data.test["x"][:2000] if "x" in exp.data.test else None
        save_points_plot(out, path, reference=ref, title=f"{exp.spec.name}: samples at step {step}")
    else:
        return None
    return path


def latent_value(exp: Experiment) -> str | None:
    """The value a prior replaces when sampling (``sample.set``) — the model's latent code."""
    if exp.spec.sample is None or not exp.spec.sample.set:
        return None
    return next(iter(exp.spec.sample.set))


def encode(exp: Experiment, value: str, n: int = 2000) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``value`` computed from up to n test rows (e.g. encoded latents), with labels if the data has them."""
    fields = exp.graph.data_needed([value])
    if not fields:
        raise ValueError(f"'{value}' is not computed from data")
    n = min(n, len(next(iter(exp.data.test.values()))))
    modules = exp.modules
    was_training = modules.training
    modules.eval()
    outs = []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(GRID_SEED)
            ex = Executor(exp.graph, modules, exp.schedules, exp.device)
            bs = exp.spec.data.eval_batch_size
            for start in range(0, n, bs):
                batch = {f: exp.data.test[f][start:min(n, start + bs)] for f in fields}
                ex.begin(exp.to_device(batch), 0)
                outs.append(as_tensor(ex.evaluate([value])[value]).float().cpu())
    finally:
        modules.train(was_training)
    labels = exp.data.test["y"][:n] if "y" in exp.data.test else None
    return torch.cat(outs), labels


def write_latent_plot(exp: Experiment, run) -> Path | None:
    value = latent_value(exp)
    if value is None or not exp.graph.data_needed([value]):
        return None
    latents, labels = encode(exp, value)
    if latents.dim() != 2 or latents.shape[1] < 2:
        return None
    from .images import save_latent_plot
    prior = exp.modules[exp.spec.sample.set[value]]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(GRID_SEED)
        prior_samples = prior.sample(n=latents.shape[0]).float().cpu()
    path = run.path / "latent.png"
    save_latent_plot(latents, labels, path, prior_samples=prior_samples,
                     title=f"{exp.spec.name}: encoded test data ('{value}') over prior samples",
                     class_names=exp.data.info.get("class_names"))
    return path
