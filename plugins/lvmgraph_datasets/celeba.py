"""CelebA (Liu et al., ICCV 2015) through torchvision, as StarGAN uses it: chosen attributes, cropped faces.

Axis legend: n images, c channels (3, RGB), h w spatial (size x size), A chosen attributes,
D = 2^A domains.

torchvision's ``CelebA`` reads the official files from ``<root>/celeba/``:

    img_align_celeba/*.jpg            the 202,599 aligned 178x218 faces
    list_attr_celeba.txt              40 binary attributes per image (+1 / -1)
    list_eval_partition.txt           0 train, 1 valid, 2 test
    identity_CelebA.txt, list_bbox_celeba.txt, list_landmarks_align_celeba.txt

and checks the MD5 of the five text files (``verify: false`` skips that, for copies whose text
files were rewritten; the files must still be there). Nothing is downloaded unless
``download: true`` (torchvision fetches about 1.4 GB from Google Drive and needs ``gdown``).

Each image is centre-cropped to ``crop`` x ``crop`` (178 in the StarGAN code) and resized to
``size`` (128 in the paper). Fields: ``x`` (n 3 size size) float in ``value_range``;
``attributes`` (n A) the chosen attributes as a multi-hot float vector, in the order given;
``domain`` (n,) int64, the attribute combination read as a binary number with the first
attribute as the most significant bit (so with [Black_Hair, Blond_Hair, Brown_Hair, Male, Young],
a young blond woman is 0b01001 = 9); ``info["domain_names"]`` names each of the 2^A combinations.
Images are held in memory as float32: 12 KB each at 32 px, 48 KB at 64 px, 192 KB at 128 px, so
the whole training split (162,770 images) needs ~8 GB at 64 px; ``limit_train`` / ``limit_test``
keep the first N images of a split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from lvmgraph import DatasetBundle, DatasetUnavailable, Params

from .common import ValueRange, to_value_range

#: the 40 attributes of list_attr_celeba.txt, in the file's order
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young")
#: the StarGAN paper's CelebA domains: hair colour, gender, age
STARGAN_ATTRIBUTES = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
MAX_ATTRIBUTES = 10  # 2^10 domain names; more would make `domain` meaningless anyway
#: the files torchvision's CelebA opens (all must exist), besides the image folder
TEXT_FILES = ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
              "list_landmarks_align_celeba.txt")
IMAGE_FOLDER = "img_align_celeba"
NATIVE_SIZE = (218, 178)  # h, w of the aligned faces
Split = Literal["train", "valid", "test", "all"]


class CelebAParams(Params):
    root: str | None = Field(
        default=None,
        description="torchvision's root: the folder holding celeba/ (or the celeba folder itself); unset: "
                    "$LVMGRAPH_DATA, then ~/.cache/lvmgraph")
    download: bool = Field(default=False, description="fetch CelebA with torchvision when it is not there (about "
                                                      "1.4 GB from Google Drive; needs internet access and gdown)")
    verify: bool = Field(default=True, description="check the MD5 of the text files as torchvision does; false "
                                                   "accepts re-written copies (the files must still exist)")
    attributes: list[str] = Field(default_factory=lambda: list(STARGAN_ATTRIBUTES),
                                  description="attributes that make up the multi-hot label, in order (the paper: "
                                              "Black_Hair, Blond_Hair, Brown_Hair, Male, Young)")
    crop: int | None = Field(default=178, gt=0, le=min(NATIVE_SIZE),
                             description="centre crop to crop x crop pixels before resizing (178 in the StarGAN "
                                         "code); null: no crop (the 178x218 face is squashed to a square)")
    size: int = Field(default=128, gt=0, description="images are resized to size x size (bilinear, antialiased); "
                                                     "128 in the paper, 32-64 on a CPU")
    train_split: Split = Field(default="train", description="CelebA partition used for training: train (162,770 "
                                                            "images), valid, test or all")
    test_split: Split = Field(default="test", description="CelebA partition used for evaluation (test: 19,962)")
    value_range: ValueRange = Field(default=(-1.0, 1.0),
                                    description="pixel range of the delivered images: [-1, 1] (tanh generators) "
                                                "or [0, 1]")
    limit_train: int | None = Field(default=None, gt=0, description="keep only the first N images of the "
                                                                    "training partition (memory: see the docs)")
    limit_test: int | None = Field(default=None, gt=0, description="keep only the first N images of the test "
                                                                   "partition")

    @field_validator("attributes")
    @classmethod
    def _known_attributes(cls, value: list[str]) -> list[str]:
        from lvmgraph.plugins.registry import did_you_mean
        if not value:
            raise ValueError("attributes needs at least one CelebA attribute, e.g. [Black_Hair, Blond_Hair, "
                             "Brown_Hair, Male, Young]")
        for name in value:
            if name not in CELEBA_ATTRIBUTES:
                match = did_you_mean(name, list(CELEBA_ATTRIBUTES))
                hint = f"did you mean '{match}'? " if match else ""
                raise ValueError(f"unknown CelebA attribute '{name}': {hint}(attributes: {', '.join(CELEBA_ATTRIBUTES)})")
        if len(set(value)) != len(value):
            raise ValueError(f"attributes lists an entry twice: {value}")
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"attributes has {len(value)} entries; at most {MAX_ATTRIBUTES} (the domain index "
                             f"enumerates all 2^A combinations)")
        return value

    @model_validator(mode="after")
    def _splits_differ(self):
        if self.train_split == self.test_split and self.train_split != "all":
            raise ValueError(f"train_split and test_split are both '{self.train_split}': evaluate on images the "
                             f"model was not trained on (e.g. test_split: test)")
        return self


def candidate_folders(root: str | None) -> list[Path]:
    """Folders that may be the celeba folder, in the order they are tried."""
    import os
    if root is not None:
        bases = [Path(root).expanduser()]
    else:
        env = os.environ.get("LVMGRAPH_DATA")
        bases = ([Path(env).expanduser()] if env else []) + [Path.home() / ".cache" / "lvmgraph"]
    return [folder for base in bases for folder in (base / "celeba", base)]


def missing_files(folder: Path) -> list[str]:
    """What torchvision's CelebA needs in ``folder`` and does not find there."""
    missing = [name for name in TEXT_FILES if not (folder / name).is_file()]
    if not (folder / IMAGE_FOLDER).is_dir():
        missing.insert(0, f"{IMAGE_FOLDER}/")
    return missing


