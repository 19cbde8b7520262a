"""MNIST and Fashion-MNIST from IDX files in a folder (gzip or raw), found or fetched.

Axis legend: n samples, c channels (1), h w spatial (28 x 28, or pad_to).

The IDX format (LeCun's MNIST page): a 4-byte magic number ``00 00 <dtype code> <ndim>``,
then ``ndim`` big-endian uint32 sizes, then the values, big-endian, row-major.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydantic import Field

from lvmgraph import DatasetBundle, DatasetUnavailable

from .common import (DIGIT_NAMES, Binarize, ImageParams, image_bundle, labels_to_tensor, prepare_images,
                     to_unit_float)

#: IDX dtype code -> numpy dtype as stored (big-endian)
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"

#: role -> file stem; each may sit in the folder raw or with a .gz suffix
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

FASHION_MNIST_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                       "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class IdxDataset:
    """What differs between the IDX datasets: names, where Debian installs them, torchvision's class."""

    def __init__(self, *, name: str, title: str, class_names: list[str], torchvision_class: str,
                 debian_folder: str | None = None, debian_package: str | None = None):
        self.name, self.title, self.class_names = name, title, class_names
        self.torchvision_class = torchvision_class
        self.debian_folder, self.debian_package = debian_folder, debian_package


FASHION_MNIST = IdxDataset(name="fashion_mnist", title="Fashion-MNIST", class_names=FASHION_MNIST_NAMES,
                           torchvision_class="FashionMNIST", debian_folder="/usr/share/datasets/fashion-mnist",
                           debian_package="dataset-fashion-mnist")
MNIST = IdxDataset(name="mnist", title="MNIST", class_names=DIGIT_NAMES, torchvision_class="MNIST")


# ----------------------------------------------------------------------------- IDX reader

def read_idx(path: str | os.PathLike, *, limit: int | None = None) -> np.ndarray:
    """An IDX file (gzip or raw) -> numpy array of its dims and dtype, in native byte order.

    ``limit`` reads only the first ``limit`` items along the first axis and stops there, so a
    quick run never decompresses the whole file. A file that is not IDX, or that is truncated or has
    extra bytes, raises ValueError naming the file.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        # sniff the content, not the name: a renamed .gz or an uncompressed *.gz both work
        is_gzip = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw
        try:
            return _parse_idx(stream, path, limit)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise ValueError(f"{path}: not a readable IDX file: the gzip stream is damaged or "
                             f"truncated ({err})") from err
        finally:
            stream.close()


def _parse_idx(stream: BinaryIO, path: Path, limit: int | None) -> np.ndarray:
    magic = _read_exactly(stream, 4, path, "the magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{path}: not an IDX file: magic number {magic.hex()} should start with 0000")
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header says the data has 0 dimensions")
    dims = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, path, "the dimension sizes"))
    count = dims[0] if limit is None else min(dims[0], limit)
    shape = (count, *dims[1:])
    dtype = IDX_DTYPES[code]
    what = f"{'x'.join(map(str, shape))} values of type {dtype.name}"
    data = _read_exactly(stream, math.prod(shape) * dtype.itemsize, path, what)
    if limit is None:
        extra = len(stream.read(1 << 16))
        if extra:
            raise ValueError(f"{path}: malformed IDX file: {'at least ' if extra == 1 << 16 else ''}{extra} "
                             f"bytes follow the {what} its header announces")
    # a bytearray keeps the array writable; converting to native order only costs for multi-byte types
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _read_exactly(stream: BinaryIO, n: int, path: Path, what: str) -> bytearray:
    """Fill a buffer of n bytes from stream or raise ValueError saying the file is truncated."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            raise ValueError(f"{path}: truncated IDX file: expected {n} bytes of {what}, found only {got}")
        got += k
    return buf


# ----------------------------------------------------------------------------- finding the files

