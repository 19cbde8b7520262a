"""``lvmgraph sample --given`` with images, folders, arrays, numbers and text; several sample outputs.

A tiny translation model on the digit-based thickness domains (8x8 grey in [-1, 1]) and a captions
spec (RGB, token ids); the user's images are PNGs written with PIL in tmp_path.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lvmgraph.api as lg
from lvmgraph.cli import main as cli_main
from lvmgraph.eval.given import GivenError
from lvmgraph.experiment import generate_outputs, prepare
from lvmgraph.spec.errors import SpecError

TRANSLATION = """\
name: given_translation
seed: 0
data: {{dataset: domains, base: digits, kind: thickness, value_range: [-1, 1], batch_size: 8{pad}}}
components:
  g_ab: {{type: mlp, in_shape: [1, {size}, {size}], out_shape: [1, {size}, {size}], hidden: [16]}}
  g_ba: {{type: mlp, in_shape: [1, {size}, {size}], out_shape: [1, {size}, {size}], hidden: [16]}}
graph:
  x_ab:    g_ab(x_a)
  x_aba:   g_ba(x_ab)
  patches: reshape(x_a, shape=[4, 1, {half}, {half}])    # one example = 4 patches (K c p p)
  x_from_patches: reshape(patches, shape=[1, {size}, {size}])
  c:       one_hot(y_a, num_classes=10)
  loss:    l1(x_aba, x_a)
phases:
  - {{minimize: loss, update: [g_ab, g_ba]}}
sample: {{output: x_ab, extra: [x_aba]{grid}}}
train: {{steps: 2, checkpoint_every: 2, sample_every: 2, threads: 1, progress: false}}
"""

CAPTIONS = """\
name: given_text
seed: 0
data: {dataset: captions, base: digits, batch_size: 8}
components:
  net: {type: mlp, in_shape: [3, 8, 8], out_shape: [3, 8, 8], hidden: [8]}
graph:
  words:  text
  length: text_length
  x_same: net(x)
  loss:   mse(x_same, x)
phases:
  - {minimize: loss, update: [net]}
sample: {output: x_same}
"""


def spec_text(*, grid: bool = True, pad_to: int | None = None) -> str:
    size = pad_to or 8
    return TRANSLATION.format(pad=f", pad_to: {pad_to}" if pad_to else "", size=size, half=size // 2,
                              grid=", grid: [x_a, x_ab, x_aba]" if grid else "")


def write_png(path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Five 8x8 grey PNGs with known pixels, named so that name order is 0..4."""
    root = tmp_path_factory.mktemp("given")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 8, 8))
    for i, p in enumerate(pixels):
        write_png(root / "mine" / f"img_{i}.png", p)
    return root, pixels


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("given_run")
    path = root / "given_translation.yaml"
    path.write_text(spec_text())
    trained = lg.train(path, out=root / "run", evaluate=False)
    return lg.open_run(trained.path)


def in_range(pixels) -> torch.Tensor:
    """uint8 pixels -> the data's [-1, 1]."""
    return torch.as_tensor(np.asarray(pixels), dtype=torch.float32) / 255.0 * 2 - 1


def test_a_folder_is_a_batch_of_images_in_the_data_space_and_sets_n(run, images):
    root, pixels = images
    given = lg.parse_given([f"x_a={root / 'mine'}"], None, experiment=run.experiment)
    x_a = given["x_a"]
    assert x_a.shape == (5, 1, 8, 8) and x_a.dtype == torch.float32
    torch.testing.assert_close(x_a[:, 0], in_range(pixels), rtol=0, atol=1e-6)
    out = run.sample(5, given=given, outputs="all")
    assert list(out) == ["x_ab", "x_aba", "x_a"]
    with torch.no_grad():
        expected = run.experiment.modules["g_ab"](x_a)
    torch.testing.assert_close(out["x_ab"], expected)
    torch.testing.assert_close(out["x_a"], x_a)  # the grid's input row is the user's images
    torch.testing.assert_close(run.sample(5, given=given), out["x_ab"])  # default: the main output only


