"""What the derived datasets (domains, attributes, captions) share: the base dataset and its settings.

Axis legend: n images, c channels, h w spatial.

A derived dataset loads a base image dataset (digits, fashion_mnist or mnist) in [0, 1] without
padding, transforms its images (``morpho``), and only then pads (``pad_to``) and maps the pixels
to ``value_range``, so the transforms always see unpadded [0, 1] images. All randomness comes from
generators seeded from ``seed`` and the split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field, ValidationError, model_validator

from lvmgraph import DatasetBundle, Params

from .common import DIGIT_NAMES, ValueRange, pad_images, pad_shape_settings, to_value_range
from .digits import DigitsParams, load_digits
from .idx import FASHION_MNIST_NAMES, IdxParams, load_fashion_mnist, load_mnist
from .morpho import THICK_AMOUNT, THIN_AMOUNT, thick, thin

BaseName = Literal["fashion_mnist", "digits", "mnist"]
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Base:
    """A base dataset a derived one can be built from."""

    load: Callable[..., DatasetBundle]
    params: type[Params]
    class_names: list[str]
    #: reads only the first N images per split when given limit_train / limit_test (IDX files)
    reads_limits: bool


BASES: dict[str, Base] = {
    "fashion_mnist": Base(load_fashion_mnist, IdxParams, FASHION_MNIST_NAMES, reads_limits=True),
    "digits": Base(load_digits, DigitsParams, DIGIT_NAMES, reads_limits=False),
    "mnist": Base(load_mnist, IdxParams, DIGIT_NAMES, reads_limits=True),
}

#: base settings the derived dataset applies itself, after its transforms
OWN_SETTINGS = ("value_range", "pad_to")


class DerivedParams(Params):
    """Settings of every dataset derived from a base image dataset."""

    base: BaseName = Field(default="fashion_mnist",
                           description="the image dataset the domains are made from: fashion_mnist | digits | mnist")
    base_settings: dict[str, Any] = Field(
        default_factory=dict,
        description="settings passed to the base dataset (e.g. {root: ..., binarize: threshold} for "
                    "fashion_mnist, {test_fraction: 0.3} for digits); value_range and pad_to belong at the "
                    "top level, since they are applied after the transforms")
    seed: int = Field(default=0, ge=0,
                      description="seed of the random choices (which images go where); each split draws its "
                                  "own stream; also the base's seed unless base_settings sets one")
    value_range: ValueRange = Field(
        default=(0.0, 1.0), description="pixel range of the delivered images: [0, 1] or [-1, 1]")
    pad_to: int | None = Field(default=None, gt=0,
                               description="pad the transformed images with black to this square size, centred")
    limit_train: int | None = Field(default=None, gt=0,
                                    description="use only the first N training images of the base (fast tests)")
    limit_test: int | None = Field(default=None, gt=0,
                                   description="use only the first N test images of the base (fast tests)")

    @model_validator(mode="after")
    def _base_settings_fit_the_base(self):
        for key in OWN_SETTINGS:
            if key in self.base_settings:
                raise ValueError(f"base_settings.{key}: set `{key}` at the top level of data: instead "
                                 f"(it is applied after the transforms, which work on [0, 1] images)")
        try:
            BASES[self.base].params.model_validate(self.base_settings)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ValueError(f"base_settings do not fit base '{self.base}': {problems}") from None
        return self


class MorphoParams(DerivedParams):
    """Settings of the thinning / thickening transforms (see ``morpho``)."""

    thin_amount: float = Field(default=THIN_AMOUNT, ge=0, lt=1,
                               description="share of each image's stroke thickness that thinning takes off "
                                           "(Morpho-MNIST's 0.7 leaves ~0.3x)")
    thick_amount: float = Field(default=THICK_AMOUNT, ge=0,
                                description="share of each image's stroke thickness that thickening adds "
                                            "(Morpho-MNIST's 1.0 makes ~2x)")
    max_radius: float | None = Field(
        default=2.0, gt=0,
        description="cap on the erosion/dilation radius in native pixels (filled shapes such as garments "
                    "measure very thick); null: no cap")
    scale: int = Field(default=4, ge=1, le=8,
                       description="up-sampling factor the morphology works at (Morpho-MNIST uses 4)")


@dataclass
class LoadedBase:
    """A base dataset's splits as (x (n 1 h w) in [0, 1], y (n,)), with its info."""

    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    info: dict


