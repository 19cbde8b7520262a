"""Optional standard Inception-v3 features (the 2048-d pool layer FID and IS use), from a LOCAL weights file.

Axis legend: n samples, c channels (1 or 3), h w spatial.

Public API::

    inception_features(x, weights=None, *, batch_size=50, device="cpu") -> Tensor (n, 2048)
    inception_logits(x, weights=None, *, batch_size=50, device="cpu")   -> Tensor (n, 1000)
    inception_outputs(x, weights=None, *, batch_size=50, device="cpu")  -> (features (n, 2048), logits (n, 1000))
    load_inception(weights=None, *, device="cpu") -> the feature network (fc replaced by Identity;
                                                     the ImageNet classifier kept as ``.imagenet_fc``)
    inception_weights_path(weights=None) -> Path     # the file that would be used
    weights_sha256(path) -> str                      # of the weights file; cached by path, size and mtime
    InceptionUnavailable(RuntimeError)               # no weights file: the message says how to get one

``x`` holds images in [0, 1], (n, c, h, w) or (n, h, w) with c = 1 or 3 (e.g. an evaluator's
``prepare`` output). They are resized to 299x299 (bilinear, as pytorch-fid does), grey images are
replicated to 3 channels, and the result is ImageNet-normalised — torchvision's input convention.
Features are the 2048-d output of the final average pool ("pool3"); logits are the 1000 ImageNet
classes of the network's own ``fc`` applied to those features (what the Inception Score uses), so
``inception_outputs`` gets both from one forward pass.

The network is torchvision's ``inception_v3(weights=None, aux_logits=True, init_weights=False,
transform_input=True)`` (``transform_input`` is what torchvision sets when it loads these weights
itself: the weights were ported from Google's model, which expects inputs in [-1, 1]) with a state
dict read from a local file: the ``weights`` argument, else the ``LVMGRAPH_INCEPTION_WEIGHTS``
environment variable. Nothing is ever downloaded: without a file, ``InceptionUnavailable``.

These features follow torchvision's ImageNet weights, not the TF-FID Inception weights
(``pt_inception-2015-12-05``) the published FID numbers use, so FIDs computed with them are close
to, but not identical with, published Inception FIDs. For 28x28 greyscale data the dataset's own
evaluator (``lvmgraph.eval.evaluator``) is the better-founded feature space anyway.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["InceptionUnavailable", "inception_features", "inception_logits", "inception_outputs", "load_inception",
           "inception_weights_path", "weights_sha256", "ENV_VAR", "FEATURE_DIM", "NUM_CLASSES"]

ENV_VAR = "LVMGRAPH_INCEPTION_WEIGHTS"
FEATURE_DIM = 2048
NUM_CLASSES = 1000
INPUT_SIZE = 299
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the file torchvision.models.Inception_V3_Weights.IMAGENET1K_V1 downloads
TORCHVISION_FILE = "inception_v3_google-0cc3c7bd.pth"

HOW_TO_GET = (
    "Inception features need torchvision's Inception-v3 ImageNet weights as a local file; lvmgraph never "
    "downloads them. On a machine with internet access run\n"
    "  python -c \"import torchvision; torchvision.models.inception_v3("
    "weights=torchvision.models.Inception_V3_Weights.IMAGENET1K_V1)\"\n"
    f"which saves {TORCHVISION_FILE} under ~/.cache/torch/hub/checkpoints/; copy that file here and set\n"
    f"  {ENV_VAR}=/path/to/{TORCHVISION_FILE}\n"
    "(or pass weights=... / the command's option). Note: these are torchvision's weights, not the TF-FID "
    "Inception weights, so the numbers are close to but not identical with published Inception FIDs.")


class InceptionUnavailable(RuntimeError):
    """No usable local Inception-v3 weights file."""


def inception_weights_path(weights: str | os.PathLike | None = None) -> Path:
    """The weights file to use: ``weights``, else ``$LVMGRAPH_INCEPTION_WEIGHTS``; it must exist."""
    if weights is None:
        weights = os.environ.get(ENV_VAR) or None
        origin = f"${ENV_VAR}"
    else:
        origin = "the weights argument"
    if weights is None:
        raise InceptionUnavailable(f"no Inception-v3 weights file given (weights argument or ${ENV_VAR}).\n"
                                   + HOW_TO_GET)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InceptionUnavailable(f"{path}: no such file (from {origin}).\n" + HOW_TO_GET)
    return path


def _file_key(path: Path) -> tuple:
    """What identifies a file's contents cheaply: resolved path, size and modification time."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