def test_cli_translates_a_folder_into_a_comparison_grid_npz_and_folder(run, images, tmp_path):
    root, pixels = images
    assert cli_main(["sample", str(run.path), "--given", f"x_a={root / 'mine'}/", "--out", str(tmp_path / "t.png")]) == 0
    with Image.open(tmp_path / "t.png") as im:
        # 3 rows (x_a, x_ab, x_aba) x 5 examples of 8x8 tiles enlarged to 32, 2-pixel separators
        assert im.size == (5 * 34 + 2, 3 * 34 + 2) and im.mode == "L"
        first = np.asarray(im)[2:34, 2:34]
    np.testing.assert_array_equal(first[::4, ::4], pixels[0])  # top-left cell: the first image as given
    assert cli_main(["sample", str(run.path), "--given", f"x_a={root / 'mine'}", "--out", str(tmp_path / "t.npz")]) == 0
    with np.load(tmp_path / "t.npz") as f:
        assert sorted(f.files) == ["samples", "x_a", "x_aba"]
        assert f["samples"].shape == (5, 1, 8, 8)
        np.testing.assert_allclose(f["x_a"][:, 0], in_range(pixels).numpy(), atol=1e-6)
    assert cli_main(["sample", str(run.path), "-n", "3", "--out", str(tmp_path / "folder")]) == 0
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == [
        "grid.png", "x_ab.npz", "x_ab.png", "x_aba.npz", "x_aba.png"]
    with np.load(tmp_path / "folder" / "x_aba.npz") as f:
        assert f["samples"].shape == (3, 1, 8, 8)


def test_one_example_is_repeated_and_batches_must_fit_n(run, images, tmp_path):
    root, pixels = images
    exp = run.experiment
    single = lg.parse_given([f"x_a={root / 'mine' / 'img_2.png'}"], 4, experiment=exp)["x_a"]
    assert single.shape == (4, 1, 8, 8) and all(torch.equal(single[i], single[0]) for i in range(4))
    torch.testing.assert_close(single[0, 0], in_range(pixels[2]), rtol=0, atol=1e-6)
    assert lg.parse_given([f"x_a={root / 'mine' / 'img_2.png'}"], None, experiment=exp)["x_a"].shape[0] == 64
    np.save(tmp_path / "one.npy", np.zeros((1, 8, 8), np.float64))
    one = lg.parse_given([f"x_a={tmp_path / 'one.npy'}"], 3, experiment=exp)["x_a"]
    assert one.shape == (3, 1, 8, 8) and one.dtype == torch.float32
    with pytest.raises(GivenError, match="holds 5 examples but -n is 3; leave out -n"):
        lg.parse_given([f"x_a={root / 'mine'}"], 3, experiment=exp)
    np.save(tmp_path / "two.npy", np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(GivenError, match="differ in size"):
        lg.parse_given([f"x_a={root / 'mine'}", f"x_b={tmp_path / 'two.npy'}"], None, experiment=exp)
    np.save(tmp_path / "bad.npy", np.zeros((2, 8, 9), np.float32))
    with pytest.raises(GivenError, match=r"shape \(2, 8, 9\).*shape \(1, 8, 8\)"):
        lg.parse_given([f"x_a={tmp_path / 'bad.npy'}"], None, experiment=exp)


def test_an_npz_gives_the_array_named_like_the_value_so_sample_output_feeds_back(run, images, tmp_path):
    root, pixels = images
    # `sample --out X.npz` writes the main output as 'samples' and the grid's input as 'x_a':
    # giving that file back as x_a takes the inputs, as written, not the translations
    assert cli_main(["sample", str(run.path), "--given", f"x_a={root / 'mine'}", "--out", str(tmp_path / "t.npz")]) == 0
    again = lg.parse_given([f"x_a={tmp_path / 't.npz'}"], None, experiment=run.experiment)["x_a"]
    torch.testing.assert_close(again[:, 0], in_range(pixels), rtol=0, atol=1e-6)
    np.savez(tmp_path / "only.npz", anything=np.zeros((2, 1, 8, 8), np.float32))  # one array: that one
    assert lg.parse_given([f"x_a={tmp_path / 'only.npz'}"], None, experiment=run.experiment)["x_a"].shape == (2, 1, 8, 8)
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 1, 8, 8)), b=np.ones((2, 1, 8, 8)))  # ambiguous: refused
    with pytest.raises(GivenError, match=r"holds the arrays a, b and none is called 'x_a' or 'samples'"):
        lg.parse_given([f"x_a={tmp_path / 'two.npz'}"], None, experiment=run.experiment)


