"""The AAE family (Makhzani et al., 2016): an autoencoder whose latent code is matched to any
samplable prior by a critic in latent space. Its parts are core components (mlp, priors,
GAN losses); this plugin adds the latent-prior metrics and the template spec."""
from pathlib import Path

from lvmgraph import hookimpl

from .metrics import register_metrics

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_specs(register):
    register("aae", TEMPLATES / "aae.yaml")


__all__ = ["register_metrics", "register_specs"]