def how_to_get() -> str:
    return ("Fix it one of these ways:\n"
            "  - download CelebA (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, 'Align&Cropped Images' and "
            "the annotation files), unzip img_align_celeba.zip and put it with "
            f"{', '.join(TEXT_FILES)} in a folder named celeba, and set data.root to the folder holding celeba/\n"
            "  - set data.download: true to let torchvision fetch it (about 1.4 GB from Google Drive; needs "
            "internet access and `pip install gdown`)\n")


def find_celeba(root: str | None) -> Path:
    """The celeba folder holding every file torchvision's CelebA opens; else DatasetUnavailable."""
    looked = []
    for folder in candidate_folders(root):
        missing = missing_files(folder)
        if not missing:
            return folder
        if len(missing) < len(TEXT_FILES) + 1:  # some files are there: the user probably meant this folder
            looked.append(f"{folder}  (missing {', '.join(missing)})")
        else:
            looked.append(f"{folder}  ({'no CelebA files' if folder.is_dir() else 'no such folder'})")
    raise DatasetUnavailable("CelebA was not found. Looked in:\n" + "".join(f"  {line}\n" for line in looked)
                             + how_to_get())


def open_celeba(folder: Path, split: str, *, verify: bool):
    """torchvision's CelebA over ``folder`` (any folder name), with or without its MD5 checks."""
    from torchvision.datasets import CelebA  # lazy: torchvision is slow to import

    class _CelebA(CelebA):
        base_folder = folder.name

        def _check_integrity(self) -> bool:
            return super()._check_integrity() if verify else not missing_files(folder)

    try:
        return _CelebA(root=str(folder.parent), split=split, target_type="attr", download=False)
    except RuntimeError as err:
        if "not found or corrupted" not in str(err):
            raise
        raise DatasetUnavailable(f"CelebA in {folder}: the text files do not match torchvision's MD5 checksums "
                                 f"(a partial download or a re-written copy). Download them again, or set "
                                 f"data.verify: false to use them as they are.\n" + how_to_get()) from None