def test_a_folder_of_patches_is_one_example(run, tmp_path):
    rng = np.random.default_rng(1)
    patches = rng.integers(0, 256, size=(4, 4, 4))
    for k, p in enumerate(patches):
        write_png(tmp_path / "patches" / f"p{k}.png", p)
    given = lg.parse_given([f"patches={tmp_path / 'patches'}"], 6, experiment=run.experiment)
    assert given["patches"].shape == (6, 4, 1, 4, 4)
    out = generate_outputs(run.experiment, 6, ["x_from_patches"], given=given)["x_from_patches"]
    expected = in_range(patches).reshape(1, 8, 8)
    for i in range(6):
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-6)


def test_numbers_fill_index_or_one_hot(run):
    exp = run.experiment
    given = lg.parse_given(["c=3", "y_a=7", "x_a=0.5"], 4, experiment=exp)
    assert torch.equal(given["c"], torch.nn.functional.one_hot(torch.full((4,), 3), 10).float())
    assert given["y_a"].dtype == torch.int64 and given["y_a"].tolist() == [7] * 4
    assert given["x_a"].shape == (4, 1, 8, 8) and (given["x_a"] == 0.5).all()
    with pytest.raises(GivenError, match="index 0..9"):
        lg.parse_given(["c=12"], 4, experiment=exp)


def test_wrong_sizes_unknown_names_and_missing_files_are_clear_errors(run, images, tmp_path):
    exp = run.experiment
    write_png(tmp_path / "big.png", np.zeros((10, 10)))
    with pytest.raises(GivenError, match=r"is 10x10 pixels but 'x_a' takes 8x8 images"):
        lg.parse_given([f"x_a={tmp_path / 'big.png'}"], None, experiment=exp)
    with pytest.raises(GivenError, match="did you mean 'x_ab'"):
        lg.parse_given(["x_abb=1"], None, experiment=exp)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        lg.parse_given([f"x_a={tmp_path / 'missing.png'}"], None, experiment=exp)
    with pytest.raises(GivenError, match="cannot encode text for 'x_a'.*no text encoders"):
        lg.parse_given(["x_a=a thick sneaker"], None, experiment=exp)
    with pytest.raises(GivenError, match="not images"):
        lg.parse_given([f"c={tmp_path / 'big.png'}"], None, experiment=exp)
    assert cli_main(["sample", str(run.path), "--given", f"x_a={tmp_path / 'big.png'}",
                     "--out", str(tmp_path / "x.png")]) == 2


