"""GAN-INT-CLS (Reed et al. 2016): the text encoder ignores padding, the generator and the
matching-aware discriminator have the paper's shapes, the CLS loss equals hand-computed values,
``mismatch`` never hands an example its own caption, each phase moves only its components, a tiny
model on captioned 8x8 digits learns to draw the digit its caption names, sampling from a caption
and the embedding interpolation work, and a resumed run equals an uninterrupted one."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_same
from pydantic import ValidationError

import lvmgraph.api as lg
from lvmgraph.cli import main as cli_main
from lvmgraph.experiment import generate, prepare
from lvmgraph.plugins import get_registry
from lvmgraph.train.checkpoint import latest_checkpoint, load_checkpoint
from lvmgraph.train.trainer import Trainer
from lvmgraph_core.ops import shuffle
from lvmgraph_datasets.captions import encode_caption
from lvmgraph_text2image import (MatchingDiscriminator, MatchingDiscriminatorParams, TextEncoder, TextGenerator,
                                 TextGeneratorParams, cls_discriminator_loss, interpolation, mismatch, mismatch_index)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def padded(captions: list[list[int]], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> (text (n length) right-padded with 0, text_length (n,))."""
    text = torch.zeros(len(captions), length, dtype=torch.long)
    for i, ids in enumerate(captions):
        text[i, :len(ids)] = torch.tensor(ids)
    return text, torch.tensor([len(ids) for ids in captions])


CAPTIONS = [[1, 4, 7], [1, 2, 5, 9, 3], [6], [1, 4, 8, 2]]


# ----------------------------------------------------------------------------- text encoder

@pytest.mark.parametrize("bidirectional", [False, True], ids=["gru", "bigru"])
def test_text_encoder_shape_and_padding_never_changes_the_embedding(bidirectional):
    enc = TextEncoder(vocab_size=10, embed_dim=8, hidden=12, out_dim=6, bidirectional=bidirectional)
    text, length = padded(CAPTIONS, 5)
    phi = enc(text, length)
    assert phi.shape == (4, 6)
    # the same captions padded much further
    longer, _ = padded(CAPTIONS, 11)
    torch.testing.assert_close(enc(longer, length), phi, rtol=0, atol=1e-6)
    # each caption alone, padded only to its own length: the batch around it does not matter either
    for i, ids in enumerate(CAPTIONS):
        alone, n = padded([ids], len(ids))
        torch.testing.assert_close(enc(alone, n)[0], phi[i], rtol=0, atol=1e-6)
    # lengths may be left out: they are then counted from the padding
    torch.testing.assert_close(enc(text), phi, rtol=0, atol=0)
    # ... while the words themselves do matter, the last word included
    other, _ = padded([[1, 4, 7], [1, 2, 5, 9, 4], [5], [1, 4, 8, 2]], 5)
    changed = (enc(other, length) - phi).abs().amax(dim=1)
    assert changed[0] == 0 and changed[3] == 0 and changed[1] > 1e-4 and changed[2] > 1e-4


def test_bag_of_words_encoder_is_additive_in_the_words_and_ignores_order_and_padding():
    enc = TextEncoder(vocab_size=10, embed_dim=8, out_dim=6, encoder="bag")
    assert enc.rnn is None
    text, length = padded(CAPTIONS, 5)
    phi = enc(text, length)
    longer, _ = padded(CAPTIONS, 11)
    torch.testing.assert_close(enc(longer, length), phi, rtol=0, atol=1e-6)
    reordered, _ = padded([[7, 1, 4], [3, 9, 5, 2, 1], [6], [2, 8, 4, 1]], 5)
    torch.testing.assert_close(enc(reordered, length), phi, rtol=0, atol=1e-5)
    # a word swapped moves every caption's embedding by the same vector: "red boot" - "green boot"
    # = "red sneaker" - "green sneaker", so an unseen combination is made of seen differences
    a, _ = padded([[1, 4, 7], [1, 5, 7], [1, 4, 8], [1, 5, 8]], 3)
    e = enc(a)
    torch.testing.assert_close(e[0] - e[1], e[2] - e[3], rtol=0, atol=1e-5)
    assert (e[0] - e[1]).abs().max() > 1e-3
    # the GRU is not additive
    gru = TextEncoder(vocab_size=10, embed_dim=8, hidden=12, out_dim=6)
    g = gru(a)
    assert ((g[0] - g[1]) - (g[2] - g[3])).abs().max() > 1e-3
    with pytest.raises(ValueError, match="'gru' or 'bag'"):
        TextEncoder(vocab_size=10, encoder="lstm")


