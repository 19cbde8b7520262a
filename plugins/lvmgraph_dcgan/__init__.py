"""The DCGAN family (Radford, Metz & Chintala, 2016): an all-convolutional generator
(transposed convs, batch norm, ReLU, tanh output) and discriminator (strided convs, LeakyReLU
0.2, batch norm except on the input layer) with the DCGAN weight initialisation. The
discriminator's optional named heads let InfoGAN's Q network share its trunk."""
from .components import DCGANDiscriminator, DCGANGenerator, dcgan_init, register_components

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "dcgan_init", "register_components"]
