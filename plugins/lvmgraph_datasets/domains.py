"""Two unaligned image domains for unpaired translation (CycleGAN): thin vs thick strokes, or class a vs b.

Axis legend: n image pairs, c channels (1), h w spatial.

Fields per split: ``x_a``, ``x_b`` (n 1 h w), ``y_a``, ``y_b`` (n,) the base class of each image
(for content-preservation metrics), ``index_a``, ``index_b`` (n,) each image's position in the
base split (provenance). Row i of A and row i of B are unrelated images: the pairs are unaligned.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from lvmgraph import DatasetBundle

from .common import split_rng
from .derived import (BASES, SPLITS, MorphoParams, apply_thickness, derived_info, finish_images, load_base,
                      resolve_class)

#: base -> the (a, b) class pair ``kind: classes`` uses when class_a / class_b are unset
DEFAULT_CLASS_PAIRS = {"fashion_mnist": ("Sneaker", "Ankle boot"), "digits": ("1", "7"), "mnist": ("1", "7")}


class DomainsParams(MorphoParams):
    kind: Literal["classes", "thickness"] = Field(
        default="classes",
        description="classes: domain A = images of class_a, B = images of class_b; thickness: A = thinned, "
                    "B = thickened images, from disjoint random halves of the base")
    class_a: str | int | None = Field(
        default=None, description="domain A's class for kind: classes, by name or index "
                                  "(unset: Sneaker for fashion_mnist, 1 for digits/mnist)")
    class_b: str | int | None = Field(
        default=None, description="domain B's class for kind: classes, by name or index "
                                  "(unset: Ankle boot for fashion_mnist, 7 for digits/mnist)")

    @model_validator(mode="after")
    def _classes_exist(self):
        if self.kind == "classes":
            a, b = class_pair(self)
            if a == b:
                raise ValueError(f"class_a and class_b are the same class "
                                 f"('{BASES[self.base].class_names[a]}'); pick two different classes")
        elif self.class_a is not None or self.class_b is not None:
            raise ValueError("class_a / class_b only apply to kind: classes; remove them or set kind: classes")
        return self


def class_pair(p: DomainsParams) -> tuple[int, int]:
    """The (a, b) class indices of ``kind: classes``."""
    names = BASES[p.base].class_names
    default_a, default_b = DEFAULT_CLASS_PAIRS[p.base]
    a = resolve_class(default_a if p.class_a is None else p.class_a, names, setting="class_a", base=p.base)
    b = resolve_class(default_b if p.class_b is None else p.class_b, names, setting="class_b", base=p.base)
    return a, b


def split_indices(y: np.ndarray, p: DomainsParams, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Base labels (n,) -> (indices of domain A, of domain B), disjoint, each shuffled, of equal length."""
    rng = split_rng(p.seed, split)
    if p.kind == "thickness":
        order = rng.permutation(len(y))
        half = len(y) // 2
        idx_a, idx_b = order[:half], rng.permutation(order[half:2 * half])
    else:
        a, b = class_pair(p)
        idx_a, idx_b = rng.permutation(np.flatnonzero(y == a)), rng.permutation(np.flatnonzero(y == b))
        n = min(len(idx_a), len(idx_b))  # truncate the larger domain
        idx_a, idx_b = idx_a[:n], idx_b[:n]
    if len(idx_a) == 0:
        names = BASES[p.base].class_names
        what = (f"images of both '{names[class_pair(p)[0]]}' and '{names[class_pair(p)[1]]}'"
                if p.kind == "classes" else "two images")
        raise ValueError(f"the {split} split of {p.base} holds no pair of domain images (it needs {what}); "
                         f"raise limit_{split} or leave it unset")
    return idx_a, idx_b


def load_domains(**settings) -> DatasetBundle:
    """Two unaligned image domains from a base dataset: x_a, x_b (n 1 h w), y_a, y_b (n,) base classes.

    ``kind: classes`` (default): A = class_a, B = class_b images (Fashion-MNIST: Sneaker vs Ankle
    boot), each shuffled with the seed and the larger truncated to the smaller. ``kind: thickness``:
    a seeded permutation of the base split is cut into two disjoint halves; A's half is thinned and
    B's thickened (Morpho-MNIST amounts 0.7 and 1.0, see ``morpho``), so no base image appears in
    both domains. ``base`` / ``base_settings`` choose and configure the base; ``limit_train`` /
    ``limit_test`` use only the first N base images. ``info["domains"]`` names the two domains.
    """
    p = DomainsParams.model_validate(settings)
    base = load_base(p)
    names = BASES[p.base].class_names
    domain_names = ["thin", "thick"] if p.kind == "thickness" else [names[c] for c in class_pair(p)]
    splits = {}
    for split in SPLITS:
        x, y = base.splits[split]
        idx_a, idx_b = (torch.from_numpy(i) for i in split_indices(y.numpy(), p, split))
        x_a, x_b = x[idx_a], x[idx_b]
        if p.kind == "thickness":
            x_a, x_b = apply_thickness(x_a, "thin", p), apply_thickness(x_b, "thick", p)
        splits[split] = {"x_a": finish_images(x_a, p), "x_b": finish_images(x_b, p),
                         "y_a": y[idx_a], "y_b": y[idx_b], "index_a": idx_a, "index_b": idx_b}
    train = splits["train"]
    info = derived_info(name="domains", base=base, p=p, shape=train["x_a"].shape[1:],
                        native_shape=base.splits["train"][0].shape[1:], domains=domain_names,
                        domain_kind=p.kind)
    return DatasetBundle(train=train, test=splits["test"], info=info)
