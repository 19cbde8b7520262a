"""lvmgraph.data.fill: a component setting declared ``from_data`` may be left out of a spec; it is
filled from the loaded data before the component is built, checked by the component's own model,
recorded in the run's spec.yaml, and reported at the data setting when the component refuses it.
A third-party-style component registered inline shows the mechanism is not ProGAN's."""
from __future__ import annotations

import math
import types

import pytest
import torch
from pydantic import Field, model_validator
from torch import nn

import lvmgraph.api as lg
from lvmgraph import Params, check_shape, from_data, hookimpl
from lvmgraph.plugins import build_registry, make_plugin_manager, use_registry
from lvmgraph.plugins.describe import settings_of
from lvmgraph.spec.errors import SpecError


class PixelMapParams(Params):
    in_shape: list[int] | None = from_data("image_shape", description="image shape [c, h, w]")
    min_side: int = Field(1, description="the smallest image side the map accepts")

    @model_validator(mode="after")
    def _big_enough(self):
        if self.in_shape is not None and self.in_shape[-1] < self.min_side:
            raise ValueError(f"in_shape {self.in_shape}: images must be at least {self.min_side} px wide")
        return self


class PixelMap(nn.Module):
    """x (b c h w) -> x' (b c h w): one linear map over all pixels."""

    def __init__(self, *, in_shape, min_side: int = 1):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.linear = nn.Linear(math.prod(self.in_shape), math.prod(self.in_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, self.in_shape, what="pixel_map", setting="in_shape")
        return self.linear(x.flatten(1)).reshape(x.shape)


@pytest.fixture
def pixel_map():
    plugin = types.ModuleType("pixel_map_plugin")

    @hookimpl
    def register_components(register):
        register("pixel_map", PixelMap, params=PixelMapParams)

    plugin.register_components = register_components
    with use_registry(build_registry(make_plugin_manager(extra_plugins=[plugin]))):
        yield


SPEC = """\
name: filled
seed: 0
data: {dataset: digits, batch_size: 16}
components:
  net: {type: pixel_map}
graph:
  x_hat: net(x)
  loss: mse(x_hat, x)
phases:
  - {minimize: loss, update: [net], optimizer: {type: adam, lr: 1.0e-3}}
train: {steps: 2, log_every: 1, checkpoint_every: 2, progress: false}
"""


def write(tmp_path, text=SPEC):
    path = tmp_path / "filled.yaml"
    path.write_text(text)
    return path


def test_an_unset_setting_is_filled_from_the_data_recorded_and_rebuilt_from_the_run(tmp_path, pixel_map):
    path = write(tmp_path)
    exp = lg.validate(path)
    assert exp.modules["net"].in_shape == (1, 8, 8)  # digits: 1x8x8
    assert [(f.setting, f.fact, f.value, f.source) for f in exp.from_data["net"]] == \
        [("in_shape", "image_shape", [1, 8, 8], "the data's images x (1×8×8)")]
    run = lg.train(path, out=tmp_path / "run", evaluate=False)
    assert "in_shape:\n    - 1\n    - 8\n    - 8" in (run.path / "spec.yaml").read_text()
    reopened = lg.open_run(run.path)  # from spec.yaml, where the value is now written
    assert reopened.experiment.from_data == {} and reopened.experiment.modules["net"].in_shape == (1, 8, 8)
    padded = lg.validate(path, ["data.pad_to=12"])
    assert padded.modules["net"].in_shape == (1, 12, 12)  # follows the data


def test_a_written_value_wins_and_a_wrong_one_is_the_usual_data_misfit(tmp_path, pixel_map):
    exp = lg.validate(write(tmp_path), ["components.net.in_shape=[1, 8, 8]"])
    assert exp.from_data == {}
    with pytest.raises(SpecError) as info:
        lg.validate(write(tmp_path), ["components.net.in_shape=[1, 16, 16]"])
    assert "images x are 1×8×8 but components.net takes 1×16×16" in info.value.render()


def test_a_filled_value_the_component_refuses_is_reported_at_the_data_setting(tmp_path, pixel_map):
    with pytest.raises(SpecError) as info:
        lg.validate(write(tmp_path, SPEC.replace("{type: pixel_map}", "{type: pixel_map, min_side: 16}")))
    (problem,) = info.value.problems
    assert problem.path == ("data", "pad_to") and problem.line == 3
    assert problem.message == ("components.net takes its in_shape from the data's images x (1×8×8): "
                               "in_shape [1, 8, 8]: images must be at least 16 px wide")
    assert problem.hint == "change the images with data.pad_to, or set components.net.in_shape"


def test_data_without_images_cannot_fill_an_image_shape(tmp_path, pixel_map):
    with pytest.raises(SpecError) as info:
        lg.validate(write(tmp_path), ["data={dataset: toy2d, batch_size: 16}"])
    (problem,) = [p for p in info.value.problems if p.path == ("components", "net")]
    assert problem.message.startswith("in_shape is not set and cannot be taken from the data: the data has no "
                                      "images (fields x 2")
    assert problem.hint == "set components.net.in_shape"


def test_the_reference_shows_where_the_default_comes_from():
    settings = settings_of(PixelMapParams)
    assert settings["in_shape"]["from_data"] == "image_shape" and "from_data" not in settings["min_side"]
    with pytest.raises(ValueError, match="unknown data fact 'size'; known: image_shape"):
        from_data("size", description="")
