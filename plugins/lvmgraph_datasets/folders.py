"""Two image domains from folders in CycleGAN's layout: root/trainA, trainB, testA, testB.

Axis legend: n image pairs, c channels (1 grey or 3 RGB), h w spatial (size x size).

Every image file (png, jpg, ...) is read with PIL (a torchvision dependency), converted to grey or
RGB and resized to size x size (bicubic, aspect ratio not kept). The files of a folder are taken in
name order (``limit_*`` keeps the first N), then each domain is shuffled with the seed. The two
domains rarely hold the same number of images: ``pairing: cycle`` (default, as CycleGAN's loader
does) repeats the shorter domain's shuffled images until it is as long as the longer one, so every
image is used; ``pairing: truncate`` drops the longer domain's extra images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from lvmgraph import DatasetBundle, DatasetUnavailable, Params

from .common import ValueRange, split_rng, to_value_range

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
LAYOUT = "root/trainA/, root/trainB/, root/testA/, root/testB/ (image files: png, jpg, ...)"


class ImageFoldersParams(Params):
    root: str = Field(description="folder holding trainA/, trainB/, testA/, testB/ of image files (CycleGAN layout)")
    size: int = Field(default=64, gt=0, description="images are resized to size x size pixels")
    mode: Literal["rgb", "grey"] = Field(default="rgb", description="rgb: 3 channels; grey: 1 channel")
    pairing: Literal["cycle", "truncate"] = Field(
        default="cycle", description="make the domains equally long: cycle repeats the shorter one's images, "
                                     "truncate drops the longer one's extra images")
    seed: int = Field(default=0, ge=0, description="seed of each domain's shuffle; each split draws its own stream")
    value_range: ValueRange = Field(default=(0.0, 1.0),
                                             description="pixel range of the delivered images: [0, 1] or [-1, 1]")
    limit_train: int | None = Field(default=None, gt=0,
                                    description="use only the first N files (by name) of trainA and of trainB")
    limit_test: int | None = Field(default=None, gt=0,
                                   description="use only the first N files (by name) of testA and of testB")


def image_files(folder: Path) -> list[Path]:
    """The image files directly in folder, by name; DatasetUnavailable if it is missing or has none."""
    if not folder.is_dir():
        raise DatasetUnavailable(f"image_folders: {folder} is not a folder. Expected the CycleGAN layout "
                                 f"{LAYOUT}; set data.root to the folder holding them")
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetUnavailable(f"image_folders: {folder} holds no image files "
                                 f"({', '.join(IMAGE_SUFFIXES)}). Expected the CycleGAN layout {LAYOUT}")
    return files


def open_image(path: Path, *, dataset: str):
    """One image file as a loaded PIL image (any mode); DatasetUnavailable naming the file if unreadable."""
    from PIL import Image, UnidentifiedImageError  # lazy: only the folder datasets need PIL

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError) as err:
        raise unreadable(path, dataset, err) from err


def image_size(path: Path, *, dataset: str) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding it; DatasetUnavailable
    naming the file if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as err:
        raise unreadable(path, dataset, err) from err


def unreadable(path: Path, dataset: str, err: Exception) -> DatasetUnavailable:
    return DatasetUnavailable(f"{dataset}: cannot read {path} as an image ({err}); "
                              f"remove it or replace it with a png/jpg")


def to_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 arrays (h w) or (h w c), one size -> float32 (n c h w) in [0, 1]."""
    x = torch.from_numpy(np.stack(arrays)).to(torch.float32).div_(255.0)
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def read_images(files: list[Path], *, size: int, mode: str) -> torch.Tensor:
    """Image files -> float32 (n c size size) in [0, 1]."""
    from PIL import Image

    return to_tensor([np.asarray(open_image(path, dataset="image_folders").convert("L" if mode == "grey" else "RGB")
                                 .resize((size, size), Image.BICUBIC), dtype=np.uint8) for path in files])


def pair_up(n_a: int, n_b: int, pairing: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Domain sizes -> (indices into A, into B) of equal length: each domain shuffled, then cycled or cut."""
    order_a, order_b = rng.permutation(n_a), rng.permutation(n_b)
    n = max(n_a, n_b) if pairing == "cycle" else min(n_a, n_b)
    return order_a[np.arange(n) % n_a], order_b[np.arange(n) % n_b]


def load_image_folders(**settings) -> DatasetBundle:
    """Unpaired image domains from root/trainA, trainB, testA, testB: x_a, x_b (n c size size).

    CycleGAN's folder layout (horse2zebra, ...). Images are read with PIL, converted to ``mode``
    (rgb or grey) and resized to ``size``; ``pairing`` makes the domains equally long (cycle the
    shorter, default, or truncate the longer). ``index_a`` / ``index_b`` (n,) give each image's
    position among its folder's files (sorted by name). A missing folder raises
    DatasetUnavailable naming it and the layout expected.
    """
    p = ImageFoldersParams.model_validate(settings)
    root = Path(p.root).expanduser()
    if not root.is_dir():
        raise DatasetUnavailable(f"image_folders: root {root} is not a folder. Expected the CycleGAN layout "
                                 f"{LAYOUT}; set data.root")
    splits, counts = {}, {}
    for split, limit in (("train", p.limit_train), ("test", p.limit_test)):
        files = {d: image_files(root / f"{split}{d}")[:limit] for d in "AB"}
        counts[split] = {d: len(f) for d, f in files.items()}
        idx_a, idx_b = pair_up(len(files["A"]), len(files["B"]), p.pairing, split_rng(p.seed, split))
        x = {d: to_value_range(read_images(files[d], size=p.size, mode=p.mode), p.value_range) for d in "AB"}
        splits[split] = {"x_a": x["A"][idx_a], "x_b": x["B"][idx_b],
                         "index_a": torch.from_numpy(idx_a), "index_b": torch.from_numpy(idx_b)}
    channels = 1 if p.mode == "grey" else 3
    info = {"name": "image_folders", "kind": "image", "num_classes": 0, "class_names": [],
            "value_range": tuple(float(v) for v in p.value_range), "source": str(root),
            "shape": (channels, p.size, p.size), "native_shape": (channels, p.size, p.size),
            "binarize": "none", "shape_settings": {"size": "size", "channels": ["mode", {1: "grey", 3: "rgb"}]},
            "domains": ["A", "B"], "files": counts, "pairing": p.pairing}
    return DatasetBundle(train=splits["train"], test=splits["test"], info=info)
