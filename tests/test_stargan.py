"""StarGAN: the two-headed discriminator, the label-conditioned generator (and why it zero-pads),
the template's losses against hand computation, where gradients go in each phase, and a tiny
StarGAN on 8x8 digits rendered in 3 synthetic domains (x, -x, x/2; built in this file) that
learns: D's domain classifier gets the real images right and G's translations take on the
target domain's background level; sampling with `--given c_trg=k`; resume equals uninterrupted."""
from __future__ import annotations

import math
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_same
from pydantic import ValidationError
from torch import nn

import lvmgraph.api as lg
from lvmgraph import DatasetBundle, ShapeMismatch, hookimpl
from lvmgraph.experiment import prepare
from lvmgraph.plugins.manager import build_registry, make_plugin_manager, use_registry
from lvmgraph.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from lvmgraph_core.losses import bce_logits, cross_entropy
from lvmgraph_cyclegan import ResnetGenerator
from lvmgraph_datasets import load_digits
from lvmgraph_stargan import (StarGANDiscriminator, StarGANDiscriminatorParams, StarGANGenerator,
                              StarGANGeneratorParams, attribute_accuracy, tile_label)
from lvmgraph_stargan.generator import ConditionalInstanceNorm


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- discriminator

@pytest.mark.parametrize("shape, n_layers, patch_map", [
    ((3, 32, 32), 3, (4, 4)), ((1, 8, 8), 2, (2, 2)), ((3, 128, 128), 6, (2, 2)), ((3, 64, 32), 4, (4, 2)),
])
def test_discriminator_has_a_patch_map_and_a_domain_head(shape, n_layers, patch_map):
    d = StarGANDiscriminator(in_shape=shape, c_dim=5, width=4, n_layers=n_layers)
    out = d(torch.randn(3, *shape))
    assert set(out) == {"src", "cls"}
    assert out["src"].shape == (3, 1, *patch_map) and d.map_shape == (1, *patch_map)
    assert out["cls"].shape == (3, 5)
    assert d.cls.kernel_size == patch_map and d.cls.padding == (0, 0)  # one kernel over the whole final map


def test_discriminator_layers_follow_the_paper():
    d = StarGANDiscriminator(in_shape=[3, 128, 128], c_dim=5, width=2, n_layers=6)
    convs = [m for m in d.trunk if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [2, 4, 8, 16, 32, 64]  # 64 ... 2048 at the paper's width 64
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    slopes = [m.negative_slope for m in d.trunk if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.01] * 6
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in d.modules())  # WGAN-GP: no norm
    assert d.src.kernel_size == (3, 3) and d.src.out_channels == 1
    # no squashing: the critic's scores and the classifier's logits are unbounded
    big = StarGANDiscriminator(in_shape=[1, 8, 8], c_dim=2, width=4, n_layers=2)
    with torch.no_grad():
        big.src.weight.mul_(1e4)
        big.cls.weight.mul_(1e4)
    out = big(torch.randn(4, 1, 8, 8))
    assert out["src"].abs().max() > 1 and out["cls"].abs().max() > 1
    capped = StarGANDiscriminator(in_shape=[3, 32, 32], c_dim=2, width=8, n_layers=3, max_width=16)
    assert [m.out_channels for m in capped.trunk if isinstance(m, nn.Conv2d)] == [8, 16, 16]


def test_discriminator_size_errors_name_the_setting():
    with pytest.raises(ValidationError, match=r"divisible by 8 \(2 \*\* n_layers.*set n_layers: 1"):
        StarGANDiscriminatorParams(in_shape=[3, 30, 30], c_dim=2, n_layers=3)
    with pytest.raises(ValidationError, match=r"divisible by 64.*set n_layers: 5"):
        StarGANDiscriminatorParams(in_shape=[3, 32, 32], c_dim=2)  # the paper's 6 layers need 64 px or more
    d = StarGANDiscriminator(in_shape=[1, 8, 8], c_dim=2, width=4, n_layers=2)
    with pytest.raises(ShapeMismatch, match=r"stargan_discriminator 'in_shape'.*change `in_shape` to \[3, 8, 8\]"):
        d(torch.randn(2, 3, 8, 8))


# ----------------------------------------------------------------------------- generator