def test_a_sweep_over_an_unknown_name_is_reported_as_the_sweep(run, tmp_path, capsys):
    assert cli_main(["sample", str(run.path), "--sweep", "c_trg=0,1", "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "--sweep c_trg: 'c_trg' is not a graph value or data field" in err and "--given" not in err


def test_an_unwritable_out_or_a_count_below_one_is_refused_before_sampling(run, tmp_path, capsys):
    assert cli_main(["sample", str(run.path), "--out", str(tmp_path / "s.gif")]) == 2
    assert "--out " + str(tmp_path / "s.gif") + ": write X.npz, X.png or a folder" in capsys.readouterr().err
    for count, why in (("0", "0: give 1 or more"), ("-2", "-2: give 1 or more"), ("many", "'many' is not a whole number")):
        with pytest.raises(SystemExit) as exc:  # argparse: usage and the reason, exit 2
            cli_main(["sample", str(run.path), "-n", count, "--out", str(tmp_path / "s.npz")])
        assert exc.value.code == 2 and why in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_images_of_the_native_size_are_padded_as_the_dataset_pads(tmp_path, images):
    root, pixels = images
    path = tmp_path / "padded.yaml"
    path.write_text(spec_text(pad_to=12))
    exp = prepare(lg.load(path), device="cpu")
    x_a = lg.parse_given([f"x_a={root / 'mine'}"], None, experiment=exp)["x_a"]
    assert x_a.shape == (5, 1, 12, 12)
    torch.testing.assert_close(x_a[:, 0, 2:10, 2:10], in_range(pixels), rtol=0, atol=1e-6)
    assert (x_a[:, :, :2] == -1).all() and (x_a[:, :, :, 10:] == -1).all()  # black background, in [-1, 1]
    # the padded size itself is accepted too, anything else names both sizes
    write_png(tmp_path / "ten.png", np.zeros((10, 10)))
    with pytest.raises(GivenError, match=r"takes 12x12 \(or 8x8, the data's size before padding"):
        lg.parse_given([f"x_a={tmp_path / 'ten.png'}"], None, experiment=exp)


def test_text_is_encoded_by_the_dataset(tmp_path, images):
    root, _ = images
    path = tmp_path / "given_text.yaml"
    path.write_text(CAPTIONS)
    exp = prepare(lg.load(path), device="cpu")
    vocabulary = exp.data.info["vocabulary"]
    given = lg.parse_given(["text=a thick red one"], 3, experiment=exp)
    assert set(given) == {"text", "text_length"}
    assert [vocabulary[i] for i in given["text"][0].tolist()] == ["a", "thick", "red", "one"]
    assert given["text_length"].tolist() == [4, 4, 4]
    out = generate_outputs(exp, 3, ["words", "length"], given=given)
    assert torch.equal(out["words"], given["text"]) and torch.equal(out["length"], given["text_length"])
    (tmp_path / "captions.txt").write_text("a green two\n\na thin red seven\n")
    lines = lg.parse_given([f"text={tmp_path / 'captions.txt'}"], None, experiment=exp)
    assert lines["text"].shape == (2, exp.data.info["max_caption_length"])
    assert lines["text_length"].tolist() == [3, 4]
    with pytest.raises(GivenError, match=r"unknown word 'thre'.*did you mean 'three'.*vocabulary: "):
        lg.parse_given(["text=a red thre"], 3, experiment=exp)
    # a grey PNG given for RGB images becomes three equal channels
    x = lg.parse_given([f"x={root / 'mine'}"], None, experiment=exp)["x"]
    assert x.shape == (5, 3, 8, 8) and torch.equal(x[:, 0], x[:, 2])


def test_extra_outputs_without_a_grid_are_written_beside_the_main_png(tmp_path):
    path = tmp_path / "extra.yaml"
    path.write_text(spec_text(grid=False))
    trained = lg.train(path, out=tmp_path / "run", evaluate=False)
    assert cli_main(["sample", str(trained.path), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").exists() and (tmp_path / "s_x_aba.png").exists()
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (2 * 34 + 2, 2 * 34 + 2)  # the main output's own 2x2 grid
    # extra and grid names are checked like every other name
    path.write_text(spec_text(grid=False).replace("extra: [x_aba]", "extra: [x_abaa], grid: [x_a, x_b, xab]"))
    with pytest.raises(SpecError) as err:
        prepare(lg.load(path), device="cpu")
    text = str(err.value)
    assert "sample.extra[0]: 'x_abaa' is not a graph value" in text and "did you mean 'x_aba'" in text
    assert "sample.grid[2]: 'xab' is not a graph value or data field" in text
