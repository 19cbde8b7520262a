"""CycleGAN: the ResNet generator, the PatchGAN discriminator and its receptive field, the image
pool (history semantics, RNG use, checkpointed state), and the family template trained on two
domains built from the 8x8 digits in the graph (A = x, B = -x, in [-1, 1]): the cycle loss
falls, and a run resumed from a checkpoint equals an uninterrupted one."""
from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import assert_same
from pydantic import ValidationError
from torch import nn

import lvmgraph.api as lg
from lvmgraph import ShapeMismatch
from lvmgraph.experiment import prepare
from lvmgraph.spec.errors import SpecError
from lvmgraph.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from lvmgraph_cyclegan import (ImagePool, ImagePoolParams, PatchDiscriminator, PatchDiscriminatorParams,
                               ResnetGenerator, ResnetGeneratorParams, patch_map_size, receptive_field)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- generator

@pytest.mark.parametrize("in_shape, out_shape, bottleneck", [
    ((1, 28, 28), (1, 28, 28), (7, 7)),
    ((1, 32, 32), (1, 32, 32), (8, 8)),
    ((1, 28, 28), (3, 28, 28), (7, 7)),
    ((1, 32, 32), (3, 32, 32), (8, 8)),
], ids=["28grey", "32grey", "28grey2rgb", "32grey2rgb"])
def test_generator_shapes(in_shape, out_shape, bottleneck):
    g = ResnetGenerator(in_shape=in_shape, out_shape=out_shape, width=8, n_blocks=2)
    y = g(torch.randn(3, *in_shape))
    assert y.shape == (3, *out_shape)
    names = [s[0] for s in g.stages]
    assert names == ["c7s1", "down", "down", "residual", "residual", "up", "up", "c7s1"]
    # c7s1-8, d16, d32, R32 x 2, u16, u8, c7s1-c'
    assert [s[1] for s in g.stages] == [8, 16, 32, 32, 32, 16, 8, out_shape[0]]
    assert g.stages[3][2:] == bottleneck
    assert g.stages[-1][2:] == in_shape[1:]
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in g.modules()) == 2 + 2 * 2  # stem, output, 2 per block


def test_generator_output_range_tanh_and_sigmoid():
    g = ResnetGenerator(in_shape=[1, 28, 28], out_shape=[1, 28, 28], width=8, n_blocks=1)
    with torch.no_grad():
        g.net[-1].weight.mul_(500.0)  # pre-activations far beyond [-1, 1]
    y = g(torch.randn(4, 1, 28, 28))
    assert y.min() >= -1 and y.max() <= 1
    assert y.min() < -0.99 and y.max() > 0.99  # saturates: a tanh, not something narrower
    s = ResnetGenerator(in_shape=[1, 8, 8], out_shape=[3, 8, 8], width=4, n_blocks=1, out_activation="sigmoid")
    y = s(torch.randn(4, 1, 8, 8))
    assert y.min() >= 0 and y.max() <= 1 and y.shape == (4, 3, 8, 8)


def test_instance_norm_treats_each_image_alone_batch_norm_does_not():
    x = torch.randn(4, 1, 16, 16)
    inst = ResnetGenerator(in_shape=[1, 16, 16], out_shape=[1, 16, 16], width=4, n_blocks=1)
    torch.testing.assert_close(inst(x)[:1], inst(x[:1]))
    batch = ResnetGenerator(in_shape=[1, 16, 16], out_shape=[1, 16, 16], width=4, n_blocks=1, norm="batch")
    assert not torch.allclose(batch(x)[:1], batch(x[:1]), atol=1e-4)
    assert not any(isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d)) for m in ResnetGenerator(
        in_shape=[1, 16, 16], out_shape=[1, 16, 16], width=4, n_blocks=1, norm="none").modules())


