"""Your own images from one folder: labels from sub-folders, optional attributes from a CSV file.

Axis legend: n images, c channels (1 grey or 3 RGB), h w spatial, k attributes.

Layout (``LAYOUT``): ``root/CLASS/*.png`` gives each image the label of its sub-folder (``y``, in
sorted folder-name order); image files directly in ``root`` are unlabelled (no ``y``). With
``root/train/`` and ``root/test/`` (each laid out the same way) those are the splits; otherwise a
seeded ``test_fraction`` of the images is held out. Hidden entries (``.name``) are ignored.

Load-time transforms, in this order (deterministic given ``seed``): convert to ``channels`` ->
``crop`` a square (centre, or one seeded random offset per image) -> resize to ``size`` x ``size``
(bicubic, antialiased; a non-square image is stretched unless cropped first) -> the steps every
image dataset shares (``binarize``, ``pad_to``, ``value_range``; ``common.prepare_images``).
``flip: horizontal`` mirrors half of each training batch at random (``transforms.HorizontalFlip``,
seeded and checkpointed with the batcher); test batches are never flipped.

Streamed (``data.stream: true``, ``stream_image_folder``): the training images are decoded one at
a time, on demand, through the same ``ImageDecoder`` and ``prepare_images`` (crop offsets drawn
up front from the image headers, in file order, so they are the in-memory loader's); the test
split is loaded as above. ``binarize: stochastic`` cannot stream (one draw over the whole split).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from lvmgraph import DataSettingError, DatasetBundle, DatasetUnavailable

from .common import ImageParams, pad_shape_settings, prepare_images, split_rng
from .folders import IMAGE_SUFFIXES, image_size, open_image, to_tensor
from .transforms import CropPosition, HorizontalFlip, crop_box

LAYOUT = ("root/CLASS_NAME/*.png (one sub-folder per class) or root/*.png (unlabelled), "
          "optionally split into root/train/ and root/test/ laid out the same way")
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
TRUE, FALSE = {"1", "1.0", "true", "yes"}, {"0", "0.0", "-1", "-1.0", "false", "no"}  # -1: CelebA's "absent"


class ImageFolderParams(ImageParams):
    seed: int = Field(default=0, ge=0, description="seed of the train/test split, the limits, random crops and "
                                                   "stochastic binarization")
    root: str = Field(description="folder of image files: root/CLASS/*.png (labelled) or root/*.png (unlabelled), "
                                  "optionally split into root/train/ and root/test/")
    size: int | None = Field(default=None, gt=0,
                             description="resize images to size x size (after crop); unset keeps their size, "
                                         "which must then be the same for every image")
    channels: Literal[1, 3] | None = Field(
        default=None, description="1 (grey) or 3 (RGB), converting as needed; unset: 1 if every image is grey, else 3")
    crop: int | None = Field(default=None, gt=0,
                             description="cut a crop x crop square out of each image before resizing "
                                         "(e.g. 178 for CelebA's 178x218 faces)")
    crop_position: CropPosition = Field(
        default="center", description="center, or random: one offset per image drawn once from the seed "
                                      "(the crop is fixed for the run)")
    flip: Literal["none", "horizontal"] = Field(
        default="none", description="horizontal: mirror each training example with probability 1/2 at every "
                                    "batch (seeded, resumed exactly); test data is never flipped")
    attributes: str | None = Field(
        default=None, description="CSV file (path relative to root, or absolute): a header row, then a file "
                                  "name (relative to root or bare) and one 0/1 column per attribute -> "
                                  "multi-hot field `attributes`")
    attribute_names: list[str] | None = Field(
        default=None, description="the CSV columns to use, in this order (default: every column after the first)")
    test_fraction: float = Field(default=0.1, gt=0, lt=1,
                                 description="share of the images held out for testing (seeded), unless root "
                                             "has train/ and test/ sub-folders")
    limit_train: int | None = Field(default=None, gt=0, description="use a seeded random subset of N training images")
    limit_test: int | None = Field(default=None, gt=0, description="use a seeded random subset of N test images")


def _visible_entries(folder: Path) -> list[Path]:
    return sorted(e for e in folder.iterdir() if not e.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return [f for f in _visible_entries(folder) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]


def scan(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """One folder in the layout -> (image files, labels, class names); labels are -1 when unlabelled."""
    subfolders = [e for e in _visible_entries(folder) if e.is_dir()]
    loose = _images_in(folder)
    if subfolders and loose:
        raise DatasetUnavailable(
            f"image_folder: {folder} holds both image files ({loose[0].name}, ...) and sub-folders "
            f"({subfolders[0].name}/, ...). Expected {LAYOUT}: put every image in a class sub-folder, or none")
    if not subfolders:
        if not loose:
            raise DatasetUnavailable(f"image_folder: {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)}). "
                                     f"Expected {LAYOUT}")
        return loose, [-1] * len(loose), []
    files, labels = [], []
    for label, sub in enumerate(subfolders):
        found = _images_in(sub)
        if not found:
            raise DatasetUnavailable(f"image_folder: class folder {sub} holds no image files "
                                     f"({', '.join(IMAGE_SUFFIXES)}). Expected {LAYOUT}")
        files += found
        labels += [label] * len(found)
    return files, labels, [s.name for s in subfolders]


def find_splits(root: Path, test_fraction: float, seed: int) -> tuple[dict, list[str]]:
    """root -> ({split: (files, labels)}, class names): train/ and test/ when present, else a seeded split."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, test = scan(root / "train"), scan(root / "test")
        if train[2] != test[2]:
            raise DatasetUnavailable(f"image_folder: {root}/train and {root}/test hold different class folders "
                                     f"({train[2]} and {test[2]}); both need the same ones")
        return {"train": train[:2], "test": test[:2]}, train[2]
    files, labels, names = scan(root)
    if len(files) < 2:
        raise DatasetUnavailable(f"image_folder: {root} holds only {len(files)} image; a train/test split needs 2")
    n_test = min(len(files) - 1, max(1, round(len(files) * test_fraction)))
    order = split_rng(seed, "test").permutation(len(files))
    out = {}
    for split, idx in (("test", np.sort(order[:n_test])), ("train", np.sort(order[n_test:]))):
        out[split] = ([files[i] for i in idx], [labels[i] for i in idx])
    return out, names


