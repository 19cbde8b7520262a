"""The built-in datasets: digits, the IDX reader with MNIST/Fashion-MNIST, and the 2-D toy mixtures."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import math
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lvmgraph import DatasetUnavailable
from lvmgraph.plugins.registry import Registry
from lvmgraph_datasets import load_digits, load_fashion_mnist, load_mnist, load_toy2d, read_idx, register_datasets

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
              np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


# ----------------------------------------------------------------------------- helpers

def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file's bytes written by hand from the format description (independent of read_idx)."""
    header = bytes([0, 0, TYPE_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool) -> Path:
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def tiny_idx_set(seed: int = 0, n_train: int = 12, n_test: int = 6) -> dict[str, np.ndarray]:
    """Random 28x28 uint8 images and 0..9 labels in the four IDX roles."""
    rng = np.random.default_rng(seed)
    return {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8)}


def write_idx_set(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool, raw: bool = False) -> None:
    for role, array in arrays.items():
        if gz:
            write_idx(folder / f"{IDX_STEMS[role]}.gz", array, gz=True)
        if raw:
            write_idx(folder / IDX_STEMS[role], array, gz=False)


def registry() -> Registry:
    reg = Registry()
    register_datasets(reg.registrar("dataset", "datasets"))
    return reg


# ----------------------------------------------------------------------------- registration and params

def test_registers_the_built_in_datasets_with_docs_and_params():
    reg = registry()
    assert reg.names("dataset") == ["attributes", "captions", "celeba", "digits", "domains", "fashion_mnist", "image_folder",
                                    "image_folders", "mnist", "tensors", "toy2d"]
    for name in reg.names("dataset"):
        entry = reg.get("dataset", name)
        assert entry.params is not None and entry.summary, name
        assert all(f.description for f in entry.params.model_fields.values()), name


@pytest.mark.parametrize("name", ["digits", "fashion_mnist", "mnist", "toy2d", "domains", "attributes", "captions",
                                  "image_folders", "celeba", "image_folder", "tensors"])
def test_params_reject_unknown_keys_including_loader_keys(name):
    params = registry().get("dataset", name).params
    for bad in ({"colour": "red"}, {"batch_size": 64}):
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            params.model_validate(bad)


def test_value_range_accepts_only_unit_and_symmetric_ranges():
    params = registry().get("dataset", "digits").params
    assert params.model_validate({"value_range": [-1, 1]}).value_range == (-1.0, 1.0)
    with pytest.raises(ValidationError, match=r"value_range must be \[0, 1\] or \[-1, 1\]"):
        params.model_validate({"value_range": [0, 255]})


def test_loading_through_the_registry_the_way_a_spec_does():
    entry = registry().get("dataset", "digits")
    settings = entry.params.model_validate({"test_fraction": 0.5, "seed": 3})
    bundle = entry.factory(**dict(settings))
    assert len(bundle) + len(bundle.test["y"]) == 1797
    assert abs(len(bundle.test["y"]) - 1797 / 2) <= 1


# ----------------------------------------------------------------------------- digits

def sklearn_digits():
    from sklearn.datasets import load_digits as sk_load_digits
    return sk_load_digits()


def test_digits_shapes_split_range_and_info():
    bundle = load_digits()
    x_train, y_train = bundle.train["x"], bundle.train["y"]
    x_test, y_test = bundle.test["x"], bundle.test["y"]
    assert x_train.shape[1:] == (1, 8, 8) and x_train.dtype == torch.float32
    assert len(x_train) + len(x_test) == 1797 and len(x_test) == round(0.2 * 1797)
    assert y_train.dtype == torch.int64 and set(torch.cat([y_train, y_test]).tolist()) == set(range(10))
    x_all = torch.cat([x_train, x_test])
    assert x_all.min() == 0 and x_all.max() == 1
    assert torch.equal(x_all * 16, (x_all * 16).round())  # pixel counts 0..16 scaled by 1/16

    # the split is a partition of scikit-learn's data: totals and label counts match
    ref = sklearn_digits()
    assert torch.isclose(x_all.double().sum(), torch.tensor(ref.images.sum() / 16.0, dtype=torch.float64))
    assert torch.equal(torch.cat([y_train, y_test]).bincount(), torch.from_numpy(ref.target).bincount())

    info = bundle.info
    assert info["kind"] == "image" and info["num_classes"] == 10 and info["class_names"] == list("0123456789")
    assert info["value_range"] == (0.0, 1.0) and info["source"] == "sklearn"


