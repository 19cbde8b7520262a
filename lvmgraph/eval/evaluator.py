"""Evaluator networks: small CNN classifiers whose features and logits serve the feature-based metrics.

Axis legend: n samples, c channels, h w spatial (the dataset's native size), f features, k classes.

A metric such as a Fréchet distance or a classifier score needs a fixed network that has seen the
data. The standard one (Inception-v3 on ImageNet, see ``lvmgraph.eval.inception``) needs weights from
the internet and says little about 28x28 greyscale images, so each image dataset gets its own small
classifier, trained once on the dataset's train split, measured on its test split and cached.

Public API::

    ev = evaluator_for("fashion_mnist", bundle)   # cached evaluator, trained on first use
    ev.features(samples, info)    # (n, f) penultimate activations, f = ev.feature_dim (128)
    ev.logits(samples, info)      # (n, k) class logits, k = ev.num_classes
    ev.prepare(samples, info)     # the run's images -> canonical (n, c, h, w) in [0, 1]
    ev.describe()                 # {"dataset", "architecture", "test_accuracy", "checksum", "key",
                                  #  "feature_dim", "cache_dir"}: what eval.json records
    ev.dataset, ev.accuracy, ev.checksum, ev.key, ev.feature_dim, ev.num_classes

- ``Evaluator.prepare(x, info)``: images in a run's format -> the canonical form the evaluator was
  trained on: float32 (n, c, h, w) in [0, 1] at the dataset's native size, on the CPU. It maps
  ``info["value_range"]`` back to [0, 1] (clamping what falls outside: generated samples may),
  centre-crops what ``pad_to`` added (the same arithmetic as the padding, so a padded image
  prepared equals the unpadded one), and turns 3-channel images grey (ITU-R 601 luma) when the
  evaluator is 1-channel. uint8 images are read as 0..255. (n, h, w) is read as one channel.
- ``features(x, info=None, batch_size=500)`` / ``logits(...)``: eval mode, no gradients, in
  batches on the evaluator's device; results float32 on the CPU. With ``info`` the images are
  prepared first; without it they must already be canonical (checked: shape and channel count).
- ``evaluator_for(dataset, bundle, *, train_if_missing=True, device="cpu", cache_dir=None,
  quiet=False)``: the cached evaluator for this dataset and data, trained and cached on a miss.
  ``bundle`` is the dataset loaded with its default settings (the caller loads it); the evaluator
  is trained on ``prepare(bundle.train["x"], bundle.info)`` and its accuracy measured on the test
  split. With ``train_if_missing=False`` a miss raises ``EvaluatorMissing`` whose message gives the
  command that trains it (``lvmgraph evaluator train --dataset NAME``).
- ``train_evaluator(dataset, bundle, *, epochs=None, seed=0, device="cpu", quiet=False)``: train
  and return an evaluator without touching the cache. Seeded and deterministic on the CPU.
- ``cache_root()``: ``$LVMGRAPH_CACHE``, else ``~/.cache/lvmgraph``. ``cache_dir`` arguments replace
  it. Evaluators live in ``<root>/evaluators/<dataset>-<key[:16]>/`` as ``weights.pt``
  (``torch.save`` of a state_dict, loaded with ``weights_only=True``) and ``meta.json`` (accuracy,
  checksum, key, settings, created). A folder appears complete or not at all (written aside, then
  renamed).
- The cache ``key`` is a sha256 of the dataset name, the canonical train and test tensors and labels
  (bytes, shapes, dtypes), this file's source code (a code change retrains) and the training
  settings. ``checksum`` is the sha256 of the weights file, verified on every load: a mismatch
  (a torn or modified file) raises ``EvaluatorCorrupt`` (an ``EvaluatorMissing``) naming the file
  when ``train_if_missing=False``; otherwise the damaged folder is moved aside
  (``<folder>.corrupt-<time>``), a warning names the file and the evaluator is retrained.

The network (``SmallCNN``): conv3x3 32 - BN - ReLU - maxpool 2, conv3x3 64 - BN - ReLU - maxpool 2,
adaptive average pool to at most 7x7, dropout, linear 128 - ReLU (the features), dropout, linear k.
Trained with Adam (batch 128) under a one-cycle learning-rate schedule, seed 0, for about 300 steps
(at least 3 epochs). Digits (8x8, 1,437 images, 25 epochs) takes seconds and reaches 99.4% test
accuracy; Fashion-MNIST (3 epochs) 91.35% in about 3 minutes on one busy CPU thread.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
import time
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.base import DatasetBundle
from ..data.stream import read_whole

__all__ = ["Evaluator", "EvaluatorMissing", "EvaluatorCorrupt", "SmallCNN", "cache_root", "evaluator_for",
           "train_evaluator", "evaluator_key", "canonical_images"]

#: bump when the files' layout changes (it is part of the key through this file's source anyway)
CACHE_FORMAT = 1
WEIGHTS_FILE = "weights.pt"
META_FILE = "meta.json"
ARCHITECTURE = "SmallCNN"
#: the luma weights of ITU-R BT.601 (what PIL's convert("L") uses)
GREY_WEIGHTS = (0.299, 0.587, 0.114)


class EvaluatorMissing(RuntimeError):
    """No cached evaluator for a dataset, and training one was not allowed."""


class EvaluatorCorrupt(EvaluatorMissing):
    """A cached evaluator whose weights file does not match its recorded checksum (or is unreadable)."""


def train_command(dataset: str) -> str:
    return f"lvmgraph evaluator train --dataset {dataset}"


# ----------------------------------------------------------------------------- the network

class SmallCNN(nn.Module):
    """(n, c, h, w) in [0, 1] -> (n, k) logits; ``features`` gives the (n, f) penultimate activations."""

    def __init__(self, *, in_channels: int, image_size: tuple[int, int], num_classes: int,
                 widths: tuple[int, int] = (32, 64), feature_dim: int = 128, dropout: float = 0.25):
        super().__init__()
        h, w = image_size
        if h < 4 or w < 4:
            raise ValueError(f"evaluator images must be at least 4x4, got {h}x{w}")
        c1, c2 = widths
        #: the grid the second block's output is average-pooled to (7x7 for 28x28: no pooling)
        self.pool_size = pooled_size(h, w)
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c2 * self.pool_size[0] * self.pool_size[1], feature_dim)
        self.out = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        if tuple(x.shape[-2:]) != self.pool_size:
            x = F.adaptive_avg_pool2d(x, self.pool_size)
        return F.relu(self.fc(self.dropout(x.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.features(x)))


def pooled_size(h: int, w: int) -> tuple[int, int]:
    """After two 2x2 max-pools the map is (h//4, w//4); larger ones are average-pooled to at most 7x7."""
    return min(7, h // 4), min(7, w // 4)


def architecture_name(settings: dict) -> str:
    c, h, w = settings["input_shape"]
    c1, c2 = settings["widths"]
    ph, pw = pooled_size(h, w)
    return (f"{ARCHITECTURE}({c}x{h}x{w}: conv3x3 {c1}-bn-relu-maxpool2, conv3x3 {c2}-bn-relu-maxpool2, "
            f"avgpool {ph}x{pw}, linear {settings['feature_dim']} [features], linear {settings['num_classes']})")


def build_model(settings: dict) -> SmallCNN:
    c, h, w = settings["input_shape"]
    return SmallCNN(in_channels=c, image_size=(h, w), num_classes=settings["num_classes"],
                    widths=tuple(settings["widths"]), feature_dim=settings["feature_dim"],
                    dropout=settings["dropout"])


# ----------------------------------------------------------------------------- canonical images

def canonical_images(x: torch.Tensor, info: dict, *, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """Images in a run's format -> float32 (n, c, h, w) in [0, 1] of ``input_shape`` (c h w), on the CPU.

    Undoes ``info["value_range"]``, centre-crops padding (``pad_to``) and converts RGB to grey for
    a 1-channel ``input_shape``. See ``Evaluator.prepare``.
    """
    channels, height, width = input_shape
    x = torch.as_tensor(x).detach()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (n, c, h, w) or (n, h, w), got shape {tuple(x.shape)}")
    x = x.cpu()
    x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
    native = info.get("native_shape")
    if native is not None and tuple(native[-2:]) != (height, width):
        raise ValueError(f"the images' native size is {native[-2]}x{native[-1]} (info['native_shape'] of "
                         f"dataset '{info.get('name', '?')}') but the evaluator takes {height}x{width} images: "
                         f"it was trained on another dataset")
    h, w = x.shape[-2:]
    if (h, w) != (height, width):
        if h < height or w < width:
            raise ValueError(f"images of {h}x{w} are smaller than the evaluator's {height}x{width} input")
        # the inverse of pad_images: it put (size - h) // 2 rows above, so take them off here
        top, left = (h - height) // 2, (w - width) // 2
        x = x[..., top:top + height, left:left + width]
    lo, hi = (float(v) for v in info.get("value_range", (0.0, 1.0)))
    if (lo, hi) != (0.0, 1.0):
        x = (x - lo) / (hi - lo)
    if x.shape[1] != channels:
        if x.shape[1] == 3 and channels == 1:
            weights = torch.tensor(GREY_WEIGHTS, dtype=x.dtype).view(1, 3, 1, 1)
            x = (x * weights).sum(dim=1, keepdim=True)
        else:
            raise ValueError(f"images have {x.shape[1]} channels but the evaluator takes {channels}")
    return x.clamp(0.0, 1.0).contiguous()


def native_input_shape(info: dict) -> tuple[int, int, int]:
    """The dataset's per-image shape (c h w) before any padding."""
    if info.get("kind", "image") != "image":
        raise ValueError(f"evaluators are image classifiers; dataset '{info.get('name', '?')}' "
                         f"has kind '{info.get('kind')}'")
    shape = tuple(int(v) for v in info.get("native_shape", info.get("shape", ())))
    if len(shape) != 3:
        raise ValueError(f"expected an image shape (c, h, w) in the dataset info, got {shape}")
    return shape


# ----------------------------------------------------------------------------- the evaluator

class Evaluator:
    """A trained classifier whose penultimate activations and logits the feature-based metrics use."""

    def __init__(self, model: SmallCNN, *, dataset: str, accuracy: float, checksum: str, key: str,
                 settings: dict, cache_dir: Path | None = None, from_cache: bool = False,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dataset = dataset
        self.accuracy = float(accuracy)
        self.checksum = checksum
        self.key = key
        self.settings = dict(settings)
        self.input_shape: tuple[int, int, int] = tuple(settings["input_shape"])
        self.feature_dim = int(settings["feature_dim"])
        self.num_classes = int(settings["num_classes"])
        self.cache_dir = cache_dir
        #: True when loaded from the cache, False when trained by this call
        self.from_cache = from_cache

    def __repr__(self) -> str:
        return (f"Evaluator(dataset={self.dataset!r}, accuracy={self.accuracy:.4f}, key={self.key[:16]}, "
                f"cache_dir={str(self.cache_dir) if self.cache_dir else None!r})")

    @property
    def architecture(self) -> str:
        return architecture_name(self.settings)

    def prepare(self, x: torch.Tensor, info: dict) -> torch.Tensor:
        """Images in the run's format (``info``'s value_range, maybe padded) -> canonical (n, c, h, w) in [0, 1]."""
        return canonical_images(x, info, input_shape=self.input_shape)

    def _canonical(self, x: torch.Tensor, info: dict | None) -> torch.Tensor:
        if info is not None:
            return self.prepare(x, info)
        x = torch.as_tensor(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"without info the images must already be canonical, shape (n, "
                             f"{', '.join(map(str, self.input_shape))}); got {tuple(x.shape)} — pass the "
                             f"dataset info to prepare them")
        return x

    def _apply(self, fn, x: torch.Tensor, info: dict | None, batch_size: int) -> torch.Tensor:
        x = self._canonical(x, info)
        self.model.eval()
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = x[start:start + batch_size].to(self.device, torch.float32)
                outs.append(fn(batch).float().cpu())
        if not outs:
            width = self.feature_dim if fn == self.model.features else self.num_classes
            return torch.zeros(0, width)
        return torch.cat(outs)

    def features(self, x: torch.Tensor, info: dict | None = None, batch_size: int = 500) -> torch.Tensor:
        """(n, feature_dim) penultimate activations; prepares ``x`` first when ``info`` is given."""
        return self._apply(self.model.features, x, info, batch_size)

    def logits(self, x: torch.Tensor, info: dict | None = None, batch_size: int = 500) -> torch.Tensor:
        """(n, num_classes) class logits; prepares ``x`` first when ``info`` is given."""
        return self._apply(self.model, x, info, batch_size)

    def describe(self) -> dict:
        return {"dataset": self.dataset, "architecture": self.architecture, "test_accuracy": self.accuracy,
                "checksum": self.checksum, "key": self.key, "feature_dim": self.feature_dim,
                "cache_dir": str(self.cache_dir) if self.cache_dir is not None else None}


# ----------------------------------------------------------------------------- settings and key

def default_epochs(n_train: int, batch_size: int) -> int:
    """Enough epochs for about 300 optimiser steps, at least 3 and at most 40.

    Fashion-MNIST (469 steps per epoch): 3 epochs, about 91.4% test accuracy; digits (12 steps
    per epoch): 25 epochs.
    """
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return max(3, min(40, math.ceil(300 / steps_per_epoch)))


def training_settings(info: dict, n_train: int, *, epochs: int | None, seed: int,
                      num_classes: int | None = None) -> dict:
    """The CNN's shape and training recipe for this data; ``num_classes`` defaults to the dataset's."""
    input_shape = native_input_shape(info)
    batch_size = 128
    return {
        "architecture": ARCHITECTURE,
        "input_shape": list(input_shape),
        "num_classes": int(info["num_classes"] if num_classes is None else num_classes),
        "widths": [32, 64],
        "feature_dim": 128,
        "dropout": 0.25,
        "optimizer": "adam",
        "max_lr": 3e-3,
        "schedule": "one_cycle",
        "batch_size": batch_size,
        "epochs": int(epochs) if epochs is not None else default_epochs(n_train, batch_size),
        "seed": int(seed),
    }


def hash_tensor(h, t: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape and bytes to the hash ``h`` (cache keys of evaluators and judges)."""
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}:{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).reshape(-1).numpy() if t.numel() else b"")


def evaluator_key(dataset: str, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], settings: dict) -> str:
    """sha256 of the dataset name, the canonical (x, y) of each split, this file's source and the settings."""
    h = hashlib.sha256()
    h.update(f"lvmgraph-evaluator/{CACHE_FORMAT}/{dataset}".encode())
    for name in sorted(splits):
        x, y = splits[name]
        h.update(name.encode())
        hash_tensor(h, x)
        hash_tensor(h, y)
    h.update(Path(__file__).read_bytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def canonical_splits(bundle: DatasetBundle) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The bundle's train and test images in canonical form, with their labels (int64)."""
    shape = native_input_shape(bundle.info)
    out = {}
    for name, split in (("train", bundle.train), ("test", bundle.test)):
        if "y" not in split:
            raise ValueError(f"an evaluator needs class labels: the {name} split has no 'y' field")
        out[name] = (canonical_images(read_whole(split["x"]), bundle.info, input_shape=shape),
                     split["y"].detach().cpu().to(torch.int64))
    return out


# ----------------------------------------------------------------------------- training

def fit(model: SmallCNN, x: torch.Tensor, y: torch.Tensor, settings: dict, *, device: torch.device,
        label: str, quiet: bool, loss_fn=F.cross_entropy) -> None:
    """Adam with a one-cycle schedule over ``settings``' epochs, batches in a seeded order; progress
    lines start with ``label``. Shared by evaluators and judges (which pass a multi-label loss)."""
    n, bs, epochs = len(x), settings["batch_size"], settings["epochs"]
    steps_per_epoch = math.ceil(n / bs)
    opt = torch.optim.Adam(model.parameters(), lr=settings["max_lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings["max_lr"],
                                                total_steps=max(2, epochs * steps_per_epoch))
    order_rng = torch.Generator().manual_seed(settings["seed"])
    x, y = x.to(device), y.to(device)
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=order_rng).to(device)
        total = torch.zeros((), device=device)
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(idx)
        if not quiet:
            print(f"{label}: epoch {epoch + 1}/{epochs} loss {float(total) / n:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    model.eval()


def _accuracy(model: SmallCNN, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(x), 1000):
            correct += int((model(x[s:s + 1000].to(device)).argmax(1).cpu() == y[s:s + 1000]).sum())
    return correct / max(1, len(x))


def serialize(model: SmallCNN) -> bytes:
    """The model's weights as ``torch.save`` bytes (what the cache stores and checksums)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def _train(dataset: str, splits: dict, settings: dict, key: str, *, device, quiet: bool) -> tuple[Evaluator, bytes]:
    device = torch.device(device)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    if not quiet:
        print(f"evaluator {dataset}: training {architecture_name(settings)} on {len(x_train)} images, "
              f"{settings['epochs']} epochs", file=sys.stderr, flush=True)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):  # init and dropout seeded, the caller's RNG untouched
        torch.manual_seed(settings["seed"])
        model = build_model(settings).to(device)
        fit(model, x_train, y_train, settings, device=device, label=f"evaluator {dataset}", quiet=quiet)
    accuracy = _accuracy(model, x_test, y_test, device)
    if not quiet:
        print(f"evaluator {dataset}: test accuracy {accuracy:.4f} on {len(x_test)} images",
              file=sys.stderr, flush=True)
    data = serialize(model)
    ev = Evaluator(model, dataset=dataset, accuracy=accuracy, checksum=hashlib.sha256(data).hexdigest(),
                   key=key, settings=settings, device=device)
    return ev, data


def train_evaluator(dataset: str, bundle: DatasetBundle, *, epochs: int | None = None, seed: int = 0,
                    device: str | torch.device = "cpu", quiet: bool = False) -> Evaluator:
    """Train an evaluator on the bundle's train split, measure it on the test split; nothing is cached."""
    splits = canonical_splits(bundle)
    settings = training_settings(bundle.info, len(splits["train"][0]), epochs=epochs, seed=seed)
    key = evaluator_key(dataset, splits, settings)
    ev, _ = _train(dataset, splits, settings, key, device=device, quiet=quiet)
    return ev


# ----------------------------------------------------------------------------- the cache

def cache_root() -> Path:
    """``$LVMGRAPH_CACHE``, else ``~/.cache/lvmgraph``."""
    env = os.environ.get("LVMGRAPH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lvmgraph"


def cache_folder(kind: str, dataset: str, key: str, root: Path | None = None) -> Path:
    """``<root>/<kind>/<dataset>-<key[:16]>``: where a cached network of this kind and key lives."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset)
    return Path(root if root is not None else cache_root()) / kind / f"{safe}-{key[:16]}"


def evaluator_dir(dataset: str, key: str, root: Path | None = None) -> Path:
    return cache_folder("evaluators", dataset, key, root)


def read_entry(folder: Path, key: str, *, what: str, retrain: str, error: type[Exception]) -> tuple[dict, SmallCNN]:
    """A cache entry's meta.json and its network, the key and the weights' checksum verified.

    Anything off raises ``error`` naming the file, what is wrong and ``retrain`` (how to recover).
    ``what`` names the network in messages ("evaluator", "judge").
    """
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    try:
        meta = json.loads(meta_path.read_text())
        expected, settings = meta["checksum"], meta["settings"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise error(f"{meta_path}: unreadable {what} metadata ({err}); {retrain}") from err
    if meta.get("key") != key:
        raise error(f"{meta_path}: records key {meta.get('key')}, expected {key}; {retrain}")
    try:
        data = weights_path.read_bytes()
    except OSError as err:
        raise error(f"{weights_path}: cannot read the {what} weights ({err}); {retrain}") from err
    found = hashlib.sha256(data).hexdigest()
    if found != expected:
        raise error(f"{weights_path}: checksum mismatch, the file is damaged or was modified "
                    f"(sha256 {found}, {meta_path.name} records {expected}); {retrain}")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model = build_model(settings)
        model.load_state_dict(state)
    except Exception as err:  # a file with the right checksum that still does not fit: a code/format change
        raise error(f"{weights_path}: cannot load the {what} weights ({err}); {retrain}") from err
    return meta, model


def write_entry(folder: Path, data: bytes, meta: dict) -> None:
    """Weights and meta.json (plus format, creation time, torch version) written into a fresh folder
    beside ``folder``, then renamed into place: a reader never sees half an entry."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / WEIGHTS_FILE).write_bytes(data)
        meta = {"format": CACHE_FORMAT, **meta,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        os.rename(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / META_FILE).exists():  # not a lost race with another process: a real failure
            raise


def move_aside(folder: Path, err: Exception, what: str) -> None:
    """Rename a damaged cache entry out of the way (kept for inspection) and warn that it is retrained."""
    aside = folder.with_name(f"{folder.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    os.rename(folder, aside)
    warnings.warn(f"{err}\nMoved the damaged {what} to {aside}; training a new one.", stacklevel=3)


def saved_checksum(folder: Path) -> str | None:
    """The checksum a cache entry on disk records (None without one): tells whether another process saved first."""
    meta_path = folder / META_FILE
    return json.loads(meta_path.read_text())["checksum"] if meta_path.exists() else None


def _load(folder: Path, dataset: str, key: str, device) -> Evaluator:
    """A cached evaluator, its checksum verified; EvaluatorCorrupt naming the file when anything is off."""
    retrain = f"delete {folder} or run `{train_command(dataset)}` to train it again"
    meta, model = read_entry(folder, key, what="evaluator", retrain=retrain, error=EvaluatorCorrupt)
    return Evaluator(model, dataset=dataset, accuracy=meta["accuracy"], checksum=meta["checksum"], key=key,
                     settings=meta["settings"], cache_dir=folder, from_cache=True, device=device)


def _save(folder: Path, ev: Evaluator, data: bytes, extra: dict) -> None:
    write_entry(folder, data, {"dataset": ev.dataset, "architecture": ev.architecture, "accuracy": ev.accuracy,
                               "checksum": ev.checksum, "key": ev.key, "settings": ev.settings, **extra})


def evaluator_for(dataset: str, bundle: DatasetBundle, *, train_if_missing: bool = True,
                  device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None,
                  quiet: bool = False) -> Evaluator:
    """The cached evaluator for ``dataset`` and exactly this data; trained and cached on a miss.

    ``cache_dir`` replaces ``cache_root()``. ``train_if_missing=False`` raises ``EvaluatorMissing``
    on a miss and ``EvaluatorCorrupt`` on a damaged cache entry instead of training.
    """
    splits = canonical_splits(bundle)
    settings = training_settings(bundle.info, len(splits["train"][0]), epochs=None, seed=0)
    key = evaluator_key(dataset, splits, settings)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    folder = evaluator_dir(dataset, key, root)
    if folder.exists():
        try:
            return _load(folder, dataset, key, device)
        except EvaluatorCorrupt as err:
            if not train_if_missing:
                raise
            move_aside(folder, err, "evaluator")
    elif not train_if_missing:
        raise EvaluatorMissing(f"no trained evaluator for dataset '{dataset}' with this data in {folder}. "
                               f"Train it once with: {train_command(dataset)} "
                               f"(the cache is $LVMGRAPH_CACHE, else ~/.cache/lvmgraph)")
    start = time.perf_counter()
    ev, data = _train(dataset, splits, settings, key, device=device, quiet=quiet)
    _save(folder, ev, data, {"train_size": len(splits["train"][0]), "test_size": len(splits["test"][0]),
                             "train_seconds": round(time.perf_counter() - start, 1)})
    if saved_checksum(folder) not in (None, ev.checksum):
        return _load(folder, dataset, key, device)  # another process saved first: use what is on disk
    ev.cache_dir = folder
    if not quiet:
        print(f"evaluator {dataset}: saved to {folder}", file=sys.stderr, flush=True)
    return ev