def test_generator_layers_follow_the_paper():
    g = StarGANGenerator(in_shape=[3, 128, 128], c_dim=5, width=4, n_blocks=6)
    assert [s[0] for s in g.stages] == ["stem", "down", "down"] + ["residual"] * 6 + ["up", "up", "out"]
    # 64 -> 128 -> 256 ... at the paper's width 64: here 4, 8, 16
    assert [s[1:] for s in g.stages] == [(4, 128, 128), (8, 64, 64), (16, 32, 32)] + [(16, 32, 32)] * 6 + [
        (8, 64, 64), (4, 128, 128), (3, 128, 128)]
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs[0].in_channels == 3 + 5 and convs[0].kernel_size == (7, 7)  # image + replicated label
    assert all(c.padding_mode == "zeros" for c in convs)
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 1 + 2 + 2 * 6 + 2 and all(n.affine and not n.track_running_stats for n in norms)
    y = g(torch.randn(2, 3, 128, 128), torch.eye(5)[:2])
    assert y.shape == (2, 3, 128, 128) and y.abs().max() <= 1  # tanh


def test_the_label_is_replicated_over_the_image_and_concatenated():
    c = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])
    x = torch.randn(2, 1, 4, 6)
    tiled = tile_label(c, x)
    assert tiled.shape == (2, 3, 4, 6)
    assert torch.equal(tiled, c[:, :, None, None].repeat(1, 1, 4, 6))
    g = StarGANGenerator(in_shape=[1, 8, 8], c_dim=3, width=4, n_blocks=1)
    seen = {}
    g.net[0].register_forward_hook(lambda module, inputs, output: seen.update(input=inputs[0]))
    g(torch.randn(2, 1, 8, 8), c)
    assert seen["input"].shape == (2, 4, 8, 8)
    for i in range(2):  # channels 1.. hold each label entry at every pixel
        for k in range(3):
            assert torch.all(seen["input"][i, 1 + k] == c[i, k])


def test_the_output_depends_on_the_label_and_reflection_padding_would_erase_it():
    """Why the generator zero-pads: a constant label channel, reflection-padded and convolved, is a
    constant map, which the instance norm after the first conv subtracts away."""
    x = torch.randn(4, 1, 8, 8)
    a, b = torch.eye(3)[[0] * 4], torch.eye(3)[[2] * 4]
    g = StarGANGenerator(in_shape=[1, 8, 8], c_dim=3, width=8, n_blocks=1)
    assert (g(x, a) - g(x, b)).abs().mean() > 1e-2
    reflect = ResnetGenerator(in_shape=[4, 8, 8], out_shape=[1, 8, 8], width=8, n_blocks=1)
    with torch.no_grad():
        torch.testing.assert_close(reflect(torch.cat([x, tile_label(a, x)], 1)),
                                   reflect(torch.cat([x, tile_label(b, x)], 1)), atol=1e-5, rtol=0)


def label_effect(g: StarGANGenerator, x: torch.Tensor) -> float:
    """Mean |G(x, domain 0) - G(x, domain 4)|: how much the label alone moves the output."""
    a, b = torch.eye(6)[[0] * len(x)], torch.eye(6)[[4] * len(x)]
    with torch.no_grad():
        return (g(x, a) - g(x, b)).abs().mean().item()


def test_adain_conditions_every_norm_and_moves_the_output_far_more_than_concatenation():
    """Concatenated, a constant label channel reaches G only through the zero-padded border (the
    instance norm removes the rest); as every norm's scale and shift it acts everywhere."""
    g = StarGANGenerator(in_shape=[3, 32, 32], c_dim=6, width=8, n_blocks=2, condition="adain")
    assert g.net[0].in_channels == 3  # no label channels
    norms = [m for m in g.modules() if isinstance(m, (nn.InstanceNorm2d, ConditionalInstanceNorm))]
    conditional = [m for m in g.modules() if isinstance(m, ConditionalInstanceNorm)]
    assert len(conditional) == 1 + 2 + 2 * 2 + 2 and all(not m.norm.affine for m in conditional)
    assert len(norms) == 2 * len(conditional)  # each wraps one parameter-free instance norm
    # a known input: per-sample, per-channel standardisation, then domain k's column of scale and shift
    cin = conditional[0]
    h, c = torch.randn(2, 8, 5, 5), torch.eye(6)[[1, 3]]
    mean, var = h.mean((2, 3), keepdim=True), h.var((2, 3), unbiased=False, keepdim=True)
    scale, shift = cin.scale.weight.T[[1, 3]], cin.shift.weight.T[[1, 3]]
    expected = (h - mean) / torch.sqrt(var + cin.norm.eps) * (1 + scale)[:, :, None, None] + shift[:, :, None, None]
    torch.testing.assert_close(cin(h, c), expected)
    for seed in range(3):
        torch.manual_seed(seed)
        x = torch.randn(4, 3, 32, 32)
        concat = label_effect(StarGANGenerator(in_shape=[3, 32, 32], c_dim=6, width=8, n_blocks=2), x)
        adain = label_effect(StarGANGenerator(in_shape=[3, 32, 32], c_dim=6, width=8, n_blocks=2,
                                              condition="adain"), x)
        assert adain > 2 * concat, (seed, adain, concat)


