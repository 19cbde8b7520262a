"""Values a user fixes for ``lvmgraph sample RUN --given NAME=VALUE``, as batched tensors.

Axis legend: n examples generated, m examples the user gave, c channels, h w spatial, K patches.

VALUE is read as, in this order:

- an existing path (or one ending in a known suffix or a slash, which must then exist):
  ``.npz`` (the array named NAME, else ``samples``, else its only array) / ``.npy``; an image file (png, jpg, ...);
  a folder of image files (taken in name order and stacked); a ``.txt`` file of one text per line;
- a number: an integer becomes class indices (n,), or one-hot rows when NAME holds (n K) floats
  (``--given c=3``), a float fills NAME's per-example shape;
- any other text: encoded by the dataset's encoder for NAME (``DatasetBundle.encoders``, e.g. the
  captions dataset turns ``text="a thick red sneaker"`` into ``text`` and ``text_length``).

Shapes come from what NAME looks like when sampling (``experiment.example_values``): an array of
exactly NAME's per-example shape is ONE example, repeated for every generated sample (PuzzleGAN's
``patches`` from a folder of K patch images is one example of shape (K c p p)); an array with one
more leading axis is a batch of m examples. Without ``-n`` the batch size sets n (translate every
image given); with ``-n`` a batch must hold n examples (or exactly one).

Images are converted to the data's space: grey or RGB by NAME's channel count, pixels mapped to the
dataset's ``value_range``. The size must be NAME's (h w); an image of the dataset's native size
(``info["native_shape"]``) is padded, centred, as the dataset's ``pad_to`` pads (a 28x28 image for
32x32 data). Nothing is resized: a wrong size is an error naming the sizes accepted.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
ARRAY_SUFFIXES = (".npz", ".npy")
TEXT_SUFFIXES = (".txt",)
DEFAULT_N = 64


class GivenError(ValueError):
    """A ``--given`` value that cannot be used; the message says which and how to fix it."""


def split_item(item: str) -> tuple[str, str]:
    name, sep, text = item.partition("=")
    if not sep or not name:
        raise GivenError(f"--given {item!r}: write NAME=VALUE")
    return name.strip(), text


def _is_path(text: str) -> bool:
    suffix = Path(text).suffix.lower()
    return (os.path.exists(text) or text.endswith(("/", os.sep))
            or suffix in IMAGE_SUFFIXES + ARRAY_SUFFIXES + TEXT_SUFFIXES)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_array(path: Path, name: str | None = None) -> torch.Tensor:
    """An .npz or .npy file -> a tensor (floats as float32). From an .npz: the array called
    ``name``, else ``samples`` (what ``lvmgraph sample --out X.npz`` writes), else its only array."""
    arr = np.load(path)
    if isinstance(arr, np.lib.npyio.NpzFile):
        with arr:
            key = next((k for k in (name, "samples") if k in arr.files), None)
            if key is None and len(arr.files) == 1:
                key = arr.files[0]
            if key is None:
                where = f"--given {name}: {path}" if name else str(path)
                wanted = f"'{name}' or 'samples'" if name else "'samples'"
                raise GivenError(f"{where} holds the arrays {', '.join(arr.files) or '(none)'} and none is called "
                                 f"{wanted}: save the one to use under that name, or alone")
            arr = arr[key]
    value = torch.from_numpy(np.array(arr))
    return value.float() if value.is_floating_point() else value


def image_files(folder: Path) -> list[Path]:
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GivenError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


class ImageSpace:
    """How images enter a graph value: channels, size, the dataset's padding and value range."""

    def __init__(self, shape: Sequence[int], info: dict):
        self.channels, self.height, self.width = (int(v) for v in shape[-3:])
        native = info.get("native_shape")
        self.native = tuple(int(v) for v in native[-2:]) if native is not None else None
        self.value_range = tuple(float(v) for v in info.get("value_range", (0.0, 1.0)))

    def sizes(self) -> str:
        text = f"{self.width}x{self.height}"
        if self.native and self.native != (self.height, self.width):
            text += f" (or {self.native[1]}x{self.native[0]}, the data's size before padding, padded as the data is)"
        return text

    def read(self, path: Path, name: str) -> torch.Tensor:
        """An image file -> float32 (c h w) in the value range."""
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("L" if self.channels == 1 else "RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as err:
            raise GivenError(f"--given {name}: cannot read {path} as an image ({err})") from err
        x = torch.from_numpy(pixels.copy()).float().div_(255.0)
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        h, w = x.shape[-2:]
        if (h, w) != (self.height, self.width):
            if self.native is None or (h, w) != self.native or h > self.height or w > self.width:
                raise GivenError(f"--given {name}: {path} is {w}x{h} pixels but '{name}' takes {self.sizes()} "
                                 f"images; resize it first")
            top, left = (self.height - h) // 2, (self.width - w) // 2  # as the datasets' pad_to
            x = F.pad(x, (left, self.width - w - left, top, self.height - h - top), value=0.0)
        lo, hi = self.value_range
        return x * (hi - lo) + lo


def _image_shape(name: str, shape: tuple) -> tuple:
    if len(shape) < 3 or shape[-3] not in (1, 3):
        raise GivenError(f"--given {name}: '{name}' holds examples of shape {shape}, not images (c h w); "
                         f"give an .npz/.npy array or a number instead")
    return shape


def as_examples(name: str, value: torch.Tensor, example: torch.Tensor, source: str) -> tuple[torch.Tensor, bool]:
    """A given tensor -> (value in NAME's dtype, True when it is a batch of examples, False for one)."""
    shape = tuple(example.shape[1:])
    value = value.to(example.dtype) if example.is_floating_point() or not value.is_floating_point() else value
    if tuple(value.shape) == shape:
        return value, False
    if tuple(value.shape[1:]) == shape:
        return value, True
    raise GivenError(f"--given {name}: {source} has shape {tuple(value.shape)}, but '{name}' holds examples of "
                     f"shape {shape}: give one example of that shape or a batch (m, {', '.join(map(str, shape))})")


def number_value(name: str, num: float, example: torch.Tensor) -> torch.Tensor:
    """One example from a number: an index, a one-hot row (for (K,) floats) or NAME's shape filled."""
    shape = tuple(example.shape[1:])
    if num.is_integer() and example.is_floating_point() and len(shape) == 1 and shape[0] > 1:
        if not 0 <= num < shape[0]:
            raise GivenError(f"--given {name}={int(num)}: '{name}' holds one-hot rows of {shape[0]} classes; "
                             f"give an index 0..{shape[0] - 1} (or a float to fill every entry)")
        return F.one_hot(torch.tensor(int(num)), shape[0]).to(example.dtype)
    return torch.full(shape, num, dtype=example.dtype if example.is_floating_point() or num.is_integer()
                      else torch.float32)


def read_given(name: str, text: str, example: torch.Tensor | None, info: dict,
               encoders: dict[str, Callable]) -> tuple[dict[str, torch.Tensor], bool]:
    """One NAME=VALUE -> ({field: tensor}, is_batch). ``example`` is NAME as sampled (2 examples)."""
    if _is_path(text):
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"--given {name}: {path} does not exist")
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if not lines:
                raise GivenError(f"--given {name}: {path} holds no text")
            rows = [encode_text(name, line, encoders) for line in lines]
            return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}, True
        if example is None:
            raise GivenError(f"--given {name}: '{name}' is not a graph value or data field")
        if suffix in ARRAY_SUFFIXES:
            value, batch = as_examples(name, read_array(path, name), example, str(path))
            return {name: value}, batch
        space = ImageSpace(_image_shape(name, tuple(example.shape[1:])), info)
        if path.is_dir():
            value = torch.stack([space.read(f, name) for f in image_files(path)])
        elif suffix in IMAGE_SUFFIXES:
            value = space.read(path, name)
        else:
            raise GivenError(f"--given {name}: {path} is not an image ({', '.join(IMAGE_SUFFIXES)}), an array "
                             f"(.npz, .npy), a text file (.txt) or a folder of images")
        value, batch = as_examples(name, value, example, str(path))
        return {name: value}, batch
    num = _number(text)
    if num is not None:
        if example is None:
            raise GivenError(f"--given {name}: '{name}' is not a graph value or data field")
        return {name: number_value(name, num, example)}, False
    return encode_text(name, text, encoders), False


