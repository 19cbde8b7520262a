"""Synthetic 2-D data: the PacGAN/VEEGAN Gaussian mixtures for mode-coverage tests, swiss roll, moons.

Axis legend: n samples, d coordinates (2), m mixture modes.

Geometry (PacGAN, Lin et al. 2018, after VEEGAN): ring8 is 8 Gaussians with means
(cos 2πi/8, sin 2πi/8) on the unit circle and σ = 0.01 (variance 1e-4); grid25 is 25
Gaussians with means (-4 + 2i, -4 + 2j), i, j in 0..4, and σ = 0.05 (variance 0.0025).
Each point picks its mode uniformly at random.
"""
from __future__ import annotations

import itertools
import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from lvmgraph import DatasetBundle, Params

from .common import split_rng

Toy2DName = Literal["ring8", "grid25", "swiss_roll", "moons"]

RING_RADIUS, RING_MODES, RING_STD = 1.0, 8, 0.01
GRID_COORDS, GRID_STD = (-4.0, -2.0, 0.0, 2.0, 4.0), 0.05
#: make_swiss_roll draws t in [1.5π, 4.5π] and returns (t cos t, ., t sin t), so |coords| <= 4.5π
SWISS_ROLL_EXTENT = 4.5 * math.pi

#: the extent of each geometry (samples spill over by a few σ or the noise)
NOMINAL_RANGE = {"ring8": (-1.0, 1.0), "grid25": (-4.0, 4.0), "swiss_roll": (-1.0, 1.0), "moons": (-1.0, 2.0)}


def ring8_modes() -> np.ndarray:
    """-> (8, 2) means on the circle of radius 1, starting at (1, 0), counter-clockwise."""
    angles = 2 * np.pi * np.arange(RING_MODES) / RING_MODES
    return RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid25_modes() -> np.ndarray:
    """-> (25, 2) means on the 5x5 grid {-4, -2, 0, 2, 4}^2, row-major in (first, second) coordinate."""
    return np.array(list(itertools.product(GRID_COORDS, GRID_COORDS)))


#: mixture name -> (modes (m d), σ)
MIXTURES = {"ring8": (ring8_modes(), RING_STD), "grid25": (grid25_modes(), GRID_STD)}


class Toy2DParams(Params):
    name: Toy2DName = Field(default="ring8", description="ring8 | grid25 (PacGAN mixtures) | swiss_roll | moons")
    n_train: int = Field(default=20000, gt=0, description="number of training points")
    n_test: int = Field(default=2500, gt=0, description="number of test points (2,500 in the PacGAN protocol)")
    seed: int = Field(default=0, ge=0, description="seed of the draw; train and test use separate streams")
    noise: float = Field(default=0.05, ge=0,
                         description="std of the Gaussian noise for swiss_roll (after scaling to [-1, 1]) and "
                                     "moons; ignored by ring8/grid25, whose σ the PacGAN protocol fixes")


def sample_mixture(modes: np.ndarray, std: float, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """modes (m d), σ -> points (n d) from the equal-weight isotropic mixture, and each point's mode (n,)."""
    which = rng.integers(len(modes), size=n)
    return modes[which] + std * rng.standard_normal((n, modes.shape[1])), which


def sample_swiss_roll(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """-> points (n 2): the roll's (x, z) plane scaled into [-1, 1], plus noise; labels all 0."""
    from sklearn.datasets import make_swiss_roll  # lazy: sklearn adds ~1 s to start-up

    points, _ = make_swiss_roll(n, noise=0.0, random_state=sklearn_seed(rng))
    # noise added after scaling so that `noise` means the same thing as for the other shapes
    points = points[:, [0, 2]] / SWISS_ROLL_EXTENT + noise * rng.standard_normal((n, 2))
    return points, np.zeros(n, dtype=np.int64)


def sample_moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """-> points (n 2) of scikit-learn's two interleaved half circles, and the moon each is on (n,)."""
    from sklearn.datasets import make_moons

    return make_moons(n, noise=noise, random_state=sklearn_seed(rng))


def sklearn_seed(rng: np.random.Generator) -> int:
    """scikit-learn takes an int seed, not a numpy Generator: draw one from ours."""
    return int(rng.integers(2**31 - 1))


def sample_points(name: str, n: int, noise: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (x float32 (n 2), y int64 (n,)) for the named geometry."""
    if name in MIXTURES:
        points, labels = sample_mixture(*MIXTURES[name], n, rng)
    elif name == "swiss_roll":
        points, labels = sample_swiss_roll(n, noise, rng)
    else:
        points, labels = sample_moons(n, noise, rng)
    return torch.from_numpy(points.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def class_names_for(name: str) -> list[str]:
    if name == "ring8":
        return [f"mode {i}" for i in range(RING_MODES)]
    if name == "grid25":
        return [f"({a:g}, {b:g})" for a, b in grid25_modes()]
    if name == "moons":
        return ["upper moon", "lower moon"]
    return ["swiss roll"]


def load_toy2d(*, name: Toy2DName = "ring8", n_train: int = 20000, n_test: int = 2500, seed: int = 0,
               noise: float = 0.05) -> DatasetBundle:
    """Synthetic 2-D points: x (n 2) float32, y (n,) the mode (ring8, grid25), moon (moons) or 0 (swiss_roll).

    ring8 and grid25 follow the PacGAN/VEEGAN mode-coverage protocol (8 Gaussians on the
    unit circle with σ 0.01; 25 on the grid {-4, -2, 0, 2, 4}² with σ 0.05); their
    ``info["modes"]`` (m 2) and ``info["mode_std"]`` let a metric count captured modes.
    swiss_roll (scaled into [-1, 1]) and moons take ``noise``. Train and test are drawn
    from separate seeded streams, so changing ``n_train`` never changes the test points.
    """
    splits = {split: sample_points(name, n, noise, split_rng(seed, split))
              for split, n in (("train", n_train), ("test", n_test))}
    class_names = class_names_for(name)
    info = {
        "name": name,
        "kind": "points",
        "num_classes": len(class_names),
        "class_names": class_names,
        "value_range": NOMINAL_RANGE[name],
        "source": "synthetic",
        "shape": (2,),
    }
    if name in MIXTURES:
        modes, std = MIXTURES[name]
        info.update(modes=torch.from_numpy(modes.astype(np.float32)), mode_std=std)
    else:
        info["noise"] = noise
    return DatasetBundle(train={"x": splits["train"][0], "y": splits["train"][1]},
                         test={"x": splits["test"][0], "y": splits["test"][1]}, info=info)
