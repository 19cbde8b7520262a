"""Text-to-image GAN, GAN-INT-CLS (Reed, Akata, Yan, Logeswaran, Schiele & Lee, "Generative
Adversarial Text to Image Synthesis", ICML 2016).

Components: ``text_encoder`` (token embedding + GRU over the caption's words -> phi(t)),
``text_generator`` (phi compressed to 128-d by Linear + LeakyReLU, concatenated to z, DCGAN
generator), ``matching_discriminator`` (DCGAN conv trunk to a 4x4 map, the compressed text
replicated over it and concatenated depth-wise, 1x1 conv, a final conv to one logit).
Loss: ``cls_discriminator_loss`` (real/right, real/wrong, fake/right). Op: ``mismatch`` (each
example gets a caption different from its own: the "wrong text"). INT is a graph value:
``lerp(phi_g, mismatch(phi_g, text), 0.5)`` fed to the generator's loss only.
``extends: family:text2image`` wires them for the ``captions`` dataset;
``python -m lvmgraph_text2image.interpolate RUN "caption a" "caption b"`` draws the embedding
interpolation.
"""
from pathlib import Path

from lvmgraph import hookimpl

from .discriminator import MatchingDiscriminator, MatchingDiscriminatorParams
from .generator import TextGenerator, TextGeneratorParams
from .interpolate import caption_embeddings, encode_captions, interpolation
from .losses import cls_discriminator_loss, mismatch, mismatch_index
from .text_encoder import TextEncoder, TextEncoderParams

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_components(register):
    register("text_encoder", TextEncoder, params=TextEncoderParams)
    register("text_generator", TextGenerator, params=TextGeneratorParams)
    register("matching_discriminator", MatchingDiscriminator, params=MatchingDiscriminatorParams)


@hookimpl
def register_losses(register):
    register("cls_discriminator_loss", cls_discriminator_loss)


@hookimpl
def register_ops(register):
    register("mismatch", mismatch)


@hookimpl
def register_specs(register):
    register("text2image", TEMPLATES / "text2image.yaml",  # starter: what `lvmgraph new spec` adds
             starter={"data": {"dataset": "captions", "base": "fashion_mnist", "pad_to": 32,
                               "value_range": [-1, 1]}})


__all__ = ["MatchingDiscriminator", "MatchingDiscriminatorParams", "TextEncoder", "TextEncoderParams",
           "TextGenerator", "TextGeneratorParams", "caption_embeddings", "cls_discriminator_loss",
           "encode_captions", "interpolation", "mismatch", "mismatch_index", "register_components",
           "register_losses", "register_ops", "register_specs"]
