"""Progressive GAN parts: layers, the growing networks, the real-data op, the stage plan and its
validation, and the sliced Wasserstein distance."""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import lvmgraph.api as lg
from lvmgraph.spec.errors import SpecError
from lvmgraph.train.stages import Growable, StagePlan
from lvmgraph_progan import ProGANDiscriminator, ProGANGenerator, WidthRule, progressive_resize
from lvmgraph_progan.layers import EqualizedConv2d, EqualizedLinear, minibatch_stddev, pixel_norm
from lvmgraph_progan.swd import (SwdParams, descriptors, laplacian_pyramid, normalise, pyr_down, pyr_up,
                                 sliced_wasserstein)

ROOT = Path(__file__).resolve().parents[1]
CH = [16, 8, 8]  # resolutions 4, 8, 16


def generator(**kw):
    torch.manual_seed(0)
    return ProGANGenerator(in_shape=[8], out_shape=[1, 16, 16], channels=CH, **kw)


def discriminator(**kw):
    torch.manual_seed(1)
    return ProGANDiscriminator(in_shape=[1, 16, 16], channels=CH, **kw)


def blocky(x: torch.Tensor, r: int) -> torch.Tensor:
    """x (b c H H) averaged to r x r and repeated back: what a stage at r can show."""
    f = x.shape[-1] // r
    return F.avg_pool2d(x, f).repeat_interleave(f, -2).repeat_interleave(f, -1)


# ----------------------------------------------------------------------------- layers

def test_equalized_layers_scale_unit_gaussian_weights_at_run_time():
    torch.manual_seed(0)
    conv = EqualizedConv2d(4, 6, 3)
    x = torch.randn(2, 4, 5, 5)
    expected = F.conv2d(x, conv.weight * math.sqrt(2) / math.sqrt(4 * 9), conv.bias, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    lin = EqualizedLinear(10, 3, gain=1.0)
    assert torch.allclose(lin(torch.eye(10)), (lin.weight / math.sqrt(10)).T)
    # the stored weights are N(0, 1) (not pre-scaled), biases 0
    big = EqualizedConv2d(64, 64, 3)
    assert abs(big.weight.std().item() - 1.0) < 0.02 and torch.all(big.bias == 0)


def test_pixel_norm_gives_every_pixel_unit_rms_over_channels():
    x = torch.randn(3, 5, 4, 4) * torch.rand(3, 1, 4, 4) * 10
    rms = pixel_norm(x).pow(2).mean(dim=1)
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-4)


def test_minibatch_stddev_appends_the_group_std_as_a_constant_map():
    x = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    # groups as in the paper's code: samples i and i + 2, i + 4, i + 6 (reshape to (4, 2, ...))
    for m in range(2):
        members = x[m::2]
        want = members.std(dim=0, unbiased=False).mean()
        assert torch.allclose(out[m::2, 3], want.expand(4, 2, 2), atol=1e-4)
    # identical samples: no spread, the feature is ~0
    same = minibatch_stddev(torch.ones(4, 2, 3, 3))
    assert same[:, 2].abs().max() < 1e-3
    # a batch not divisible by the group size uses the largest divisor (here 3 of 6)
    assert minibatch_stddev(torch.randn(6, 1, 1, 1), group_size=4).shape == (6, 2, 1, 1)


# ----------------------------------------------------------------------------- networks

def test_networks_implement_the_growable_protocol_with_cumulative_parameters():
    for net in (generator(), discriminator()):
        assert isinstance(net, Growable) and net.resolutions == (4, 8, 16)
        sets = [set(map(id, net.stage_parameters(r))) for r in net.resolutions]
        assert sets[0] < sets[1] < sets[2] == set(map(id, net.parameters()))
        # built at full size: before a stage plan sets them, they run at 16 x 16 with alpha 1
        assert int(net.resolution) == 16 and float(net.alpha) == 1.0
        assert {"resolution", "alpha"} <= {k for k, _ in net.named_buffers()}