def test_adain_generator_learns_a_per_domain_output_level():
    """The label-driven scales and shifts get gradients and learn: G(x, k) -> level k everywhere."""
    torch.manual_seed(0)
    g = StarGANGenerator(in_shape=[1, 8, 8], c_dim=3, width=8, n_blocks=1, condition="adain")
    opt = torch.optim.Adam(g.parameters(), lr=3e-3)
    levels = torch.tensor(LEVELS)

    def error() -> torch.Tensor:
        x, k = torch.randn(24, 1, 8, 8), torch.arange(24) % 3
        return (g(x, torch.eye(3)[k]) - levels[k].view(-1, 1, 1, 1)).abs().mean()

    with torch.no_grad():
        before = error().item()
    for _ in range(60):
        opt.zero_grad()
        error().backward()
        opt.step()
    with torch.no_grad():
        after = error().item()
    assert after < 0.25 * before, (before, after)
    assert all(m.scale.weight.grad.abs().sum() > 0 for m in g.modules() if isinstance(m, ConditionalInstanceNorm))


def test_wrong_labels_and_sizes_are_explained():
    g = StarGANGenerator(in_shape=[1, 8, 8], c_dim=3, width=4, n_blocks=1)
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ShapeMismatch, match=r"one_hot\(domain, 3\)"):
        g(x, torch.tensor([0, 2]))
    with pytest.raises(ShapeMismatch, match=r"c_dim is 3.*change `c_dim` to 5"):
        g(x, torch.zeros(2, 5))
    with pytest.raises(ShapeMismatch, match=r"3 labels for 2 images"):
        g(x, torch.zeros(3, 3))
    with pytest.raises(ShapeMismatch, match=r"stargan_generator 'in_shape'"):
        g(torch.randn(2, 3, 8, 8), torch.zeros(2, 3))
    with pytest.raises(ValidationError, match=r"divisible by 4.*data.pad_to: 32.*n_downsampling: 1"):
        StarGANGeneratorParams(in_shape=[3, 30, 30], c_dim=2)
    with pytest.raises(ValidationError, match=r"too small for n_downsampling=2"):
        StarGANGeneratorParams(in_shape=[3, 4, 4], c_dim=2)
    with pytest.raises(ValidationError):
        StarGANGeneratorParams(in_shape=[3, 32, 32], c_dim=0)
    with pytest.raises(ValidationError, match=r"adain modulates the instance norms.*set norm: instance"):
        StarGANGeneratorParams(in_shape=[3, 32, 32], c_dim=2, condition="adain", norm="batch")
    with pytest.raises(ValidationError, match="condition"):
        StarGANGeneratorParams(in_shape=[3, 32, 32], c_dim=2, condition="film")


# ----------------------------------------------------------------------------- losses on known inputs

def test_classification_losses_on_hand_computed_values():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])
    # softmax CE with one-hot domains (D on real images: indices; G on fakes: one-hot targets)
    expected = -(math.log(3 / 4) + math.log(4 / 5)) / 2
    assert cross_entropy(logits, torch.tensor([1, 0])).item() == pytest.approx(expected)
    assert cross_entropy(logits, torch.eye(2)[[1, 0]]).item() == pytest.approx(expected)
    # the paper's multi-hot loss: BCE summed over attributes, averaged over the batch
    target = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    by_hand = (-math.log(0.5) - math.log(1 / 4) - math.log(4 / 5) - math.log(0.5)) / 2
    assert bce_logits(logits, target, reduction="sum").item() == pytest.approx(by_hand)
    # attribute_accuracy: decisions logit > 0 against the bits; 0 logits read as absent
    assert attribute_accuracy(logits, target).item() == pytest.approx(1 / 4)  # only [1, 0]: ln 4 > 0
    with pytest.raises(ValueError, match="same shape"):
        attribute_accuracy(logits, target[:, :1])


# ----------------------------------------------------------------------------- the template on synthetic domains

