"""Multi-domain images for StarGAN: each base image rendered in one of D attribute domains.

Axis legend: n images, c channels (3, RGB), h w spatial, D domains, A binary attributes.

A domain is a (stroke thickness, colour) combination: thickness levels from {thin, normal, thick}
(normal = the image as it is) times colours from ``morpho.PALETTE``; the defaults, 3 levels x
{red, green}, give D = 6 domains. The binary attributes are the non-normal thickness levels
followed by the colours (default A = 4: thin, thick, red, green); a domain's multi-hot vector has
its thickness bit (none for normal) and its colour bit set, so "normal red" is [0, 0, 1, 0].

Each image's domain is drawn at random with the seed, balanced: a shuffled sequence 0, 1, ...,
D-1, 0, 1, ... so the counts differ by at most one. The domain is a label of the image, not a
translation target: StarGAN draws its targets at training time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field, field_validator

from lvmgraph import DatasetBundle

from .common import split_rng
from .derived import SPLITS, LoadedBase, MorphoParams, apply_thickness, derived_info, finish_images, load_base
from .morpho import PALETTE, colour_rgb

THICKNESS_LEVELS = ("thin", "normal", "thick")


class AttributesParams(MorphoParams):
    thickness: list[str] = Field(default_factory=lambda: list(THICKNESS_LEVELS),
                                 description="stroke thickness levels of the domains, from thin | normal | thick "
                                             "(normal: the image unchanged)")
    colours: list[str] = Field(default_factory=lambda: ["red", "green"],
                               description=f"ink colours of the domains, from the palette: {', '.join(PALETTE)}")

    @field_validator("thickness")
    @classmethod
    def _known_levels(cls, value: list[str]) -> list[str]:
        for level in value:
            if level not in THICKNESS_LEVELS:
                raise ValueError(f"unknown thickness level '{level}': use thin, normal or thick")
        return _unique_nonempty(value, "thickness")

    @field_validator("colours")
    @classmethod
    def _known_colours(cls, value: list[str]) -> list[str]:
        for colour in value:
            colour_rgb(colour)  # raises with the closest palette name
        return _unique_nonempty(value, "colours")


def _unique_nonempty(value: list[str], setting: str) -> list[str]:
    if not value:
        raise ValueError(f"{setting} needs at least one entry")
    if len(set(value)) != len(value):
        raise ValueError(f"{setting} lists an entry twice: {value}")
    return value


@dataclass(frozen=True)
class DomainTable:
    """The D domains: their (thickness, colour), names, and multi-hot attribute vectors (D A)."""

    thickness: list[str]
    colours: list[str]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(t, c) for t in self.thickness for c in self.colours]

    @property
    def names(self) -> list[str]:
        return [f"{t} {c}" for t, c in self.pairs]

    @property
    def attribute_names(self) -> list[str]:
        return [t for t in self.thickness if t != "normal"] + list(self.colours)

    def multi_hot(self) -> torch.Tensor:
        """-> (D A) float32: each domain's attribute vector."""
        names = self.attribute_names
        table = torch.zeros(len(self.pairs), len(names))
        for d, (t, c) in enumerate(self.pairs):
            if t != "normal":
                table[d, names.index(t)] = 1.0
            table[d, names.index(c)] = 1.0
        return table


def balanced_domains(n: int, num_domains: int, rng: np.random.Generator) -> np.ndarray:
    """-> (n,) int64 domain per image: a shuffled 0..D-1 cycle, so counts differ by at most one."""
    return rng.permutation(np.arange(n) % num_domains).astype(np.int64)


def render(x: torch.Tensor, domain: torch.Tensor, table: DomainTable, p: MorphoParams) -> torch.Tensor:
    """x (n 1 h w) grey in [0, 1], domain (n,) -> (n 3 h w) RGB in [0, 1]: thickness changed, then tinted."""
    pairs = table.pairs
    level = [pairs[d][0] for d in domain.tolist()]
    grey = x.clone()
    for name in sorted(set(level)):
        rows = torch.tensor([i for i, v in enumerate(level) if v == name], dtype=torch.int64)
        grey[rows] = apply_thickness(x[rows], name, p)
    rgb = torch.tensor([colour_rgb(c) for _, c in pairs], dtype=x.dtype)[domain]  # (n 3)
    return grey * rgb[:, :, None, None]


@dataclass
class AttributeSplits:
    """What ``attribute_splits`` makes: per split the rendered fields, plus the table and the base."""

    splits: dict[str, dict[str, torch.Tensor]]
    table: DomainTable
    base: LoadedBase


def attribute_splits(p: AttributesParams) -> AttributeSplits:
    """The base, each image given a balanced random domain and rendered in it: x (n 3 h w) in [0, 1]
    (not yet padded or range-mapped), y, domain (n,), attributes (n A)."""
    base = load_base(p)
    table = DomainTable(list(p.thickness), list(p.colours))
    hot = table.multi_hot()
    splits = {}
    for split in SPLITS:
        x, y = base.splits[split]
        domain = torch.from_numpy(balanced_domains(len(y), len(table.pairs), split_rng(p.seed, split)))
        splits[split] = {"x": render(x, domain, table, p), "y": y, "domain": domain, "attributes": hot[domain]}
    return AttributeSplits(splits, table, base)


def attribute_info(made: AttributeSplits, p: AttributesParams, *, name: str, shape, **extra) -> dict:
    table = made.table
    return derived_info(name=name, base=made.base, p=p, shape=shape,
                        native_shape=(3, *made.base.splits["train"][0].shape[2:]),
                        domain_names=table.names, num_domains=len(table.pairs),
                        attribute_names=table.attribute_names,
                        domain_attributes=table.multi_hot().tolist(),
                        palette={c: list(colour_rgb(c)) for c in table.colours}, **extra)


def load_attributes(**settings) -> DatasetBundle:
    """Multi-domain RGB images for StarGAN: x (n 3 h w), y (n,), domain (n,) int64, attributes (n A).

    Each base image gets a random (balanced, seeded) domain, a combination of a stroke thickness
    level (``thickness``: thin, normal, thick by Morpho-MNIST erosion/dilation) and an ink colour
    (``colours``, default red, green): 6 domains by default. ``attributes`` is the domain's
    multi-hot vector over ``info["attribute_names"]`` (thin, thick, red, green by default);
    ``info["domain_names"]`` ("thin red", ...), ``info["num_domains"]`` and
    ``info["domain_attributes"]`` (D A) describe the domains.
    """
    p = AttributesParams.model_validate(settings)
    made = attribute_splits(p)
    for fields in made.splits.values():
        fields["x"] = finish_images(fields["x"], p)
    info = attribute_info(made, p, name="attributes", shape=made.splits["train"]["x"].shape[1:])
    return DatasetBundle(train=made.splits["train"], test=made.splits["test"], info=info)