def test_generator_draws_at_the_stage_resolution_and_fades_in_linearly():
    g = generator()
    z = torch.randn(5, 8)
    for r in (4, 8, 16):
        g.set_stage(r, 1.0)
        x = g(z)
        assert x.shape == (5, 1, 16, 16)
        assert torch.allclose(x, blocky(x, r), atol=1e-6), f"stage {r} shows detail finer than {r} x {r}"
    g.set_stage(4, 1.0)
    old = g(z)
    g.set_stage(8, 0.0)
    assert torch.allclose(g(z), old, atol=1e-6)  # alpha 0: the new level is invisible
    g.set_stage(8, 1.0)
    new = g(z)
    assert not torch.allclose(new, old, atol=1e-3)
    g.set_stage(8, 0.25)
    assert torch.allclose(g(z), 0.75 * old + 0.25 * new, atol=1e-5)


def test_only_the_parameters_of_the_reached_stages_get_gradients():
    for net, inp in ((generator(), torch.randn(4, 8)), (discriminator(), torch.randn(4, 1, 16, 16))):
        net.set_stage(8, 0.5)
        net(inp).sum().backward()
        active = set(map(id, net.stage_parameters(8)))
        for p in net.parameters():
            assert (p.grad is not None) == (id(p) in active)


def test_discriminator_sees_only_the_stage_resolution_and_fades_in_linearly():
    d = discriminator()
    x = torch.randn(4, 1, 16, 16)
    d.set_stage(8, 1.0)
    assert torch.allclose(d(x), d(blocky(x, 8)), atol=1e-5)
    assert not torch.allclose(d(x), d(blocky(x, 4)), atol=1e-4)
    d.set_stage(4, 1.0)
    old = d(x)
    d.set_stage(8, 0.0)
    assert torch.allclose(d(x), old, atol=1e-5)
    d.set_stage(8, 1.0)
    new = d(x)
    d.set_stage(8, 0.5)
    # the blend is on features before the shared 4x4 block, so check the ends and that it moves
    mid = d(x)
    assert not torch.allclose(mid, old, atol=1e-5) and not torch.allclose(mid, new, atol=1e-5)


def test_minibatch_stddev_makes_a_score_depend_on_the_other_samples_of_its_group():
    x = torch.randn(4, 1, 16, 16)
    y = x.clone()
    y[3] += 1.0
    with_std, without = discriminator(), discriminator(mbstd_group=0)
    assert not torch.allclose(with_std(x)[0], with_std(y)[0])
    assert torch.allclose(without(x)[0], without(y)[0])


def test_bad_sizes_are_spec_errors_at_the_component_naming_the_fix(tmp_path):
    path = write_spec(tmp_path, ["{resolution: 4, stable_steps: 2}"])
    with pytest.raises(SpecError) as info:
        lg.validate(path, ["components.generator.channels=[8, 8]", "components.discriminator.in_shape=[1, 28, 28]"])
    text = info.value.render()
    assert "components.generator: Value error, channels has 2 entries but out_shape [1, 16, 16] needs 3, one per " \
           "resolution 4, 8, 16" in text, text
    assert "components.discriminator: Value error, in_shape [1, 28, 28]: images must be square with a side that " \
           "is a power of 2 and at least 4" in text, text