def load_base(p: DerivedParams) -> LoadedBase:
    """The base named by ``p.base`` in [0, 1], unpadded, cut to ``limit_train`` / ``limit_test``."""
    base = BASES[p.base]
    settings = dict(p.base_settings)
    settings.setdefault("seed", p.seed)
    limits = {"train": p.limit_train, "test": p.limit_test}
    if base.reads_limits:  # read no further than needed
        for split, limit in limits.items():
            given = settings.get(f"limit_{split}")
            if limit is not None:
                settings[f"limit_{split}"] = limit if given is None else min(limit, given)
    bundle = base.load(**settings)
    splits = {}
    for split in SPLITS:
        fields = getattr(bundle, split)
        limit = limits[split]
        splits[split] = (fields["x"][:limit], fields["y"][:limit])
    return LoadedBase(splits, bundle.info)


def finish_images(x: torch.Tensor, p: DerivedParams) -> torch.Tensor:
    """x (n c h w) in [0, 1] -> padded to ``pad_to`` and mapped to ``value_range`` (n c h' w')."""
    return to_value_range(pad_images(x, p.pad_to), tuple(float(v) for v in p.value_range))


def apply_thickness(x: torch.Tensor, level: str, p: MorphoParams) -> torch.Tensor:
    """x (n 1 h w) in [0, 1] -> (n 1 h w): level "thin", "thick" or "normal" (unchanged)."""
    if level == "thin":
        return thin(x, p.thin_amount, scale=p.scale, max_radius=p.max_radius)
    if level == "thick":
        return thick(x, p.thick_amount, scale=p.scale, max_radius=p.max_radius)
    return x


def derived_info(*, name: str, base: LoadedBase, p: DerivedParams, shape: tuple[int, ...],
                 native_shape: tuple[int, ...], **extra) -> dict:
    """The image ``info`` a derived dataset reports, plus its own keys."""
    return {
        "name": name,
        "kind": "image",
        "num_classes": len(base.info["class_names"]),
        "class_names": list(base.info["class_names"]),
        "value_range": tuple(float(v) for v in p.value_range),
        "source": f"{p.base} ({base.info.get('source')})",
        "shape": tuple(int(v) for v in shape),
        "native_shape": tuple(int(v) for v in native_shape),
        "binarize": base.info.get("binarize", "none"),
        "base": p.base,
        "shape_settings": pad_shape_settings(native_shape),
        **extra,
    }


def normalize_name(name: str) -> str:
    return " ".join(str(name).replace("_", " ").lower().split())


def resolve_class(value: str | int, class_names: list[str], *, setting: str, base: str) -> int:
    """A class given by index or name (any case, _ for space) -> its index; else ValueError with a suggestion."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= int(value) < len(class_names):
            return int(value)
        raise ValueError(f"{setting}: class index {value} is out of range for {base} "
                         f"(0..{len(class_names) - 1})")
    wanted = normalize_name(value)
    names = [normalize_name(n) for n in class_names]
    if wanted in names:
        return names.index(wanted)
    from lvmgraph.plugins.registry import did_you_mean
    match = did_you_mean(wanted, names)
    hint = f"did you mean '{class_names[names.index(match)]}'? " if match else ""
    raise ValueError(f"{setting}: unknown class '{value}' of {base}: {hint}"
                     f"(classes: {', '.join(class_names)}; or give an index 0..{len(class_names) - 1})")