def download_celeba(root: str | None) -> None:
    """torchvision's own downloader into ``root`` (or the default data folder)."""
    import os

    from torchvision.datasets import CelebA
    env = os.environ.get("LVMGRAPH_DATA")
    target = Path(root).expanduser() if root else (Path(env).expanduser() if env else Path.home() / ".cache" / "lvmgraph")
    try:
        CelebA(root=str(target), split="test", download=True)
    except Exception as err:  # network, disk, gdown or quota failures all mean the same to the user
        raise DatasetUnavailable(f"downloading CelebA with torchvision into {target / 'celeba'} failed: {err}\n"
                                 + how_to_get()) from err


def read_faces(dataset, limit: int | None, *, crop: int | None, size: int) -> torch.Tensor:
    """The first ``limit`` images of a torchvision CelebA -> float32 (n 3 size size) in [0, 1]."""
    from torchvision.transforms import v2 as T

    steps = [T.PILToTensor()]
    if crop is not None:
        steps.append(T.CenterCrop(crop))
    steps += [T.Resize((size, size), antialias=True), T.ToDtype(torch.float32, scale=True)]
    transform = T.Compose(steps)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    x = torch.empty(n, 3, size, size)
    for i in range(n):
        image, _ = dataset[i]
        x[i] = transform(image.convert("RGB"))
    return x.clamp_(0.0, 1.0)


def domain_index(attributes: torch.Tensor) -> torch.Tensor:
    """(n A) multi-hot -> (n,) int64: the bits read as a binary number, the first attribute most significant."""
    a = attributes.shape[1]
    weights = 2 ** torch.arange(a - 1, -1, -1, dtype=torch.int64)
    return (attributes.round().to(torch.int64) * weights).sum(dim=1)


def domain_names(names: list[str]) -> list[str]:
    """The 2^A combinations' names, by domain index: the present attributes joined by '+', or 'none'."""
    a = len(names)
    out = []
    for d in range(2 ** a):
        present = [names[i] for i in range(a) if d >> (a - 1 - i) & 1]
        out.append("+".join(present) if present else "none")
    return out


def load_celeba(**settings) -> DatasetBundle:
    """CelebA faces with chosen attributes: x (n 3 size size), attributes (n A) multi-hot, domain (n,).

    Reads the official files with torchvision's ``CelebA`` (see the module docstring for the layout
    and the settings); ``download: true`` fetches them with torchvision first. A missing folder
    raises DatasetUnavailable naming where it looked and how to get the data.
    """
    p = CelebAParams.model_validate(settings)
    try:
        folder = find_celeba(p.root)
    except DatasetUnavailable:
        if not p.download:
            raise
        download_celeba(p.root)
        folder = find_celeba(p.root)
    splits = {}
    for role, split, limit in (("train", p.train_split, p.limit_train), ("test", p.test_split, p.limit_test)):
        dataset = open_celeba(folder, split, verify=p.verify)
        columns = [dataset.attr_names.index(name) for name in p.attributes]
        n = len(dataset) if limit is None else min(limit, len(dataset))
        attributes = dataset.attr[:n, columns].to(torch.float32)
        x = to_value_range(read_faces(dataset, n, crop=p.crop, size=p.size), tuple(float(v) for v in p.value_range))
        splits[role] = {"x": x, "attributes": attributes, "domain": domain_index(attributes)}
    names = list(p.attributes)
    table = torch.tensor([[float(d >> (len(names) - 1 - i) & 1) for i in range(len(names))]
                          for d in range(2 ** len(names))])
    info = {
        "name": "celeba", "kind": "image", "num_classes": 0, "class_names": [],
        "value_range": tuple(float(v) for v in p.value_range), "source": str(folder),
        "shape": (3, p.size, p.size), "native_shape": (3, p.size, p.size), "binarize": "none",
        "shape_settings": {"size": "size"}, "attribute_names": names, "num_domains": 2 ** len(names), "domain_names": domain_names(names),
        "domain_attributes": table.tolist(),
        "splits": {"train": p.train_split, "test": p.test_split},
        "counts": {role: int(fields["x"].shape[0]) for role, fields in splits.items()},
        "attribute_rates": {role: dict(zip(names, np.round(fields["attributes"].mean(dim=0).tolist(), 4).tolist()))
                            for role, fields in splits.items()},
    }
    return DatasetBundle(train=splits["train"], test=splits["test"], info=info)