def encode_text(name: str, text: str, encoders: dict[str, Callable]) -> dict[str, torch.Tensor]:
    if name not in encoders:
        known = f"its text encoders: {', '.join(sorted(encoders))}" if encoders else "it has no text encoders"
        raise GivenError(f"--given {name}={text!r}: not a number or an existing file or folder, and the dataset "
                         f"cannot encode text for '{name}' ({known})")
    try:
        out = encoders[name](text)
    except ValueError as err:
        raise GivenError(f"--given {name}: {err}") from None
    return {k: torch.as_tensor(v) for k, v in out.items()}


def parse_given(items: Sequence[str], n: int | None = None, device: Any = "cpu", *, experiment=None,
                default_n: int = DEFAULT_N) -> dict[str, torch.Tensor]:
    """NAME=VALUE strings -> {name: tensor with n rows}, n the same for all (see the module doc).

    ``n``: examples wanted (None: the size of the batches given, else ``default_n``). Without an
    ``experiment`` only numbers and .npz/.npy files are understood, as given (the old behaviour).
    """
    if experiment is None:
        return _parse_plain(items, n or default_n, device)
    from ..experiment import example_values
    parsed: list[tuple[str, dict[str, torch.Tensor], bool]] = []
    encoders = getattr(experiment.data, "encoders", {}) or {}
    info = experiment.data.info
    for item in items:
        name, text = split_item(item)
        known = set(experiment.graph.values) | set(experiment.graph.data_fields)
        example = example_values(experiment, [name])[name] if name in known else None
        if example is not None and not isinstance(example, torch.Tensor):
            example = getattr(example, "mean", None)  # a distribution: given values replace its draws
        if example is None and name not in encoders:
            from ..plugins.registry import did_you_mean
            match = did_you_mean(name, sorted(known))
            raise GivenError(f"--given {name}: '{name}' is not a graph value or data field of this spec"
                             + (f"; did you mean '{match}'?" if match else ""))
        values, batch = read_given(name, text, example, info, encoders)
        parsed.append((item, values, batch))
    sizes = {item: next(iter(v.values())).shape[0] for item, v, batch in parsed if batch}
    if n is None:
        counts = set(sizes.values())
        if len(counts) > 1:
            raise GivenError(f"--given batches differ in size: {sizes}; give batches of one size or set -n")
        n = counts.pop() if counts else default_n
    out = {}
    for item, values, batch in parsed:
        for name, value in values.items():
            if batch and value.shape[0] != n:
                if value.shape[0] != 1:
                    raise GivenError(f"--given {item}: holds {value.shape[0]} examples but -n is {n}; leave out "
                                     f"-n to use all {value.shape[0]}")
                value = value[0]
                batch = False
            if not batch:
                value = value.unsqueeze(0).expand(n, *value.shape)
            out[name] = value.contiguous().to(device)
    return out


def _parse_plain(items: Sequence[str], n: int, device) -> dict[str, torch.Tensor]:
    out = {}
    for item in items:
        name, text = split_item(item)
        path = Path(text)
        if path.suffix in ARRAY_SUFFIXES and path.exists():
            value = read_array(path, name)
        else:
            num = _number(text)
            if num is None:
                raise GivenError(f"--given {item!r}: not a number or an .npz/.npy file")
            value = torch.full((n,), int(num), dtype=torch.long) if num.is_integer() else torch.full((n, 1), num)
        out[name] = value.to(device)
    return out
