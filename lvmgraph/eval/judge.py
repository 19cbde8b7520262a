"""Judges: small CNN classifiers trained on a run's own real data, to say what generated images look like.

Axis legend: n images, c channels, h w spatial (the data's native size), K classes, A attributes.

The dataset evaluator (``lvmgraph.eval.evaluator``) knows one labelling of one dataset in its
default form. A translation or conditional model needs other questions answered about ITS data:
"is this x_ab in domain B?" (train on x_a as class 0, x_b as class 1), "is it still a sneaker?"
(train on x_a and x_b against y_a and y_b), "does it have the attributes asked for?" (train on x
against multi-hot ``attributes``, one sigmoid per attribute). A judge is that classifier: the same
``SmallCNN`` and canonical images ([0, 1], padding cropped) as the evaluator, trained on the train
split of the run's dataset with the run's settings, measured on its test split, and cached.

Public API::

    judge = judge_for("domains", bundle, images=["x_a", "x_b"])           # classes = positions
    judge = judge_for("domains", bundle, images=["x_a", "x_b"], labels=["y_a", "y_b"])
    judge = judge_for("attributes", bundle, images=["x"], labels=["attributes"])  # multi-label
    judge = judge_for("captions", bundle, images=["x"], labels=["y"], colour="value")  # blind to hue
    judge.predict(x, info)   # (n,) class indices, or (n, A) bool attributes in multi-label mode
    judge.describe()         # architecture, epochs, checksum, key, test results, ...

- Labels: none (each image field is one class, its position in ``images``); or one label field per
  image field holding class indices (n,), one-hot rows (n K), or multi-hot rows (n A) of 0/1 with
  some row not summing to 1 — multi-hot selects ``mode == "attributes"`` (multi-label, sigmoid per
  attribute, binary cross-entropy); otherwise ``mode == "classes"`` (softmax, cross-entropy).
- ``colour``: ``"keep"`` (default) reads the canonical images as they are; ``"value"`` reads only
  their HSV value, the brightest channel (n 1 h w), so the judge is blind to hue: for a question
  colour does not answer (the class of a garment inked red or green), a judge that cannot see the
  ink's hue learns one shape per class instead of one per class and colour, and reads a colour
  it never saw with that class (a held-out red ankle boot) as well as the others.
- ``test``: ``accuracy`` (classes: fraction right; attributes: mean over attributes), ``per_class``
  (accuracy on the test images of each class; attributes: per attribute), ``all_attributes``
  (attributes only: every bit right), ``n``.
- Cache: ``<cache_root()>/judges/<dataset>-<key[:16]>/`` with ``weights.pt`` and ``meta.json``. The
  key is a sha256 of the dataset name, the fields, the canonical images and labels of both splits,
  this file's and the evaluator's source (the network, its training loop and the cache entry format
  live there) and the training settings. The weights' sha256 is checked on every load; a damaged
  entry is moved aside with a warning and the judge retrained.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..data.base import DatasetBundle
from ..data.stream import read_whole
from . import evaluator as _evaluator
from .evaluator import (SmallCNN, architecture_name, build_model, cache_folder, cache_root, canonical_images, fit,
                        hash_tensor, move_aside, native_input_shape, read_entry, saved_checksum, serialize,
                        training_settings, write_entry)

__all__ = ["Judge", "JudgeCorrupt", "colour_view", "judge_for", "judge_data", "judge_fields", "judge_key"]

CACHE_FORMAT = 1  # of the key; the entry's files and checks are the evaluator cache's (read_entry, write_entry)


class JudgeCorrupt(RuntimeError):
    """A cached judge whose weights do not match the recorded checksum (or cannot be read)."""


# ----------------------------------------------------------------------------- data

def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _labels(t: torch.Tensor, field: str) -> tuple[torch.Tensor, str]:
    """A label field -> (labels, kind): kind "index" for (n,) ints, "one_hot" or "multi_hot" for (n K) 0/1."""
    if t.dim() == 1:
        if t.is_floating_point() and not torch.equal(t, t.round()):
            raise ValueError(f"judge labels '{field}' hold non-integer values; give class indices, one-hot or "
                             f"multi-hot rows")
        return t.long(), "index"
    if t.dim() == 2:
        binary = ((t == 0) | (t == 1)).all()
        if not binary:
            raise ValueError(f"judge labels '{field}' are (n, {t.shape[1]}) rows that are not 0/1; give class "
                             f"indices, one-hot or multi-hot rows")
        if (t.sum(dim=1) == 1).all():
            return t.argmax(dim=1), "one_hot"
        return t.float(), "multi_hot"
    raise ValueError(f"judge labels '{field}' have shape {tuple(t.shape)}; expected (n,) or (n, K)")


def judge_data(bundle: DatasetBundle, split: str, images: Sequence[str],
               labels: Sequence[str] | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """One split's judge training data -> (canonical images (N c h w), labels, mode).

    Labels are (N,) int64 for ``mode == "classes"``, (N A) float 0/1 for ``"attributes"``.
    """
    fields = bundle.train if split == "train" else bundle.test
    shape = native_input_shape(bundle.info)
    xs, ys, kinds = [], [], set()
    for i, name in enumerate(images):
        if name not in fields:
            raise KeyError(f"judge images: the data has no field '{name}' (fields: {sorted(fields)})")
        x = read_whole(fields[name])
        xs.append(canonical_images(x, bundle.info, input_shape=shape))
        if labels is None:
            ys.append(torch.full((x.shape[0],), i, dtype=torch.int64))
            kinds.add("index")
        else:
            if labels[i] not in fields:
                raise KeyError(f"judge labels: the data has no field '{labels[i]}' (fields: {sorted(fields)})")
            y, kind = _labels(fields[labels[i]].detach().cpu(), labels[i])
            ys.append(y)
            kinds.add(kind)
    if "multi_hot" in kinds and len(kinds) > 1:
        raise ValueError(f"judge labels {list(labels)} mix multi-hot rows with class labels")
    if "multi_hot" in kinds:
        # a multi-hot field of which this split happens to hold only one-hot rows is still multi-label
        return torch.cat(xs), torch.cat([y.float() for y in ys]), "attributes"
    return torch.cat(xs), torch.cat(ys), "classes"


def _multi_hot_field(bundle: DatasetBundle, labels: Sequence[str] | None) -> bool:
    """Whether any label field is multi-hot in either split (a split may hold one-hot rows only)."""
    for name in labels or []:
        for fields in (bundle.train, bundle.test):
            t = fields.get(name)
            if t is not None and t.dim() == 2 and ((t == 0) | (t == 1)).all() and not (t.sum(dim=1) == 1).all():
                return True
    return False


def _fix_mode(x, y, mode, multi_label: bool, width: int):
    if multi_label and mode == "classes":  # one-hot rows of a multi-hot field
        return x, F.one_hot(y, width).float(), "attributes"
    return x, y, mode


# ----------------------------------------------------------------------------- the judge

class Judge:
    """A trained classifier over canonical images, with its test results and cache identity."""

    def __init__(self, model: SmallCNN, *, dataset: str, settings: dict, test: dict, checksum: str, key: str,
                 cache_dir: Path | None = None, from_cache: bool = False, device="cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dataset, self.settings, self.test = dataset, dict(settings), dict(test)
        self.checksum, self.key, self.cache_dir, self.from_cache = checksum, key, cache_dir, from_cache
        self.mode: str = settings["mode"]
        self.num_classes = int(settings["num_classes"])
        self.input_shape = tuple(settings["input_shape"])
        #: the canonical images' shape before ``colour`` (c h w): what ``logits`` turns inputs into
        self.image_shape = tuple(settings.get("image_shape", settings["input_shape"]))
        self.colour: str = settings.get("colour", "keep")

    @property
    def architecture(self) -> str:
        head = "sigmoid per attribute" if self.mode == "attributes" else "softmax"
        return f"{architecture_name(self.settings)}, {head}"

    def logits(self, x: torch.Tensor, info: dict | None = None, batch_size: int = 500) -> torch.Tensor:
        """(n K) logits of images in the run's format (with ``info``) or already canonical."""
        if info is not None:
            x = canonical_images(x, info, input_shape=self.image_shape)
        x = colour_view(x, self.colour)
        outs = []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                outs.append(self.model(x[s:s + batch_size].to(self.device, torch.float32)).float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, self.num_classes)

    def predict(self, x: torch.Tensor, info: dict | None = None) -> torch.Tensor:
        """(n,) class indices, or (n A) bool attributes in multi-label mode."""
        logits = self.logits(x, info)
        return logits > 0 if self.mode == "attributes" else logits.argmax(dim=1)

    def describe(self) -> dict:
        s = self.settings
        return {"dataset": self.dataset, "architecture": self.architecture, "mode": self.mode,
                "images": s["images"], "labels": s["labels"], "classes": self.num_classes,
                "epochs": s["epochs"], "seed": s["seed"], "train_size": s["train_size"], "colour": self.colour,
                "test": self.test, "checksum": self.checksum, "key": self.key,
                "cache_dir": str(self.cache_dir) if self.cache_dir else None}


