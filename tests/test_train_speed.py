"""train.channels_last and train.compile change how a step runs, not what it computes; the cheaper
finite check and loss sum give exactly what the plain versions give."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lvmgraph.api as lg
from lvmgraph.experiment import prepare
from lvmgraph.spec.errors import SpecError
from lvmgraph.train.numerics import any_non_finite, weighted_sum
from lvmgraph.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.threads=1", "train.progress=false"]

# a DCGAN on 8x8 digits: every layer a (transposed) convolution with 2-8 channels, batch norm on
TINY_DCGAN = """
name: tiny_dcgan
seed: 0
data: {dataset: digits, batch_size: 16, value_range: [-1, 1]}
components:
  generator:     {type: dcgan_generator, in_shape: [8], out_shape: [1, 8, 8], channels: [8, 4]}
  discriminator: {type: dcgan_discriminator, in_shape: [1, 8, 8], channels: [4, 8]}
  noise:         {type: normal, shape: [8]}
graph:
  z:      noise.sample(like=x)
  x_fake: generator(z)
  d_loss: gan_discriminator_loss(discriminator(x), discriminator(x_fake))
  g_loss: gan_generator_loss(discriminator(x_fake))
phases:
  - {minimize: d_loss, update: [discriminator]}
  - {minimize: g_loss, update: [generator]}
train: {steps: 4, log_every: 1}
"""


def tiny_dcgan(tmp_path, *sets):
    path = tmp_path / "tiny_dcgan.yaml"
    path.write_text(TINY_DCGAN)
    return prepare(lg.load(path, [*FAST, *sets]), device="cpu")


def losses_per_step(tr: Trainer, steps: int) -> list[dict]:
    rows = []
    for _ in range(steps):
        tr.train_step()
        rows.append(tr.meter.flush())
    return rows


def assert_close_rows(got: list[dict], want: list[dict], rtol: float) -> None:
    assert [set(r) for r in got] == [set(r) for r in want]
    for g, w in zip(got, want):
        for k in w:
            assert abs(g[k] - w[k]) <= rtol * abs(w[k]) + 1e-6, (k, got, want)


def test_channels_last_trains_on_channels_last_tensors_with_the_eager_losses(tmp_path):
    plain = losses_per_step(Trainer(tiny_dcgan(tmp_path)), 4)
    exp = tiny_dcgan(tmp_path, "train.channels_last=true")
    tr = Trainer(exp)
    # a conv weight with several input channels really is laid out channels-last now
    conv = exp.modules["discriminator"].state_dict()
    weights = [w for k, w in conv.items() if w.dim() == 4 and w.shape[1] > 1]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                           for w in weights)
    batch = tr._next_batch()
    assert batch["x"].dim() == 4 and batch["x"].is_contiguous(memory_format=torch.channels_last)
    tr.loader.load_state_dict(Trainer(tiny_dcgan(tmp_path)).loader.state_dict())  # back to the first batch
    assert_close_rows(losses_per_step(tr, 4), plain, rtol=1e-4)


def test_compile_trains_with_the_eager_losses_and_checkpoints_interchangeably():
    spec = ROOT / "tests" / "data" / "run_specs" / "sgd_lr_schedule.yaml"
    eager = Trainer(prepare(lg.load(spec, FAST), device="cpu"))
    want = losses_per_step(eager, 3)
    exp = prepare(lg.load(spec, [*FAST, "train.compile=true"]), device="cpu")
    tr = Trainer(exp)
    got = losses_per_step(tr, 3)
    assert all(m._compiled_call_impl is not None for m in exp.modules.values())  # really compiled
    assert_close_rows(got, want, rtol=1e-4)
    # state-dict keys as in eager runs, so checkpoints load either way
    assert tr.state_dict()["components"].keys() == eager.state_dict()["components"].keys()
    for k, v in eager.exp.modules.state_dict().items():
        torch.testing.assert_close(exp.modules.state_dict()[k], v, rtol=1e-4, atol=1e-6)


def test_speed_switches_are_checked_like_every_train_key():
    spec = ROOT / "specs" / "aae_uniform.yaml"
    assert lg.load(spec, ["train.compile=true"]).spec.train.compile is True
    with pytest.raises(SpecError, match="channels_last"):
        lg.load(spec, ["train.channels_last=sometimes"])


def test_the_fused_finite_check_finds_nan_and_inf_and_leaves_values_bit_identical():
    grads = [torch.tensor([1.0, -0.0, 1e-40, 3e38]), torch.randn(3, 4), torch.randn(2, dtype=torch.float64)]
    before = [g.clone() for g in grads]
    assert not any_non_finite(grads)
    assert all(torch.equal(a.view(-1), b.view(-1)) and torch.equal(torch.signbit(a), torch.signbit(b))
               for a, b in zip(grads, before))
    for bad in (float("nan"), float("inf"), -float("inf")):
        grads[1][2, 3] = bad
        assert any_non_finite(grads)
        grads[1][2, 3] = 0.0
    assert not any_non_finite([])


def test_weighted_sum_equals_the_plain_sum_in_value_and_gradient():
    a, b = torch.randn(5, requires_grad=True), torch.randn(5, requires_grad=True)
    terms = [(1.0, a.square().mean()), (0.3, b.abs().sum()), (1.0, (a * b).sum())]
    got = weighted_sum(terms)
    want = sum(w * v for w, v in terms)
    assert torch.equal(got, want)
    for g, w in zip(torch.autograd.grad(got, [a, b], retain_graph=True), torch.autograd.grad(want, [a, b])):
        assert torch.equal(g, w)
    single = a.sum()
    assert weighted_sum([(1.0, single)]) is single  # one term of weight 1: no extra node at all


def test_fp16_grad_scaler_state_round_trips_so_a_resumed_run_equals_an_uninterrupted_one():
    spec = ROOT / "specs" / "aae_uniform.yaml"
    sets = [*FAST, "data.batch_size=32", "train.precision=fp16"]
    whole = Trainer(prepare(lg.load(spec, sets), device="cpu"))
    for _ in range(4):
        whole.train_step()

    first = Trainer(prepare(lg.load(spec, sets), device="cpu"))
    for _ in range(2):
        first.train_step()
    state = first.state_dict()
    assert all(s["scale"] > 0 for s in state["scalers"])  # a GradScaler per phase, its scale saved
    first.scalers[0].update(new_scale=1.0)  # the state must come from the checkpoint, not from memory
    resumed = Trainer(prepare(lg.load(spec, [*sets, "seed=99"]), device="cpu"))  # other initial weights
    resumed.load_state_dict(state)
    assert [s.get_scale() for s in resumed.scalers] == [s["scale"] for s in state["scalers"]]
    for _ in range(2):
        resumed.train_step()
    a, b = whole.exp.modules.state_dict(), resumed.exp.modules.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_finite_check_also_takes_tensors_the_fused_kernel_refuses():
    ints = [torch.tensor([1, 2]), torch.tensor([3.0])]
    assert not any_non_finite(ints)
    assert any_non_finite([torch.tensor([1, 2]), torch.tensor([float("nan")])])
