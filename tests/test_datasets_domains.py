"""Datasets for the conditional and translation families: morphology transforms, domains, attributes,
captions and CycleGAN image folders."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from lvmgraph import DatasetUnavailable
from lvmgraph.plugins.registry import Registry
from lvmgraph_datasets import (PALETTE, decode_caption, encode_caption, load_attributes, load_captions,
                               load_digits, load_domains, load_image_folders, register_datasets,
                               stroke_thickness, thick, thin, tint)
from lvmgraph_datasets.captions import class_word
from lvmgraph_datasets.domains import DomainsParams
from lvmgraph_datasets.morpho import dilate, erode

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
NEW_DATASETS = ["attributes", "captions", "domains", "image_folders"]


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def bar(width: int, length: int = 18, size: int = 28) -> torch.Tensor:
    """A vertical white bar of the given width on black: (1 1 size size)."""
    x = torch.zeros(1, 1, size, size)
    top, left = (size - length) // 2, (size - width) // 2
    x[..., top:top + length, left:left + width] = 1.0
    return x


# ----------------------------------------------------------------------------- registration

def test_new_datasets_are_registered_with_described_settings():
    reg = Registry()
    register_datasets(reg.registrar("dataset", "datasets"))
    for name in NEW_DATASETS:
        entry = reg.get("dataset", name)
        assert entry is not None and entry.params is not None and entry.summary, name
        assert all(f.description for f in entry.params.model_fields.values()), name
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            entry.params.model_validate({"colour": "red", **({"root": "."} if name == "image_folders" else {})})


def test_base_settings_are_checked_against_the_base_and_range_settings_stay_on_top():
    with pytest.raises(ValidationError, match="base_settings do not fit base 'digits'.*test_fraction"):
        DomainsParams.model_validate({"base": "digits", "base_settings": {"test_fraction": 2}})
    with pytest.raises(ValidationError, match="set `value_range` at the top level"):
        DomainsParams.model_validate({"base": "digits", "base_settings": {"value_range": [-1, 1]}})


# ----------------------------------------------------------------------------- morphology

def test_thickness_measure_gives_a_bars_width():
    widths = [2, 3, 4, 6]
    measured = [stroke_thickness(bar(w)).item() for w in widths]
    for w, t in zip(widths, measured):
        assert t == pytest.approx(w, rel=0.05)  # the rectangle with the bar's area and perimeter
    assert stroke_thickness(torch.zeros(2, 1, 8, 8)).tolist() == [0.0, 0.0]


def test_erosion_and_dilation_move_ink_and_thickness_monotonically(digits):
    x = digits.train["x"][:200]
    eroded = [erode(x, r) for r in range(4)]
    dilated = [dilate(x, r) for r in range(4)]
    assert torch.equal(eroded[0], x) and torch.equal(dilated[0], x)
    for r in range(1, 4):
        # per pixel: erosion never adds ink, dilation never removes it
        assert (eroded[r] <= eroded[r - 1] + 1e-6).all() and (dilated[r] >= dilated[r - 1] - 1e-6).all()
        assert eroded[r].sum() < eroded[r - 1].sum() and dilated[r].sum() > dilated[r - 1].sum()
        assert stroke_thickness(eroded[r]).mean() < stroke_thickness(eroded[r - 1]).mean()
        assert stroke_thickness(dilated[r]).mean() > stroke_thickness(dilated[r - 1]).mean()
    assert eroded[1].min() >= 0 and dilated[3].max() <= 1


def test_thin_and_thick_reach_morpho_mnist_amounts_on_a_bar():
    x = torch.cat([bar(3), bar(4), bar(6)])
    before = stroke_thickness(x)
    after_thin, after_thick = stroke_thickness(thin(x)), stroke_thickness(thick(x))
    # thin(0.7) leaves ~0.3x, thick(1.0) makes ~2x (radius rounded down to a quarter pixel)
    assert ((after_thin / before) > 0.25).all() and ((after_thin / before) < 0.45).all()
    assert ((after_thick / before) > 1.8).all() and ((after_thick / before) < 2.2).all()
    capped = stroke_thickness(thick(x, max_radius=0.5))
    assert (capped < after_thick).all() and (capped > before).all()


def test_tint_paints_the_ink_in_the_palette_colour(digits):
    x = digits.train["x"][:10]
    orange = tint(x, "orange")
    assert orange.shape == (10, 3, 8, 8) and PALETTE["orange"] == (1.0, 0.5, 0.0)
    torch.testing.assert_close(orange[:, 0:1], x)
    torch.testing.assert_close(orange[:, 1:2], 0.5 * x)
    assert (orange[:, 2] == 0).all()
    with pytest.raises(ValueError, match="unknown colour 'rde': did you mean 'red'"):
        tint(x, "rde")


# ----------------------------------------------------------------------------- domains

def test_thickness_domains_are_disjoint_unaligned_halves(digits):
    bundle = load_domains(base="digits", kind="thickness")
    base_x, base_y = digits.train["x"], digits.train["y"]
    tr = bundle.train
    assert tr["x_a"].shape == tr["x_b"].shape == (len(base_y) // 2, 1, 8, 8)
    a, b = set(tr["index_a"].tolist()), set(tr["index_b"].tolist())
    assert len(a) == len(tr["index_a"]) and not a & b and a | b <= set(range(len(base_y)))
    assert torch.equal(tr["y_a"], base_y[tr["index_a"]]) and torch.equal(tr["y_b"], base_y[tr["index_b"]])
    # A is the thinned, B the thickened version of its base images (radius capped at 2 pixels by default)
    torch.testing.assert_close(tr["x_a"], thin(base_x[tr["index_a"]], max_radius=2.0))
    torch.testing.assert_close(tr["x_b"], thick(base_x[tr["index_b"]], max_radius=2.0))
    assert stroke_thickness(tr["x_a"]).mean() < stroke_thickness(base_x).mean() < stroke_thickness(tr["x_b"]).mean()
    assert bundle.info["domains"] == ["thin", "thick"] and bundle.info["num_classes"] == 10
    assert bundle.info["kind"] == "image" and "digits" in bundle.info["source"]
    assert len(bundle.test["x_a"]) == len(digits.test["y"]) // 2


def test_domains_are_deterministic_for_a_seed_and_change_with_it():
    one, again, other = (load_domains(base="digits", kind="thickness", seed=s) for s in (1, 1, 2))
    for field in ("x_a", "x_b", "index_a"):
        assert torch.equal(one.train[field], again.train[field]) and torch.equal(one.test[field], again.test[field])
    assert not torch.equal(one.train["index_a"], other.train["index_a"])


def test_class_domains_hold_only_their_classes(digits):
    bundle = load_domains(base="digits", class_a="3", class_b=8)
    for split in ("train", "test"):
        fields = getattr(bundle, split)
        assert (fields["y_a"] == 3).all() and (fields["y_b"] == 8).all()
        base = getattr(digits, split)
        n = min(int((base["y"] == 3).sum()), int((base["y"] == 8).sum()))
        assert len(fields["x_a"]) == n  # the larger domain is truncated to the smaller
        torch.testing.assert_close(fields["x_a"], base["x"][fields["index_a"]])  # untransformed
    assert bundle.info["domains"] == ["3", "8"]


def test_misspelled_class_name_suggests_the_right_one():
    with pytest.raises(ValidationError, match=r"class_a: unknown class 'sneeker' of fashion_mnist: "
                                              r"did you mean 'Sneaker'"):
        DomainsParams.model_validate({"class_a": "sneeker"})
    p = DomainsParams.model_validate({"class_a": "ankle_boot", "class_b": "T-SHIRT/TOP"})
    from lvmgraph_datasets.domains import class_pair
    assert class_pair(p) == (9, 0)
    with pytest.raises(ValidationError, match="same class"):
        DomainsParams.model_validate({"class_a": "sneaker", "class_b": 7})


# ----------------------------------------------------------------------------- attributes

def test_attribute_domains_are_all_present_balanced_and_correctly_labelled(digits):
    bundle = load_attributes(base="digits", colours=["orange", "blue"])
    info, tr = bundle.info, bundle.train
    assert info["num_domains"] == 6 and len(info["domain_names"]) == 6
    assert info["attribute_names"] == ["thin", "thick", "orange", "blue"]
    counts = tr["domain"].bincount(minlength=6)
    assert (counts > 0).all() and counts.max() - counts.min() <= 1
    assert tr["x"].shape == (len(digits.train["y"]), 3, 8, 8) and tr["attributes"].shape == (len(tr["y"]), 4)
    assert torch.equal(tr["y"], digits.train["y"])
    names = info["attribute_names"]
    for d, domain_name in enumerate(info["domain_names"]):
        rows = tr["domain"] == d
        thickness, colour = domain_name.split()
        expected = torch.tensor([float(a in (thickness, colour)) for a in names])
        assert (tr["attributes"][rows] == expected).all(), domain_name
        x = tr["x"][rows]
        if colour == "orange":  # channel ratios are the palette's (1, 0.5, 0)
            torch.testing.assert_close(x[:, 1], 0.5 * x[:, 0])
            assert (x[:, 2] == 0).all()
        else:
            assert (x[:, :2] == 0).all() and x[:, 2].sum() > 0
        ink = x.amax(1, keepdim=True)
        base = digits.train["x"][rows]
        if thickness == "normal":
            torch.testing.assert_close(ink, base)
        elif thickness == "thin":
            assert ink.sum() < base.sum()
        else:
            assert ink.sum() > base.sum()


def test_attributes_apply_range_and_padding_after_the_transforms():
    bundle = load_attributes(base="digits", value_range=(-1.0, 1.0), pad_to=12, limit_train=60, limit_test=30)
    x = bundle.train["x"]
    assert x.shape == (60, 3, 12, 12) and bundle.info["shape"] == (3, 12, 12)
    assert bundle.info["native_shape"] == (3, 8, 8) and bundle.info["value_range"] == (-1.0, 1.0)
    assert (x[..., 0, :] == -1).all() and x.min() == -1 and x.max() <= 1
    assert len(bundle.test["y"]) == 30


# ----------------------------------------------------------------------------- captions

def test_captions_decode_to_words_that_match_class_and_attributes(digits):
    bundle = load_captions(base="digits", limit_train=300, limit_test=100)
    vocab, info = bundle.info["vocabulary"], bundle.info
    assert vocab[0] == "<pad>" and bundle.train["text"].shape == (300, info["max_caption_length"])
    assert info["max_caption_length"] == 4  # "a thick green seven"
    for i in range(len(bundle.train["y"])):
        words = decode_caption(bundle.train["text"][i], vocab).split()
        attrs = {a for a, on in zip(info["attribute_names"], bundle.train["attributes"][i].tolist()) if on}
        assert len(words) == bundle.train["text_length"][i]
        assert words[-1] == class_word(info["class_names"][bundle.train["y"][i]])
        assert set(words[1:-1]) == attrs and words[0] == "a"
        assert (bundle.train["text"][i, len(words):] == 0).all()


def test_held_out_combinations_are_absent_from_train_and_flagged_in_test():
    bundle = load_captions(base="digits", hold_out=[["7", "red"], [3, "thick"]])
    names = bundle.info["attribute_names"]
    red, thick_ = names.index("red"), names.index("thick")

    def held(fields):
        return (((fields["y"] == 7) & (fields["attributes"][:, red] == 1))
                | ((fields["y"] == 3) & (fields["attributes"][:, thick_] == 1)))

    assert not held(bundle.train).any() and not bundle.train["held_out"].any()
    assert held(bundle.test).sum() > 5 and torch.equal(bundle.test["held_out"], held(bundle.test))
    assert bundle.info["held_out"] == [["7", "red"], ["3", "thick"]]
    # the rest of the training set is untouched: other sevens and other threes are there
    assert ((bundle.train["y"] == 7).sum() > 0) and ((bundle.train["y"] == 3).sum() > 0)
    with pytest.raises(ValidationError, match="unknown attribute 'rde': did you mean 'red'"):
        load_captions(base="digits", hold_out=[["7", "rde"]])


def test_hold_out_fraction_keeps_a_colour_for_every_class():
    bundle = load_captions(base="digits", hold_out_fraction=0.5, limit_train=200, limit_test=50)
    held = bundle.info["held_out"]
    assert len(held) == 10 and len({c for c, _ in held}) == 10  # 20 combos, half held, never both colours


def test_encode_caption_round_trip_and_unknown_word():
    bundle = load_captions(base="digits", limit_train=50, limit_test=20)
    vocab, length = bundle.info["vocabulary"], bundle.info["max_caption_length"]
    for row in bundle.train["text"][:20]:
        assert torch.equal(encode_caption(decode_caption(row, vocab), vocab, length=length), row)
    ids = encode_caption("A thick red Seven", vocab)
    assert decode_caption(ids, vocab) == "a thick red seven" and ids.dtype == torch.int64
    with pytest.raises(ValueError, match="unknown word 'thikc' in caption 'a thikc red seven': did you mean 'thick'"):
        encode_caption("a thikc red seven", vocab)


# ----------------------------------------------------------------------------- Fashion-MNIST

@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Fashion-MNIST IDX files are not installed")
def test_fashion_mnist_sneaker_and_ankle_boot_domains_and_captions():
    bundle = load_domains(limit_train=600, limit_test=200)
    assert bundle.info["domains"] == ["Sneaker", "Ankle boot"]
    assert (bundle.train["y_a"] == 7).all() and (bundle.train["y_b"] == 9).all()
    assert bundle.train["x_a"].shape[1:] == (1, 28, 28) and len(bundle.train["x_a"]) > 30
    captions = load_captions(limit_train=200, limit_test=100, hold_out=[["ankle boot", "red"]])
    vocab = captions.info["vocabulary"]
    assert decode_caption(encode_caption("a thick red ankle boot", vocab), vocab) == "a thick red ankle boot"
    assert captions.train["x"].shape[1:] == (3, 28, 28) and captions.info["held_out"] == [["Ankle boot", "red"]]


# ----------------------------------------------------------------------------- image folders

def write_pngs(folder: Path, colours: list[tuple[int, int, int]], size=(12, 10)) -> None:
    from PIL import Image
    folder.mkdir(parents=True)
    for i, colour in enumerate(colours):
        Image.new("RGB", size, colour).save(folder / f"{i:03d}.png")


def cyclegan_tree(root: Path) -> Path:
    red, blue = (255, 0, 0), (0, 0, 255)
    write_pngs(root / "trainA", [red] * 3)
    write_pngs(root / "trainB", [blue] * 2)
    write_pngs(root / "testA", [red])
    write_pngs(root / "testB", [blue] * 2)
    (root / "trainA" / "notes.txt").write_text("not an image")
    return root


def test_image_folders_load_resize_and_pair(tmp_path):
    root = cyclegan_tree(tmp_path / "red2blue")
    bundle = load_image_folders(root=str(root), size=8)
    tr = bundle.train
    assert tr["x_a"].shape == tr["x_b"].shape == (3, 3, 8, 8)  # cycle: B's 2 images repeat up to 3
    assert sorted(tr["index_b"].tolist()) in ([0, 0, 1], [0, 1, 1])
    torch.testing.assert_close(tr["x_a"][:, 0], torch.ones(3, 8, 8))
    assert (tr["x_a"][:, 1:] == 0).all() and (tr["x_b"][:, 2] == 1).all()
    assert bundle.test["x_a"].shape == (2, 3, 8, 8) and bundle.info["files"]["train"] == {"A": 3, "B": 2}

    grey = load_image_folders(root=str(root), size=6, mode="grey", pairing="truncate", value_range=(-1.0, 1.0))
    assert grey.train["x_a"].shape == (2, 1, 6, 6) and grey.test["x_b"].shape == (1, 1, 6, 6)
    assert grey.train["x_a"].min() > -1 and grey.info["value_range"] == (-1.0, 1.0)


def test_image_folders_name_the_missing_folder_and_the_layout(tmp_path):
    root = cyclegan_tree(tmp_path / "data")
    for f in (root / "testB").iterdir():
        f.unlink()
    (root / "testB").rmdir()
    with pytest.raises(DatasetUnavailable, match=r"testB is not a folder\. Expected the CycleGAN layout "
                                                 r"root/trainA/, root/trainB/, root/testA/, root/testB/"):
        load_image_folders(root=str(root), size=8)
    with pytest.raises(DatasetUnavailable, match="root .*nowhere is not a folder"):
        load_image_folders(root=str(tmp_path / "nowhere"))


def test_declared_fields_are_the_fields_batches_hold(tmp_path):
    # `lvmgraph validate --no-dry-run` checks graphs against the declared fields without loading data
    reg = Registry()
    register_datasets(reg.registrar("dataset", "datasets"))
    bundles = {"domains": load_domains(base="digits", limit_train=400, limit_test=200),
               "attributes": load_attributes(base="digits", limit_train=40, limit_test=20),
               "captions": load_captions(base="digits", limit_train=40, limit_test=20),
               "image_folders": load_image_folders(root=str(cyclegan_tree(tmp_path / "t")), size=8)}
    for name, bundle in bundles.items():
        declared = reg.get("dataset", name).options["fields"]
        assert sorted(declared) == sorted(bundle.train) == sorted(bundle.test), name
