"""lvmgraph's built-in datasets, registered through the public ``register_datasets`` hook.

- ``digits``: scikit-learn's bundled 8x8 digits, the embedded default (works offline).
- ``fashion_mnist``, ``mnist``: IDX files from a folder, the Debian package or torchvision.
- ``toy2d``: ring8 / grid25 (PacGAN mode-coverage mixtures), swiss_roll, moons.
- ``domains``: two unaligned image domains (thin vs thick strokes, or class a vs b) for CycleGAN.
- ``attributes``: thickness x colour domains with multi-hot attributes, for StarGAN.
- ``captions``: the same images with templated captions as token ids, for text-to-image.
- ``image_folders``: CycleGAN's trainA/trainB/testA/testB folders of image files.
- ``image_folder``: your own images, labels from class sub-folders, optional attribute CSV, declared
  transforms (crop, resize, pad, value range; horizontal flips per training batch); it can stream
  (``data.stream: true``: training images decoded on demand by DataLoader workers).
- ``tensors``: arrays from a .npz / .npy / .pt file as fields (non-image data).
- ``celeba``: CelebA faces with chosen attributes as multi-hot vectors and domains, through
  torchvision (for users who have the data; nothing is downloaded unless ``download: true``).

``morpho`` holds the transforms they use: ``thin``, ``thick`` (Morpho-MNIST) and ``tint``.
"""
from lvmgraph import hookimpl

from .attributes import AttributesParams, load_attributes
from .celeba import CelebAParams, load_celeba
from .captions import CaptionsParams, decode_caption, encode_caption, load_captions
from .digits import DigitsParams, load_digits
from .domains import DomainsParams, load_domains
from .folders import ImageFoldersParams, load_image_folders
from .image_folder import ImageFolderParams, load_image_folder, stream_image_folder
from .idx import IdxParams, load_fashion_mnist, load_mnist, read_idx
from .morpho import PALETTE, stroke_thickness, thick, thin, tint
from .tensors import TensorsParams, load_tensors
from .toy2d import Toy2DParams, load_toy2d


@hookimpl
def register_datasets(register):
    register("digits", load_digits, params=DigitsParams)
    register("fashion_mnist", load_fashion_mnist, params=IdxParams)
    register("mnist", load_mnist, params=IdxParams)
    register("toy2d", load_toy2d, params=Toy2DParams)
    # fields: what a batch holds, so `validate --no-dry-run` checks graphs without loading data
    register("domains", load_domains, params=DomainsParams,
             fields=("x_a", "x_b", "y_a", "y_b", "index_a", "index_b"))
    register("attributes", load_attributes, params=AttributesParams, fields=("x", "y", "domain", "attributes"))
    register("captions", load_captions, params=CaptionsParams,
             fields=("x", "y", "domain", "attributes", "text", "text_length", "held_out"))
    register("image_folders", load_image_folders, params=ImageFoldersParams,
             fields=("x_a", "x_b", "index_a", "index_b"))
    register("celeba", load_celeba, params=CelebAParams, fields=("x", "attributes", "domain"))
    # stream: the loader `data.stream: true` uses (training images decoded by DataLoader workers)
    register("image_folder", load_image_folder, params=ImageFolderParams, fields=("x", "y", "attributes"),
             stream=stream_image_folder)
    register("tensors", load_tensors, params=TensorsParams)


__all__ = ["register_datasets", "read_idx", "load_digits", "load_fashion_mnist", "load_mnist", "load_toy2d",
           "DigitsParams", "IdxParams", "Toy2DParams",
           "load_domains", "load_attributes", "load_captions", "load_image_folders", "encode_caption",
           "decode_caption", "DomainsParams", "AttributesParams", "CaptionsParams", "ImageFoldersParams",
           "load_image_folder", "stream_image_folder", "ImageFolderParams", "load_tensors", "TensorsParams",
           "PALETTE", "stroke_thickness", "thin", "thick", "tint"]