def test_digits_same_seed_same_split_other_seed_other_split():
    a, b, c = load_digits(seed=1), load_digits(seed=1), load_digits(seed=2)
    assert torch.equal(a.test["x"], b.test["x"]) and torch.equal(a.train["y"], b.train["y"])
    assert not torch.equal(a.test["x"], c.test["x"])


def test_digits_symmetric_value_range_is_an_affine_map_of_the_unit_one():
    unit, symmetric = load_digits(), load_digits(value_range=(-1.0, 1.0))
    torch.testing.assert_close(symmetric.train["x"], unit.train["x"] * 2 - 1)
    assert symmetric.info["value_range"] == (-1.0, 1.0)


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_digits_pad_to_centres_the_image_on_a_background_canvas(value_range):
    plain, padded = load_digits(value_range=value_range), load_digits(value_range=value_range, pad_to=16)
    x = padded.train["x"]
    assert x.shape[1:] == (1, 16, 16) and padded.info["shape"] == (1, 16, 16)
    torch.testing.assert_close(x[..., 4:12, 4:12], plain.train["x"])
    border = x.clone()
    border[..., 4:12, 4:12] = value_range[0]
    assert torch.all(border == value_range[0])


def test_pad_to_smaller_than_the_image_is_an_error_at_the_setting(tmp_path):
    with pytest.raises(ValueError, match="pad_to=6 is smaller than the images"):
        load_digits(pad_to=6)
    import lvmgraph.api as lg
    from lvmgraph.spec.errors import SpecError

    text = (Path(__file__).resolve().parents[1] / "specs" / "dcgan_fashion_mnist.yaml").read_text()
    spec = tmp_path / "dcgan_digits.yaml"
    spec.write_text(text.replace("dataset: fashion_mnist, batch_size: 64, pad_to: 32",
                                 "dataset: digits, batch_size: 64, pad_to: 6"))
    with pytest.raises(SpecError) as err:  # reported at the setting's line, not as a traceback
        lg.validate(spec)
    (problem,) = err.value.problems
    assert problem.path == ("data", "pad_to") and problem.line == text[:text.index("pad_to: 32")].count("\n") + 1


def test_digits_threshold_binarization():
    plain, binary = load_digits(), load_digits(binarize="threshold")
    torch.testing.assert_close(binary.train["x"], (plain.train["x"] > 0.5).float())
    assert binary.info["binarize"] == "threshold"


def test_digits_stochastic_binarization_is_a_seeded_bernoulli_draw():
    p = load_digits().train["x"]
    x = load_digits(binarize="stochastic").train["x"]
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x, load_digits(binarize="stochastic").train["x"])
    # certain pixels stay certain; overall the mean matches the probabilities (92k draws: sd ~ 0.0015)
    assert torch.all(x[p == 0] == 0) and torch.all(x[p == 1] == 1)
    assert abs(x.mean().item() - p.mean().item()) < 0.01
    # another seed reshuffles the split and redraws; compare the draws on the same images
    other = load_digits(binarize="stochastic", seed=5)
    other_p = load_digits(seed=5).train["x"]
    assert not torch.equal(other.train["x"], x)
    assert torch.all(other.train["x"][other_p == 0] == 0)


# ----------------------------------------------------------------------------- IDX reader

