"""lvmgraph.data.fit: a component refusing the data's images is reported at the data entry with the
data settings that would fit, not as a dry-run failure deep in the graph."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lvmgraph.api as lg
from lvmgraph import ShapeMismatch, check_shape
from lvmgraph.data.fit import data_changes
from lvmgraph.spec.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
DCGAN = ROOT / "specs" / "dcgan_fashion_mnist.yaml"
PROGAN = ROOT / "specs" / "progan_fashion_mnist.yaml"
DIGITS_16 = ["data.dataset=digits", "data.pad_to=16"]  # 1x16x16 images for networks built for 1x32x32


def problems(spec: Path, overrides: list[str]):
    with pytest.raises(SpecError) as err:
        lg.validate(spec, overrides)
    return err.value.problems


def test_images_of_another_size_name_the_data_setting():
    (problem,) = problems(DCGAN, DIGITS_16)
    assert problem.path == ("data", "pad_to")
    assert problem.message == "images x are 1×16×16 but components.discriminator takes 1×32×32"
    assert problem.hint.startswith("set data.pad_to: 32, or change components.discriminator.in_shape: [1, 16, 16]")


def test_progan_takes_the_data_size_so_the_stages_are_what_no_longer_fit():
    # its networks take their image shape from the data (lvmgraph.data.fill): 16 px digits fit them,
    # and the stage list, which still ends at 32, is the problem, named with both fixes
    (problem,) = problems(PROGAN, DIGITS_16)
    assert problem.path == ("stages", 3, "resolution")
    assert problem.message == ("resolution 32 is not one that components 'generator' and 'discriminator' can grow "
                               "to ([4, 8, 16])")
    assert problem.hint == "end the stages at 16, the data's image size, or make the data's images 32 px " \
                           "(data.pad_to: 32)"


def test_a_mismatch_between_components_stays_a_graph_problem():
    # the data fits the discriminator; the generator draws 16x16 images it cannot take
    overrides = ["data.dataset=digits", "components.generator.out_shape=[1,16,16]",
                 "components.generator.channels=[16,8]"]
    found = problems(DCGAN, overrides)
    assert [p.path for p in found] == [("graph", "d_loss"), ("graph", "g_loss")]
    assert all("expects inputs of shape (batch, 1, 32, 32) but got (batch, 1, 16, 16)" in p.message for p in found)


def test_data_changes_only_suggests_what_the_dataset_can_deliver():
    padded = {"shape_settings": {"size": "pad_to", "min_size": 28}}
    assert data_changes(padded, (1, 32, 32), (1, 28, 28)) == [("pad_to", 32)]
    assert data_changes(padded, (1, 16, 16), (1, 28, 28)) == []  # padding cannot shrink images
    assert data_changes(padded, (3, 28, 28), (1, 28, 28)) == []  # nor colour them
    folders = {"shape_settings": {"size": "size", "channels": ["mode", {1: "grey", 3: "rgb"}]}}
    assert data_changes(folders, (1, 64, 64), (3, 128, 128)) == [("size", 64), ("mode", "grey")]
    assert data_changes({}, (1, 64, 64), (3, 128, 128)) == []


def test_shape_mismatch_carries_the_shapes_and_the_executor_names_the_component():
    with pytest.raises(ShapeMismatch) as err:
        check_shape(torch.zeros(2, 3, 8, 8), [1, 8, 8], what="a net", setting="in_shape")
    assert (err.value.expected, err.value.got, err.value.setting) == ((1, 8, 8), (3, 8, 8), "in_shape")
    exp = lg.validate(DCGAN, ["data.dataset=digits"])
    ex = exp.executor()
    ex.begin({"x": torch.zeros(2, 1, 16, 16)}, 0)
    with pytest.raises(Exception) as err:
        ex.evaluate(["d_loss"])
    assert isinstance(err.value.cause, ShapeMismatch) and err.value.cause.component == "discriminator"


def test_cyclegan_folders_name_size_and_mode(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder in ("trainA", "trainB", "testA", "testB"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    data = f"data={{dataset: image_folders, root: {tmp_path}, size: 40, value_range: [-1, 1], batch_size: 1}}"
    found = problems(ROOT / "specs" / "cyclegan_thin2thick.yaml", [data])
    assert [p.message for p in found] == ["images x_a are 3×40×40 but components.g_ab takes 1×32×32",
                                          "images x_b are 3×40×40 but components.g_ba takes 1×32×32"]
    assert all(p.path == ("data", "size") and p.hint.startswith("set data.size: 32 and data.mode: grey,")
               for p in found)
