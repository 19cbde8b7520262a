"""Core components: mlp, conv_encoder, conv_decoder (shapes, errors, gradients, learning)."""
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from lvmgraph import ShapeMismatch
from lvmgraph.plugins.registry import Registry
from lvmgraph_core.components import register_components

IMAGE_SHAPES = [(1, 8, 8), (1, 28, 28), (1, 32, 32), (3, 40, 40)]


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    register_components(reg.registrar("component", "core"))
    return reg


def build(registry, name, **settings):
    """Validate settings with the registered params model and build, as a spec would."""
    entry = registry.get("component", name)
    return entry.factory(**dict(entry.params(**settings)))


def test_registered_with_params_and_docs(registry):
    assert {"mlp", "conv_encoder", "conv_decoder"} <= set(registry.names("component"))
    for name in ("mlp", "conv_encoder", "conv_decoder"):
        entry = registry.get("component", name)
        assert entry.params is not None and "->" in entry.summary
        assert all(f.description for f in entry.params.model_fields.values())


# ----------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("shape", IMAGE_SHAPES + [(2,)])
def test_mlp_shapes_both_ways(registry, shape):
    torch.manual_seed(0)
    enc = build(registry, "mlp", in_shape=list(shape), out_shape=[3], hidden=[16])
    dec = build(registry, "mlp", in_shape=[3], out_shape=list(shape), hidden=[16], out_activation="sigmoid")
    z = enc(torch.rand(5, *shape))
    assert z.shape == (5, 3)
    x = dec(z)
    assert x.shape == (5, *shape)
    assert (x > 0).all() and (x < 1).all()


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_conv_encoder_shapes(registry, shape):
    enc = build(registry, "conv_encoder", in_shape=list(shape), out_shape=[6], channels=[4, 8])
    assert enc(torch.rand(3, *shape)).shape == (3, 6)
    # a non-vector output shape is reshaped too
    enc = build(registry, "conv_encoder", in_shape=list(shape), out_shape=[2, 3], channels=[4, 8, 8])
    assert enc(torch.rand(3, *shape)).shape == (3, 2, 3)


@pytest.mark.parametrize("shape", IMAGE_SHAPES)
def test_conv_decoder_shapes_and_default_sigmoid(registry, shape):
    dec = build(registry, "conv_decoder", in_shape=[5], out_shape=list(shape), channels=[8, 4])
    x = dec(torch.randn(3, 5) * 10)
    assert x.shape == (3, *shape)
    assert (x >= 0).all() and (x <= 1).all()


def test_conv_decoder_without_activation_is_unbounded(registry):
    torch.manual_seed(0)
    dec = build(registry, "conv_decoder", in_shape=[4], out_shape=[1, 8, 8], channels=[8, 4],
                out_activation="none")
    x = dec(torch.randn(64, 4) * 50)
    assert x.min() < 0 and x.max() > 1


def test_conv_decoder_rejects_indivisible_size_naming_channels(registry):
    with pytest.raises(ValueError) as err:
        build(registry, "conv_decoder", in_shape=[5], out_shape=[1, 28, 28], channels=[8, 8, 8])
    assert "channels" in str(err.value) and "length 2" in str(err.value)
    # the plain constructor gives the same advice
    from lvmgraph_core.components import ConvDecoder
    with pytest.raises(ValueError, match=r"out_shape \[1, 28, 28\].*channels"):
        ConvDecoder(in_shape=[5], out_shape=[1, 28, 28], channels=[8, 8, 8])


def test_conv_encoder_rejects_too_many_halvings(registry):
    with pytest.raises(ValidationError, match="channels"):
        build(registry, "conv_encoder", in_shape=[1, 4, 4], out_shape=[2], channels=[4, 4, 4, 4])


# ----------------------------------------------------------------------------- values