def test_a_gru_reading_the_padding_would_see_it():
    """The control for the test above: without packing, a GRU's final state depends on the pad steps."""
    enc = TextEncoder(vocab_size=10, embed_dim=8, hidden=12, out_dim=6)
    text, _ = padded(CAPTIONS, 5)
    longer, _ = padded(CAPTIONS, 11)
    naive = [enc.rnn(enc.embed(t))[1][0] for t in (text, longer)]  # final state after every step, pads too
    assert (naive[0] - naive[1]).abs().max() > 1e-3


def test_text_encoder_errors_say_what_to_fix():
    enc = TextEncoder(vocab_size=10, embed_dim=4, hidden=4, out_dim=4)
    text, length = padded(CAPTIONS, 5)
    with pytest.raises(ValueError, match=r"token id 12 is outside a vocabulary of vocab_size=10; set vocab_size"):
        enc(text.masked_fill(text == 9, 12), length)
    with pytest.raises(ValueError, match=r"text_length does not match the captions' padding \(row 2"):
        enc(text, torch.tensor([3, 5, 2, 4]))  # the third caption has one word
    with pytest.raises(ValueError, match=r"text_length does not match.*row 0"):
        enc(text, torch.tensor([2, 5, 1, 4]))  # a word beyond the stated length
    with pytest.raises(ValueError, match=r"every caption needs 1 to 5 words"):
        enc(text, torch.tensor([3, 6, 1, 4]))
    with pytest.raises(ValueError, match=r"token ids \(batch, length\) int64"):
        enc(text.float(), length)


# ----------------------------------------------------------------------------- generator and discriminator

