"""The PuzzleGAN family (Lee, Yun, Choi, Yoo, Yang & Oh, "Unsupervised Holistic Image Generation
from Key Local Patches", ECCV 2018): complete an image from a few key patches given without
their positions, and predict where they belong.

- op ``key_patches``: K random key patches per image (random order, no positions) with their
  true location masks; op ``swap_parts``: real images with another image's parts, the extra
  fakes the authors' discriminator sees;
- components ``part_encoder`` (one encoder shared by every patch, features summed over the
  patches) and ``puzzle_generator`` (features + noise -> {image, mask, mask_logit});
- loss ``appearance_loss`` (L1 on the patch region); the spatial loss is the core
  ``bce_logits`` on ``mask_logit``, the adversarial one any of the gan plugin's;
- metric ``mask_iou`` (predicted vs true patch-location mask, with trivial baselines);
- template ``extends: family:puzzlegan`` (32x32 grey images in [-1, 1], K = 3 patches of 10 px).
"""
from pathlib import Path

from lvmgraph import hookimpl

from .losses import appearance_loss, register_losses
from .metrics import METRICS, MaskIouParams, mask_iou
from .networks import PartEncoder, PartEncoderParams, PuzzleGenerator, PuzzleGeneratorParams
from .patches import crop_at, key_patches, key_positions, patch_masks, register_ops, swap_parts, window_ink

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_components(register):
    register("part_encoder", PartEncoder, params=PartEncoderParams)
    register("puzzle_generator", PuzzleGenerator, params=PuzzleGeneratorParams)


@hookimpl
def register_metrics(register):
    for name, (fn, params) in METRICS.items():
        register(name, fn, params=params)


@hookimpl
def register_specs(register):
    register("puzzlegan", TEMPLATES / "puzzlegan.yaml",  # starter: what `lvmgraph new spec` adds
             starter={"data": {"dataset": "fashion_mnist", "pad_to": 32, "value_range": [-1, 1]}})


__all__ = ["MaskIouParams", "PartEncoder", "PartEncoderParams", "PuzzleGenerator", "PuzzleGeneratorParams",
           "appearance_loss", "crop_at", "key_patches", "key_positions", "mask_iou", "patch_masks",
           "register_components", "register_losses", "register_metrics", "register_ops", "register_specs",
           "swap_parts", "window_ink"]
