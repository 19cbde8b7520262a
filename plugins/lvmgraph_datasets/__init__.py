"""lvmgraph's built-in datasets, registered through the public ``register_datasets`` hook.

- ``digits``: scikit-learn's bundled 8x8 digits, the embedded default (works offline).
- ``fashion_mnist``, ``mnist``: IDX files from a folder, the Debian package or torchvision.
- ``toy2d``: ring8 / grid25 (PacGAN mode-coverage mixtures), swiss_roll, moons.
"""
from lvmgraph import hookimpl

from .digits import DigitsParams, load_digits
from .idx import IdxParams, load_fashion_mnist, load_mnist, read_idx
from .toy2d import Toy2DParams, load_toy2d


@hookimpl
def register_datasets(register):
    register("digits", load_digits, params=DigitsParams)
    register("fashion_mnist", load_fashion_mnist, params=IdxParams)
    register("mnist", load_mnist, params=IdxParams)
    register("toy2d", load_toy2d, params=Toy2DParams)


__all__ = ["register_datasets", "read_idx", "load_digits", "load_fashion_mnist", "load_mnist", "load_toy2d",
           "DigitsParams", "IdxParams", "Toy2DParams"]
