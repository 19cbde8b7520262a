"""The CycleGAN family (Zhu, Park, Isola & Efros, ICCV 2017): unpaired image-to-image translation.

Two generators G: A -> B and F: B -> A (``resnet_generator``), one PatchGAN discriminator per
domain (``patch_discriminator``), LSGAN losses (the gan plugin's ``lsgan_*``), cycle-consistency
and identity terms (core ``l1``), and a history of generated images per discriminator
(``image_pool``). The template spec ``family:cyclegan`` wires them together for data with the
fields ``x_a`` and ``x_b``.
"""
from pathlib import Path

from lvmgraph import hookimpl

from .discriminator import PatchDiscriminator, PatchDiscriminatorParams, patch_map_size, receptive_field
from .generator import ResnetGenerator, ResnetGeneratorParams
from .pool import ImagePool, ImagePoolParams

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_components(register):
    register("resnet_generator", ResnetGenerator, params=ResnetGeneratorParams)
    register("patch_discriminator", PatchDiscriminator, params=PatchDiscriminatorParams)
    register("image_pool", ImagePool, params=ImagePoolParams)


@hookimpl
def register_specs(register):
    register("cyclegan", TEMPLATES / "cyclegan.yaml",  # starter: what `lvmgraph new spec` adds
             starter={"data": {"dataset": "domains", "kind": "classes", "base": "fashion_mnist",
                               "class_a": "Sneaker", "class_b": "Ankle boot", "pad_to": 32,
                               "value_range": [-1, 1], "batch_size": 1}})


__all__ = ["ImagePool", "ImagePoolParams", "PatchDiscriminator", "PatchDiscriminatorParams", "ResnetGenerator",
           "ResnetGeneratorParams", "patch_map_size", "receptive_field", "register_components", "register_specs"]
