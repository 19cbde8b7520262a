"""DCGAN components: shapes at 28x28 and 32x32, tanh output, the paper's init and batch-norm
placement, named outputs, spectral norm, size errors, and one training step of the spec."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

import lvmgraph.api as lg
from lvmgraph.experiment import prepare
from lvmgraph.train.trainer import Trainer
from lvmgraph_dcgan.components import (DCGANDiscriminator, DCGANGenerator, DiscriminatorParams, GeneratorParams,
                                       dcgan_init)

ROOT = Path(__file__).resolve().parents[1]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

SIZES = [  # (image shape, generator channels, discriminator channels, first generator map, last D map)
    ((1, 32, 32), [64, 32, 16], [16, 32, 64], (64, 4, 4), (64, 4, 4)),
    ((1, 28, 28), [32, 16], [16, 32], (32, 7, 7), (32, 7, 7)),
    ((3, 8, 8), [16, 8], [8, 16], (16, 2, 2), (16, 2, 2)),
]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("shape, g_ch, d_ch, start, end", SIZES, ids=["32x32", "28x28", "8x8rgb"])
def test_generator_and_discriminator_shapes(shape, g_ch, d_ch, start, end):
    g = DCGANGenerator(in_shape=[20], out_shape=shape, channels=g_ch)
    d = DCGANDiscriminator(in_shape=shape, channels=d_ch)
    assert g.start_shape == start
    x = g(torch.randn(6, 20))
    assert x.shape == (6, *shape)
    assert d.convs(x).shape == (6, *end)
    logit = d(x)
    assert isinstance(logit, torch.Tensor) and logit.shape == (6, 1)
    # each transposed conv doubles h and w: the intermediate maps go start -> ... -> image size
    sizes = []
    hook = lambda m, i, o: sizes.append(o.shape[-1])  # noqa: E731
    for m in g.net:
        if isinstance(m, nn.ConvTranspose2d):
            m.register_forward_hook(hook)
    g(torch.randn(2, 20))
    assert sizes == [start[-1] * 2 ** (i + 1) for i in range(len(g_ch))]


def test_generator_output_is_tanh_bounded_and_reaches_both_ends():
    g = DCGANGenerator(in_shape=[8], out_shape=[1, 28, 28], channels=[16, 8])
    last = [m for m in g.net if isinstance(m, nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        last.weight.mul_(500.0)  # pre-activations far beyond [-1, 1]
    x = g(torch.randn(16, 8))
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x.min() < -0.99 and x.max() > 0.99  # saturates: a tanh, not a clamp of something smaller
    g.eval()
    assert isinstance(g.out_act, nn.Tanh)
    assert DCGANGenerator(in_shape=[8], out_shape=[1, 8, 8], channels=[8], out_activation="sigmoid")(
        torch.randn(4, 8)).min() >= 0


def _layers(net: nn.Module, kinds) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, kinds)]


def test_dcgan_init_statistics():
    g = DCGANGenerator(in_shape=[100], out_shape=[1, 32, 32], channels=[128, 64, 32], hidden=[256])
    d = DCGANDiscriminator(in_shape=[1, 32, 32], channels=[32, 64, 128], hidden=[128],
                           heads={"logit": [1], "q": [10]}, head_hidden={"q": 64})
    for net in (g, d):
        weights = torch.cat([m.weight.flatten() for m in _layers(net, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))])
        assert weights.numel() > 100_000
        assert weights.std().item() == pytest.approx(0.02, rel=0.02)
        assert abs(weights.mean().item()) < 1e-3
        for m in _layers(net, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            assert m.weight.std().item() == pytest.approx(0.02, rel=0.25), m  # every layer, not just on average
        biases = [m.bias for m in net.modules() if getattr(m, "bias", None) is not None]
        assert biases and all(torch.count_nonzero(b) == 0 for b in biases)
        bn = torch.cat([m.weight for m in _layers(net, (nn.BatchNorm1d, nn.BatchNorm2d))])
        assert bn.mean().item() == pytest.approx(1.0, abs=0.01)
        assert bn.std().item() == pytest.approx(0.02, rel=0.3)
    # PyTorch's default init would fail this: a 4x4x32 conv gets std ~ 1/sqrt(3*fan_in) = 0.026, the
    # first generator layer (fan_in 100) 0.058 -- so the statistics above really come from dcgan_init
    plain = nn.Linear(100, 4096)
    assert plain.weight.std().item() > 0.05
    dcgan_init(plain)
    assert plain.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_batch_norm_placement_follows_the_paper():
    g = DCGANGenerator(in_shape=[10], out_shape=[1, 32, 32], channels=[32, 16, 8])
    d = DCGANDiscriminator(in_shape=[1, 32, 32], channels=[8, 16, 32])
    g_kinds = [type(m) for m in g.net]
    # the output layer: the last transposed conv is followed by nothing in g.net (tanh is g.out_act)
    assert g_kinds[-1] is nn.ConvTranspose2d
    assert g_kinds.count(nn.BatchNorm2d) == 2 and g_kinds.count(nn.ReLU) == 2
    assert [type(m) for m in g.project_act] == [nn.BatchNorm2d, nn.ReLU]
    d_kinds = [type(m) for m in d.convs]
    # input layer: conv -> LeakyReLU (no BN); then conv -> BN -> LeakyReLU
    assert d_kinds == [nn.Conv2d, nn.LeakyReLU, nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU,
                       nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert all(m.negative_slope == 0.2 for m in d.convs if isinstance(m, nn.LeakyReLU))
    # batch_norm: false removes them all
    d_plain = DCGANDiscriminator(in_shape=[1, 32, 32], channels=[8, 16, 32], batch_norm=False)
    assert not _layers(d_plain, (nn.BatchNorm2d, nn.BatchNorm1d))


def test_named_outputs_share_the_trunk():
    d = DCGANDiscriminator(in_shape=[1, 28, 28], channels=[8, 16], hidden=[32],
                           heads={"logit": [1], "c_logits": [10], "u_mean": [2]}, head_hidden={"c_logits": 16},
                           features=True)
    d.eval()
    x = torch.randn(5, 1, 28, 28)
    out = d(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "logit": (5, 1), "c_logits": (5, 10), "u_mean": (5, 2), "features": (5, 32)}
    assert torch.allclose(out["features"], d.trunk(x))
    assert torch.allclose(out["u_mean"], d.heads["u_mean"](d.trunk(x)))
    # a gradient from the Q head reaches the shared convs, but not the logit head
    out["c_logits"].sum().backward()
    assert d.convs[0].weight.grad is not None and d.convs[0].weight.grad.abs().sum() > 0
    assert d.heads["logit"][0].weight.grad is None
    # head_hidden gives that head its own Linear-BN-LeakyReLU layer
    assert [type(m) for m in d.heads["c_logits"]] == [nn.Linear, nn.BatchNorm1d, nn.LeakyReLU, nn.Linear]
    assert [type(m) for m in d.heads["u_mean"]] == [nn.Linear]


def test_spectral_norm_bounds_every_layer_from_the_first_call():
    d = DCGANDiscriminator(in_shape=[1, 32, 32], channels=[16, 32, 64], hidden=[64], spectral_norm=True,
                           batch_norm=False)
    d.eval()  # eval: no power iteration in forward, so the norm comes from the vectors set at construction
    d(torch.randn(2, 1, 32, 32))
    layers = _layers(d, (nn.Conv2d, nn.Linear))
    assert len(layers) == 5
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05), m
        original = m.parametrizations.weight.original
        assert original.std().item() == pytest.approx(0.02, rel=0.3)  # the DCGAN init is on the raw weight


def test_size_errors_name_the_fix():
    with pytest.raises(ValidationError, match=r"divisible by 8.*use 2 entries in `channels`"):
        GeneratorParams(in_shape=[10], out_shape=[1, 28, 28], channels=[64, 32, 16])
    with pytest.raises(ValidationError, match=r"too small for 4 stride-2 convs"):
        DiscriminatorParams(in_shape=[1, 8, 8], channels=[8, 8, 8, 8])
    with pytest.raises(ValidationError, match=r"head_hidden names \['q'\], which are not heads"):
        DiscriminatorParams(in_shape=[1, 8, 8], channels=[8], head_hidden={"q": 8})
    with pytest.raises(ValidationError, match=r"other than 'features'"):
        DiscriminatorParams(in_shape=[1, 8, 8], channels=[8], heads={"features": [3]})


def test_a_wrong_input_shape_names_the_setting():
    g = DCGANGenerator(in_shape=[10], out_shape=[1, 8, 8], channels=[8])
    with pytest.raises(ValueError, match=r"dcgan_generator 'in_shape'.*change `in_shape` to \[12\]"):
        g(torch.randn(2, 12))


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Fashion-MNIST is not installed")
def test_one_training_step_of_the_spec_changes_both_networks_each_in_its_phase():
    loaded = lg.load(ROOT / "specs" / "dcgan_fashion_mnist.yaml",
                     ["data.limit_train=64", "data.limit_test=32", "data.batch_size=16", "train.steps=1",
                      "train.threads=1", "train.progress=false"])
    exp = prepare(loaded, device="cpu")
    x = exp.data.train["x"]
    assert x.shape[1:] == (1, 32, 32) and x.min() == -1.0 and x.max() <= 1.0
    before = {k: v.detach().clone() for k, v in exp.modules.state_dict().items()}
    seen = []
    tr = Trainer(exp)
    original = tr.run_phase

    def spy(i, phase):  # the weights right after each phase
        loss = original(i, phase)
        seen.append((phase.label, {k: v.detach().clone() for k, v in exp.modules.state_dict().items()}))
        return loss
    tr.run_phase = spy
    tr.fit()

    def changed(state, prefix):
        return [k for k in before if k.startswith(prefix) and before[k].is_floating_point()
                and not torch.equal(before[k], state[k])]
    (d_label, after_d), (g_label, after_g) = seen
    assert (d_label, g_label) == ("d_loss", "g_loss")
    assert changed(after_d, "discriminator.") and not [k for k in changed(after_d, "generator.")
                                                       if "running" not in k and "num_batches" not in k]
    g_moved = changed(after_g, "generator.")
    assert any(k.endswith("weight") for k in g_moved)
    # the generator phase leaves the discriminator's parameters where the discriminator phase put them
    assert not [k for k in after_g if k.startswith("discriminator.") and "running" not in k
                and "num_batches" not in k and not torch.equal(after_d[k], after_g[k])]