def test_mlp_matches_functional_reference_with_leaky_relu(registry):
    torch.manual_seed(0)
    mlp = build(registry, "mlp", in_shape=[3], out_shape=[2], hidden=[4], activation="leaky_relu")
    first, last = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    x = torch.randn(7, 3)
    expected = F.linear(F.leaky_relu(F.linear(x, first.weight, first.bias), 0.2), last.weight, last.bias)
    torch.testing.assert_close(mlp(x), expected)


def test_mlp_flattens_images_in_c_h_w_order(registry):
    torch.manual_seed(0)
    mlp = build(registry, "mlp", in_shape=[2, 3, 3], out_shape=[1], hidden=[])
    (linear,) = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    x = torch.randn(4, 2, 3, 3)
    torch.testing.assert_close(mlp(x), x.reshape(4, 18) @ linear.weight.T + linear.bias)


def test_dropout_only_in_training_mode(registry):
    torch.manual_seed(0)
    mlp = build(registry, "mlp", in_shape=[8], out_shape=[8], hidden=[64], dropout=0.5)
    x = torch.randn(4, 8)
    assert not torch.allclose(mlp(x), mlp(x))
    mlp.eval()
    torch.testing.assert_close(mlp(x), mlp(x))


def test_spectral_norm_bounds_linear_layers(registry):
    torch.manual_seed(0)
    mlp = build(registry, "mlp", in_shape=[10], out_shape=[10], hidden=[32], spectral_norm=True)
    for _ in range(20):  # power iteration converges while training-mode forwards run
        mlp(torch.randn(2, 10))
    for m in mlp.modules():
        if isinstance(m, torch.nn.Linear):
            assert torch.linalg.matrix_norm(m.weight, ord=2) < 1.05


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("name,settings,bad_input", [
    ("mlp", dict(in_shape=[1, 8, 8], out_shape=[2]), torch.zeros(2, 1, 28, 28)),
    ("conv_encoder", dict(in_shape=[1, 8, 8], out_shape=[2]), torch.zeros(2, 3, 8, 8)),
    ("conv_decoder", dict(in_shape=[4], out_shape=[1, 8, 8]), torch.zeros(2, 5)),
])
def test_wrong_input_shape_names_the_setting(registry, name, settings, bad_input):
    module = build(registry, name, **settings)
    with pytest.raises(ShapeMismatch) as err:
        module(bad_input)
    message = str(err.value)
    assert "in_shape" in message and name in message
    assert str(list(bad_input.shape[1:])) in message


@pytest.mark.parametrize("name,good", [
    ("mlp", dict(in_shape=[2], out_shape=[2])),
    ("conv_encoder", dict(in_shape=[1, 8, 8], out_shape=[2])),
    ("conv_decoder", dict(in_shape=[2], out_shape=[1, 8, 8])),
])
def test_params_reject_unknown_keys(registry, name, good):
    params = registry.get("component", name).params
    params(**good)
    with pytest.raises(ValidationError, match="hiddden"):
        params(**good, hiddden=[3])


@pytest.mark.parametrize("name,bad", [
    ("mlp", dict(in_shape=[2], out_shape=[2], dropout=1.0)),
    ("mlp", dict(in_shape=[2], out_shape=[2], activation="gelu")),
    ("mlp", dict(in_shape=[2], out_shape=[2], hidden=[0])),
    ("mlp", dict(in_shape=[], out_shape=[2])),
    ("conv_encoder", dict(in_shape=[28, 28], out_shape=[2])),
    ("conv_encoder", dict(in_shape=[1, 8, 8], out_shape=[2], out_activation="softmax")),
    ("conv_decoder", dict(in_shape=[2], out_shape=[784])),
    ("conv_decoder", dict(in_shape=[2], out_shape=[1, 8, 8], channels=[])),
])
def test_params_reject_bad_values(registry, name, bad):
    with pytest.raises(ValidationError):
        registry.get("component", name).params(**bad)


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("name,settings,x", [
    ("mlp", dict(in_shape=[1, 8, 8], out_shape=[3], hidden=[16, 16], batch_norm=True, dropout=0.1),
     torch.rand(6, 1, 8, 8)),
    ("mlp", dict(in_shape=[2], out_shape=[1], hidden=[16], spectral_norm=True, activation="silu"),
     torch.randn(6, 2)),
    ("conv_encoder", dict(in_shape=[3, 40, 40], out_shape=[4], channels=[4, 8, 8], batch_norm=True),
     torch.rand(6, 3, 40, 40)),
    ("conv_encoder", dict(in_shape=[1, 28, 28], out_shape=[1], spectral_norm=True), torch.rand(6, 1, 28, 28)),
    ("conv_decoder", dict(in_shape=[4], out_shape=[1, 32, 32], channels=[8, 4, 4], batch_norm=True),
     torch.randn(6, 4)),
])
def test_gradients_reach_every_parameter(registry, name, settings, x):
    torch.manual_seed(0)
    module = build(registry, name, **settings)
    out = module(x)
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