def test_the_width_rule_gives_the_papers_widths_and_builds_what_the_same_list_builds():
    sizes = [4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert WidthRule().widths(sizes) == [512, 512, 512, 512, 256, 128, 64, 32, 16]  # the paper's table 2
    fashion = WidthRule(fmap_base=128, fmap_max=64)
    assert fashion.widths(sizes[:5]) == [64, 32, 16, 8, 4]
    assert WidthRule(fmap_base=128, fmap_max=64, fmap_min=8).widths(sizes[:5]) == [64, 32, 16, 8, 8]
    # a rule and the list it gives build the same network, weights drawn in the same order
    for make, shape in ((ProGANGenerator, {"in_shape": [8], "out_shape": [1, 32, 32]}),
                        (ProGANDiscriminator, {"in_shape": [1, 32, 32]})):
        torch.manual_seed(0)
        by_rule = make(**shape, channels=fashion).state_dict()
        torch.manual_seed(0)
        by_list = make(**shape, channels=[64, 32, 16, 8]).state_dict()
        assert list(by_rule) == list(by_list) and all(torch.equal(by_rule[k], by_list[k]) for k in by_rule)


FROM_DATA = ["components.generator.out_shape=null", "components.discriminator.in_shape=null",
             "components.generator.channels={fmap_base: 32, fmap_max: 16}",
             "components.discriminator.channels={fmap_base: 32, fmap_max: 16}"]


def test_unset_image_shapes_come_from_the_data_and_are_recorded_in_the_resolved_spec(tmp_path):
    path = write_spec(tmp_path, ["{resolution: 4, stable_steps: 1}", "{resolution: 8, fade_steps: 1, stable_steps: 1}",
                                 "{resolution: 16, fade_steps: 1, stable_steps: 1}"])
    exp = lg.validate(path, FROM_DATA)
    for name in ("generator", "discriminator"):
        net = exp.modules[name]
        assert net.resolutions == (4, 8, 16) and net.widths == [16, 8, 4]  # the rule at the data's size
        (filled,) = exp.from_data[name]
        assert filled.value == [1, 16, 16] and filled.source == "the data's images x (1×16×16)"
    resolved = exp.loaded.resolved()["components"]
    assert resolved["generator"]["out_shape"] == resolved["discriminator"]["in_shape"] == [1, 16, 16]
    assert lg.validate(path).from_data == {}  # a shape written in the spec wins: nothing is filled


@pytest.mark.parametrize("overrides, lines, where, message, hint", [
    (["data.pad_to=12"], ["{resolution: 4, stable_steps: 2}"], "data.pad_to",
     "components.generator takes its out_shape from the data's images x (1×12×12): out_shape [1, 12, 12]: images "
     "must be square with a side that is a power of 2 and at least 4",
     "change the images with data.pad_to, or set components.generator.out_shape"),
    ([], ["{resolution: 4, stable_steps: 2}", "{resolution: 8, fade_steps: 1, stable_steps: 2}"],
     "stages[1].resolution", "the stages end at 8 but components 'generator' and 'discriminator' grow to 16, the "
                             "data's image size, so their levels above 8 would never train",
     "add stages up to 16, or make the data's images 8 px (data.pad_to: 8)"),
    ([], ["{resolution: 4, stable_steps: 2}", "{resolution: 8, fade_steps: 1, stable_steps: 2}",
          "{resolution: 16, fade_steps: 1, stable_steps: 2}", "{resolution: 32, fade_steps: 1, stable_steps: 2}"],
     "stages[3].resolution", "resolution 32 is not one that components 'generator' and 'discriminator' can grow "
                             "to ([4, 8, 16])",
     "end the stages at 16, the data's image size, or make the data's images 32 px (data.pad_to: 32)"),
    ([], ["{resolution: 4, stable_steps: 2}", "{resolution: 12, fade_steps: 1, stable_steps: 2}",
          "{resolution: 16, fade_steps: 1, stable_steps: 2}"],
     "stages[1].resolution", "resolution 12 is not one that components 'generator' and 'discriminator' can grow "
                             "to ([4, 8, 16])", "use resolutions from [4, 8, 16]"),
    (["data={dataset: toy2d, batch_size: 16}"], ["{resolution: 4, stable_steps: 2}"], "components.generator",
     "out_shape is not set and cannot be taken from the data: the data has no images (fields x 2",
     "set components.generator.out_shape"),
])
def test_data_and_plans_that_do_not_fit_are_refused_at_the_setting_to_change(tmp_path, overrides, lines, where,
                                                                             message, hint):
    with pytest.raises(SpecError) as info:
        lg.validate(write_spec(tmp_path, lines), [*FROM_DATA, *overrides])
    found = [p for p in info.value.problems if message in p.message]
    assert found and found[0].hint == hint and where in found[0].render(), info.value.render()
    assert found[0].file  # a file and line, or `--set` for an override


def test_a_misspelt_width_rule_is_named_with_did_you_mean(tmp_path):
    with pytest.raises(SpecError) as info:
        lg.load(write_spec(tmp_path, ["{resolution: 4, stable_steps: 2}"]),
                ["components.generator.channels={fmap_bse: 64}", "components.discriminator.channels=5"])
    assert [(p.path, p.message, p.hint) for p in info.value.problems] == [
        (("components", "generator", "channels", "fmap_bse"), "unknown setting 'fmap_bse'",
         "did you mean 'fmap_base'?"),
        (("components", "discriminator", "channels"), "Input should be a valid list", None)]


# ----------------------------------------------------------------------------- the real-data op

def test_progressive_resize_averages_down_blends_and_repeats_up():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    two = progressive_resize(x, resolution=2.0)
    assert torch.equal(two[0, 0, :2, :2], torch.full((2, 2), 2.5))  # mean of 0, 1, 4, 5
    assert torch.equal(two, blocky(x, 2))
    one = blocky(x, 1)
    assert torch.allclose(progressive_resize(x, resolution=2.0, alpha=0.0), one)
    assert torch.allclose(progressive_resize(x, resolution=2.0, alpha=0.25), 0.75 * one + 0.25 * two)
    assert torch.equal(progressive_resize(x), x)  # an unbound schedule: full resolution
    assert torch.allclose(progressive_resize(x, resolution=4.0, alpha=0.5), 0.5 * x + 0.5 * blocky(x, 2))
    with pytest.raises(ValueError, match="does not divide"):
        progressive_resize(x, resolution=3.0)
    with pytest.raises(ValueError, match="alpha"):
        progressive_resize(x, resolution=2.0, alpha=1.5)


# ----------------------------------------------------------------------------- the stage plan

def stages(*entries):
    from lvmgraph.spec.schema import StageSpec
    return [StageSpec(**e) for e in entries]


def test_stage_plan_turns_images_into_steps_and_gives_alpha_and_batch_per_step():
    plan = StagePlan(stages({"resolution": 4, "stable_images": 100},
                            {"resolution": 8, "fade_images": 64, "stable_steps": 2, "batch_size": 16},
                            {"resolution": 16, "fade_steps": 2, "stable_steps": 1}), default_batch_size=32)
    # 100 images at batch 32 -> 4 steps (every image shown); 64 at 16 -> 4
    assert [(s.start, s.fade, s.stable, s.batch_size) for s in plan.stages] == [(0, 0, 4, 32), (4, 4, 2, 16),
                                                                               (10, 2, 1, 32)]
    assert plan.total == 13
    got = [(plan.resolution_at(t), plan.alpha_at(t), plan.at(t).batch_size) for t in range(14)]
    assert got == [(4, 1.0, 32)] * 4 + [(8, 0.0, 16), (8, 0.25, 16), (8, 0.5, 16), (8, 0.75, 16), (8, 1.0, 16),
                                        (8, 1.0, 16), (16, 0.0, 32), (16, 0.5, 32), (16, 1.0, 32), (16, 1.0, 32)]


SPEC = """\
name: progan_tiny
extends: family:progan
data: {{dataset: digits, pad_to: 16, value_range: [-1, 1], batch_size: 16}}
components:
  generator:     {{in_shape: [8], out_shape: [1, 16, 16], channels: [16, 8, 8]}}
  discriminator: {{in_shape: [1, 16, 16], channels: [16, 8, 8]}}
  noise:         {{shape: [8]}}
stages:
{stages}
train: {{progress: false}}
"""


def write_spec(tmp_path, entries: list[str], name="spec.yaml") -> str:
    """The tiny spec with one `stages:` line per entry (flow mappings), from line 9 on."""
    path = tmp_path / name
    path.write_text(SPEC.format(stages="\n".join(f"  - {e}" for e in entries)))
    return str(path)


def test_train_steps_default_to_the_plan_and_an_explicit_value_wins(tmp_path):
    path = write_spec(tmp_path, ["{resolution: 4, stable_steps: 3}",
                                 "{resolution: 8, fade_images: 40, stable_steps: 2}"])
    assert lg.load(path).spec.train.steps == 3 + 3 + 2
    assert lg.load(path, ["train.steps=20"]).spec.train.steps == 20


@pytest.mark.parametrize("lines, message", [
    (["{resolution: 8, stable_steps: 2}", "{resolution: 4, fade_steps: 1, stable_steps: 2}"],
     "stages[1].resolution 4 must be larger than stages[0]'s 8: list the stages from the smallest resolution up"),
    (["{resolution: 4, fade_steps: 2, stable_steps: 2}"],
     "stages[0] (resolution 4) is the first stage: there is nothing to fade in from; remove its fade_images"),
    (["{resolution: 4, stable_steps: 2}", "{resolution: 8, stable_steps: 2}"],
     "stages[1] (resolution 8) needs fade_images: N or fade_steps: N (0 switches to it at once)"),
    (["{resolution: 4, stable_steps: 2, stable_images: 64}"],
     "stages[0]: Value error, give stable_images or stable_steps, not both"),
    (["{resolution: 4}"],
     "stages[0]: Value error, say how long the stage stabilises: stable_images: N (images shown) or stable_steps: N"),
    (["{resolution: 4, stable_steps: 0}"],
     "stages[0] (resolution 4) lasts no step: give it stable_images or stable_steps > 0, or remove it"),
    (["{resolution: 4, stable_step: 2}"],
     "stages[0].stable_step: unknown setting 'stable_step' — did you mean 'stable_steps'?"),
])
def test_bad_stage_lists_fail_validation_with_location_and_fix(tmp_path, lines, message):
    path = write_spec(tmp_path, lines)
    with pytest.raises(SpecError) as info:
        lg.load(path)
    text = info.value.render()
    assert message in text, text
    assert re.search(r"spec.yaml: 1 problem\n  line (8|9) ", text), text  # `stages:` is line 8, its first entry 9


@pytest.mark.parametrize("lines, where, message", [
    (["{resolution: 4, stable_steps: 2}", "{resolution: 8, fade_steps: 1, stable_steps: 2}",
      "{resolution: 32, fade_steps: 1, stable_steps: 2}"],
     "line 11  stages[2].resolution", "resolution 32 is not one that components 'generator' and 'discriminator' can "
                                       "grow to ([4, 8, 16]) — use resolutions from [4, 8, 16] or change their "
                                       "settings"),
    (["{resolution: 4, stable_steps: 2}", "{resolution: 16, fade_steps: 1, stable_steps: 2}"],
     "line 10  stages[1].resolution", "resolution 16 skips 8, which components 'generator' and 'discriminator' grow "
                                       "through — add a stage at 8 before it"),
    (["{resolution: 4, stable_steps: 2, batch_size: 5000}"],
     "line 9   stages[0].batch_size", "batch size 5000 of stages[0] is larger than the training set"),
])
def test_stage_lists_that_do_not_fit_the_components_or_data_are_refused_by_validation(tmp_path, lines, where,
                                                                                     message):
    with pytest.raises(SpecError) as info:
        lg.validate(write_spec(tmp_path, lines))  # what `lvmgraph validate` runs: no training needed
    text = info.value.render()
    assert where in text and message in text, text


def test_stage_schedules_need_a_stage_plan(tmp_path):
    path = tmp_path / "no_stages.yaml"
    path.write_text(SPEC.replace("stages:\n{stages}\n", "").format())
    with pytest.raises(SpecError, match="schedule 'fade' follows the stage plan, but the spec has no stages: "
                                        "section — add stages"):
        lg.validate(str(path), ["stages=null"])


def test_stages_without_a_growing_component_are_refused(tmp_path):
    shutil.copy(ROOT / "specs" / "aae_uniform.yaml", tmp_path / "aae_uniform.yaml")
    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\nextends: aae_uniform.yaml\nstages: [{resolution: 4, stable_steps: 2}]\n")
    with pytest.raises(SpecError, match="the spec has stages: but none of its components can grow"):
        lg.validate(str(path))


# ----------------------------------------------------------------------------- sliced Wasserstein distance

def test_laplacian_pyramid_filters_match_cv2_and_the_pyramid_sums_back_to_the_image():
    const = torch.full((1, 1, 8, 8), 3.0)
    assert torch.allclose(pyr_down(const), torch.full((1, 1, 4, 4), 3.0))  # the kernel sums to 1
    assert torch.allclose(pyr_up(const), torch.full((1, 1, 16, 16), 3.0))  # 4x kernel over a quarter of the taps
    # an impulse in the middle: pyrDown's 5x5 binomial weights, / 256, at the kept pixel
    impulse = torch.zeros(1, 1, 8, 8)
    impulse[0, 0, 4, 4] = 256.0
    assert pyr_down(impulse)[0, 0, 2, 2] == 36.0 and pyr_down(impulse)[0, 0, 1, 2] == 6.0
    x = torch.rand(2, 1, 32, 32)
    band, low = laplacian_pyramid(x, 2)
    assert band.shape == (2, 1, 32, 32) and low.shape == (2, 1, 16, 16)
    assert torch.allclose(band + pyr_up(low), x, atol=1e-5)


def test_sliced_wasserstein_is_zero_for_equal_sets_and_the_shift_in_one_dimension():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 1)
    # in 1-D every direction is +-1, so the distance is W1: a shift by 3 costs exactly 3
    same, shifted = sliced_wasserstein(a, [a.clone(), a + 3.0], repeats=2, directions=8, generator=g)
    assert same == 0.0 and shifted == pytest.approx(3.0, rel=1e-5)
    b = torch.randn(500, 6, generator=g)
    near, far = sliced_wasserstein(b, [torch.randn(500, 6, generator=g), 2 * torch.randn(500, 6, generator=g)],
                                   repeats=1, directions=32, generator=g)
    assert near < far


def test_descriptors_are_normalised_patches_and_rank_real_images_above_corrupted_ones():
    from lvmgraph_datasets.digits import load_digits
    data = load_digits(pad_to=16, value_range=(-1.0, 1.0))
    s = SwdParams(n=256, patches_per_image=16, min_resolution=16)
    g = torch.Generator().manual_seed(0)

    def desc(x):
        return descriptors([x[:256]], [16], s, (-1.0, 1.0), g)[0]

    test = desc(data.test["x"])
    assert test.shape == (256 * 16, 49)
    assert torch.allclose(test.mean(), torch.tensor(0.0), atol=1e-5) and abs(test.std(unbiased=False) - 1) < 1e-4
    real, blurred, noisy = sliced_wasserstein(
        test, [desc(data.train["x"]), desc(blocky(data.train["x"], 4)),
               desc((data.train["x"] + 0.5 * torch.randn(data.train["x"].shape, generator=g)).clamp(-1, 1))],
        repeats=1, directions=64, generator=g)
    assert real < blurred and real < noisy
    assert normalise(torch.ones(3, 1, 2, 2)).abs().max() == 0  # a constant set: centred, no division by 0