@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_read_idx_round_trips_every_dtype(tmp_path, gz, dtype):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((5, 3, 4)) * 100).astype(dtype)
    path = write_idx(tmp_path / "data.idx", array, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.shape == (5, 3, 4)
    np.testing.assert_array_equal(out, array)
    np.testing.assert_array_equal(read_idx(path, limit=2), array[:2])
    np.testing.assert_array_equal(read_idx(path, limit=99), array)


def test_read_idx_labels_are_one_dimensional(tmp_path):
    labels = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l.gz", labels, gz=True)), labels)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_truncated_file_is_a_clear_error_naming_it(tmp_path, gz):
    data = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    path = tmp_path / ("cut.gz" if gz else "cut")
    path.write_bytes(gzip.compress(data)[:-12] if gz else data[:-7])
    with pytest.raises(ValueError, match="truncated") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_rejects_a_header_that_is_not_idx_and_trailing_bytes(tmp_path):
    not_idx = tmp_path / "notes.txt"
    not_idx.write_bytes(b"hello, world")
    with pytest.raises(ValueError, match="not an IDX file") as err:
        read_idx(not_idx)
    assert str(not_idx) in str(err.value)

    bad_type = tmp_path / "bad_type"
    bad_type.write_bytes(bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="unknown IDX dtype code 0x0A"):
        read_idx(bad_type)

    trailing = tmp_path / "trailing"
    trailing.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"\x00\x00")
    with pytest.raises(ValueError, match="2 bytes follow"):
        read_idx(trailing)


# ----------------------------------------------------------------------------- Fashion-MNIST / MNIST from folders

needs_debian_fashion_mnist = pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(),
    reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist (CI installs it)")


