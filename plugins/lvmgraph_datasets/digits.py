"""scikit-learn's bundled 8x8 handwritten digits: the embedded default dataset, no download.

Axis legend: n samples, c channels (1), h w spatial (8 x 8, or pad_to).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from lvmgraph import DatasetBundle, DatasetUnavailable

from .common import (DIGIT_NAMES, Binarize, ImageParams, image_bundle, labels_to_tensor, prepare_images,
                     to_unit_float)

#: the digits' pixels are counts 0..16 (4x4 blocks of a 32x32 bitmap)
DIGITS_MAX_VALUE = 16.0


class DigitsParams(ImageParams):
    test_fraction: float = Field(default=0.2, gt=0, lt=1,
                                 description="share of the 1,797 images held out as the test split")


def read_bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits file inside scikit-learn's package -> images (n 8 8) float32, targets (n,) int.

    Read directly (the same file ``sklearn.datasets.load_digits`` parses) because importing
    scikit-learn and SciPy costs about 2 s of start-up in every command.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable("the digits dataset ships with scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.exists():  # a future scikit-learn may move the file; its loader still knows where
        from sklearn.datasets import load_digits as sklearn_load_digits
        raw = sklearn_load_digits()
        return raw.images.astype(np.float32), raw.target
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def shuffled_split(n: int, *, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n items -> (train indices, test indices): a seeded shuffle cut at test_fraction."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(max(int(round(test_fraction * n)), 1), n - 1)
    return order[n_test:], order[:n_test]


def load_digits(*, test_fraction: float = 0.2, seed: int = 0, value_range: tuple[float, float] = (0.0, 1.0),
                pad_to: int | None = None, binarize: Binarize = "none") -> DatasetBundle:
    """8x8 handwritten digits from scikit-learn (1,797 images, bundled): x (n 1 8 8) in [0, 1], y (n,) 0..9.

    The embedded default for quick starts and tests: it ships inside scikit-learn, so it
    works offline. The train/test split is a seeded shuffle (``test_fraction``, ``seed``);
    ``pad_to`` pads to a larger square (e.g. 16), ``binarize`` makes pixels 0/1 and
    ``value_range`` can deliver [-1, 1] instead of [0, 1].
    """
    images, targets = read_bundled_digits()
    x = to_unit_float(images, max_value=DIGITS_MAX_VALUE)
    y = labels_to_tensor(targets)
    train_idx, test_idx = shuffled_split(len(y), test_fraction=test_fraction, seed=seed)

    def split(name: str, idx: np.ndarray):
        idx = torch.from_numpy(idx)
        images = prepare_images(x[idx], split=name, seed=seed, binarize=binarize,
                                pad_to=pad_to, value_range=value_range)
        return images, y[idx]

    return image_bundle(train=split("train", train_idx), test=split("test", test_idx), name="digits",
                        class_names=DIGIT_NAMES, value_range=value_range, binarize=binarize, source="sklearn",
                        native_shape=(1, 8, 8))