def idx_files_in(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """folder -> (role -> path of each IDX file present, preferring raw over .gz; stems missing)."""
    found, missing = {}, []
    for role, stem in IDX_FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(stem)
    return found, missing


def search_folders(dataset: IdxDataset, root: str | None) -> list[Path]:
    """Folders to look in, in order; each is tried as is and in torchvision's ``<X>/raw`` layout."""
    if root is not None:
        bases = [Path(root).expanduser()]
    else:
        bases = []
        env = os.environ.get("LVMGRAPH_DATA")
        if env:
            bases += [Path(env).expanduser() / dataset.name, Path(env).expanduser()]
        if dataset.debian_folder:
            bases.append(Path(dataset.debian_folder))
        bases.append(default_download_folder(dataset))
    return [folder for base in bases for folder in (base, base / dataset.torchvision_class / "raw")]


def default_download_folder(dataset: IdxDataset) -> Path:
    """Where ``download: true`` writes when no ``root`` is set."""
    env = os.environ.get("LVMGRAPH_DATA")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "lvmgraph"
    return base / dataset.name


def find_idx_files(dataset: IdxDataset, root: str | None) -> tuple[Path, dict[str, Path]]:
    """The first folder holding all four IDX files, with their paths; else DatasetUnavailable."""
    searched = []
    for folder in search_folders(dataset, root):
        found, missing = idx_files_in(folder)
        if not missing:
            return folder, found
        if found:  # worth telling: the user probably meant this folder
            searched.append(f"{folder}  (has {len(found)} of the 4 files; missing {', '.join(missing)})")
        else:
            searched.append(f"{folder}  ({'no IDX files' if folder.is_dir() else 'no such folder'})")
    raise DatasetUnavailable(f"{dataset.title} was not found. Looked in:\n"
                             + "".join(f"  {line}\n" for line in searched) + how_to_get(dataset))


def how_to_get(dataset: IdxDataset) -> str:
    """The ways to make the dataset available, for error messages."""
    files = ", ".join(f"{stem}(.gz)" for stem in IDX_FILES.values())
    fixes = []
    if dataset.debian_package:
        fixes.append(f"on Debian/Ubuntu: sudo apt-get install {dataset.debian_package} "
                     f"(installs the files in {dataset.debian_folder})")
    fixes.append(f"put the IDX files ({files}) in a folder and set data.root to it "
                 f"(or set the LVMGRAPH_DATA environment variable to a folder holding {dataset.name}/)")
    fixes.append("set data.download: true to fetch it with torchvision (needs internet access)")
    return "Fix it one of these ways:\n" + "".join(f"  - {fix}\n" for fix in fixes)


def download_with_torchvision(dataset: IdxDataset, target: Path) -> None:
    """Fetch the four files into ``target/<TorchvisionClass>/raw`` with torchvision's own downloader."""
    from torchvision import datasets as tv_datasets  # imported lazily: it is slow and rarely needed

    try:
        # train=False: torchvision downloads all four files either way but then parses only the small split
        getattr(tv_datasets, dataset.torchvision_class)(root=str(target), train=False, download=True)
    except Exception as err:  # network, disk or torchvision failures all mean the same to the user
        raise DatasetUnavailable(f"downloading {dataset.title} with torchvision into {target} failed: {err}\n"
                                 + how_to_get(dataset)) from err


def locate(dataset: IdxDataset, *, root: str | None, download: bool) -> tuple[Path, dict[str, Path]]:
    """Find the IDX files; with ``download``, fetch them when they are nowhere to be found."""
    try:
        return find_idx_files(dataset, root)
    except DatasetUnavailable:
        if not download:
            raise
    target = Path(root).expanduser() if root is not None else default_download_folder(dataset)
    download_with_torchvision(dataset, target)
    return find_idx_files(dataset, str(target))


# ----------------------------------------------------------------------------- loading

class IdxParams(ImageParams):
    root: str | None = Field(
        default=None,
        description="folder with the four IDX files (raw or .gz), or torchvision's root "
                    "(with <Class>/raw/ inside); "
                    "unset: $LVMGRAPH_DATA/<name>, $LVMGRAPH_DATA, the Debian package's folder, "
                    "~/.cache/lvmgraph/<name>")
    download: bool = Field(default=False,
                           description="fetch the files with torchvision when they are not found (needs internet)")
    limit_train: int | None = Field(default=None, gt=0, description="keep only the first N training images")
    limit_test: int | None = Field(default=None, gt=0, description="keep only the first N test images")


def read_split(files: dict[str, Path], split: str, limit: int | None,
               num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One split's (images (n h w) uint8, labels (n,)) with their shapes and values checked."""
    images_path, labels_path = files[f"{split}_images"], files[f"{split}_labels"]
    images, labels = read_idx(images_path, limit=limit), read_idx(labels_path, limit=limit)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected uint8 images of shape (n, h, w), "
                         f"got {images.dtype} of shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected labels of shape (n,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} "
                         f"holds {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{labels_path}: labels must lie in 0..{num_classes - 1}, "
                         f"found {labels.min()}..{labels.max()}")
    return images, labels


def load_idx_dataset(dataset: IdxDataset, *, root: str | None, download: bool, limit_train: int | None,
                     limit_test: int | None, binarize: Binarize, pad_to: int | None,
                     value_range: tuple[float, float], seed: int) -> DatasetBundle:
    """Find (or fetch) the IDX files and turn them into a DatasetBundle of (n 1 h w) images."""
    folder, files = locate(dataset, root=root, download=download)
    splits = {}
    native_shape = None
    for split, limit in (("train", limit_train), ("test", limit_test)):
        images, labels = read_split(files, split, limit, len(dataset.class_names))
        native_shape = (1, *images.shape[1:])  # IDX images are (n h w), one channel
        x = prepare_images(to_unit_float(images, max_value=255.0), split=split, seed=seed,
                           binarize=binarize, pad_to=pad_to, value_range=value_range)
        splits[split] = (x, labels_to_tensor(labels))
    return image_bundle(train=splits["train"], test=splits["test"], name=dataset.name,
                        class_names=dataset.class_names, value_range=value_range, binarize=binarize,
                        source=str(folder), native_shape=native_shape)


def load_fashion_mnist(*, root: str | None = None, download: bool = False, limit_train: int | None = None,
                       limit_test: int | None = None, binarize: Binarize = "none", pad_to: int | None = None,
                       value_range: tuple[float, float] = (0.0, 1.0), seed: int = 0) -> DatasetBundle:
    """Fashion-MNIST (60,000 + 10,000 clothing images): x (n 1 28 28) in [0, 1], y (n,) 0..9.

    Read from IDX files: ``root`` if set, else ``$LVMGRAPH_DATA/fashion_mnist``,
    ``$LVMGRAPH_DATA``, ``/usr/share/datasets/fashion-mnist`` (Debian package
    ``dataset-fashion-mnist``) and ``~/.cache/lvmgraph/fashion_mnist``, each also in
    torchvision's ``FashionMNIST/raw/`` layout. ``download: true`` fetches the files with
    torchvision when none are found. ``limit_train``/``limit_test`` keep the first N images;
    ``pad_to: 32`` centres them on a 32x32 canvas.
    """
    return load_idx_dataset(FASHION_MNIST, root=root, download=download, limit_train=limit_train,
                            limit_test=limit_test, binarize=binarize, pad_to=pad_to,
                            value_range=value_range, seed=seed)


def load_mnist(*, root: str | None = None, download: bool = False, limit_train: int | None = None,
               limit_test: int | None = None, binarize: Binarize = "none", pad_to: int | None = None,
               value_range: tuple[float, float] = (0.0, 1.0), seed: int = 0) -> DatasetBundle:
    """MNIST handwritten digits (60,000 + 10,000): x (n 1 28 28) in [0, 1], y (n,) 0..9.

    Read from IDX files: ``root`` if set, else ``$LVMGRAPH_DATA/mnist``, ``$LVMGRAPH_DATA``
    and ``~/.cache/lvmgraph/mnist``, each also in torchvision's ``MNIST/raw/`` layout.
    ``download: true`` fetches the files with torchvision when none are found.
    ``limit_train``/``limit_test`` keep the first N images; ``pad_to: 32`` centres them on a
    32x32 canvas.
    """
    return load_idx_dataset(MNIST, root=root, download=download, limit_train=limit_train,
                            limit_test=limit_test, binarize=binarize, pad_to=pad_to,
                            value_range=value_range, seed=seed)
