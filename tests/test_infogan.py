"""InfoGAN: the information loss against hand-computed values, H(c), learning the mutual
information on digits, and sampling with a fixed category (``lvmgraph sample RUN --given c=3``)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lvmgraph.api as lg
from lvmgraph.cli import main as cli_main
from lvmgraph.experiment import prepare
from lvmgraph.plugins import get_registry
from lvmgraph.train.trainer import Trainer
from lvmgraph_core.priors import CategoricalPrior, UniformPrior
from lvmgraph_infogan import code_entropy, info_loss

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "specs" / "infogan_digits.yaml"
LOG10 = math.log(10)
# a small, fast version of the digits spec for the tests (the shipped one trains for minutes)
SMALL = ["components.generator.channels=[32, 16]", "components.generator.hidden=[64]",
         "components.discriminator.channels=[16, 32]", "components.discriminator.hidden=[64]",
         "components.q_head.in_shape=[64]", "components.q_head.hidden=[64]",
         "train.threads=1", "train.progress=false"]

# ----------------------------------------------------------------------------- info_loss by hand

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
CODES = torch.tensor([0, 2])
MEAN = torch.tensor([[0.1, -0.4], [0.9, 0.0]])
U = torch.tensor([[0.3, -0.5], [-1.0, 0.25]])
LOGSTD = torch.tensor([[0.0, -1.0], [0.5, 0.2]])


def hand_cross_entropy() -> float:
    rows = []
    for logits, c in zip(LOGITS.tolist(), CODES.tolist()):
        log_z = math.log(sum(math.exp(v) for v in logits))
        rows.append(log_z - logits[c])
    return sum(rows) / len(rows)


def hand_gaussian_nll(logstd=None) -> float:
    rows = []
    for i in range(2):
        total = 0.0
        for j in range(2):
            s = 0.0 if logstd is None else logstd[i][j]
            sigma = math.exp(s)
            total += 0.5 * ((U[i][j].item() - MEAN[i][j].item()) / sigma) ** 2 + s + 0.5 * math.log(2 * math.pi)
        rows.append(total)
    return sum(rows) / len(rows)


def test_info_loss_categorical_is_the_cross_entropy_of_the_code():
    expected = hand_cross_entropy()
    # by hand: log(e^2 + 1 + e^-1) - 2 = 0.1699 and log(2 e^0.5 + e^3) - 3 = 0.1520
    assert expected == pytest.approx((0.1699 + 0.1520) / 2, abs=1e-4)
    one_hot = F.one_hot(CODES, 3).float()
    assert info_loss(LOGITS, one_hot).item() == pytest.approx(expected, rel=1e-6)
    assert info_loss(LOGITS, CODES).item() == pytest.approx(expected, rel=1e-6)


def test_info_loss_adds_the_gaussian_nll_of_continuous_codes():
    one_hot = F.one_hot(CODES, 3).float()
    unit = hand_gaussian_nll()
    learned = hand_gaussian_nll(LOGSTD.tolist())
    assert info_loss(LOGITS, one_hot, MEAN, U).item() == pytest.approx(hand_cross_entropy() + unit, rel=1e-6)
    assert info_loss(LOGITS, one_hot, MEAN, U, LOGSTD).item() == pytest.approx(
        hand_cross_entropy() + learned, rel=1e-6)
    assert info_loss(LOGITS, one_hot, MEAN, U, weight_continuous=0.25).item() == pytest.approx(
        hand_cross_entropy() + 0.25 * unit, rel=1e-6)
    # continuous codes only; and the same as torch's Normal log-density
    assert info_loss(None, None, MEAN, U).item() == pytest.approx(unit, rel=1e-6)
    torch_nll = -torch.distributions.Normal(MEAN, LOGSTD.exp()).log_prob(U).sum(1).mean()
    assert info_loss(None, None, MEAN, U, LOGSTD).item() == pytest.approx(torch_nll.item(), rel=1e-6)


def test_info_loss_gradients_reach_q_and_the_generator_side():
    logits = LOGITS.clone().requires_grad_()
    mean = MEAN.clone().requires_grad_()
    info_loss(logits, CODES, mean, U).backward()
    # d CE / d logits = (softmax - one_hot) / b ; d NLL / d mean = (mean - u) / b
    expected = (F.softmax(LOGITS, 1) - F.one_hot(CODES, 3).float()) / 2
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    assert torch.allclose(mean.grad, (MEAN - U) / 2, atol=1e-6)


@pytest.mark.parametrize("args, message", [
    ((LOGITS, F.one_hot(CODES, 4).float()), r"code has shape \(2, 4\) but Q's logits \(2, 3\)"),
    ((LOGITS, CODES, MEAN), r"both q_u_mean and u"),
    ((None, CODES), r"both q_c_logits and c"),
    ((LOGITS, CODES, MEAN, U[:, :1]), r"q_u_mean has shape \(2, 2\) but the continuous code u \(2, 1\)"),
    ((None, None), r"needs a categorical code"),
])
def test_info_loss_rejects_mismatched_inputs(args, message):
    with pytest.raises(ValueError, match=message):
        info_loss(*args)


def test_code_entropy_is_the_entropy_of_the_code_prior():
    assert code_entropy(CategoricalPrior(n_classes=10)).item() == pytest.approx(LOG10, rel=1e-6)
    probs = [0.5, 0.25, 0.25]
    assert code_entropy(CategoricalPrior(n_classes=3, probs=probs)).item() == pytest.approx(
        -sum(p * math.log(p) for p in probs), rel=1e-6)
    assert code_entropy(UniformPrior(shape=[2], low=-1, high=1)).item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_registered_as_a_loss_and_an_op():
    reg = get_registry()
    assert reg.get("loss", "info_loss").plugin == "infogan"
    assert reg.get("op", "code_entropy").plugin == "infogan"


# ----------------------------------------------------------------------------- learning

def test_infogan_learns_the_mutual_information_on_digits():
    """The categorical bound H(c) - CE starts near 0 and climbs most of the way to log 10 in a few hundred
    steps; the continuous codes' NLL falls from what a Q that ignores the image gets."""
    rows = []
    exp = prepare(lg.load(DIGITS, [*SMALL, "train.steps=200", "train.log_every=20"]), device="cpu")
    tr = Trainer(exp, callbacks=(lambda t: rows.append(dict(t.last_losses)) if t.step % 20 == 0 else None,))
    tr.fit()
    first, last = rows[0], rows[-1]
    assert abs(first["mi_lower_bound"]) < 0.5, first  # at the start Q cannot tell the codes apart
    assert last["mi_lower_bound"] > 0.8 * LOG10, last  # info_cat < 0.46 nats, far below log 10 = 2.30
    assert max(r["mi_lower_bound"] for r in rows) <= LOG10 + 1e-6  # a lower bound on I(c; x) <= H(c)
    # a Q that predicts u = 0 scores 2 * (E[u^2]/2 + log(2 pi)/2) = 1/3 + log(2 pi) = 2.17 nats
    blind = 1 / 3 + math.log(2 * math.pi)
    assert last["info_u"] < blind - 0.15, (last, blind)
    # the adversarial game is still being played: the discriminator neither wins outright nor is lost
    # (2 log 2 = 1.39 is a discriminator that cannot tell real from fake)
    assert 0.3 < last["d_loss"] < 2 * math.log(2) + 0.5 and math.isfinite(last["g_loss"])