SIGNS = (1.0, -1.0, 0.5)  # domain k shows the digit as SIGNS[k] * x (x in [-1, 1])
LEVELS = (-1.0, 1.0, -0.5)  # ... so its background (the digits' -1) is at LEVELS[k]


def load_digit_domains(seed: int = 0) -> DatasetBundle:
    """8x8 digits in [-1, 1], each rendered in a random domain: x, -x (inverted) or x/2 (low contrast)."""
    base = load_digits(value_range=[-1, 1])
    g = torch.Generator().manual_seed(seed)
    splits = {}
    for split in ("train", "test"):
        fields = getattr(base, split)
        domain = torch.randint(len(SIGNS), (len(fields["y"]),), generator=g)
        x = fields["x"] * torch.tensor(SIGNS)[domain].view(-1, 1, 1, 1)
        splits[split] = {"x": x, "y": fields["y"], "domain": domain}
    return DatasetBundle(train=splits["train"], test=splits["test"], info={**base.info, "name": "digit_domains"})


@pytest.fixture(scope="module")
def registry():
    plugin = types.ModuleType("stargan_test_domains")
    plugin.register_datasets = hookimpl(lambda register: register("digit_domains", load_digit_domains))
    reg = build_registry(make_plugin_manager(extra_plugins=[plugin]))
    with use_registry(reg):
        yield reg


TINY = """\
extends: family:stargan
name: stargan_tiny_digits
seed: 0
data: {dataset: digit_domains, batch_size: 16}
components:
  generator:     {in_shape: [1, 8, 8], c_dim: 3, width: 8, n_blocks: 1}
  discriminator: {in_shape: [1, 8, 8], c_dim: 3, width: 16, n_layers: 2}
  domains:       {n_classes: 3}
schedules:
  lr_decay: {delay: 60, steps: 40}
graph:
  c_org: one_hot(domain, 3)
train: {steps: 100, log_every: 10, checkpoint_every: 100, sample_every: 1000, threads: 1, progress: false}
eval:
  metrics:
    - cycle_error: {input: x, reconstruction: x_rec, n: 200}
"""
QUIET = ["train.progress=false", "train.threads=1"]
FAST = ["phases.0.optimizer.lr=1.0e-3", "phases.1.optimizer.lr=1.0e-3"]  # a hundred steps, not 200k


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stargan") / "stargan_tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def trained(registry, tiny_spec, tmp_path_factory):
    """The tiny StarGAN, its untrained generator (for comparison) and its run."""
    untrained = prepare(lg.load(tiny_spec, QUIET), device="cpu").modules["generator"]
    run = lg.train(tiny_spec, out=tmp_path_factory.mktemp("stargan_run") / "run", overrides=[*QUIET, *FAST])
    return untrained, run


def test_template_wires_the_papers_losses_and_schedule(registry, tiny_spec):
    exp = prepare(lg.load(tiny_spec, QUIET), device="cpu")
    kinds = {name: entry.type for name, entry in exp.spec.components.items()}
    assert kinds == {"generator": "stargan_generator", "discriminator": "stargan_discriminator",
                     "domains": "categorical"}
    d_phase, g_phase = exp.spec.phases
    assert d_phase.update == ["discriminator"] and g_phase.update == ["generator"]
    assert d_phase.terms == {"d_adv": 1.0, "d_gp": 10.0, "d_cls": 1.0}  # lambda_gp 10, lambda_cls 1
    assert g_phase.terms == {"g_adv": 1.0, "g_cls": 1.0, "g_rec": 10.0}  # lambda_cls 1, lambda_rec 10
    assert d_phase.repeat == 5 and g_phase.repeat == 1  # n_critic
    for i, phase in enumerate(exp.spec.phases):
        opt = exp.loaded.params[("phases", i)]
        assert opt.betas == (0.5, 0.999) and opt.lr == 1.0e-4 and phase.lr_schedule == "lr_decay"
    decay = exp.schedules["lr_decay"]
    assert [decay(s) for s in (0, 60, 80, 100)] == [1.0, 1.0, 0.5, 0.0]
    assert exp.spec.sample.set == {"c_trg": "domains"} and exp.spec.sample.output == "x_fake"