def test_generator_init_and_gradients_reach_every_layer():
    g = ResnetGenerator(in_shape=[1, 32, 32], out_shape=[1, 32, 32], width=32, n_blocks=3)
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    g(torch.randn(2, 1, 32, 32)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


def test_generator_size_errors_name_the_setting():
    with pytest.raises(ValidationError, match=r"divisible by 4 \(2 \*\* n_downsampling.*data.pad_to: 32.*"
                                              r"n_downsampling: 1"):
        ResnetGeneratorParams(in_shape=[1, 30, 30], out_shape=[1, 30, 30])
    with pytest.raises(ValidationError,
                       match=r"must have the h and w of in_shape \[1, 28, 28\].*set out_shape to \[3, 28, 28\]"):
        ResnetGeneratorParams(in_shape=[1, 28, 28], out_shape=[3, 32, 32])
    with pytest.raises(ValidationError, match=r"too small for n_downsampling=2"):
        ResnetGeneratorParams(in_shape=[1, 4, 4], out_shape=[1, 4, 4])
    with pytest.raises(ShapeMismatch, match=r"divisible by 4"):
        ResnetGenerator(in_shape=[1, 30, 30], out_shape=[1, 30, 30])
    ResnetGeneratorParams(in_shape=[1, 30, 30], out_shape=[1, 30, 30], n_downsampling=1)  # 30 -> 15 -> 30
    g = ResnetGenerator(in_shape=[1, 8, 8], out_shape=[1, 8, 8], width=4, n_blocks=1)
    with pytest.raises(ShapeMismatch, match=r"resnet_generator 'in_shape'.*change `in_shape` to \[3, 8, 8\]"):
        g(torch.randn(2, 3, 8, 8))


# ----------------------------------------------------------------------------- discriminator

def test_receptive_field_matches_the_paper():
    assert receptive_field(3) == 70  # the paper's 70x70 PatchGAN
    assert [receptive_field(n) for n in range(1, 6)] == [16, 34, 70, 142, 286]  # as documented
    assert patch_map_size([3, 256, 256], 3) == (30, 30)  # pix2pix / CycleGAN at 256 px


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_receptive_field_is_what_one_logit_really_sees(n_layers):
    """The input gradient of one central logit is non-zero on exactly a receptive_field-sided square."""
    d = PatchDiscriminator(in_shape=[1, 160, 160], width=2, n_layers=n_layers, norm="none")
    x = torch.randn(1, 1, 160, 160, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert rows.max() - rows.min() + 1 == receptive_field(n_layers)
    assert cols.max() - cols.min() + 1 == receptive_field(n_layers)


@pytest.mark.parametrize("shape, n_layers, patch_map", [
    ((1, 32, 32), 2, (6, 6)), ((1, 32, 32), 3, (2, 2)), ((1, 28, 28), 2, (5, 5)), ((3, 28, 28), 1, (12, 12)),
    ((3, 32, 32), 2, (6, 6)),
])
def test_patch_map_shape(shape, n_layers, patch_map):
    d = PatchDiscriminator(in_shape=shape, width=8, n_layers=n_layers)
    assert d.map_shape == (1, *patch_map)
    assert d(torch.randn(5, *shape)).shape == (5, 1, *patch_map)


def test_patch_discriminator_layers_follow_the_paper():
    d = PatchDiscriminator(in_shape=[3, 256, 256], width=64, n_layers=3)
    convs = [m for m in d.net if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]  # C64-C128-C256-C512, then one channel
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    kinds = [type(m).__name__ for m in d.net]
    # no norm on the first layer, none and no activation after the output conv
    assert kinds[:2] == ["Conv2d", "LeakyReLU"] and kinds[-1] == "Conv2d"
    assert kinds.count("InstanceNorm2d") == 3
    assert PatchDiscriminator(in_shape=[3, 128, 128], width=4, n_layers=5).net[-1].in_channels == 32  # capped at 8x


def test_spectral_norm_bounds_every_conv():
    d = PatchDiscriminator(in_shape=[1, 32, 32], width=8, n_layers=2, spectral_norm=True)
    convs = [m for m in d.net if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_discriminator_size_errors_name_the_setting():
    with pytest.raises(ValidationError, match=r"too small for n_layers=4: the patch map would be empty; "
                                              r"set n_layers: 3"):
        PatchDiscriminatorParams(in_shape=[1, 28, 28], n_layers=4)
    with pytest.raises(ValidationError, match=r"too small for n_layers=2.*pad the data"):
        PatchDiscriminatorParams(in_shape=[1, 4, 4], n_layers=2)
    PatchDiscriminatorParams(in_shape=[1, 28, 28], n_layers=3)  # 14, 7, 3, then 2x2 (normalised) and 1x1
    d = PatchDiscriminator(in_shape=[1, 8, 8], width=4, n_layers=1)
    with pytest.raises(ShapeMismatch, match=r"patch_discriminator 'in_shape'"):
        d(torch.randn(2, 1, 9, 9))


# ----------------------------------------------------------------------------- image pool

def tagged(ids, shape=(1, 2, 2)) -> torch.Tensor:
    """One fake per id, every pixel equal to the id, so a returned row tells where it came from."""
    return torch.tensor(ids, dtype=torch.float32).reshape(-1, *[1] * len(shape)).expand(-1, *shape).clone()


def ids_of(x: torch.Tensor) -> list[int]:
    return [int(v) for v in x.flatten(1)[:, 0].tolist()]


def test_pool_returns_fakes_unchanged_until_full():
    pool = ImagePool(shape=[1, 2, 2], size=6)
    for call in range(3):
        batch = tagged([2 * call + 1, 2 * call + 2])
        assert torch.equal(pool(batch), batch)
        assert int(pool.count) == 2 * call + 2
    assert pool.full and ids_of(pool.images) == [1, 2, 3, 4, 5, 6]


def test_pool_mixes_current_and_history_and_conserves_every_fake():
    pool = ImagePool(shape=[1, 2, 2], size=5)
    next_id, swapped, rows, seen_slots = 1, 0, 0, Counter()
    for call in range(400):
        ids = list(range(next_id, next_id + 4))
        next_id += 4
        before = ids_of(pool.images)[:int(pool.count)]
        out = ids_of(pool(tagged(ids)))
        after = ids_of(pool.images)[:int(pool.count)]
        # every returned fake is from this batch or from the history held before the call ...
        assert set(out) <= set(ids) | set(before)
        if call > 1:  # full before the call from the third call on (5 slots, batches of 4)
            # ... and once full, none is lost or duplicated: history + batch = new history + output
            assert Counter(before) + Counter(ids) == Counter(after) + Counter(out)
            swapped += sum(o != i for o, i in zip(out, ids))
            rows += len(ids)
            seen_slots.update(k for k, (a, b) in enumerate(zip(before, after)) if a != b)
    assert swapped / rows == pytest.approx(0.5, abs=0.05)  # 1592 rows: 4 standard deviations
    assert set(seen_slots) == set(range(5))  # every slot gets replaced


def test_pool_output_is_detached():
    pool = ImagePool(shape=[3], size=4)
    w = torch.ones(3, requires_grad=True)
    for _ in range(4):
        out = pool(torch.randn(2, 3) * w)
        assert not out.requires_grad and out.grad_fn is None
    assert not pool.images.requires_grad
    assert list(pool.parameters()) == []  # never in an optimizer


def test_pool_of_size_zero_and_eval_mode_are_the_identity_and_draw_nothing():
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    zero = ImagePool(shape=[1, 4, 4], size=0)
    full = ImagePool(shape=[1, 4, 4], size=2)
    full(torch.randn(2, 1, 4, 4))
    history = full.images.clone()
    full.eval()
    rng = torch.get_rng_state()
    for pool in (zero, full):
        out = pool(x)
        assert torch.equal(out, x) and not out.requires_grad
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(full.images, history) and int(full.count) == 2
    assert ImagePoolParams(shape=[1, 4, 4]).size == 50
    with pytest.raises(ValidationError):
        ImagePoolParams(shape=[1, 4, 4], size=-1)
    with pytest.raises(ShapeMismatch, match=r"image_pool 'shape'.*change `shape` to \[1, 5, 5\]"):
        zero(torch.randn(2, 1, 5, 5))


def test_pool_state_dict_round_trip_reproduces_future_outputs():
    pool = ImagePool(shape=[1, 3, 3], size=7)
    for _ in range(4):
        pool(torch.randn(3, 1, 3, 3))
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)  # the checkpoint's format, read back as a checkpoint is
    future = [torch.randn(3, 1, 3, 3) for _ in range(6)]
    rng = torch.get_rng_state()
    expected = [pool(f) for f in future]

    buffer.seek(0)
    restored = ImagePool(shape=[1, 3, 3], size=7)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert sorted(restored.state_dict()) == ["count", "images"]
    torch.set_rng_state(rng)
    for f, e in zip(future, expected):
        assert torch.equal(restored(f), e)
    assert torch.equal(restored.images, pool.images)
    # a fresh pool (empty history) would answer differently: the state really matters
    torch.set_rng_state(rng)
    fresh = ImagePool(shape=[1, 3, 3], size=7)
    assert not all(torch.equal(fresh(f), e) for f, e in zip(future, expected))


# ----------------------------------------------------------------------------- the template

TINY = """\
extends: family:cyclegan
name: cyclegan_tiny_digits
seed: 0
data: {dataset: digits, batch_size: 8, value_range: [-1, 1]}
components:
  g_ab:   {in_shape: [1, 8, 8], out_shape: [1, 8, 8], width: 8, n_blocks: 1}
  g_ba:   {in_shape: [1, 8, 8], out_shape: [1, 8, 8], width: 8, n_blocks: 1}
  d_a:    {in_shape: [1, 8, 8], width: 8, n_layers: 1}
  d_b:    {in_shape: [1, 8, 8], width: 8, n_layers: 1}
  pool_a: {shape: [1, 8, 8], size: 6}
  pool_b: {shape: [1, 8, 8], size: 6}
schedules:
  lr_decay: {delay: 20, steps: 20}
graph:
  x_a: x        # domain A: the digits
  x_b: -x       # domain B: the same digits, inverted
train: {steps: 40, log_every: 5, checkpoint_every: 40, sample_every: 1000, threads: 1, progress: false}
eval:
  metrics:
    - cycle_error: {input: x, reconstruction: x_aba, n: 64}
"""
QUIET = ["train.progress=false", "train.threads=1"]


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    path = tmp_path / "cyclegan_tiny.yaml"
    path.write_text(TINY)
    return path


def test_template_compiles_with_two_generators_two_discriminators_and_pools(tiny_spec):
    exp = prepare(lg.load(tiny_spec, QUIET), device="cpu")  # includes the dry run of every value and phase
    spec = exp.spec
    kinds = {name: entry.type for name, entry in spec.components.items()}
    assert kinds == {"g_ab": "resnet_generator", "g_ba": "resnet_generator", "d_a": "patch_discriminator",
                     "d_b": "patch_discriminator", "pool_a": "image_pool", "pool_b": "image_pool"}
    gens, discs = spec.phases
    assert gens.update == ["g_ab", "g_ba"] and discs.update == ["d_a", "d_b"]
    assert gens.terms == {"g_adv_ab": 2.0, "g_adv_ba": 2.0, "cycle_a": 10.0, "cycle_b": 10.0,
                          "idt_a": 5.0, "idt_b": 5.0}
    assert discs.terms == {"d_loss_a": 1.0, "d_loss_b": 1.0}
    for phase in spec.phases:
        assert exp.loaded.params[("phases", spec.phases.index(phase))].betas == (0.5, 0.999)
        assert phase.lr_schedule == "lr_decay"
    decay = exp.schedules["lr_decay"]
    assert [decay(s) for s in (0, 20, 30, 40)] == [1.0, 1.0, 0.5, 0.0]  # constant, then linearly to 0
    # the pools feed only the discriminators' losses
    assert exp.graph.component_deps["d_loss_b"] >= {"pool_b", "g_ab", "d_b"}
    assert not exp.graph.component_deps["g_adv_ab"] & {"pool_a", "pool_b"}
    assert "x_a" in exp.graph.values and "x_b" in exp.graph.values


def test_the_template_defaults_fit_32px_images(tmp_path):
    """The template's own networks (32 px, width 32, 4 blocks, 34x34 patches) pass the dry run."""
    path = tmp_path / "defaults.yaml"
    path.write_text("extends: family:cyclegan\nname: cyclegan_defaults\n"
                    "data: {dataset: digits, pad_to: 32, value_range: [-1, 1]}\n"
                    "graph: {x_a: x, x_b: -x}\n")
    exp = prepare(lg.load(path, QUIET), device="cpu")
    assert exp.spec.data.batch_size == 1  # as in the paper
    assert exp.modules["d_b"].map_shape == (1, 6, 6) and exp.modules["d_b"].receptive_field == 34
    assert exp.modules["g_ab"].stages[3] == ("residual", 128, 8, 8)
    assert exp.modules["pool_a"].size == 50
    assert exp.schedules["lr_decay"](exp.spec.train.steps // 2) == 1.0
    assert exp.schedules["lr_decay"](exp.spec.train.steps) == 0.0


def test_the_template_reads_x_a_and_x_b_from_the_data(tmp_path, tiny_spec):
    """Without the graph entries that derive them, x_a and x_b must be data fields."""
    text = TINY.replace("  x_a: x        # domain A: the digits\n  x_b: -x       # domain B: the same digits, "
                        "inverted\n", "  x_ab: g_ab(x_a)\n")
    path = tmp_path / "no_domains.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=r"x_a.*neither a data field"):
        prepare(lg.load(path, QUIET), device="cpu")


def test_tiny_cyclegan_trains_and_its_cycle_loss_falls(tmp_path, tiny_spec):
    fast = ["phases.0.optimizer.lr=1.0e-3", "phases.1.optimizer.lr=1.0e-3"]  # a few dozen steps, not thousands
    run = lg.train(tiny_spec, out=tmp_path / "run", overrides=[*QUIET, *fast])
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30, 35, 40]
    first, last = rows[0], rows[-1]
    for term in ("cycle_a", "cycle_b", "idt_a", "idt_b"):
        assert last[term] < 0.7 * first[term], (term, first[term], last[term])
    assert last["discriminators"] < first["discriminators"]
    assert all(torch.isfinite(torch.tensor(r[t])) for r in rows for t in ("g_adv_ab", "g_adv_ba"))
    saved = load_checkpoint(latest_checkpoint(run.checkpoints))
    for opt in saved["optimizers"]:  # the last step (39) ran at 1/20 of the base rate: linear decay to 0
        assert opt["param_groups"][0]["lr"] == pytest.approx(1.0e-3 / 20)
    state = saved["components"]
    for pool in ("pool_a", "pool_b"):
        assert int(state[f"{pool}.count"]) == 6 and state[f"{pool}.images"].abs().sum() > 0
    # the round trip A -> B -> A as a metric, on test data
    results = json.loads((run.path / "eval.json").read_text())["results"]["cycle_error"]
    assert 0 < results["l1"] < first["cycle_a"]


def test_resumed_cyclegan_equals_uninterrupted(tmp_path, tiny_spec):
    common = [*QUIET, "train.steps=30", "train.log_every=5"]
    straight = lg.train(tiny_spec, out=tmp_path / "straight", evaluate=False, overrides=[*common])
    first = lg.train(tiny_spec, out=tmp_path / "resumed", evaluate=False,
                     overrides=[*QUIET, "train.steps=13", "train.log_every=5", "train.checkpoint_every=13"])
    assert [p.name for p in list_checkpoints(first.checkpoints)] == ["step_00000013"]
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    resumed = lg.resume(first.path, overrides=["train.steps=30"], evaluate=False)
    assert resumed.read_metrics() == straight.read_metrics()
    a = load_checkpoint(latest_checkpoint(straight.checkpoints))
    b = load_checkpoint(latest_checkpoint(resumed.checkpoints))
    assert a["step"] == b["step"] == 30
    assert {"pool_a.images", "pool_a.count", "pool_b.images", "pool_b.count"} <= set(a["components"])
    assert_same(a["components"], b["components"], "components")  # weights and pool histories, bit for bit
    assert_same(a["optimizers"], b["optimizers"], "optimizers")
    assert_same(a["rng"], b["rng"], "rng")