# ----------------------------------------------------------------------------- fixed-code sampling

@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("infogan") / "run"
    lg.train(DIGITS, out=out, overrides=[*SMALL, "train.steps=20", "train.log_every=10", "train.checkpoint_every=20",
                                         "train.sample_every=20"], progress=False, evaluate=False)
    return out


def test_sample_given_c_feeds_that_category_to_the_generator(short_run, tmp_path):
    out = tmp_path / "threes.npz"
    assert cli_main(["sample", str(short_run), "--given", "c=3", "-n", "12", "--out", str(out)]) == 0
    samples = torch.from_numpy(np.load(out)["samples"])
    assert samples.shape == (12, 1, 8, 8)

    run = lg.open_run(short_run)
    gen = run.experiment.modules["generator"]
    inputs = []
    handle = gen.register_forward_hook(lambda m, args, output: inputs.append(args[0].clone()))
    try:
        again = run.sample(12, given=lg.parse_given(["c=3"], 12, "cpu"))
        other = run.sample(12, given=lg.parse_given(["c=7"], 12, "cpu"))
    finally:
        handle.remove()
    # the generator's input is concat(z, c, u): columns 32..41 hold the code, one-hot at category 3
    z_dim = run.experiment.modules["noise"].shape[0]
    code = inputs[0][:, z_dim:z_dim + 10]
    assert torch.equal(code, F.one_hot(torch.full((12,), 3), 10).float())
    assert torch.equal(inputs[1][:, z_dim:z_dim + 10], F.one_hot(torch.full((12,), 7), 10).float())
    # noise and continuous codes are drawn as usual (seeded), only c is fixed
    assert torch.equal(inputs[0][:, :z_dim], inputs[1][:, :z_dim])
    assert inputs[0][:, :z_dim].std() > 0.5
    # the CLI's samples are exactly the graph's output for that input, and the code changes the image
    assert torch.equal(samples, again)
    assert not torch.allclose(again, other)


def test_grid_script_fixes_one_category_per_row_and_shares_noise_down_columns(short_run, tmp_path):
    import importlib.util
    from PIL import Image
    spec = importlib.util.spec_from_file_location("infogan_grid", ROOT / "benchmarks" / "infogan_grid.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)

    exp = lg.open_run(short_run).experiment
    assert grid.categorical_code(exp, None) == ("c", 10)
    rows = [4, 0, 9]
    given = grid.grid_inputs(exp, "c", 10, 5, rows, None)
    assert torch.equal(given["c"].argmax(1), torch.tensor(rows).repeat_interleave(5))
    z = given["z"].reshape(3, 5, -1)
    assert torch.equal(z[0], z[1]) and torch.equal(z[0], z[2]) and not torch.equal(z[0, 0], z[0, 1])
    # --sweep u:1 moves only that coordinate, from the prior's low to its high, across the columns
    swept = grid.grid_inputs(exp, "c", 10, 5, rows, "u:1")["u"].reshape(3, 5, 2)
    assert torch.allclose(swept[0, :, 1], torch.linspace(-1, 1, 5))
    assert torch.equal(swept[:, :, 0], swept[:1, :1, 0].expand(3, 5))

    out = tmp_path / "grid.png"
    assert grid.main([str(short_run), "--out", str(out), "--cols", "4"]) == 0
    # 10 rows x 4 columns of 8x8 digits enlarged to 32x32 tiles with 2-pixel separators
    assert Image.open(out).size == (4 * 34 + 2, 10 * 34 + 2)