#: (path, size, mtime_ns) -> sha256 hex digest of the file
_SHA256: dict[tuple, str] = {}


def weights_sha256(path: str | os.PathLike) -> str:
    """sha256 of a weights file, hashed once per (path, size, mtime): the file is ~100 MB."""
    path = Path(path).expanduser()
    key = _file_key(path)
    if key not in _SHA256:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA256[key] = h.hexdigest()
    return _SHA256[key]


#: (path, size, mtime_ns, device) -> the loaded network; one entry, the last used
_LOADED: dict[tuple, nn.Module] = {}


def load_inception(weights: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> nn.Module:
    """torchvision's Inception-v3 with the local state dict, in eval mode.

    ``fc`` is replaced by Identity, so calling the network gives the (n, 2048) pool features; the
    original ImageNet classifier stays available as ``model.imagenet_fc`` (2048 -> 1000 logits).
    """
    path = inception_weights_path(weights)
    cache_key = (*_file_key(path), str(torch.device(device)))
    if cache_key in _LOADED:
        return _LOADED[cache_key]
    from torchvision.models import inception_v3  # lazy: slow to import, rarely needed

    model = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        model.load_state_dict(state)
    except Exception as err:  # unpickling errors, missing or unexpected keys, shape mismatches
        raise InceptionUnavailable(f"{path}: not a torchvision Inception-v3 state dict ({err}).\n"
                                   + HOW_TO_GET) from err
    # features are the pool output; the classifier is kept aside for the logits (Inception Score)
    model.imagenet_fc = model.fc
    model.fc = nn.Identity()
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _LOADED.clear()
    _LOADED[cache_key] = model
    return model


def inception_input(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1], (n c h w) or (n h w), c 1 or 3 -> (n 3 299 299) ImageNet-normalised float32."""
    x = torch.as_tensor(x).detach()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (n, 1 or 3, h, w) in [0, 1], got shape {tuple(x.shape)}")
    x = x.to(torch.float32)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def inception_outputs(x: torch.Tensor, weights: str | os.PathLike | None = None, *, batch_size: int = 50,
                      device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] -> (n, 2048) pool features and (n, 1000) ImageNet logits, from one forward pass.

    Both float32 on the CPU. See the module docstring for the input convention.
    """
    model = load_inception(weights, device=device)
    features, logits = [], []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = inception_input(x[start:start + batch_size].to(device))
            pooled = model(batch)
            features.append(pooled.float().cpu())
            logits.append(model.imagenet_fc(pooled).float().cpu())
    if not features:
        return torch.zeros(0, FEATURE_DIM), torch.zeros(0, NUM_CLASSES)
    return torch.cat(features), torch.cat(logits)


def inception_features(x: torch.Tensor, weights: str | os.PathLike | None = None, *, batch_size: int = 50,
                       device: str | torch.device = "cpu") -> torch.Tensor:
    """(n, 2048) pool features of images in [0, 1]; float32 on the CPU. See the module docstring."""
    return inception_outputs(x, weights, batch_size=batch_size, device=device)[0]


def inception_logits(x: torch.Tensor, weights: str | os.PathLike | None = None, *, batch_size: int = 50,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """(n, 1000) ImageNet logits of images in [0, 1]; float32 on the CPU (softmax gives p(y|x))."""
    return inception_outputs(x, weights, batch_size=batch_size, device=device)[1]
