"""Core graph ops: shapes, values against torch references, randomness and gradients."""
import inspect
import math

import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F

from lvmgraph.plugins.registry import Registry
from lvmgraph_core import ops
from lvmgraph_core.ops import register_ops

EXPECTED_OPS = {"concat", "one_hot", "flatten", "reshape", "detach", "rsample", "sample", "mean",
                "sum", "shuffle", "randn_like", "noise", "add_noise", "clamp", "sigmoid", "tanh",
                "softmax", "lerp", "spatial_tile", "log_prob"}


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    register_ops(reg.registrar("op", "core"))
    return reg


def test_every_op_is_registered_with_a_checkable_signature_and_a_doc(registry):
    assert set(registry.names("op")) == EXPECTED_OPS
    for name in EXPECTED_OPS:
        entry = registry.get("op", name)
        kinds = [p.kind for p in inspect.signature(entry.factory).parameters.values()]
        assert inspect.Parameter.VAR_KEYWORD not in kinds, name
        assert "->" in entry.summary, f"{name}'s doc should start with its shapes"


def test_signature_binding_catches_wrong_calls(registry):
    sig = inspect.signature(registry.get("op", "one_hot").factory)
    sig.bind(torch.zeros(3), num_classes=4)
    with pytest.raises(TypeError):
        sig.bind(torch.zeros(3), classes=4)


def test_concat_joins_features_by_default_and_any_axis_on_request():
    a, b = torch.randn(4, 3), torch.randn(4, 5)
    out = ops.concat(a, b)
    assert out.shape == (4, 8)
    assert torch.equal(out[:, 3:], b)
    images = ops.concat(torch.zeros(2, 1, 4, 4), torch.ones(2, 2, 4, 4))
    assert images.shape == (2, 3, 4, 4)
    assert ops.concat(a, a, dim=0).shape == (8, 3)


def test_one_hot_marks_each_rows_class_as_float():
    y = torch.tensor([2, 0, 1])
    out = ops.one_hot(y, 4)
    assert out.dtype == torch.float32 and out.shape == (3, 4)
    assert torch.equal(out.argmax(1), y)
    assert torch.equal(out.sum(1), torch.ones(3))


def test_flatten_and_reshape_round_trip_keep_the_batch_axis():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    flat = ops.flatten(x)
    assert flat.shape == (2, 60)
    assert torch.equal(flat[1], x[1].reshape(-1))
    assert torch.equal(ops.reshape(flat, [3, 4, 5]), x)


def test_spatial_tile_repeats_the_condition_over_the_grid():
    c = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    like = torch.zeros(2, 3, 5, 6)
    out = ops.spatial_tile(c, like)
    assert out.shape == (2, 2, 5, 6)
    assert torch.equal(out[1, :, 4, 5], c[1])
    assert torch.equal(out[0, 1], torch.full((5, 6), 2.0))


def test_shuffle_is_a_permutation_of_rows_from_the_global_rng():
    x = torch.arange(20, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    torch.manual_seed(0)
    out = ops.shuffle(x)
    assert torch.equal(out.sort(dim=0).values, x)          # same rows, nothing lost or duplicated
    assert torch.equal(out[:, 0], out[:, 2])                # rows moved whole
    assert not torch.equal(out, x)
    torch.manual_seed(0)
    assert torch.equal(ops.shuffle(x), out)                 # reproducible from torch.manual_seed


def test_rsample_passes_gradients_and_sample_does_not():
    loc = torch.zeros(5, 2, requires_grad=True)
    dist = D.Normal(loc, 1.0)
    z = ops.rsample(dist)
    z.sum().backward()
    assert torch.equal(loc.grad, torch.ones(5, 2))          # dz/dloc = 1 for the reparameterised draw
    drawn = ops.sample(D.Normal(loc, 1.0))
    assert drawn.shape == (5, 2) and not drawn.requires_grad


def test_rsample_refuses_a_distribution_without_reparameterisation():
    with pytest.raises(ValueError, match="sample"):
        ops.rsample(D.Bernoulli(probs=torch.full((3,), 0.5)))


def test_detach_stops_gradients():
    w = torch.tensor(2.0, requires_grad=True)
    y = ops.detach(w * 3) * w
    y.backward()
    assert w.grad.item() == pytest.approx(6.0)              # only the un-detached factor contributes


def test_mean_and_sum_reduce_tensors_and_mean_reads_a_distribution():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert ops.reduce_mean(x).item() == pytest.approx(3.0)
    assert ops.reduce_sum(x).item() == pytest.approx(12.0)
    loc = torch.randn(3, 4)
    assert torch.equal(ops.reduce_mean(D.Independent(D.Normal(loc, 1.0), 1)), loc)


def test_noise_ops_have_the_requested_scale():
    torch.manual_seed(1)
    like = torch.zeros(200, 100)
    n = ops.noise(like, std=3.0)
    assert n.shape == like.shape
    assert n.std().item() == pytest.approx(3.0, rel=0.03)
    assert ops.randn_like(like).std().item() == pytest.approx(1.0, rel=0.03)
    x = torch.full((200, 100), 5.0)
    noisy = ops.add_noise(x, 0.5)
    assert noisy.mean().item() == pytest.approx(5.0, abs=0.02)
    assert noisy.std().item() == pytest.approx(0.5, rel=0.03)
    assert torch.equal(ops.add_noise(x, 0.0), x)


def test_elementwise_maps_match_torch():
    x = torch.linspace(-3, 3, 12).reshape(3, 4)
    assert torch.equal(ops.clamp(x, -1.0, 0.5), x.clamp(-1.0, 0.5))
    assert torch.allclose(ops.sigmoid(x), 1 / (1 + torch.exp(-x)))
    assert torch.allclose(ops.tanh(x), torch.tanh(x))
    s = ops.softmax(x)
    assert torch.allclose(s.sum(1), torch.ones(3))
    assert torch.allclose(s, F.softmax(x, dim=1))
    assert torch.allclose(ops.softmax(x, dim=0).sum(0), torch.ones(4))


def test_lerp_with_scalar_and_per_sample_weights():
    a, b = torch.zeros(3, 2, 4, 4), torch.ones(3, 2, 4, 4)
    assert torch.allclose(ops.lerp(a, b, 0.25), torch.full_like(a, 0.25))
    w = torch.tensor([0.0, 0.5, 1.0])
    out = ops.lerp(a, b, w)                                  # (b,) broadcast over c h w
    assert out.shape == a.shape
    assert torch.allclose(out[:, 0, 0, 0], w)
    assert torch.allclose(ops.lerp(a, b, w[:, None]), out)  # (b, 1) works the same


def test_log_prob_is_per_sample_and_sums_plain_normal_coordinates():
    loc, scale = torch.randn(4, 3), torch.rand(4, 3) + 0.5
    x = torch.randn(4, 3)
    by_hand = (-0.5 * ((x - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(1)
    assert torch.allclose(ops.log_prob(D.Normal(loc, scale), x), by_hand, atol=1e-5)
    assert torch.allclose(ops.log_prob(D.Independent(D.Normal(loc, scale), 1), x), by_hand, atol=1e-5)