def subset(files: list, labels: list, limit: int | None, rng: np.random.Generator) -> tuple[list, list]:
    """A seeded random subset of ``limit`` entries, kept in their original order."""
    if limit is None or limit >= len(files):
        return files, labels
    idx = np.sort(rng.permutation(len(files))[:limit])
    return [files[i] for i in idx], [labels[i] for i in idx]


class ImageDecoder:
    """One image file -> a PIL image converted to ``channels``, cropped and resized (the load-time
    geometry, module docs). The in-memory loader and the streamed one both decode through it."""

    def __init__(self, p: ImageFolderParams, channels: int, root: Path):
        self.p, self.channels, self.root = p, channels, root
        self.first: tuple[str, tuple[int, int]] | None = None  # (file, size) the others must match

    def name(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def box(self, size: tuple[int, int], rng: np.random.Generator, path: Path):
        """The crop box of an image of ``size`` (w, h), or None; a random crop draws from ``rng``,
        so calling this for every file in order gives every loader the same offsets."""
        if self.p.crop is None:
            return None
        return crop_box(*size, self.p.crop, self.p.crop_position, rng, name=self.name(path))

    def open(self, path: Path):
        return open_image(path, dataset="image_folder").convert("L" if self.channels == 1 else "RGB")

    def shape(self, image, box):
        from PIL import Image

        if box is not None:
            image = image.crop(box)
        if self.p.size is not None and image.size != (self.p.size, self.p.size):
            image = image.resize((self.p.size, self.p.size), Image.BICUBIC)
        return image

    def delivered_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(w, h) after crop and resize of an image of ``size`` (w, h)."""
        if self.p.size is not None:
            return self.p.size, self.p.size
        return (self.p.crop, self.p.crop) if self.p.crop is not None else size

    def check_size(self, path: Path, size: tuple[int, int]) -> None:
        """Every delivered image has one size (DataSettingError naming two files that differ)."""
        name = self.name(path)
        if self.first is None:
            self.first = (name, size)
        elif size != self.first[1]:
            (w0, h0), (w, h) = self.first[1], size
            raise DataSettingError(f"images differ in size: {self.first[0]} is {w0}x{h0}, {name} is {w}x{h}; set "
                                   f"data.size to resize them all (and data.crop to cut a square first)",
                                   setting="size")

    def pixels(self, path: Path, box) -> np.ndarray:
        return np.asarray(self.shape(self.open(path), box), dtype=np.uint8)


def read_images(files: list[Path], decoder: ImageDecoder, rng: np.random.Generator) -> torch.Tensor:
    """Image files -> float32 (n c h w) in [0, 1]: converted, cropped, resized (see the module docs)."""
    arrays = []
    for path in files:
        image = decoder.open(path)
        image = decoder.shape(image, decoder.box(image.size, rng, path))
        decoder.check_size(path, image.size)
        arrays.append(np.asarray(image, dtype=np.uint8))
    return to_tensor(arrays)


def crop_boxes(files: list[Path], decoder: ImageDecoder, rng: np.random.Generator) -> list:
    """Each file's crop box (None without a crop), from the image headers only; checks that the
    images will arrive in one size, as ``read_images`` does, before any is decoded."""
    boxes = []
    for path in files:
        size = image_size(path, dataset="image_folder")
        boxes.append(decoder.box(size, rng, path))
        decoder.check_size(path, decoder.delivered_size(size))
    return boxes


class FolderImages:
    """The streamed split's source: ``source[i] -> {"x": (c h w)}``, decoded from the file and
    prepared exactly as the in-memory loader prepares the whole split (``prepare_images``)."""

    def __init__(self, files: list[Path], boxes: list, decoder: ImageDecoder, split: str):
        self.files, self.boxes, self.decoder, self.split = files, boxes, decoder, split

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        p = self.decoder.p
        x = to_tensor([self.decoder.pixels(self.files[i], self.boxes[i])])
        x = prepare_images(x, split=self.split, seed=p.seed, binarize=p.binarize, pad_to=p.pad_to,
                           value_range=p.value_range)
        return {"x": x[0]}


def detect_channels(files: list[Path]) -> int:
    """1 if every image file is grey, else 3 (reads only the headers; read_images reports bad files)."""
    from PIL import Image

    for path in files:
        try:
            with Image.open(path) as image:
                if image.mode not in GREY_MODES:
                    return 3
        except OSError:
            continue
    return 1


def read_attribute_table(path: Path, wanted: list[str] | None) -> tuple[dict[str, list[float]], list[str]]:
    """CSV -> ({file name as written: 0/1 values}, attribute names); DataSettingError naming the line."""
    if not path.is_file():
        raise DataSettingError(f"attribute file {path} does not exist", setting="attributes")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise DataSettingError(f"{path}: expected a header row (file, attribute names...) and one row per image",
                               setting="attributes")
    header = [h.strip() for h in rows[0]]
    names = wanted or header[1:]
    missing = [n for n in names if n not in header[1:]]
    if missing:
        from lvmgraph.plugins.registry import did_you_mean
        hint = did_you_mean(missing[0], header[1:])
        raise DataSettingError(f"{path} has no column '{missing[0]}'"
                               + (f" — did you mean '{hint}'?" if hint else f" (columns: {', '.join(header[1:])})"),
                               setting="attribute_names")
    columns = [header.index(n) for n in names]
    table = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise DataSettingError(f"{path} line {line}: {len(row)} columns, the header has {len(header)}",
                                   setting="attributes")
        values = []
        for c in columns:
            cell = row[c].strip().lower()
            if cell not in TRUE | FALSE:
                raise DataSettingError(f"{path} line {line}: {header[c]} is '{row[c]}'; attributes are 0/1 "
                                       f"(or -1/1, true/false)", setting="attributes")
            values.append(1.0 if cell in TRUE else 0.0)
        table[row[0].strip().replace("\\", "/")] = values
    return table, names


def attribute_rows(files: list[Path], root: Path, table: dict, csv_path: Path) -> torch.Tensor:
    """The table's row of each file (matched by path relative to root, or by bare name) -> (n k)."""
    rows = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        row = table.get(relative, table.get(path.name))
        if row is None:
            raise DataSettingError(f"{csv_path} has no row for {relative} (rows are matched by the path relative "
                                   f"to {root}, or by file name)", setting="attributes")
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float32)


