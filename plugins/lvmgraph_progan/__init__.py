"""The Progressive GAN family (Karras, Aila, Laine & Lehtinen, ICLR 2018): G and D that grow from
4x4 to the full resolution while training, each new level faded in.

``progan_generator`` and ``progan_discriminator`` (equalised learning rate, pixel-wise feature
normalisation in G, minibatch standard deviation in D) implement the trainer's ``Growable``
protocol; a spec's ``stages:`` list says which resolution each stage trains, for how many images
it fades in and stabilises, and at which batch size — the trainer applies it. The networks take
their image shape from the data unless a spec sets it, and their widths from a list or the
paper's rule (``WidthRule``), so a spec scales to larger images by its data and stages. The op
``progressive_resize`` shows D real images at the stage's resolution, blended during a fade-in
(read from the core schedules ``stage_resolution`` and ``stage_alpha``). The losses are the gan
plugin's: ``wgan_critic_loss`` + ``gradient_penalty`` + ``drift_penalty`` (ε = 0.001) and
``wgan_generator_loss``; the generator's EMA for sampling is ``train.ema``. Metric: ``swd``, the
paper's sliced Wasserstein distance on Laplacian-pyramid patches. Template: ``family:progan``.
"""
from pathlib import Path

from lvmgraph import hookimpl

from .networks import DiscriminatorParams, GeneratorParams, ProGANDiscriminator, ProGANGenerator, WidthRule
from .ops import progressive_resize, register_ops
from .swd import SwdParams, swd

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_components(register):
    register("progan_generator", ProGANGenerator, params=GeneratorParams)
    register("progan_discriminator", ProGANDiscriminator, params=DiscriminatorParams)


@hookimpl
def register_metrics(register):
    register("swd", swd, params=SwdParams)


@hookimpl
def register_specs(register):
    register("progan", TEMPLATES / "progan.yaml",  # starter: what `lvmgraph new spec` adds
             starter={"data": {"dataset": "fashion_mnist", "pad_to": 32, "value_range": [-1, 1]}})


__all__ = ["DiscriminatorParams", "GeneratorParams", "ProGANDiscriminator", "ProGANGenerator", "SwdParams",
           "WidthRule", "progressive_resize", "register_components", "register_metrics", "register_ops",
           "register_specs", "swd"]