def colour_view(x: torch.Tensor, colour: str) -> torch.Tensor:
    """Canonical images (n c h w) -> what a judge with this ``colour`` setting reads: themselves
    ("keep") or their HSV value, the largest channel (n 1 h w) ("value")."""
    if colour == "keep":
        return x
    if colour == "value":
        return x.amax(dim=1, keepdim=True)
    raise ValueError(f"judge colour must be 'keep' or 'value', got {colour!r}")


def score(pred: torch.Tensor, y: torch.Tensor, mode: str, num_classes: int) -> dict:
    """Predictions against labels -> accuracy, per_class (classes) or per attribute, all_attributes."""
    if mode == "attributes":
        right = pred.bool() == y.bool()
        return {"accuracy": right.double().mean().item(),
                "per_class": right.double().mean(dim=0).tolist(),
                "all_attributes": right.all(dim=1).double().mean().item(), "n": int(y.shape[0])}
    per_class = [((pred == y) & (y == k)).sum().item() / max(1, (y == k).sum().item()) if (y == k).any() else None
                 for k in range(num_classes)]
    return {"accuracy": (pred == y).double().mean().item(), "per_class": per_class, "n": int(y.shape[0])}


# ----------------------------------------------------------------------------- training

def judge_key(dataset: str, splits: dict, settings: dict) -> str:
    """sha256 of the dataset name, the canonical (x, y) of both splits, the code and the settings."""
    h = hashlib.sha256()
    h.update(f"lvmgraph-judge/{CACHE_FORMAT}/{dataset}".encode())
    for name in sorted(splits):
        x, y = splits[name]
        h.update(name.encode())
        hash_tensor(h, x)
        hash_tensor(h, y)
    h.update(Path(__file__).read_bytes())
    h.update(Path(_evaluator.__file__).read_bytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def _settings(info: dict, n_train: int, width: int, mode: str, images, labels, epochs, seed,
              colour: str = "keep") -> dict:
    """The evaluator's recipe with ``width`` outputs, plus what the judge learns from (and, with
    ``colour="value"``, a one-channel input: ``image_shape`` keeps the canonical images' shape)."""
    settings = {**training_settings(info, n_train, epochs=epochs, seed=seed, num_classes=width),
                "mode": mode, "images": list(images), "labels": list(labels) if labels is not None else None,
                "train_size": int(n_train)}
    if colour != "keep":  # only then: the settings (and keys) of every other judge stay as they were
        colour_view(torch.zeros(1, 1, 1, 1), colour)  # checks the name
        settings["colour"] = colour
        settings["image_shape"] = list(settings["input_shape"])
        settings["input_shape"] = [1, *settings["input_shape"][1:]]
    return settings


def judge_dir(dataset: str, key: str, root: Path | None = None) -> Path:
    return cache_folder("judges", dataset, key, root)


def _load(folder: Path, dataset: str, key: str, device) -> Judge:
    meta, model = read_entry(folder, key, what="judge", retrain=f"delete {folder} to train it again",
                             error=JudgeCorrupt)
    return Judge(model, dataset=dataset, settings=meta["settings"], test=meta["test"], checksum=meta["checksum"],
                 key=key, cache_dir=folder, from_cache=True, device=device)


def _save(folder: Path, judge: Judge, data: bytes, seconds: float) -> None:
    write_entry(folder, data, {"dataset": judge.dataset, "architecture": judge.architecture,
                               "checksum": judge.checksum, "key": judge.key, "settings": judge.settings,
                               "test": judge.test, "train_seconds": round(seconds, 1)})


def judge_fields(images: str | Sequence[str], labels: str | Sequence[str] | None) -> tuple[list, list | None]:
    """The image and label fields as lists; ValueError unless they describe a judge (checked at spec load too)."""
    images, labels = _as_list(images), _as_list(labels)
    if not images:
        raise ValueError("judge.images needs at least one image field")
    if labels is None and len(images) < 2:
        raise ValueError(f"judge.images is one field ('{images[0]}'): add `labels:` (its class field) or "
                         f"list several image fields, each one class")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"judge has {len(images)} image fields but {len(labels)} label fields; give one "
                         f"label field per image field")
    return images, labels