def test_the_graphs_losses_equal_hand_computation(registry, tiny_spec):
    exp = prepare(lg.load(tiny_spec, QUIET), device="cpu")
    G, D = exp.modules["generator"], exp.modules["discriminator"]
    n = 8
    batch = {k: v[:n] for k, v in exp.data.train.items()}
    c_trg = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2, 1, 0])]
    ex = exp.executor()
    ex.begin(batch, 0)
    names = ["x_fake", "x_rec", "d_adv", "d_cls", "g_adv", "g_cls", "g_rec", "d_acc_real"]
    got = ex.evaluate(names, overrides={"c_trg": c_trg})
    x, domain = batch["x"], batch["domain"]
    with torch.no_grad():
        x_fake = G(x, c_trg)
        x_rec = G(x_fake, F.one_hot(domain, 3).float())
        real, fake = D(x), D(x_fake)
    torch.testing.assert_close(got["x_fake"], x_fake)
    torch.testing.assert_close(got["x_rec"], x_rec)
    torch.testing.assert_close(got["d_adv"], fake["src"].mean() - real["src"].mean())
    torch.testing.assert_close(got["g_adv"], -fake["src"].mean())
    log_p_real = F.log_softmax(real["cls"], dim=1)
    torch.testing.assert_close(got["d_cls"], -log_p_real[torch.arange(n), domain].mean())
    log_p_fake = F.log_softmax(fake["cls"], dim=1)
    torch.testing.assert_close(got["g_cls"], -log_p_fake[torch.arange(n), c_trg.argmax(1)].mean())
    torch.testing.assert_close(got["g_rec"], (x - x_rec).abs().mean())
    assert got["d_acc_real"].item() == (real["cls"].argmax(1) == domain).float().mean().item()
    # the gradient penalty on src alone, at eps x + (1 - eps) G(x, c)
    torch.manual_seed(7)
    gp = ex.evaluate(["d_gp"], overrides={"c_trg": c_trg, "x_fake": x_fake})["d_gp"]
    torch.manual_seed(7)
    eps = torch.rand(n, 1, 1, 1)
    mixed = (eps * x + (1 - eps) * x_fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mixed)["src"].sum(), mixed)
    torch.testing.assert_close(gp, (grad.flatten(1).norm(dim=1) - 1).pow(2).mean())


def grads_after(ex, phase, term: str, *, everything_trainable: bool) -> dict[str, bool]:
    """Backpropagate one of a phase's terms as the trainer would; which components got a gradient."""
    for module in ex.modules.values():
        module.zero_grad(set_to_none=True)
    ex.trainable_all() if everything_trainable else ex.set_trainable(phase.update)
    value = ex.evaluate([term], updated=frozenset(phase.update), token=object(), use_cache=False)[term]
    value.backward()
    return {name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in ex.modules[name].parameters())
            for name in ("generator", "discriminator")}


def test_gradients_reach_each_network_only_in_its_own_phase(registry, tiny_spec):
    exp = prepare(lg.load(tiny_spec, QUIET), device="cpu")
    d_phase, g_phase = exp.spec.phases
    ex = exp.executor()
    ex.begin({k: v[:8] for k, v in exp.data.train.items()}, 0)
    # the discriminator's terms do not reach G even with G's weights trainable: the fakes it sees
    # are computed without a graph, and the penalty detaches its interpolates
    for term in d_phase.terms:
        assert grads_after(ex, d_phase, term, everything_trainable=True) == {"generator": False, "discriminator": True}
    # each of the generator's terms reaches G (adv and cls through the frozen D, rec through G twice), never D
    for term in g_phase.terms:
        assert grads_after(ex, g_phase, term, everything_trainable=False) == {"generator": True, "discriminator": False}


