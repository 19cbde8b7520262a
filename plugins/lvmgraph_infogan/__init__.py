"""The InfoGAN family (Chen et al., 2016): latent codes are ordinary prior components
(``categorical`` for a discrete code, ``uniform`` on [-1, 1] for continuous ones) concatenated
to the noise; Q shares the discriminator's trunk through the named outputs of
``dcgan_discriminator`` (or ``multi_head_mlp``); ``info_loss`` is the mutual-information term
(cross-entropy for the categorical code, Gaussian NLL for continuous codes) and
``code_entropy`` gives H(c) for logging the bound H(c) - info_loss."""
from .losses import code_entropy, info_loss, register_losses, register_ops

__all__ = ["code_entropy", "info_loss", "register_losses", "register_ops"]