@needs_debian_fashion_mnist
def test_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.delenv("LVMGRAPH_DATA", raising=False)
    bundle = load_fashion_mnist(limit_train=300, limit_test=100)
    x, y = bundle.train["x"], bundle.train["y"]
    assert x.shape == (300, 1, 28, 28) and bundle.test["x"].shape == (100, 1, 28, 28)
    assert y.dtype == torch.int64 and 0 <= y.min() and y.max() <= 9 and len(y.unique()) == 10
    assert x.min() == 0 and x.max() == 1
    assert bundle.info["source"] == str(DEBIAN_FASHION_MNIST)
    assert bundle.info["class_names"][0] == "T-shirt/top" and bundle.info["class_names"][9] == "Ankle boot"

    # reference: the first labels and image straight from the gzip stream, by hand
    with gzip.open(DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz") as f:
        ref_labels = np.frombuffer(f.read(8 + 300)[8:], dtype=np.uint8)
    with gzip.open(DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz") as f:
        ref_image = np.frombuffer(f.read(16 + 784)[16:], dtype=np.uint8).reshape(28, 28)
    assert torch.equal(y, torch.from_numpy(ref_labels.astype(np.int64)))
    torch.testing.assert_close(x[0, 0], torch.from_numpy(ref_image / 255.0).float())

    padded = load_fashion_mnist(limit_train=300, limit_test=100, pad_to=32)
    assert padded.train["x"].shape == (300, 1, 32, 32)
    torch.testing.assert_close(padded.train["x"][..., 2:30, 2:30], x)
    assert padded.train["x"][..., :2, :].abs().sum() == 0


def test_torchvision_layout_with_gzip_files(tmp_path):
    arrays = tiny_idx_set()
    write_idx_set(tmp_path / "FashionMNIST" / "raw", arrays, gz=True)
    bundle = load_fashion_mnist(root=str(tmp_path))
    assert bundle.info["source"] == str(tmp_path / "FashionMNIST" / "raw")
    torch.testing.assert_close(bundle.train["x"][:, 0], torch.from_numpy(arrays["train_images"] / 255.0).float())
    assert torch.equal(bundle.test["y"], torch.from_numpy(arrays["test_labels"].astype(np.int64)))


def test_torchvision_reads_the_same_files_as_we_do(tmp_path):
    # torchvision's download leaves both the .gz and the extracted file; it reads the extracted ones
    from torchvision.datasets import FashionMNIST
    write_idx_set(tmp_path / "FashionMNIST" / "raw", tiny_idx_set(seed=1), gz=True, raw=True)
    ours = load_fashion_mnist(root=str(tmp_path))
    for train, split in ((True, ours.train), (False, ours.test)):
        theirs = FashionMNIST(root=str(tmp_path), train=train, download=False)
        torch.testing.assert_close(split["x"][:, 0], theirs.data.float() / 255)
        assert torch.equal(split["y"], theirs.targets)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def local_mirror(tmp_path):
    """An HTTP server on loopback serving tmp_path/mirror: a stand-in for the dataset's mirror."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_fetches_with_torchvision_then_reads_what_it_wrote(tmp_path, monkeypatch, local_mirror):
    from torchvision.datasets import FashionMNIST
    folder, url = local_mirror
    arrays = tiny_idx_set(seed=2)
    write_idx_set(folder, arrays, gz=True)
    # torchvision's own downloader, pointed at the local mirror, with the checksums of our files
    monkeypatch.setattr(FashionMNIST, "mirrors", [url])
    checksums = [(f"{stem}.gz", hashlib.md5((folder / f"{stem}.gz").read_bytes()).hexdigest())
                 for stem in IDX_STEMS.values()]
    monkeypatch.setattr(FashionMNIST, "resources", checksums)

    target = tmp_path / "data"
    bundle = load_fashion_mnist(root=str(target), download=True, pad_to=32)
    assert (target / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert bundle.info["source"] == str(target / "FashionMNIST" / "raw")
    assert bundle.train["x"].shape == (12, 1, 32, 32)
    assert torch.equal(bundle.train["y"], torch.from_numpy(arrays["train_labels"].astype(np.int64)))


def test_download_failure_is_dataset_unavailable_with_the_fixes(tmp_path, monkeypatch, local_mirror):
    from torchvision.datasets import FashionMNIST
    monkeypatch.setattr(FashionMNIST, "mirrors", [local_mirror[1]])  # serves nothing: 404 for every file
    with pytest.raises(DatasetUnavailable, match="downloading Fashion-MNIST with torchvision") as err:
        load_fashion_mnist(root=str(tmp_path / "data"), download=True)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)


def test_missing_root_says_where_it_looked_and_how_to_fix_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetUnavailable) as err:
        load_fashion_mnist(root=str(missing))
    message = str(err.value)
    assert str(missing) in message and str(missing / "FashionMNIST" / "raw") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "data.root" in message and "data.download: true" in message


def test_a_folder_missing_one_file_names_the_missing_file(tmp_path):
    arrays = tiny_idx_set()
    del arrays["test_labels"]
    write_idx_set(tmp_path, arrays, gz=True)
    with pytest.raises(DatasetUnavailable, match="has 3 of the 4 files; missing t10k-labels-idx1-ubyte"):
        load_fashion_mnist(root=str(tmp_path))


def test_search_order_env_folder_first_then_home_cache(tmp_path, monkeypatch):
    env_data, home = tmp_path / "env", tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    write_idx_set(env_data / "mnist", tiny_idx_set(seed=3), gz=True)
    write_idx_set(home / ".cache" / "lvmgraph" / "mnist", tiny_idx_set(seed=4, n_train=7), gz=True)

    monkeypatch.setenv("LVMGRAPH_DATA", str(env_data))
    from_env = load_mnist()
    assert from_env.info["source"] == str(env_data / "mnist") and len(from_env) == 12
    assert from_env.info["class_names"] == list("0123456789")

    monkeypatch.delenv("LVMGRAPH_DATA")
    from_cache = load_mnist()
    assert from_cache.info["source"] == str(home / ".cache" / "lvmgraph" / "mnist") and len(from_cache) == 7


def test_mnist_not_found_lists_home_cache_and_no_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LVMGRAPH_DATA", raising=False)
    with pytest.raises(DatasetUnavailable) as err:
        load_mnist()
    message = str(err.value)
    assert str(tmp_path / ".cache" / "lvmgraph" / "mnist") in message
    assert "apt-get" not in message and "data.root" in message


def test_images_and_labels_of_different_lengths_are_an_error(tmp_path):
    arrays = tiny_idx_set()
    arrays["train_labels"] = arrays["train_labels"][:-1]
    write_idx_set(tmp_path, arrays, gz=False, raw=True)
    with pytest.raises(ValueError, match="holds 12 images but .*train-labels-idx1-ubyte holds 11 labels"):
        load_fashion_mnist(root=str(tmp_path))


def test_idx_limits_and_stochastic_binarization_are_per_split(tmp_path):
    write_idx_set(tmp_path, tiny_idx_set(), gz=True)
    full = load_fashion_mnist(root=str(tmp_path), binarize="stochastic", seed=3)
    limited = load_fashion_mnist(root=str(tmp_path), binarize="stochastic", seed=3, limit_train=5, limit_test=4)
    assert len(limited) == 5 and len(limited.test["y"]) == 4
    # limiting the training split does not change the test split's draw
    assert torch.equal(limited.test["x"], full.test["x"][:4])
    assert set(full.train["x"].unique().tolist()) == {0.0, 1.0}


# ----------------------------------------------------------------------------- toy 2-D data

def test_ring8_points_sit_within_5_sigma_of_their_mode_and_modes_are_balanced():
    bundle = load_toy2d(name="ring8", n_train=8000, n_test=2500)
    info, x, y = bundle.info, bundle.train["x"], bundle.train["y"]
    modes, sigma = info["modes"], info["mode_std"]
    assert info["kind"] == "points" and info["source"] == "synthetic" and info["num_classes"] == 8
    assert modes.shape == (8, 2) and modes.dtype == torch.float32 and sigma == 0.01
    # 8 equally spaced points on the unit circle
    torch.testing.assert_close(modes.norm(dim=1), torch.ones(8))
    angles = torch.atan2(modes[:, 1], modes[:, 0]).remainder(2 * math.pi).sort().values
    torch.testing.assert_close(angles, torch.arange(8) * (2 * math.pi / 8))

    assert x.shape == (8000, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    for split in (bundle.train, bundle.test):
        assert torch.all((split["x"] - modes[split["y"]]).norm(dim=1) < 5 * sigma)
    counts = y.bincount(minlength=8).float()
    sd = math.sqrt(8000 * (1 / 8) * (7 / 8))
    assert torch.all((counts - 1000).abs() < 4 * sd)
    per_axis_std = (x - modes[y]).std(dim=0)
    assert torch.all((per_axis_std - sigma).abs() < 0.05 * sigma)


def test_grid25_modes_are_exactly_the_grid_and_points_carry_their_mode():
    bundle = load_toy2d(name="grid25", n_train=5000, n_test=500)
    modes, sigma = bundle.info["modes"], bundle.info["mode_std"]
    assert modes.shape == (25, 2) and sigma == 0.05
    grid = {(a, b) for a in (-4.0, -2.0, 0.0, 2.0, 4.0) for b in (-4.0, -2.0, 0.0, 2.0, 4.0)}
    assert {tuple(m) for m in modes.tolist()} == grid
    x, y = bundle.train["x"], bundle.train["y"]
    assert torch.equal(torch.cdist(x, modes).argmin(dim=1), y)
    assert torch.all((x - modes[y]).norm(dim=1) < 5 * sigma)
    assert y.bincount(minlength=25).min() > 0


def test_toy2d_is_deterministic_and_test_points_do_not_depend_on_n_train():
    a, b = load_toy2d(name="grid25", seed=4), load_toy2d(name="grid25", seed=4, n_train=100)
    assert torch.equal(a.test["x"], b.test["x"])
    assert torch.equal(a.train["x"], load_toy2d(name="grid25", seed=4).train["x"])
    assert not torch.equal(a.test["x"], load_toy2d(name="grid25", seed=5).test["x"])


def test_swiss_roll_is_scaled_into_the_unit_square_with_label_zero():
    bundle = load_toy2d(name="swiss_roll", n_train=3000, n_test=100, noise=0.0)
    x = bundle.train["x"]
    assert x.shape == (3000, 2) and torch.all(x.abs() <= 1.0) and x.abs().max() > 0.9
    assert torch.all(bundle.train["y"] == 0) and bundle.info["num_classes"] == 1
    # the roll is a spiral: radius grows with angle from 1.5π/4.5π = 1/3 of the extent to all of it
    radius = x.norm(dim=1)
    assert radius.min() > 1 / 3 - 1e-4 and "modes" not in bundle.info


def test_moons_label_each_point_with_its_half_circle():
    noise = 0.05
    bundle = load_toy2d(name="moons", n_train=2000, n_test=100, noise=noise)
    x, y = bundle.train["x"], bundle.train["y"]
    assert set(y.tolist()) == {0, 1} and abs(int(y.sum()) - 1000) <= 1
    # scikit-learn's moons: the upper one is the unit circle's top half, the lower one centred at (1, 0.5)
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.5]])
    off_circle = ((x - centres[y]).norm(dim=1) - 1).abs()
    assert off_circle.mean() < 2 * noise
    assert bundle.info["class_names"] == ["upper moon", "lower moon"]
