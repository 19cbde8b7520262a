"""The VAE family (Kingma & Welling, 2014): Gaussian encoder, Bernoulli/Gaussian decoders,
ELBO training through the core ``nll`` and ``kl`` losses, and the importance-weighted NLL metric."""
from pathlib import Path

from lvmgraph import hookimpl

from .components import register_components
from .metrics import register_metrics

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_specs(register):
    register("vae", TEMPLATES / "vae.yaml")


__all__ = ["register_components", "register_metrics", "register_specs"]