def background(x: torch.Tensor) -> torch.Tensor:
    """(b 1 8 8) -> (): the mean of the outer ring of pixels, where the digits are background (-1)."""
    ring = torch.ones(8, 8, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    return x[:, 0][:, ring].mean()


def test_tiny_stargan_learns_to_classify_domains_and_to_translate(trained):
    untrained, run = trained
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == list(range(10, 101, 10))
    assert rows[0]["d_acc_real"] < 0.8 and rows[-1]["d_acc_real"] > 0.95  # D's classifier on real images
    assert rows[-1]["g_acc_fake"] > 0.9  # ... and it reads G's translations as their targets
    assert rows[-1]["g_rec"] < 0.7 * rows[0]["g_rec"]
    model = lg.open_run(run.path)
    x = model.experiment.data.test["x"][:200]
    before, after = [], []
    with torch.no_grad():
        for k, level in enumerate(LEVELS):
            c = torch.eye(3)[[k] * len(x)]
            before.append(abs(background(untrained(x, c)).item() - level))
            after.append(abs(background(model.experiment.modules["generator"](x, c)).item() - level))
    # translations move towards each target domain's background level: -1 (x), 1 (-x), -0.5 (x/2)
    assert sum(after) < 0.5 * sum(before), (before, after)
    assert max(after) < 0.5, after
    results = model.evaluate(write=False)["cycle_error"]
    assert results["l1"] < rows[0]["g_rec"]


def test_sampling_translates_test_images_to_the_given_domain(trained):
    """What `lvmgraph sample RUN --given c_trg=1` does: a class index becomes the one-hot target."""
    _, run = trained
    model = lg.open_run(run.path)
    given = lg.parse_given(["c_trg=1"], 6, model.experiment.device)
    assert given["c_trg"].dtype == torch.long
    samples = model.sample(6, given=given)
    x = model.experiment.data.test["x"][:6]
    with torch.no_grad():
        expected = model.experiment.modules["generator"](x, torch.eye(3)[[1] * 6])
    torch.testing.assert_close(samples, expected)
    assert background(samples) > 0  # domain 1 is the inverted one, background at +1


def test_one_input_translated_to_every_domain_by_a_sweep(trained, tmp_path):
    """`lvmgraph sample RUN --sweep c_trg=0,1,2`: one row per target domain, same inputs in every row."""
    from PIL import Image

    from lvmgraph import cli

    _, run = trained
    model = lg.open_run(run.path)
    x = model.experiment.data.test["x"][:5]
    rows = model.sweep("c_trg", [torch.full((5,), k) for k in range(3)], 5)
    assert list(rows) == ["x", "c_trg=0", "c_trg=1", "c_trg=2"]  # led by the inputs, sample.grid's first row
    torch.testing.assert_close(rows.pop("x"), x)
    with torch.no_grad():
        for k, row in enumerate(rows.values()):
            torch.testing.assert_close(row, model.experiment.modules["generator"](x, torch.eye(3)[[k] * 5]))
    assert background(rows["c_trg=1"]) > 0 > background(rows["c_trg=0"])  # each row its own domain
    out = tmp_path / "every_domain.png"
    assert cli.main(["sample", str(run.path), "--sweep", "c_trg=0,1,2", "-n", "5", "--out", str(out)]) == 0
    two = tmp_path / "two.png"
    assert cli.main(["sample", str(run.path), "--sweep", "c_trg=0,2", "-n", "5", "--out", str(two)]) == 0
    (w3, h3), (w2, h2) = Image.open(out).size, Image.open(two).size
    assert w3 == w2 and h3 > h2 and (h3 - h2) * 4 == pytest.approx(h3, abs=3)  # inputs + one row per value
    assert cli.main(["sample", str(run.path), "--sweep", "c_trg=0,1", "--out", str(tmp_path / "x.npz")]) != 0


def test_the_run_report_shows_the_inputs_translated_to_every_domain(trained):
    """RUN/report.html (written after training) has the sweep over c_trg: inputs, then one row per domain."""
    from PIL import Image

    _, run = trained
    assert "report/translations_c_trg.png" in (run.path / "report.html").read_text()
    tile = 32 + 2  # 8x8 tiles enlarged to 32 pixels, 2-pixel separators
    assert Image.open(run.path / "report" / "translations_c_trg.png").size == (10 * tile + 2, 4 * tile + 2)


def test_resumed_stargan_equals_uninterrupted(registry, tiny_spec, tmp_path):
    common = [*QUIET, "train.log_every=5"]
    straight = lg.train(tiny_spec, out=tmp_path / "straight", evaluate=False, overrides=[*common, "train.steps=20"])
    first = lg.train(tiny_spec, out=tmp_path / "resumed", evaluate=False,
                     overrides=[*common, "train.steps=9", "train.checkpoint_every=9"])
    assert [p.name for p in list_checkpoints(first.checkpoints)] == ["step_00000009"]
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    resumed = lg.resume(first.path, overrides=["train.steps=20"], evaluate=False)
    assert resumed.read_metrics() == straight.read_metrics()
    a = load_checkpoint(latest_checkpoint(straight.checkpoints))
    b = load_checkpoint(latest_checkpoint(resumed.checkpoints))
    assert a["step"] == b["step"] == 20
    assert_same(a["components"], b["components"], "components")
    assert_same(a["optimizers"], b["optimizers"], "optimizers")
    assert_same(a["rng"], b["rng"], "rng")
