"""The ``celeba`` dataset, offline: a tiny fake CelebA folder in the official layout (the files
torchvision's CelebA opens) is written to tmp_path and read through torchvision."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

import lvmgraph.api as lg
from lvmgraph import DatasetUnavailable
from lvmgraph.experiment import prepare
from lvmgraph.plugins import get_registry
from lvmgraph_datasets.celeba import CELEBA_ATTRIBUTES, CelebAParams, domain_index, domain_names, load_celeba

H, W = 218, 178  # the aligned faces' native size
BAND = 20  # rows above and below the central 178x178 square
GREEN, RED, BLUE = (0, 200, 0), (200, 0, 0), (0, 0, 200)
# image name -> (partition 0 train / 1 valid / 2 test, the attributes set to +1)
FACES = {
    "000001.jpg": (0, {"Black_Hair", "Young"}),
    "000002.jpg": (0, {"Blond_Hair", "Male"}),
    "000003.jpg": (0, set()),
    "000004.jpg": (1, {"Brown_Hair"}),
    "000005.jpg": (2, {"Blond_Hair", "Young"}),
    "000006.jpg": (2, {"Black_Hair", "Male", "Young"}),
    "000007.jpg": (1, {"Male", "Brown_Hair"}),  # torchvision cannot read a partition of one image
}


def write_fake_celeba(root: Path) -> Path:
    """root/celeba/ with 7 faces (green centre square, red band on top, blue below) and the five text files."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    for name in FACES:
        pixels = np.zeros((H, W, 3), dtype=np.uint8)
        pixels[:] = GREEN
        pixels[:BAND] = RED
        pixels[H - BAND:] = BLUE
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=95)
    n = len(FACES)
    attr = [str(n), " ".join(CELEBA_ATTRIBUTES)]
    for name, (_, present) in FACES.items():
        attr.append(name + "  " + " ".join(" 1" if a in present else "-1" for a in CELEBA_ATTRIBUTES))
    (folder / "list_attr_celeba.txt").write_text("\n".join(attr) + "\n")
    (folder / "list_eval_partition.txt").write_text("".join(f"{name} {p}\n" for name, (p, _) in FACES.items()))
    (folder / "identity_CelebA.txt").write_text("".join(f"{name} {i + 100}\n" for i, name in enumerate(FACES)))
    (folder / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{name} 95 71 226 313\n" for name in FACES))
    marks = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (folder / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\n{marks}\n" + "".join(f"{name} 69 109 106 113 77 142 73 152 108 154\n" for name in FACES))
    return folder


@pytest.fixture
def fake_root(tmp_path) -> Path:
    write_fake_celeba(tmp_path)
    return tmp_path


def test_reads_attributes_domains_and_partitions_through_torchvision(fake_root, no_network):
    attrs = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    bundle = load_celeba(root=str(fake_root), verify=False, size=16)
    assert set(bundle.train) == {"x", "attributes", "domain"}
    assert bundle.train["x"].shape == (3, 3, 16, 16) and bundle.test["x"].shape == (2, 3, 16, 16)
    # the chosen attributes, in the order given, multi-hot
    assert bundle.train["attributes"].tolist() == [[1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0]]
    assert bundle.test["attributes"].tolist() == [[0, 1, 0, 0, 1], [1, 0, 0, 1, 1]]
    assert bundle.train["attributes"].dtype == torch.float32
    # domain: the bits as a binary number, first attribute most significant
    assert bundle.train["domain"].tolist() == [0b10001, 0b01010, 0]
    assert bundle.test["domain"].tolist() == [0b01001, 0b10011]
    info = bundle.info
    assert info["attribute_names"] == attrs and info["num_domains"] == 32
    assert info["domain_names"][0b01001] == "Blond_Hair+Young" and info["domain_names"][0] == "none"
    assert info["domain_attributes"][0b10011] == [1, 0, 0, 1, 1]
    assert info["counts"] == {"train": 3, "test": 2} and info["value_range"] == (-1.0, 1.0)


def test_centre_crop_resize_and_value_range(fake_root):
    cropped = load_celeba(root=str(fake_root), verify=False, size=32, value_range=[0, 1]).train["x"]
    # the 178x178 centre square is all green: the red and blue bands are cut away
    green = torch.tensor(GREEN, dtype=torch.float32)[:, None, None] / 255
    assert (cropped - green).abs().max() < 0.06
    whole = load_celeba(root=str(fake_root), verify=False, size=32, crop=None, value_range=[0, 1]).train["x"]
    assert whole[:, 0, 0].mean() > 0.6 and whole[:, 2, -1].mean() > 0.6  # red top rows, blue bottom rows
    signed = load_celeba(root=str(fake_root), verify=False, size=32).train["x"]
    torch.testing.assert_close(signed, cropped * 2 - 1)
    assert load_celeba(root=str(fake_root), verify=False, size=8, limit_train=2).train["x"].shape == (2, 3, 8, 8)


def test_other_attributes_partitions_and_the_celeba_folder_as_root(fake_root):
    bundle = load_celeba(root=str(fake_root / "celeba"), verify=False, size=8, attributes=["Male", "Brown_Hair"],
                         train_split="all", test_split="valid")
    assert bundle.train["attributes"].tolist() == [[0, 0], [1, 0], [0, 0], [0, 1], [0, 0], [1, 0], [1, 1]]
    assert bundle.test["domain"].tolist() == [0b01, 0b11]  # the valid partition
    assert bundle.info["domain_names"] == ["none", "Brown_Hair", "Male", "Male+Brown_Hair"]


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path, no_network):
    with pytest.raises(DatasetUnavailable) as err:
        load_celeba(root=str(tmp_path / "nowhere"))
    message = str(err.value)
    assert "CelebA was not found" in message and str(tmp_path / "nowhere" / "celeba") in message
    assert "data.download: true" in message and "img_align_celeba" in message and "data.root" in message
    partial = tmp_path / "partial" / "celeba"
    (partial / "img_align_celeba").mkdir(parents=True)
    (partial / "list_attr_celeba.txt").write_text("0\n")
    with pytest.raises(DatasetUnavailable, match=r"missing list_eval_partition.txt, identity_CelebA.txt"):
        load_celeba(root=str(tmp_path / "partial"))


def test_checksums_are_checked_unless_verify_is_false(fake_root, no_network):
    with pytest.raises(DatasetUnavailable, match=r"MD5.*data.verify: false"):
        load_celeba(root=str(fake_root), size=8)


def test_download_true_goes_to_torchvisions_downloader(tmp_path, no_network):
    """Without a network the download fails, and says so with the ways to get the data."""
    with pytest.raises(DatasetUnavailable, match=r"downloading CelebA with torchvision into .*celeba failed"):
        load_celeba(root=str(tmp_path), download=True)


def test_settings_are_checked():
    with pytest.raises(ValidationError, match=r"unknown CelebA attribute 'Blonde_Hair': did you mean 'Blond_Hair'"):
        CelebAParams(attributes=["Blonde_Hair"])
    with pytest.raises(ValidationError, match=r"lists an entry twice"):
        CelebAParams(attributes=["Male", "Male"])
    with pytest.raises(ValidationError, match=r"both 'test'"):
        CelebAParams(train_split="test")
    with pytest.raises(ValidationError, match=r"at most 10"):
        CelebAParams(attributes=list(CELEBA_ATTRIBUTES[:11]))
    with pytest.raises(ValidationError):
        CelebAParams(crop=200)  # larger than the 178 px wide faces
    assert CelebAParams().download is False and CelebAParams().attributes == ["Black_Hair", "Blond_Hair",
                                                                            "Brown_Hair", "Male", "Young"]


def test_domain_index_and_names_agree():
    names = ["A", "B", "C"]
    table = torch.tensor([[float(d >> (2 - i) & 1) for i in range(3)] for d in range(8)])
    assert domain_index(table).tolist() == list(range(8))
    assert domain_names(names) == ["none", "C", "B", "B+C", "A", "A+C", "A+B", "A+B+C"]


def test_registered_and_drives_a_multi_hot_stargan(fake_root, tmp_path):
    """The template's multi-hot recipe (its comment) builds and dry-runs on CelebA fields."""
    entry = get_registry().get("dataset", "celeba")
    assert entry.factory is load_celeba
    spec = tmp_path / "stargan_celeba.yaml"
    spec.write_text(f"""\
extends: family:stargan
name: stargan_celeba_tiny
data: {{dataset: celeba, root: "{fake_root}", verify: false, size: 8, batch_size: 2}}
components:
  generator:     {{in_shape: [3, 8, 8], c_dim: 5, width: 4, n_blocks: 1}}
  discriminator: {{in_shape: [3, 8, 8], c_dim: 5, width: 4, n_layers: 2}}
  domains: null
graph:
  c_org: attributes
  c_trg: shuffle(attributes)
  d_cls: "bce_logits(on_real.cls, attributes, reduction='sum')"
  g_cls: "bce_logits(on_fake.cls, c_trg, reduction='sum')"
  d_acc_real: "attribute_accuracy(on_real.cls, attributes)"
  g_acc_fake: "attribute_accuracy(on_fake.cls, c_trg)"
sample: {{set: {{c_trg: null}}}}
""")
    exp = prepare(lg.load(spec, ["train.progress=false"]), device="cpu")  # compile + dry run of every value
    assert exp.modules["discriminator"](exp.data.train["x"])["cls"].shape == (3, 5)
