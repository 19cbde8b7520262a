"""Arrays from a file as data fields: ``.npz`` (each array a field), ``.npy`` or a ``.pt`` tensor
(field ``x``), or a ``.pt`` dict of tensors.

Axis legend: n samples, then each field's own axes (e.g. x (n d) points, x (n c h w) images).

Splits: arrays named ``NAME_train`` / ``NAME_test`` (as in ``mnist.npz``: ``x_train``, ``y_test``)
are the splits, fields ``NAME``; or ``test_path`` names a second file for the test split; or a
seeded ``test_fraction`` of the rows is held out. Floating arrays become float32, integer arrays
int64, booleans stay bool; nothing else is changed (scale the values before saving them).
``x`` of shape (n c h w) with 1 or 3 channels is an image field (``info["kind"] = "image"``),
which must lie in ``value_range``; any other ``x`` is ``points``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from lvmgraph import DataSettingError, DatasetBundle, DatasetUnavailable, Params

from .common import ValueRange, split_rng

SUFFIXES = (".npz", ".npy", ".pt", ".pth")
SPLIT_SUFFIXES = ("_train", "_test")


class TensorsParams(Params):
    path: str = Field(description="a .npz file (one field per array), a .npy file or .pt tensor (field x), "
                                  "or a .pt dict of tensors")
    test_path: str | None = Field(default=None, description="a second file of the same fields for the test split")
    fields: list[str] | None = Field(default=None, description="the fields to keep (default: every array)")
    test_fraction: float = Field(default=0.1, gt=0, lt=1,
                                 description="share of the rows held out for testing (seeded), unless the arrays "
                                             "are split by name (x_train, x_test) or test_path is given")
    seed: int = Field(default=0, ge=0, description="seed of the train/test split")
    value_range: ValueRange = Field(default=(0.0, 1.0),
                                    description="range the images in x lie in, when x holds images (n c h w)")


def read_arrays(path: Path, setting: str) -> dict[str, torch.Tensor]:
    """A file -> {name: tensor}; DatasetUnavailable naming the file when it is missing or unreadable."""
    if not path.is_file():
        raise DatasetUnavailable(f"tensors: {path} does not exist; set data.{setting} to a {', '.join(SUFFIXES)} file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataSettingError(f"{path}: unknown file type '{suffix}'; use one of {', '.join(SUFFIXES)}",
                               setting=setting)
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                raw = {name: archive[name] for name in archive.files}
        elif suffix == ".npy":
            raw = {"x": np.load(path, allow_pickle=False)}
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            raw = loaded if isinstance(loaded, dict) else {"x": loaded}
    except (OSError, ValueError, RuntimeError, EOFError) as err:
        raise DatasetUnavailable(f"tensors: cannot read {path} ({err})") from err
    out = {}
    for name, value in raw.items():
        if not isinstance(value, (np.ndarray, torch.Tensor)):
            raise DataSettingError(f"{path}: '{name}' is a {type(value).__name__}, not an array", setting=setting)
        t = torch.as_tensor(np.asarray(value)) if isinstance(value, np.ndarray) else value.detach().cpu()
        if t.dtype.is_floating_point:
            t = t.to(torch.float32)
        elif t.dtype != torch.bool:
            t = t.to(torch.int64)
        if t.dim() == 0:
            raise DataSettingError(f"{path}: '{name}' is a single number; fields have one row per sample",
                                   setting=setting)
        out[str(name)] = t.contiguous()
    return out


def same_length(fields: dict[str, torch.Tensor], where: str, setting: str) -> None:
    sizes = {name: int(t.shape[0]) for name, t in fields.items()}
    if len(set(sizes.values())) > 1:
        raise DataSettingError(f"{where}: the arrays differ in length ({', '.join(f'{k} {v}' for k, v in sizes.items())}); "
                               f"every field needs one row per sample", setting=setting)


def split_by_name(arrays: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]] | None:
    """{x_train, x_test, ...} -> {train: {x}, test: {x}}; None unless every name ends in _train or _test."""
    if not arrays or not all(name.endswith(SPLIT_SUFFIXES) for name in arrays):
        return None
    out = {"train": {}, "test": {}}
    for name, t in arrays.items():
        base, _, split = name.rpartition("_")
        out[split][base] = t
    return out


def load_tensors(**settings) -> DatasetBundle:
    """Arrays by name as fields (see the module docs): x, y, ... per split."""
    p = TensorsParams.model_validate(settings)
    path = Path(p.path).expanduser()
    arrays = read_arrays(path, "path")
    splits = split_by_name(arrays)
    if splits is None and p.test_path is not None:
        splits = {"train": arrays, "test": read_arrays(Path(p.test_path).expanduser(), "test_path")}
    if splits is None:
        same_length(arrays, str(path), "path")
        n = next(iter(arrays.values())).shape[0]
        if n < 2:
            raise DataSettingError(f"{path} holds {n} row; a train/test split needs 2", setting="path")
        n_test = min(n - 1, max(1, round(n * p.test_fraction)))
        order = torch.from_numpy(split_rng(p.seed, "test").permutation(n))
        test_idx, train_idx = order[:n_test].sort().values, order[n_test:].sort().values
        splits = {"train": {k: t[train_idx] for k, t in arrays.items()},
                  "test": {k: t[test_idx] for k, t in arrays.items()}}
    if set(splits["train"]) != set(splits["test"]):
        raise DataSettingError(f"{path}: the train fields {sorted(splits['train'])} differ from the test fields "
                               f"{sorted(splits['test'])}", setting="test_path" if p.test_path else "path")
    if p.fields is not None:
        unknown = [f for f in p.fields if f not in splits["train"]]
        if unknown:
            raise DataSettingError(f"{path} has no array '{unknown[0]}' (arrays: {', '.join(sorted(splits['train']))})",
                                   setting="fields")
        splits = {split: {f: fields[f] for f in p.fields} for split, fields in splits.items()}
    for split, fields in splits.items():
        same_length(fields, f"{path} ({split})", "path")
    return DatasetBundle(train=splits["train"], test=splits["test"], info=tensors_info(splits, p, path))


def tensors_info(splits: dict, p: TensorsParams, path: Path) -> dict:
    """``info`` for arrays: kind image or points from ``x``, classes from an integer ``y``."""
    train = splits["train"]
    x = train.get("x")
    image = x is not None and x.dim() == 4 and x.shape[1] in (1, 3) and x.dtype.is_floating_point
    info = {"name": "tensors", "kind": "image" if image else "points", "source": str(path)}
    if image:
        lo, hi = p.value_range
        for split, fields in splits.items():
            if fields["x"].numel() and (fields["x"].min() < lo or fields["x"].max() > hi):
                raise DataSettingError(f"{path}: the {split} images x lie in [{float(fields['x'].min()):.3g}, "
                                       f"{float(fields['x'].max()):.3g}], outside value_range [{lo:g}, {hi:g}]; "
                                       f"set data.value_range or rescale the arrays", setting="value_range")
        shape = tuple(int(v) for v in x.shape[1:])
        info.update(value_range=(float(lo), float(hi)), shape=shape, native_shape=shape, binarize="none")
    y = train.get("y")
    if y is not None and y.dim() == 1 and y.dtype == torch.int64:
        k = int(max(int(t["y"].max()) for t in splits.values() if t["y"].numel())) + 1
        info.update(num_classes=k, class_names=[str(i) for i in range(k)])
    else:
        info.update(num_classes=0, class_names=[])
    return info