# ----------------------------------------------------------------------------- learning

def test_tiny_mlp_autoencoder_learns_digits(registry):
    datasets = pytest.importorskip("sklearn.datasets")
    torch.manual_seed(0)
    x = torch.tensor(datasets.load_digits().data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
    enc = build(registry, "mlp", in_shape=[1, 8, 8], out_shape=[8], hidden=[64])
    dec = build(registry, "mlp", in_shape=[8], out_shape=[1, 8, 8], hidden=[64], out_activation="sigmoid")
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)

    def mse():
        return F.mse_loss(dec(enc(x)), x)

    with torch.no_grad():
        before = mse().item()
    for _ in range(200):
        opt.zero_grad()
        loss = mse()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = mse().item()
    assert after < 0.5 * before, (before, after)


def test_tiny_conv_autoencoder_learns(registry):
    torch.manual_seed(0)
    # blobs at random positions: needs spatial structure, cheap at 8x8
    grid = torch.stack(torch.meshgrid(torch.arange(8.), torch.arange(8.), indexing="ij"))
    centers = torch.rand(256, 2, 1, 1) * 7
    x = torch.exp(-((grid - centers) ** 2).sum(1, keepdim=True) / 2)
    enc = build(registry, "conv_encoder", in_shape=[1, 8, 8], out_shape=[4], channels=[8, 16])
    dec = build(registry, "conv_decoder", in_shape=[4], out_shape=[1, 8, 8], channels=[16, 8])
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = F.mse_loss(dec(enc(x)), x)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


# ----------------------------------------------------------------------------- multi_head_mlp

def test_multi_head_mlp_returns_named_outputs_of_the_declared_shapes(registry):
    critic = build(registry, "multi_head_mlp", in_shape=[2], heads={"logit": [1], "cls": [10]}, hidden=[16, 16])
    out = critic(torch.randn(5, 2))
    assert set(out) == {"logit", "cls"}
    assert out["logit"].shape == (5, 1) and out["cls"].shape == (5, 10)


def test_multi_head_mlp_heads_share_one_trunk(registry):
    critic = build(registry, "multi_head_mlp", in_shape=[1, 8, 8], heads={"a": [1], "b": [3]}, hidden=[16])
    out = critic(torch.rand(4, 1, 8, 8))
    out["b"].sum().backward()  # a loss on one head trains the shared trunk, not the other head
    assert all(p.grad is not None for p in critic.trunk.parameters())
    assert all(p.grad is None for p in critic.heads["a"].parameters())
    assert all(p.grad is not None for p in critic.heads["b"].parameters())


def test_multi_head_mlp_rejects_head_names_that_cannot_be_read_as_attributes(registry):
    with pytest.raises(ValidationError, match="identifiers"):
        registry.get("component", "multi_head_mlp").params(in_shape=[2], heads={"real-fake": [1]})


def test_multi_head_mlp_checks_its_input_shape(registry):
    critic = build(registry, "multi_head_mlp", in_shape=[2], heads={"logit": [1]}, hidden=[8])
    with pytest.raises(ShapeMismatch, match="in_shape"):
        critic(torch.randn(3, 4))