def load_image_folder(**settings) -> DatasetBundle:
    """Images from a folder: x (n c h w), y (n,) from class sub-folders, optional attributes (n k).

    See the module docs for the layout and the transforms. ``info`` reports the usual image keys
    plus ``files`` (images per split), ``attribute_names`` and ``shape_settings`` (which settings
    set the delivered size and channels, so a spec whose components take another image shape is
    told which data setting to change).
    """
    return _load(ImageFolderParams.model_validate(settings), stream=False)


def stream_image_folder(**settings) -> DatasetBundle:
    """``load_image_folder`` with the training images decoded on demand (``data.stream: true``):
    the same examples, batches and preprocessing; only the file list, crop offsets, labels and
    attributes are held, and the test split, which evaluation reads whole, is loaded as usual."""
    p = ImageFolderParams.model_validate(settings)
    if p.binarize == "stochastic":
        # its one fixed draw covers the whole split at once, which a per-image decoder cannot repeat
        raise DataSettingError("binarize: stochastic draws the whole training set at once and cannot stream; "
                               "use binarize: threshold or none, or data.stream: false", setting="binarize")
    return _load(p, stream=True)


def _check_pad(p: ImageFolderParams, native: tuple[int, ...]) -> None:
    if p.pad_to is not None and p.pad_to < max(native[1:]):
        raise DataSettingError(f"images are {native[1]}x{native[2]}, larger than pad_to {p.pad_to}: set "
                               f"data.size: {p.pad_to} to resize them (or data.crop to cut them), or "
                               f"raise or remove pad_to", setting="size")


