"""The WAE family (Tolstikhin et al., "Wasserstein Auto-Encoders", ICLR 2018).

A deterministic autoencoder whose aggregate posterior Q_Z is pushed towards the prior P_Z by a
penalty λ·D_Z(Q_Z, P_Z) added to the reconstruction cost:

- WAE-MMD: D_Z is the unbiased MMD² with the multi-scale inverse multiquadratic kernel, the
  ``mmd_penalty`` loss registered here;
- WAE-GAN: D_Z is estimated by a latent critic, i.e. the AAE code path with core components
  and the core GAN losses, the adversarial term weighted by λ in the autoencoder's phase.

This plugin adds the loss and a template spec (``extends: family:wae`` or
``imports: {wae: family:wae}``): WAE-MMD with MLPs on the embedded 8x8 digits.
"""
from pathlib import Path

from lvmgraph import hookimpl

from .losses import LOSSES, mmd_penalty

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_losses(register):
    for name, fn in LOSSES.items():
        register(name, fn)


@hookimpl
def register_specs(register):
    register("wae", TEMPLATES / "wae.yaml")


__all__ = ["mmd_penalty", "register_losses", "register_specs"]