def judge_for(dataset: str, bundle: DatasetBundle, *, images: str | Sequence[str],
              labels: str | Sequence[str] | None = None, epochs: int | None = None, seed: int = 0,
              colour: str = "keep", device="cpu", cache_dir: str | os.PathLike | None = None,
              quiet: bool = False) -> Judge:
    """The judge of ``images`` (against ``labels``, or their positions) on this exact data: cached, or
    trained on the train split, measured on the test split and cached. ``colour="value"``: the judge
    reads only the images' brightest channel (blind to hue)."""
    images, labels = judge_fields(images, labels)
    multi = _multi_hot_field(bundle, labels)
    splits = {}
    for split in ("train", "test"):
        splits[split] = judge_data(bundle, split, images, labels)
    rows = [bundle.train[name].shape[1] for name in labels or [] if bundle.train[name].dim() == 2]
    if multi and (len(set(rows)) != 1 or len(rows) != len(labels)):
        raise ValueError(f"judge labels {labels}: multi-hot label fields must all be (n, A) rows of one width")
    width = max([len(images) if labels is None else 0, *rows, *(int(y.max()) + 1 if y.dim() == 1 else 0
                                                                 for _, y, _ in splits.values())])
    splits = {k: _fix_mode(*v, multi, width) for k, v in splits.items()}
    mode = splits["train"][2]
    tensors = {k: (x, y) for k, (x, y, _) in splits.items()}
    settings = _settings(bundle.info, len(tensors["train"][0]), width, mode, images, labels, epochs, seed, colour)
    key = judge_key(dataset, tensors, settings)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    folder = judge_dir(dataset, key, root)
    if folder.exists():
        try:
            return _load(folder, dataset, key, device)
        except JudgeCorrupt as err:
            move_aside(folder, err, "judge")
    label = f"{dataset} {images}" + (f" vs {labels}" if labels else "")
    (x_train, y_train), (x_test, y_test) = tensors["train"], tensors["test"]
    if not quiet:
        print(f"judge {label}: training {architecture_name(settings)} ({mode}) on {len(x_train)} images, "
              f"{settings['epochs']} epochs", file=sys.stderr, flush=True)
    device = torch.device(device)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(settings["seed"])
        model = build_model(settings).to(device)
        fit(model, colour_view(x_train, colour), y_train, settings, device=device, label=f"judge {label}", quiet=quiet,
            loss_fn=F.binary_cross_entropy_with_logits if mode == "attributes" else F.cross_entropy)
    data = serialize(model)
    judge = Judge(model, dataset=dataset, settings=settings, test={}, checksum=hashlib.sha256(data).hexdigest(),
                  key=key, device=device)
    judge.test = score(judge.predict(x_test), y_test, mode, width)
    if not quiet:
        print(f"judge {label}: test accuracy {judge.test['accuracy']:.4f} on {len(x_test)} images",
              file=sys.stderr, flush=True)
    _save(folder, judge, data, time.perf_counter() - start)
    if saved_checksum(folder) not in (None, judge.checksum):
        return _load(folder, dataset, key, device)  # another process saved first: use what is on disk
    judge.cache_dir = folder
    return judge