def test_generator_concatenates_the_compressed_text_to_z():
    g = TextGenerator(noise_dim=10, embed_dim=6, text_dim=4, out_shape=[3, 32, 32], channels=[16, 8, 4])
    assert g.net.project[0].in_features == 10 + 4  # z and the 4-d compressed text
    assert g.project.linear.out_features == 4 and isinstance(g.project.act, torch.nn.LeakyReLU)
    z, phi = torch.randn(5, 10), torch.randn(5, 6)
    x = g(z, phi)
    assert x.shape == (5, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    g.eval()
    assert not torch.allclose(g(z, phi), g(z, phi.flip(0)))  # the text changes the image
    with pytest.raises(ValueError, match=r"z must be \(batch, 10\).*noise_dim"):
        g(torch.randn(5, 9), phi)
    with pytest.raises(ValueError, match=r"text embedding must be \(batch, 6\).*embed_dim"):
        g(z, torch.randn(5, 7))
    with pytest.raises(ValidationError, match=r"divisible by 8"):
        TextGeneratorParams(noise_dim=10, embed_dim=6, out_shape=[3, 28, 28])


def test_tinted_generator_draws_one_ink_channel_in_a_colour_read_from_the_text_alone():
    g = TextGenerator(noise_dim=10, embed_dim=6, text_dim=4, out_shape=[3, 16, 16], channels=[16, 8], tint=True)
    g.eval()
    z, phi = torch.randn(5, 10), torch.randn(5, 6)
    x = g(z, phi)
    assert x.shape == (5, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    ink = (x + 1) / 2  # every channel is the same ink map times that image's colour
    colour = torch.sigmoid(g.colour(g.project(phi, owner="test")))
    assert torch.allclose(ink / colour[:, :, None, None], ink[:, :1] / colour[:, :1, None, None], atol=1e-5)
    # the noise moves the ink but never the colour: the per-channel ratio is the text's alone
    x2 = g(torch.randn(5, 10), phi)
    ratio = lambda im: ((im + 1) / 2).flatten(2).sum(2) / ((im + 1) / 2).flatten(2).sum(2).sum(1, keepdim=True)  # noqa: E731
    assert torch.allclose(ratio(x), ratio(x2), atol=1e-5) and not torch.allclose(x, x2)
    # sigmoid outputs stay in [0, 1]; no output activation cannot be tinted
    s = TextGenerator(noise_dim=10, embed_dim=6, text_dim=4, out_shape=[3, 16, 16], channels=[16, 8], tint=True,
                      out_activation="sigmoid")
    assert 0 <= s(z, phi).min() and s(z, phi).max() <= 1
    with pytest.raises(ValidationError, match=r"tint: true needs out_activation tanh"):
        TextGeneratorParams(noise_dim=10, embed_dim=6, out_shape=[3, 16, 16], channels=[16, 8], tint=True,
                            out_activation="none")


def test_discriminator_joins_text_and_image_on_a_4x4_map():
    d = MatchingDiscriminator(in_shape=[3, 32, 32], embed_dim=6, text_dim=4, channels=[8, 16, 32])
    x, phi = torch.randn(5, 3, 32, 32), torch.randn(5, 6)
    h = d.features(x)
    assert h.shape == (5, 32, 4, 4)  # the paper's 4x4 map
    assert d.joint[0].kernel_size == (1, 1) and d.joint[0].in_channels == 32 + 4  # depth concat, 1x1 conv
    assert d.out.kernel_size == (4, 4)  # a final conv over the whole map to one logit
    logit = d(x, phi)
    assert logit.shape == (5, 1)
    d.eval()
    torch.testing.assert_close(d.score(d.features(x), phi), d(x, phi))
    assert not torch.allclose(d(x, phi), d(x, phi.flip(0)))  # the text changes the judgement
    # the text is replicated: every cell of the map sees the same compressed embedding
    seen = []
    handle = d.joint.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    d(x, phi)
    handle.remove()
    text_part = seen[0][:, 32:]
    assert torch.equal(text_part, text_part[:, :, :1, :1].expand_as(text_part))
    with pytest.raises(ValidationError, match=r"too small"):
        MatchingDiscriminatorParams(in_shape=[3, 4, 4], embed_dim=6, channels=[8, 16, 32, 64])
    assert MatchingDiscriminator(in_shape=[3, 28, 28], embed_dim=6, channels=[8, 16]).map_shape == (7, 7)


def test_projection_adds_the_inner_product_of_projected_text_and_pooled_features():
    d = MatchingDiscriminator(in_shape=[3, 16, 16], embed_dim=6, text_dim=4, channels=[8, 16], projection=True)
    d.eval()
    x, phi = torch.randn(3, 3, 16, 16), torch.randn(3, 6)
    h = d.features(x)
    plain = d.out(d.joint(torch.cat([h, d.project(phi, owner="t")[:, :, None, None].expand(-1, -1, 4, 4)], 1)))
    by_hand = plain.flatten(1) + (phi @ d.text_to_channels.weight.T * h.sum(dim=(2, 3))).sum(1, keepdim=True)
    torch.testing.assert_close(d.score(h, phi), by_hand)
    assert MatchingDiscriminator(in_shape=[3, 16, 16], embed_dim=6, channels=[8, 16]).text_to_channels is None


def test_class_head_reads_the_class_from_the_trunk_map_alone_and_learns_it():
    torch.manual_seed(0)
    d = MatchingDiscriminator(in_shape=[3, 16, 16], embed_dim=6, text_dim=4, channels=[8, 16], num_classes=3)
    x = torch.randn(6, 3, 16, 16)
    h = d.features(x)
    assert d.classify(h).shape == (6, 3)
    torch.testing.assert_close(d.classify(h), h.flatten(1) @ d.classes.weight.T + d.classes.bias)
    # a class loss on real images trains trunk and head: three colours of image, told apart
    y = torch.arange(3).repeat(8)
    images = torch.zeros(24, 3, 16, 16)
    images[torch.arange(24), y] = 1.0
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(d.classify(d.features(images)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    d.eval()
    assert (d.classify(d.features(images)).argmax(1) == y).all() and loss.item() < 0.1
    plain = MatchingDiscriminator(in_shape=[3, 16, 16], embed_dim=6, channels=[8, 16])
    assert plain.classes is None
    with pytest.raises(ValueError, match="num_classes"):
        plain.classify(h)


def test_spectral_norm_bounds_every_layer_of_the_discriminator():
    d = MatchingDiscriminator(in_shape=[3, 16, 16], embed_dim=6, text_dim=4, channels=[8, 16], spectral_norm=True)
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 5  # two trunk convs, the text projection, the 1x1 conv, the output conv
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)
    assert d(torch.randn(2, 3, 16, 16), torch.randn(2, 6)).shape == (2, 1)


# ----------------------------------------------------------------------------- CLS loss and mismatch

def test_cls_loss_equals_the_papers_objective_by_hand():
    real_right = torch.tensor([[2.0], [-0.5]])
    real_wrong = torch.tensor([[0.3], [-1.2]])
    fake_right = torch.tensor([[-2.0], [1.5]])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    mean = lambda vs: sum(vs) / len(vs)  # noqa: E731
    expected = (-mean([math.log(sig(v)) for v in (2.0, -0.5)])
                - 0.5 * (mean([math.log(1 - sig(v)) for v in (0.3, -1.2)])
                         + mean([math.log(1 - sig(v)) for v in (-2.0, 1.5)])))
    assert cls_discriminator_loss(real_right, real_wrong, fake_right).item() == pytest.approx(expected, rel=1e-6)
    # the wrong-text and fake terms weigh half each: a D sure of real/right and of the fakes but undecided
    # about the wrong text (logit 0) pays 1/2 log 2
    zero = torch.zeros(3, 1)
    assert cls_discriminator_loss(zero, zero, zero).item() == pytest.approx(2 * math.log(2), rel=1e-6)
    big = torch.full((3, 1), 30.0)
    assert cls_discriminator_loss(big, zero, -big).item() == pytest.approx(0.5 * math.log(2), abs=1e-6)


def test_mismatch_never_gives_an_example_its_own_caption():
    for b in (2, 3, 5, 16):
        text = torch.arange(b)[:, None] * torch.tensor([[1, 3]]) + 1  # b distinct captions
        for _ in range(200):
            idx = mismatch_index(text)
            assert (idx != torch.arange(b)).all()
    # the control: a plain shuffle leaves some example with its own caption
    text = torch.arange(4)[:, None] + 1
    assert any((shuffle(text) == text).any() for _ in range(50))


def test_mismatch_avoids_equal_captions_and_is_uniform_over_the_others():
    # rows 0, 1, 2 share a caption, rows 3 and 4 share another, row 5 is alone
    text = torch.tensor([[1, 2], [1, 2], [1, 2], [3, 0], [3, 0], [4, 5]])
    phi = torch.randn(6, 3, requires_grad=True)
    counts = torch.zeros(6, 6)
    for _ in range(3000):
        idx = mismatch_index(text)
        counts[torch.arange(6), idx] += 1
        assert not (text[idx] == text).all(dim=1).any()
    allowed = torch.tensor([[0, 0, 0, 1, 1, 1]] * 3 + [[1, 1, 1, 0, 0, 1]] * 2 + [[1, 1, 1, 1, 1, 0]]).bool()
    assert (counts[~allowed] == 0).all()
    share = counts / counts.sum(dim=1, keepdim=True)
    expected = allowed / allowed.sum(dim=1, keepdim=True)
    assert (share - expected).abs().max() < 0.05  # 3000 draws: ~4.5 standard deviations
    # the op moves whole rows of x, gradients included
    out = mismatch(phi, text)
    rows = [int(((phi - o).abs().sum(dim=1) == 0).nonzero()) for o in out.detach()]
    assert all(not torch.equal(text[r], text[i]) for i, r in enumerate(rows))
    out.sum().backward()
    assert phi.grad is not None and phi.grad.sum() == 6 * 3


def test_mismatch_when_the_batch_does_not_allow_it():
    same = torch.tensor([[1, 2]] * 4)
    for _ in range(100):  # a single caption in the batch: another example, same caption
        assert (mismatch_index(same) != torch.arange(4)).all()
    assert mismatch_index(torch.tensor([[1, 2]])).tolist() == [0]
    with pytest.raises(ValueError, match=r"x has 3 rows but key has 2"):
        mismatch(torch.randn(3, 2), torch.zeros(2, 1))


def test_registered_under_the_text2image_plugin():
    reg = get_registry()
    for kind, name in [("component", "text_encoder"), ("component", "text_generator"),
                       ("component", "matching_discriminator"), ("loss", "cls_discriminator_loss"),
                       ("op", "mismatch"), ("spec", "text2image")]:
        assert reg.get(kind, name).plugin == "text2image", (kind, name)


# ----------------------------------------------------------------------------- the template on digits

TINY = """\
extends: family:text2image
name: text2image_tiny_digits
seed: 0
data: {dataset: captions, base: digits, thickness: [normal], colours: [white], value_range: [-1, 1],
       batch_size: 32}
components:
  text_encoder:  {vocab_size: 13, embed_dim: 16, hidden: 32, out_dim: 32}
  generator:     {noise_dim: 16, embed_dim: 32, text_dim: 16, out_shape: [3, 8, 8], channels: [32, 16]}
  discriminator: {in_shape: [3, 8, 8], embed_dim: 32, text_dim: 16, channels: [16, 32]}
  noise:         {shape: [16]}
train: {steps: 500, log_every: 50, checkpoint_every: 500, sample_every: 1000, threads: 1, progress: false}
eval: {metrics: []}
"""
FAST = ["phases.0.optimizer.lr=2.0e-3", "phases.1.optimizer.lr=2.0e-3"]  # hundreds of steps, not thousands


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    path = tmp_path / "text2image_tiny.yaml"
    path.write_text(TINY)
    return path


def params(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def moved(before: dict, module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.named_parameters())


def test_each_phase_moves_only_its_components(tiny_spec):
    exp = prepare(lg.load(tiny_spec), device="cpu")
    assert [p.update for p in exp.spec.phases] == [["discriminator", "text_encoder"], ["generator"]]
    tr = Trainer(exp)
    names = ("text_encoder", "generator", "discriminator")
    for i, changes in [(0, {"discriminator", "text_encoder"}), (1, {"generator"})]:
        tr.executor.begin(tr.loader.next(), i)
        before = {n: params(exp.modules[n]) for n in names}
        exp.modules.zero_grad(set_to_none=True)
        tr.run_phase(i, exp.spec.phases[i])
        assert {n for n in names if moved(before[n], exp.modules[n])} == changes
        for n in set(names) - changes:  # no gradient was even computed for the others
            assert all(p.grad is None for p in exp.modules[n].parameters()), n


def test_the_encoder_learns_from_ds_judgement_not_through_the_generator(tiny_spec):
    """In D's phase the fakes carry no gradient: replacing x_fake by a constant copy changes nothing."""
    exp = prepare(lg.load(tiny_spec), device="cpu")
    tr = Trainer(exp)
    ex = tr.executor
    ex.begin(tr.loader.next(), 0)
    d_phase = frozenset({"discriminator", "text_encoder"})
    ex.set_trainable(d_phase)
    enc = list(exp.modules["text_encoder"].parameters())

    z = exp.modules["noise"].sample(n=32)

    def encoder_grads(**overrides):
        torch.manual_seed(1)  # the same wrong captions every time
        loss = ex.evaluate(["d_loss"], updated=d_phase, overrides={"z": z, **overrides}, use_cache=False)["d_loss"]
        return torch.autograd.grad(loss, enc)

    with torch.no_grad():
        x_fake = ex.evaluate(["x_fake"], overrides={"z": z}, use_cache=False)["x_fake"].clone()
    full = encoder_grads()
    assert all(g.abs().sum() > 0 for g in full)
    for a, b in zip(full, encoder_grads(x_fake=x_fake)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # had G read phi directly (no detach), D's loss would reach the encoder through G as well
    phi = ex.evaluate(["phi"], updated=d_phase, use_cache=False)["phi"]
    leaky = encoder_grads(phi=phi, phi_g=phi)
    assert not all(torch.allclose(a, b) for a, b in zip(full, leaky))
    ex.trainable_all()


def caption_accuracy(exp, classifier) -> float:
    """Images generated from the test captions -> share the classifier assigns the caption's class."""
    test = exp.data.test
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        x = generate(exp, len(test["y"]))
    return float(classifier.score(x.flatten(1).numpy(), test["y"].numpy()))


def test_tiny_model_learns_to_draw_the_digit_its_caption_names(tiny_spec):
    from sklearn.linear_model import LogisticRegression
    exp = prepare(lg.load(tiny_spec, FAST), device="cpu")
    assert exp.data.info["vocabulary"][11] == "white" and len(exp.data.info["vocabulary"]) == 13
    train, test = exp.data.train, exp.data.test
    judge = LogisticRegression(max_iter=500).fit(train["x"].flatten(1).numpy(), train["y"].numpy())
    assert judge.score(test["x"].flatten(1).numpy(), test["y"].numpy()) > 0.9  # it can read real digits
    untrained = caption_accuracy(exp, judge)
    rows = []
    Trainer(exp, callbacks=(lambda t: rows.append(dict(t.last_losses)) if t.step % 50 == 0 else None,)).fit()
    trained = caption_accuracy(exp, judge)
    # chance is 0.1; seeds 0-2 give 0.53, 0.41, 0.78 after 500 steps, the untrained model 0.09
    assert trained > 0.3 and trained > untrained + 0.2, (untrained, trained)
    # the game is still played: D has not won outright and the losses are finite
    assert 0.2 < rows[-1]["d_loss"] < 1.5 and math.isfinite(rows[-1]["g_int"])


def test_sampling_from_given_captions_and_interpolating_between_them(tiny_spec, tmp_path):
    run = lg.train(tiny_spec, out=tmp_path / "run", overrides=["train.steps=4", "train.checkpoint_every=4"],
                   progress=False, evaluate=False)
    model = lg.open_run(run.path)
    exp = model.experiment
    vocab, length = exp.data.info["vocabulary"], exp.data.info["max_caption_length"]

    def given(caption: str, n: int) -> dict:
        text = encode_caption(caption, vocab, length=length).repeat(n, 1)
        return {"text": text, "text_length": (text != 0).sum(dim=1)}

    threes = model.sample(6, given=given("a white three", 6))
    sevens = model.sample(6, given=given("a white seven", 6))
    assert threes.shape == (6, 3, 8, 8)
    assert not torch.allclose(threes, sevens)  # the caption steers the image, z is drawn in the graph:
    assert (threes[0] - threes[1]).abs().max() > 1e-4  # rows with one caption still differ
    torch.testing.assert_close(model.sample(6, given=given("a white three", 6)), threes)  # seeded
    # the command line encodes the caption through the dataset's caption encoder into the same inputs
    out = tmp_path / "threes.npz"
    assert cli_main(["sample", str(run.path), "--given", "text=a white three", "-n", "6", "--out", str(out)]) == 0
    torch.testing.assert_close(torch.from_numpy(np.load(out)["samples"]), threes)
    # a sweep over captions: each row is what sampling from that caption alone gives
    rows = model.sweep("text", [given("a white three", 6), given("a white seven", 6)], 6, labels=["3", "7"])
    torch.testing.assert_close(rows["3"], threes)
    torch.testing.assert_close(rows["7"], sevens)
    picture = tmp_path / "sweep.png"
    assert cli_main(["sample", str(run.path), "--sweep", "text=a white three,a white seven", "-n", "6",
                     "--out", str(picture)]) == 0
    assert picture.stat().st_size > 0

    grid = interpolation(exp, "a white three", "a white seven", steps=5, rows=2, seed=3)
    assert grid.shape == (10, 3, 8, 8)
    # the ends of each row are the two captions themselves, drawn with that row's noise
    gen = exp.modules["generator"]
    phi = [exp.modules["text_encoder"](**{k: v[:1] for k, v in given(c, 1).items()}) for c in
           ("a white three", "a white seven")]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        z = exp.modules["noise"].sample(n=2)
    with torch.no_grad():
        for r in range(2):
            torch.testing.assert_close(grid[5 * r], gen(z[r:r + 1], phi[0])[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(grid[5 * r + 4], gen(z[r:r + 1], phi[1])[0], rtol=1e-5, atol=1e-5)
            mid = gen(z[r:r + 1], (phi[0] + phi[1]) / 2)[0]
            torch.testing.assert_close(grid[5 * r + 2], mid, rtol=1e-5, atol=1e-5)


def test_the_template_defaults_fit_32px_rgb_captions(tmp_path):
    path = tmp_path / "defaults.yaml"
    path.write_text("extends: family:text2image\nname: text2image_defaults\n"
                    "data: {dataset: captions, base: digits, pad_to: 32, value_range: [-1, 1]}\n"
                    "components: {text_encoder: {vocab_size: 16}}\n")
    exp = prepare(lg.load(path, ["train.progress=false"]), device="cpu")  # includes the dry run
    assert exp.spec.data.batch_size == 64  # as in the paper
    assert exp.modules["discriminator"].map_shape == (4, 4)
    assert exp.modules["generator"].project.linear.out_features == 128  # the paper's 128-d text
    assert exp.modules["noise"].shape == (100,)
    assert exp.spec.sample.output == "x_fake" and dict(exp.spec.sample.set) == {"z": "noise"}
    # a vocabulary that is too small is caught by the dry run and named
    path.write_text(path.read_text().replace("vocab_size: 16", "vocab_size: 12"))
    with pytest.raises(Exception, match=r"set vocab_size to len\(info\['vocabulary'\]\)"):
        prepare(lg.load(path, ["train.progress=false"]), device="cpu")


def test_resumed_text2image_equals_uninterrupted(tmp_path, tiny_spec):
    common = ["train.log_every=4", "train.checkpoint_every=100"]
    straight = lg.train(tiny_spec, out=tmp_path / "straight", evaluate=False, progress=False,
                        overrides=[*common, "train.steps=16"])
    first = lg.train(tiny_spec, out=tmp_path / "resumed", evaluate=False, progress=False,
                     overrides=[*common, "train.steps=7", "train.checkpoint_every=7"])
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    resumed = lg.resume(first.path, overrides=["train.steps=16"], evaluate=False)
    assert resumed.read_metrics() == straight.read_metrics()
    a = load_checkpoint(latest_checkpoint(straight.checkpoints))
    b = load_checkpoint(latest_checkpoint(resumed.checkpoints))
    assert a["step"] == b["step"] == 16
    assert_same(a["components"], b["components"], "components")
    assert_same(a["optimizers"], b["optimizers"], "optimizers")
    assert_same(a["rng"], b["rng"], "rng")
