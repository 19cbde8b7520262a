"""The image_folder dataset: a user's own images, their layout, transforms and errors, and the
shipped DCGAN spec trained on them by changing data settings only (or refused at validation with
the data setting to change)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from ruamel.yaml import YAML

import lvmgraph.api as lg
from lvmgraph import DataSettingError, DatasetUnavailable
from lvmgraph.cli import main as cli_main
from lvmgraph.spec.errors import SpecError
from lvmgraph_datasets import load_image_folder

ROOT = Path(__file__).resolve().parents[1]
DCGAN = ROOT / "specs" / "dcgan_fashion_mnist.yaml"
QUIET = ["--set", "train.threads=1", "--set", "train.log_every=1", "--set", "train.checkpoint_every=1000",
         "--set", "train.sample_every=1000", "--quiet", "--no-eval"]


def rgb_images(rng: np.random.Generator, n: int, size: tuple[int, int], level: int) -> list[np.ndarray]:
    """n random RGB images (h w 3) whose pixels scatter around ``level``: classes told apart by brightness."""
    h, w = size
    return [np.clip(rng.normal(level, 30, (h, w, 3)), 0, 255).astype(np.uint8) for _ in range(n)]


def write_pngs(folder: Path, arrays: list[np.ndarray], prefix: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, a in enumerate(arrays):
        paths.append(folder / f"{prefix}{i:03d}.png")
        Image.fromarray(a).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """Two classes of 40x40 RGB PNGs: dark/ (20) and light/ (20)."""
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    write_pngs(root / "light", rgb_images(rng, 20, (40, 40), 200))
    write_pngs(root / "dark", rgb_images(rng, 20, (40, 40), 50))
    return root


def load(root: Path, **settings):
    return load_image_folder(root=str(root), **settings)


# ------------------------------------------------------------------------------- layout


def test_class_sub_folders_give_labels_in_sorted_name_order(pictures):
    data = load(pictures)
    assert data.info["class_names"] == ["dark", "light"] and data.info["num_classes"] == 2
    assert data.fields == ["x", "y"]
    assert data.info["files"] == {"train": 36, "test": 4}  # 10% of 40 held out
    for split in (data.train, data.test):
        brightness = split["x"].mean(dim=(1, 2, 3))
        # the labels follow the folders: every dark image is darker than every light one
        assert brightness[split["y"] == 0].max() < brightness[split["y"] == 1].min()
    assert data.train["x"].shape[1:] == (3, 40, 40) and data.info["shape"] == (3, 40, 40)


def test_pixels_arrive_unchanged_without_transforms(tmp_path):
    arrays = rgb_images(np.random.default_rng(1), 4, (6, 5), 120)
    write_pngs(tmp_path / "pics", arrays)
    data = load(tmp_path / "pics", test_fraction=0.25)
    every = torch.cat([data.train["x"], data.test["x"]])
    expected = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    # a seeded split of the files, each image exactly its pixels / 255
    assert sorted(map(tuple, every.flatten(1).tolist())) == sorted(map(tuple, expected.flatten(1).tolist()))
    assert "y" not in data.train  # a flat folder is unlabelled
    assert data.info["num_classes"] == 0


def test_the_split_is_seeded_disjoint_and_complete(pictures):
    def ids(data, split):  # an image's identity: its pixel sum
        return sorted(getattr(data, split)["x"].sum(dim=(1, 2, 3)).tolist())

    a, b, c = load(pictures, seed=0), load(pictures, seed=0), load(pictures, seed=1)
    assert ids(a, "test") == ids(b, "test") and ids(a, "test") != ids(c, "test")
    assert set(ids(a, "train")).isdisjoint(ids(a, "test"))
    assert sorted(ids(a, "train") + ids(a, "test")) == sorted(ids(c, "train") + ids(c, "test"))


def test_train_and_test_sub_folders_are_the_splits(tmp_path):
    rng = np.random.default_rng(2)
    for split, n in (("train", 6), ("test", 3)):
        write_pngs(tmp_path / split / "cat", rgb_images(rng, n, (8, 8), 60))
        write_pngs(tmp_path / split / "dog", rgb_images(rng, n, (8, 8), 190))
    data = load(tmp_path)
    assert data.info["files"] == {"train": 12, "test": 6}
    assert data.test["y"].tolist() == [0, 0, 0, 1, 1, 1]


# ------------------------------------------------------------------------------- transforms


def test_size_channels_pad_and_value_range(pictures):
    data = load(pictures, size=16, channels=1, pad_to=20, value_range=[-1, 1])
    x = data.train["x"]
    assert x.shape[1:] == (1, 20, 20) and data.info["native_shape"] == (1, 16, 16)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.all(x[:, :, :2, :] == -1)  # the padding is the background (0 in [0, 1] -> -1)
    # the grey values are PIL's luminance conversion of the resized image, mapped to [-1, 1]
    first = sorted((pictures / "dark").iterdir())[0]
    grey = np.asarray(Image.open(first).convert("L").resize((16, 16), Image.BICUBIC), dtype=np.float32) / 255
    matches = [torch.allclose(img[0, 2:18, 2:18], torch.from_numpy(grey) * 2 - 1, atol=1e-6) for img in
               torch.cat([data.train["x"], data.test["x"]])]
    assert sum(matches) == 1


def test_center_and_seeded_random_crops(tmp_path):
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    write_pngs(tmp_path / "pics", [image] * 4)
    center = load(tmp_path / "pics", crop=6, test_fraction=0.25).train["x"]
    assert torch.equal(center[0], torch.from_numpy(image[2:8, 3:9]).permute(2, 0, 1).float() / 255)

    def crops(seed):
        x = load(tmp_path / "pics", crop=6, crop_position="random", seed=seed, test_fraction=0.25).train["x"]
        return [tuple(x[i].flatten().tolist()) for i in range(len(x))]
    first, again, other = crops(0), crops(0), crops(1)
    assert first == again and first != other
    assert len(set(first)) > 1  # one offset drawn per image, not one for all


def test_horizontal_flip_is_applied_per_training_batch_and_seeded(pictures):
    from lvmgraph.data.loader import IndexBatcher

    data = load(pictures, flip="horizontal")
    plain = load(pictures)
    assert torch.equal(data.train["x"], plain.train["x"])  # the stored data is never flipped
    kw = dict(batch_size=8, device=torch.device("cpu"), seed=3)
    flipping = IndexBatcher(data.train, augment=data.augment, **kw)
    unflipped = IndexBatcher(plain.train, **kw)
    again = IndexBatcher(data.train, augment=data.augment, **kw)
    mirrored = 0
    for _ in range(6):
        a, b, c = flipping.next(), unflipped.next(), again.next()
        assert torch.equal(a["y"], b["y"])  # the same order as without augmentation
        assert torch.equal(a["x"], c["x"])  # and the same flips from the same seed
        for xa, xb in zip(a["x"], b["x"]):
            assert torch.equal(xa, xb) or torch.equal(xa, xb.flip(-1))
            mirrored += not torch.equal(xa, xb)
    assert 0 < mirrored < 48


# ------------------------------------------------------------------------------- attributes


def test_attribute_csv_becomes_a_multi_hot_field(tmp_path):
    rng = np.random.default_rng(3)
    files = write_pngs(tmp_path / "faces", rgb_images(rng, 6, (8, 8), 128))
    rows = ["file,smiling,glasses,hat"] + [f"{f.name},{i % 2},{-1 if i < 3 else 1},0" for i, f in enumerate(files)]
    (tmp_path / "faces" / "attrs.csv").write_text("\n".join(rows) + "\n")
    data = load(tmp_path / "faces", attributes="attrs.csv", attribute_names=["glasses", "smiling"],
                test_fraction=0.5)
    assert data.info["attribute_names"] == ["glasses", "smiling"]
    every = torch.cat([data.train["attributes"], data.test["attributes"]])
    assert every.dtype == torch.float32 and every.shape == (6, 2)
    # which row belongs to which image: pixel sums identify the images
    sums = {float(np.array(Image.open(f), dtype=np.float32).sum() / 255): i for i, f in enumerate(files)}
    for x, attrs in zip(torch.cat([data.train["x"], data.test["x"]]), every):
        i = min(sums, key=lambda s: abs(s - float(x.sum())))
        assert attrs.tolist() == [float(sums[i] >= 3), float(sums[i] % 2)]

    with pytest.raises(DataSettingError, match="no column 'smilng' — did you mean 'smiling'"):
        load(tmp_path / "faces", attributes="attrs.csv", attribute_names=["smilng"])
    (tmp_path / "faces" / "attrs.csv").write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(DataSettingError, match="has no row for 005.png"):
        load(tmp_path / "faces", attributes="attrs.csv")
    (tmp_path / "faces" / "attrs.csv").write_text("\n".join(rows[:-1] + ["005.png,1,maybe,0"]) + "\n")
    with pytest.raises(DataSettingError, match=r"line 7: glasses is 'maybe'"):
        load(tmp_path / "faces", attributes="attrs.csv")


# ------------------------------------------------------------------------------- errors


def test_layout_errors_name_the_folder_and_the_layout(tmp_path):
    with pytest.raises(DatasetUnavailable, match=f"root {tmp_path / 'nowhere'} is not a folder. Expected root/"):
        load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match="holds no image files"):
        load(tmp_path / "empty")
    write_pngs(tmp_path / "mixed", rgb_images(np.random.default_rng(4), 2, (4, 4), 9))
    (tmp_path / "mixed" / "cats").mkdir()
    with pytest.raises(DatasetUnavailable, match="holds both image files .* and sub-folders"):
        load(tmp_path / "mixed")


def test_an_unreadable_image_is_named(tmp_path):
    write_pngs(tmp_path / "pics", rgb_images(np.random.default_rng(5), 3, (4, 4), 9))
    (tmp_path / "pics" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetUnavailable, match=r"cannot read .*broken\.png as an image"):
        load(tmp_path / "pics")


def test_images_of_different_sizes_need_a_size(tmp_path):
    rng = np.random.default_rng(6)
    write_pngs(tmp_path / "pics", rgb_images(rng, 2, (8, 8), 9) + rgb_images(rng, 2, (8, 10), 9))
    with pytest.raises(DataSettingError, match="images differ in size: 000.png is 8x8, 002.png is 10x8; set data.size"):
        load(tmp_path / "pics")
    assert load(tmp_path / "pics", size=8, test_fraction=0.25).train["x"].shape[1:] == (3, 8, 8)


# ------------------------------------------------------------------------------- the DCGAN spec


def dcgan_cli(pictures: Path, *settings: str) -> list[str]:
    return [str(DCGAN), "--set", "data.dataset=image_folder", "--set", f"data.root={pictures}",
            "--set", "data.batch_size=16", *[a for s in settings for a in ("--set", s)]]


def test_the_dcgan_spec_trains_on_40px_rgb_pictures_with_data_settings_only(pictures, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["run", *dcgan_cli(pictures, "data.size=32", "data.channels=1", "train.steps=3"),
                     "--out", str(out), *QUIET])
    assert code == 0, capsys.readouterr()
    run = lg.open_run(out)
    assert [r["step"] for r in run.run.read_metrics()] == [1, 2, 3]
    assert run.experiment.data.train["x"].shape[1:] == (1, 32, 32)
    assert run.experiment.data.info["value_range"] == (-1.0, 1.0)  # the spec's own setting, kept
    # the spec's evaluator metrics judge with a network trained on these pictures' own classes
    result = run.evaluate([("evaluator_fd", {"n": 8})], write=False)["evaluator_fd"]
    evaluator = result["protocol"]["evaluator"]
    assert evaluator["dataset"] == "image_folder" and "linear 2)" in evaluator["architecture"]
    assert result["fd"] > 0


def test_pictures_that_do_not_fit_fail_validation_naming_the_data_setting(pictures, capsys):
    # the spec pads to 32, so 40 px images are too large: resize them
    assert cli_main(["validate", *dcgan_cli(pictures)]) == 2
    err = capsys.readouterr().err
    assert "data.size: images are 40x40, larger than pad_to 32: set data.size: 32" in err
    # without padding, the dry run finds the discriminator refusing them and names both settings
    assert cli_main(["validate", *dcgan_cli(pictures, "data.pad_to=null")]) == 2
    err = capsys.readouterr().err
    assert ("data.size: images x are 3×40×40 but components.discriminator takes 1×32×32 — set data.size: 32 and "
            "data.channels: 1, or change components.discriminator.in_shape: [3, 40, 40]") in err
    assert err.count("\n  ") == 1  # one problem: the graph values it breaks are not reported again
    # the right size but RGB: only the channels remain
    assert cli_main(["validate", *dcgan_cli(pictures, "data.size=32")]) == 2
    assert "data.channels: images x are 3×32×32 but components.discriminator takes 1×32×32 — set data.channels: 1," \
        in capsys.readouterr().err


# ------------------------------------------------------------------------------- seeded flips, resumed


SMALL_DCGAN = ["data.dataset=image_folder", "data.size=32", "data.channels=1", "data.batch_size=8",
               "components.generator.channels=[16,8,4]", "components.discriminator.channels=[4,8,16]",
               "train.threads=1", "train.progress=false", "train.log_every=1", "train.checkpoint_every=3",
               "train.sample_every=1000"]


def test_flip_augmented_training_is_seeded_and_resumes_exactly(pictures, tmp_path):
    from helpers import assert_same
    from lvmgraph.train.checkpoint import latest_checkpoint, load_checkpoint

    common = [*SMALL_DCGAN, f"data.root={pictures}"]
    flip = [*common, "data.flip=horizontal"]
    straight = lg.train(DCGAN, out=tmp_path / "straight", evaluate=False, overrides=[*flip, "train.steps=6"])
    first = lg.train(DCGAN, out=tmp_path / "resumed", evaluate=False, overrides=[*flip, "train.steps=3"])
    torch.manual_seed(999)  # the global RNG must not matter
    resumed = lg.resume(first.path, overrides=["train.steps=6"], evaluate=False)
    unflipped = lg.train(DCGAN, out=tmp_path / "unflipped", evaluate=False, overrides=[*common, "train.steps=6"])

    a, b, c = (load_checkpoint(latest_checkpoint(r.checkpoints)) for r in (straight, resumed, unflipped))
    assert straight.read_metrics() == resumed.read_metrics()
    assert_same(a["components"], b["components"], "components")
    assert_same(a["data"], b["data"], "data")  # the augmentation generator is part of the batcher's state
    # the flips reach training (and draw from their own stream: the batch order is unchanged)
    assert any(not torch.equal(a["components"][k], c["components"][k]) for k in a["components"])
    assert torch.equal(a["data"]["order"], c["data"]["order"]) and a["data"]["position"] == c["data"]["position"]


# ------------------------------------------------------------------------------- ProGAN at 64 px


PROGAN = ROOT / "specs" / "progan_fashion_mnist.yaml"


def progan_on_folder(tmp_path: Path, folder: Path, size: int, name: str) -> Path:
    """The shipped ProGAN spec with only its data (a folder of ``size`` px grey pictures) and its stage
    list (on to ``size``, a few images per stage) replaced: issue 6's "change the stage list only".
    Round-trip YAML keeps everything else as written, comments included."""
    spec = YAML().load(PROGAN)
    spec["data"] = {"dataset": "image_folder", "root": str(folder), "size": size, "channels": 1, "batch_size": 4,
                    "value_range": [-1, 1]}
    spec["stages"] = [{"resolution": 4, "stable_images": 4}] + [
        {"resolution": 2 ** k, "fade_images": 8, "stable_images": 4} for k in range(3, size.bit_length())]
    path = tmp_path / f"{name}.yaml"
    YAML().dump(spec, path)
    return path


def test_the_progan_spec_grows_to_64px_pictures_by_its_stage_list_alone(tmp_path):
    """Issue 6: the networks take their image shape from the data and their widths from a rule, so
    the shipped 4 -> 32 spec trains on 64 px pictures through the CLI across the 32 -> 64 switch."""
    write_pngs(tmp_path / "pics", rgb_images(np.random.default_rng(7), 64, (64, 64), 128))
    path = progan_on_folder(tmp_path, tmp_path / "pics", 64, "progan64")
    shipped, changed = YAML(typ="safe").load(PROGAN), YAML(typ="safe").load(path)
    assert {k for k in shipped if shipped[k] != changed[k]} == {"data", "stages"}
    with pytest.raises(SpecError) as info:  # the data alone: the shipped stages stop at 32
        lg.validate(PROGAN, [f"data={changed['data']}"])
    assert "the stages end at 32 but components 'generator' and 'discriminator' grow to 64, the data's image size" \
           in info.value.render() and "add stages up to 64, or make the data's images 32 px (data.size: 32)" \
           in info.value.render(), info.value.render()

    assert cli_main(["run", str(path), "--out", str(tmp_path / "run"), *QUIET]) == 0
    run = lg.open_run(tmp_path / "run")
    rows = run.run.read_metrics()
    assert [(r["stage/resolution"], r["stage/alpha"]) for r in rows] == \
        [(4, 1.0)] + [(r, a) for r in (8, 16, 32, 64) for a in (0.0, 0.5, 1.0)]
    for name in ("generator", "discriminator"):
        net = run.experiment.modules[name]
        assert net.resolutions == (4, 8, 16, 32, 64) and net.widths == [64, 32, 16, 8, 8]
    assert run.experiment.loaded.resolved()["components"]["generator"]["out_shape"] == [1, 64, 64]
    sample = run.sample(2)
    assert sample.shape == (2, 1, 64, 64) and torch.isfinite(sample).all()


def test_the_progan_spec_builds_for_256px_pictures_with_seven_levels(tmp_path):
    write_pngs(tmp_path / "pics", rgb_images(np.random.default_rng(7), 8, (64, 64), 128))
    exp = lg.validate(progan_on_folder(tmp_path, tmp_path / "pics", 256, "progan256"))  # builds and dry-runs
    generator, discriminator = exp.modules["generator"], exp.modules["discriminator"]
    assert generator.resolutions == discriminator.resolutions == (4, 8, 16, 32, 64, 128, 256)
    assert len(generator.blocks) == len(generator.to_rgb) == len(discriminator.from_rgb) == 7
    assert generator.widths == [64, 32, 16, 8, 8, 8, 8] and generator.out_shape == (1, 256, 256)
