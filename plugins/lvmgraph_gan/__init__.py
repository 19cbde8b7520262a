"""The GAN family (Goodfellow et al., 2014) and its adversarial loss zoo.

Losses: least squares (LSGAN), hinge, Wasserstein critic/generator, the WGAN-GP gradient
penalty, R1 and ProGAN's drift term (the minimax and non-saturating losses are core). Op:
``pack`` for PacGAN's packed discriminator. Networks are core components (``mlp`` with
``batch_norm`` / ``spectral_norm``); n_critic is a phase's ``repeat`` and the generator's
EMA is ``train.ema``. Specs: ``specs/gan_ring8.yaml``, ``specs/gan_grid25.yaml``.
"""
from .losses import LOSSES, register_losses
from .ops import OPS, register_ops

__all__ = ["LOSSES", "OPS", "register_losses", "register_ops"]