def _load(p: ImageFolderParams, *, stream: bool) -> DatasetBundle:
    from lvmgraph.data.stream import StreamedSplit

    root = Path(p.root).expanduser()
    if not root.is_dir():
        raise DatasetUnavailable(f"image_folder: root {root} is not a folder. Expected {LAYOUT}; set data.root")
    found, class_names = find_splits(root, p.test_fraction, p.seed)
    limits = {"train": p.limit_train, "test": p.limit_test}
    found = {split: subset(*found[split], limits[split], split_rng(p.seed, split)) for split in ("train", "test")}
    channels = p.channels or detect_channels(found["train"][0] + found["test"][0])
    table = names = None
    if p.attributes is not None:
        csv_path = root / Path(p.attributes).expanduser()
        table, names = read_attribute_table(csv_path, p.attribute_names)
    splits = {}
    for split, (files, labels) in found.items():
        decoder, rng = ImageDecoder(p, channels, root), split_rng(p.seed, split)
        held = {}
        if class_names:
            held["y"] = torch.tensor(labels, dtype=torch.int64)
        if table is not None:
            held["attributes"] = attribute_rows(files, root, table, csv_path)
        if stream and split == "train":
            boxes = crop_boxes(files, decoder, rng)
            (w, h) = decoder.first[1]
            native = (channels, h, w)
            _check_pad(p, native)
            splits[split] = StreamedSplit(FolderImages(files, boxes, decoder, split), held=held)
            continue
        x = read_images(files, decoder, rng)
        native = tuple(x.shape[1:])
        _check_pad(p, native)
        splits[split] = {"x": prepare_images(x, split=split, seed=p.seed, binarize=p.binarize, pad_to=p.pad_to,
                                             value_range=p.value_range), **held}
    shape = tuple(splits["train"]["x"].shape[1:])
    if tuple(splits["test"]["x"].shape[1:]) != shape:
        raise DataSettingError(f"the train images are {'x'.join(map(str, shape[1:]))} but the test images "
                               f"{'x'.join(map(str, splits['test']['x'].shape[2:]))}; set data.size to resize "
                               f"them all", setting="size")
    info = {
        "name": "image_folder", "kind": "image", "num_classes": len(class_names), "class_names": class_names,
        "value_range": tuple(float(v) for v in p.value_range), "source": str(root),
        "shape": shape, "native_shape": native, "binarize": p.binarize,
        "files": {split: len(files) for split, (files, _) in found.items()},
        # with pad_to, the delivered size is pad_to's (never below the images'); channels always convert
        "shape_settings": {**(pad_shape_settings(native) if p.pad_to is not None else {"size": "size"}),
                           "channels": "channels"},
    }
    if names is not None:
        info["attribute_names"] = list(names)
    augment = HorizontalFlip(("x",)) if p.flip == "horizontal" else None
    return DatasetBundle(train=splits["train"], test=splits["test"], info=info, augment=augment)
