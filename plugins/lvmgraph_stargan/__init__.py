"""The StarGAN family (Choi et al., CVPR 2018): one generator translating images between many domains.

``stargan_generator`` is G(x, c): the target label c (one-hot domain or multi-hot attributes)
spatially replicated and concatenated to the image, through the CycleGAN ResNet generator.
``stargan_discriminator`` returns two named outputs, ``src`` (PatchGAN scores for WGAN-GP) and
``cls`` (domain or attribute logits). The losses are existing ones: ``wgan_*`` and
``gradient_penalty(..., output='src')`` (gan plugin), ``cross_entropy`` for one-hot domains and
``bce_logits(..., reduction='sum')`` for multi-hot attributes, ``l1`` for the reconstruction
(core); ``attribute_accuracy`` logs the classifier on multi-hot labels. The template
``family:stargan`` wires them together for data with the fields ``x`` and ``domain``.
"""
from pathlib import Path

from lvmgraph import hookimpl

from .discriminator import StarGANDiscriminator, StarGANDiscriminatorParams, final_map_size
from .generator import StarGANGenerator, StarGANGeneratorParams, tile_label
from .metrics import attribute_accuracy, register_losses

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_components(register):
    register("stargan_generator", StarGANGenerator, params=StarGANGeneratorParams)
    register("stargan_discriminator", StarGANDiscriminator, params=StarGANDiscriminatorParams)


@hookimpl
def register_specs(register):
    register("stargan", TEMPLATES / "stargan.yaml",  # starter: what `lvmgraph new spec` adds
             starter={"data": {"dataset": "attributes", "base": "fashion_mnist", "pad_to": 32,
                               "value_range": [-1, 1]}})


__all__ = ["StarGANDiscriminator", "StarGANDiscriminatorParams", "StarGANGenerator", "StarGANGeneratorParams",
           "attribute_accuracy", "final_map_size", "register_components", "register_losses", "register_specs",
           "tile_label"]
