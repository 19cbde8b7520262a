"""PuzzleGAN: the key-patch crop op (positions inside the image, content equal to the image under
the mask, random order, seeded), the shared part encoder (order-invariant), the two-branch
generator (the mask ignores z), the appearance loss and the mask_iou metric on known inputs,
gradients per phase, and a tiny PuzzleGAN on the 8x8 digits (2 patches of 4x4) whose mask IoU on
held-out images rises well above the untrained model's and above input-independent masks, whose
reconstruction error falls, that completes images from patches given from outside, and whose
resumed run equals an uninterrupted one."""
from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import assert_same
from pydantic import ValidationError

import lvmgraph.api as lg
from lvmgraph import ShapeMismatch
from lvmgraph.eval.runner import RunEvalContext
from lvmgraph.experiment import generate, prepare
from lvmgraph.train.checkpoint import latest_checkpoint, load_checkpoint
from lvmgraph.train.trainer import Trainer
from lvmgraph_puzzlegan import (PartEncoder, PartEncoderParams, PuzzleGenerator, PuzzleGeneratorParams,
                                appearance_loss, key_patches, mask_iou, swap_parts, window_ink)
from lvmgraph_puzzlegan.metrics import best_fixed_mask_iou, iou


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- the crop op

def test_key_patches_shapes_positions_and_content():
    x = torch.rand(6, 3, 12, 16)
    out = key_patches(x, k=4, size=5, min_ink=0.0)
    assert out["patches"].shape == (6, 4, 3, 5, 5)
    assert out["masks"].shape == (6, 4, 12, 16) and out["mask"].shape == (6, 1, 12, 16)
    corners = out["corners"]
    assert corners.shape == (6, 4, 2)
    assert corners[..., 0].min() >= 0 and corners[..., 0].max() <= 12 - 5  # the whole patch lies inside
    assert corners[..., 1].min() >= 0 and corners[..., 1].max() <= 16 - 5
    for b, k in itertools.product(range(6), range(4)):
        m = out["masks"][b, k].bool()
        assert m.sum() == 25  # a full 5x5 square
        r, c = corners[b, k].tolist()
        assert m[r:r + 5, c:c + 5].all()
        # the patch is exactly the image under its mask (rows and columns in order)
        assert torch.equal(out["patches"][b, k], x[b][:, m].reshape(3, 5, 5))
        assert torch.equal(out["patches"][b, k], x[b, :, r:r + 5, c:c + 5])
    assert torch.equal(out["mask"], out["masks"].amax(dim=1, keepdim=True))
    # K distinct positions per image
    assert all(len({tuple(p) for p in corners[b].tolist()}) == 4 for b in range(6))


def test_key_patches_come_from_the_object_when_there_is_one():
    x = torch.zeros(32, 1, 16, 16)
    x[:, :, 9:15, 2:8] = 1.0  # a 6x6 object, the rest background
    out = key_patches(x, k=3, size=4, min_ink=0.5)
    ink = window_ink(x, 4)
    w_pos = 16 - 4 + 1
    chosen = ink.gather(1, out["corners"][..., 0] * w_pos + out["corners"][..., 1])
    assert (chosen >= 0.5).all()  # every patch is at least half object
    assert (out["patches"].mean(dim=(2, 3, 4)) >= 0.5).all()
    # the rule reads ink relative to each image's range, so [-1, 1] data pick the same windows
    torch.manual_seed(1)
    a = key_patches(x, k=3, size=4, min_ink=0.5)["corners"]
    torch.manual_seed(1)
    b = key_patches(2 * x - 1, k=3, size=4, min_ink=0.5)["corners"]
    assert torch.equal(a, b)


def test_key_patches_fall_back_to_any_position_without_enough_ink():
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 0, 0] = 1.0  # one ink pixel: no 3x3 window is half ink, so no position is key
    out = key_patches(x, k=3, size=3, min_ink=0.5)
    assert all(len({tuple(p) for p in out["corners"][b].tolist()}) == 3 for b in range(4))


def test_key_patches_order_is_random_and_independent_of_position():
    x = torch.rand(1, 1, 10, 10).expand(600, 1, 10, 10)
    corners = key_patches(x, k=3, size=4, min_ink=0.0)["corners"]
    index = corners[..., 0] * 7 + corners[..., 1]
    # the rank (by position) of the first patch handed over is uniform over the 3 ranks
    ranks = (index[:, :1] > index).sum(dim=1).tolist()
    counts = Counter(ranks)
    assert set(counts) == {0, 1, 2}
    assert all(abs(counts[r] / 600 - 1 / 3) < 0.07 for r in range(3)), counts  # ~4 standard deviations
    # and every one of the 49 positions gets used (uniform over positions, not a fixed few)
    assert len(set(index.flatten().tolist())) == 49


def test_key_patches_draw_from_the_global_rng():
    x = torch.rand(5, 1, 8, 8)
    torch.manual_seed(3)
    a = key_patches(x, k=2, size=3)
    torch.manual_seed(3)
    b = key_patches(x, k=2, size=3)
    c = key_patches(x, k=2, size=3)
    assert torch.equal(a["corners"], b["corners"]) and torch.equal(a["patches"], b["patches"])
    assert not torch.equal(b["corners"], c["corners"])


def test_key_patches_errors_name_the_setting():
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"size=9 .*between 1 and the image side \(8"):
        key_patches(x, k=1, size=9)
    with pytest.raises(ValueError, match=r"k=50 .*between 1 and 36"):
        key_patches(x, k=50, size=3)
    with pytest.raises(ValueError, match=r"min_ink=1.5"):
        key_patches(x, k=1, size=3, min_ink=1.5)
    with pytest.raises(ValueError, match=r"images \(b c h w\)"):
        key_patches(torch.rand(2, 8, 8), k=1, size=3)


def test_swap_parts_pairs_each_image_with_the_next():
    x = torch.arange(3.0).reshape(3, 1, 1, 1).expand(3, 1, 2, 2).clone()  # image i is all i
    mask = torch.zeros(3, 1, 2, 2)
    mask[:, :, 0, 0] = 1.0
    out = swap_parts(x, mask)
    assert out.shape == (6, 1, 2, 2)
    for i in range(3):
        nxt = (i + 1) % 3
        assert out[i, 0, 0, 0] == nxt and (out[i, 0].flatten()[1:] == i).all()  # next image's part on mine
        assert out[3 + i, 0, 0, 0] == i and (out[3 + i, 0].flatten()[1:] == nxt).all()  # mine on the next
    with pytest.raises(ValueError, match="at least 2"):
        swap_parts(x[:1], mask[:1])


# ----------------------------------------------------------------------------- networks

def test_part_encoder_is_shared_and_order_invariant():
    enc = PartEncoder(patch_shape=[1, 10, 10], features=16, channels=[8, 16]).eval()
    patches = torch.randn(4, 3, 1, 10, 10)
    h = enc(patches)
    assert h.shape == (4, 16)
    for perm in itertools.permutations(range(3)):
        torch.testing.assert_close(enc(patches[:, list(perm)]), h)
    # the same encoder for every patch: the sum of each patch encoded on its own
    alone = sum(enc(patches[:, i:i + 1]) for i in range(3))
    torch.testing.assert_close(h, alone)
    assert enc(patches[:, :2]).shape == (4, 16)  # any number of patches
    mean = PartEncoder(patch_shape=[1, 10, 10], features=16, channels=[8, 16], combine="mean").eval()
    mean.load_state_dict(enc.state_dict())
    torch.testing.assert_close(mean(patches), h / 3)
    with pytest.raises(ShapeMismatch, match=r"part_encoder 'patch_shape'.*change `patch_shape` to \[1, 8, 8\]"):
        enc(torch.randn(4, 3, 1, 8, 8))
    with pytest.raises(ValidationError, match=r"too small for 3 stride-2 convs.*at most 1 entries"):
        PartEncoderParams(patch_shape=[1, 3, 3], channels=[8, 8, 8])


def test_generator_outputs_image_and_mask_and_the_mask_ignores_z():
    g = PuzzleGenerator(in_features=16, noise_dim=4, out_shape=[1, 32, 32], channels=[32, 16, 8]).eval()
    h = torch.randn(5, 16)
    a = g(h, torch.rand(5, 4) * 2 - 1)
    b = g(h, torch.rand(5, 4) * 2 - 1)
    assert set(a) == {"image", "mask", "mask_logit"}
    assert a["image"].shape == (5, 1, 32, 32) and a["mask"].shape == (5, 1, 32, 32)
    assert a["image"].abs().max() <= 1 and 0 < a["mask"].min() and a["mask"].max() < 1
    torch.testing.assert_close(a["mask"], torch.sigmoid(a["mask_logit"]))
    torch.testing.assert_close(a["mask"], b["mask"])  # where the parts go depends on the parts only
    assert not torch.allclose(a["image"], b["image"])  # z varies the completion
    with pytest.raises(ValidationError, match=r"divisible by 8"):
        PuzzleGeneratorParams(in_features=16, out_shape=[1, 28, 28], channels=[32, 16, 8])
    with pytest.raises(ValueError, match=r"generator\(features, z\)"):
        g(h)


def test_spatial_loss_trains_the_encoder_and_mask_branch_only():
    enc = PartEncoder(patch_shape=[1, 4, 4], features=8, channels=[8])
    g = PuzzleGenerator(in_features=8, noise_dim=2, out_shape=[1, 8, 8], channels=[16, 8])
    x = torch.rand(6, 1, 8, 8)
    crop = key_patches(x, k=2, size=4)
    out = g(enc(crop["patches"]), torch.rand(6, 2))
    torch.nn.functional.binary_cross_entropy_with_logits(out["mask_logit"], crop["mask"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    mask_side = [*g.mask_in.parameters(), *g.mask_ups.parameters(), *g.mask_out.parameters()]
    image_side = [*g.image_in.parameters(), *g.image_ups.parameters(), *g.image_out.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mask_side)
    assert all(p.grad is None for p in image_side)


# ----------------------------------------------------------------------------- losses and metric

def test_appearance_loss_on_known_inputs():
    target = torch.zeros(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2, :2] = 1.0  # 4 pixels per image, 3 channels
    output = target.clone()
    assert appearance_loss(output, target, mask) == 0
    output[:, :, :2, :2] = 0.5  # off by 0.5 on the patch region
    output[:, :, 2:, 2:] = 9.0  # far off outside it: ignored
    assert appearance_loss(output, target, mask).item() == pytest.approx(0.5)
    # the authors' form: |predicted * output - mask * target|, here 0.5 * predicted on the region, 9 * predicted off it
    predicted = torch.full((2, 1, 4, 4), 0.5)
    expected = (0.5 * 0.5 * 4 * 3 + 9.0 * 0.5 * 4 * 3) / (4 * 3)
    assert appearance_loss(output, target, mask, predicted).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="mask is empty"):
        appearance_loss(output, target, torch.zeros_like(mask))
    with pytest.raises(ValueError, match=r"mask must be \(b 1 h w\)"):
        appearance_loss(output, target, mask[:, :, :2])


def test_iou_and_the_best_fixed_mask_on_known_masks():
    true = torch.zeros(2, 4, 4, dtype=torch.bool)
    true[0, :2, :2] = True  # 4 pixels
    true[1, :2, :4] = True  # 8 pixels
    pred = torch.zeros_like(true)
    pred[0, :2, :3] = True  # 6 pixels, 4 of them right
    pred[1] = true[1]
    torch.testing.assert_close(iou(pred, true), torch.tensor([4 / 6, 1.0], dtype=torch.float64))
    assert iou(torch.zeros_like(true), torch.zeros_like(true)).tolist() == [1.0, 1.0]
    # frequencies: 1 on the first 2x2, 0.5 on the next 2x2, 0 elsewhere; {freq >= 1}: IoU 1 and 4/8, mean 0.75;
    # {freq >= 0.5}: 4/8 and 1, mean 0.75 as well; the first found is kept
    best, t = best_fixed_mask_iou(true)
    assert best == pytest.approx(0.75) and t in (0.5, 1.0)


# ----------------------------------------------------------------------------- the template on digits

TINY = """\
extends: family:puzzlegan
name: puzzlegan_tiny_digits
seed: 0
data: {dataset: digits, batch_size: 32, value_range: [-1, 1]}
components:
  encoder:       {patch_shape: [1, 4, 4], features: 32, channels: [16]}
  generator:     {in_features: 32, noise_dim: 4, out_shape: [1, 8, 8], channels: [32, 16]}
  discriminator: {in_shape: [1, 8, 8], channels: [16, 32]}
  noise:         {shape: [4]}
graph:
  crop: key_patches(x, k=2, size=4, min_ink=0.25)
phases:
  - {name: discriminator, minimize: {d_fake: 1.0, d_swapped: 1.0}, update: [discriminator],
     optimizer: {type: adam, lr: 1.0e-3, betas: [0.5, 0.999]}}
  - {name: generator, minimize: {g_adv: 1.0, spatial: 10.0, appearance: 10.0, reconstruction: 10.0},
     update: [encoder, generator], optimizer: {type: adam, lr: 1.0e-3, betas: [0.5, 0.999]}}
train: {steps: 600, log_every: 50, checkpoint_every: 600, sample_every: 10000, threads: 1, progress: false}
eval:
  metrics:
    - mask_iou: {n: 400}
"""
QUIET = ["train.progress=false", "train.threads=1"]


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    path = tmp_path / "puzzlegan_tiny.yaml"
    path.write_text(TINY)
    return path


def test_template_wires_encoder_generator_and_discriminator(tiny_spec, tmp_path):
    exp = prepare(lg.load(tiny_spec, QUIET), device="cpu")  # includes the dry run of every value and phase
    kinds = {name: entry.type for name, entry in exp.spec.components.items()}
    assert kinds == {"encoder": "part_encoder", "generator": "puzzle_generator",
                     "discriminator": "dcgan_discriminator", "noise": "uniform"}
    d_phase, g_phase = exp.spec.phases
    assert d_phase.update == ["discriminator"] and g_phase.update == ["encoder", "generator"]
    deps = exp.graph.component_deps
    assert "discriminator" not in deps["spatial"] | deps["appearance"] | deps["reconstruction"]
    assert deps["g_adv"] >= {"encoder", "generator", "discriminator"}
    # the template's own 32 px networks pass the dry run too
    path = tmp_path / "defaults.yaml"
    path.write_text("extends: family:puzzlegan\nname: puzzlegan_defaults\n"
                    "data: {dataset: digits, pad_to: 32, value_range: [-1, 1]}\n")
    exp32 = prepare(lg.load(path, QUIET), device="cpu")
    assert exp32.modules["generator"].out_shape == (1, 32, 32)
    assert exp32.modules["encoder"].patch_shape == (1, 10, 10)


def test_each_phase_updates_only_its_components(tiny_spec):
    exp = prepare(lg.load(tiny_spec, QUIET), device="cpu")
    tr = Trainer(exp)
    tr.executor.begin(tr.loader.next(), 0)
    groups = {name: list(exp.modules[name].parameters()) for name in ("encoder", "generator", "discriminator")}

    def snapshot():
        return {name: [p.detach().clone() for p in ps] for name, ps in groups.items()}

    def changed(before):
        return {name for name, ps in groups.items() if any(not torch.equal(a, p) for a, p in zip(before[name], ps))}

    before = snapshot()
    tr.run_phase(0, exp.spec.phases[0])
    assert changed(before) == {"discriminator"}
    assert all(p.grad is None for name in ("encoder", "generator") for p in groups[name])
    before, d_grads = snapshot(), [p.grad.clone() for p in groups["discriminator"]]
    tr.run_phase(1, exp.spec.phases[1])
    assert changed(before) == {"encoder", "generator"}
    # the generator's loss flows through the frozen discriminator but adds nothing to its gradients
    assert all(torch.equal(p.grad, g) for p, g in zip(groups["discriminator"], d_grads))
    assert all(p.grad is not None for name in ("encoder", "generator") for p in groups[name])


def test_mask_iou_through_the_eval_context_on_known_masks(tiny_spec):
    """Perfect and empty predictions of the real crops, through the real graph and EvalContext."""
    spec = lg.load(tiny_spec, QUIET + ["graph.perfect=crop.mask", "graph.empty=crop.mask * 0.4"])
    ctx = RunEvalContext(prepare(spec, device="cpu"), seed=0)
    perfect = mask_iou(ctx, mask="perfect", n=100)
    assert perfect["iou"] == 1.0 and perfect["mask_area"] == perfect["target_area"]
    empty = mask_iou(ctx, mask="empty", n=100)  # 0.4 < 0.5 everywhere: nothing predicted
    assert empty["iou"] == 0.0 and empty["mask_area"] == 0.0
    # two 4x4 patches cover at most half of an 8x8 image; the all-ones mask scores exactly the covered area
    assert perfect["all_ones"] == pytest.approx(perfect["target_area"])
    assert 0.25 <= perfect["target_area"] <= 0.5
    assert perfect["all_ones"] < perfect["best_fixed_mask"] < 1
    again = mask_iou(RunEvalContext(ctx.exp, seed=0), mask="perfect", n=100)
    assert again["target_area"] == perfect["target_area"]  # the crops are seeded by the evaluation seed
    with pytest.raises(Exception, match="not a graph value"):
        mask_iou(ctx, mask="mask_prd", n=10)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny PuzzleGAN: mask IoU of the untrained model, then 600 steps of training."""
    folder = tmp_path_factory.mktemp("puzzlegan")
    path = folder / "tiny.yaml"
    path.write_text(TINY)
    untrained = RunEvalContext(prepare(lg.load(path, QUIET), device="cpu"), seed=0)
    before = mask_iou(untrained, n=400)
    run = lg.train(path, out=folder / "run", overrides=QUIET, progress=False, evaluate=False)
    model = lg.open_run(run.path)
    return before, run, model


def test_tiny_puzzlegan_learns_where_the_patches_belong(trained):
    before, run, model = trained
    after = model.evaluate(write=False)["mask_iou"]
    # held-out images; the same seeded crops before and after (same evaluation seed and split)
    assert after["target_area"] == before["target_area"]
    assert after["iou"] > before["iou"] + 0.25, (before, after)
    assert after["iou"] > after["all_ones"] + 0.1, after  # the whole image
    assert after["iou"] > after["best_fixed_mask"] + 0.03, after  # the best input-independent mask, in hindsight
    rows = run.read_metrics()
    first, last = rows[0], rows[-1]
    assert last["reconstruction"] < 0.8 * first["reconstruction"], (first, last)
    assert last["appearance"] < 0.9 * first["appearance"], (first, last)
    assert last["spatial"] < 0.85 * first["spatial"], (first, last)


def test_completion_from_patches_given_from_outside(trained):
    """`sample` with patches given: no data needed, the completion and the predicted mask for those patches."""
    _, _, model = trained
    exp = model.experiment
    x = exp.data.test["x"][:6]
    crop = key_patches(x, k=2, size=4)
    given = {"patches": crop["patches"]}
    assert exp.graph.data_needed(["x_fake", "mask_pred"], given={**given, "z": None}) == set()
    both = model.sample(6, given=given, outputs="all")  # what `lvmgraph sample --given patches=...` writes
    assert set(both) == {"x_fake", "mask_pred"}  # the spec's sample.output and sample.extra
    image, mask = both["x_fake"], both["mask_pred"]
    torch.testing.assert_close(mask, generate(exp, 6, given=given, output="mask_pred"))  # the mask ignores z
    assert image.shape == (6, 1, 8, 8) and mask.shape == (6, 1, 8, 8)
    assert iou(mask[:, 0] >= 0.5, crop["mask"][:, 0] > 0.5).mean() > 0.3  # trained: roughly the right places
    # the completion restores the given patches where the mask puts them
    err_in = appearance_loss(image, x, crop["mask"]).item()
    assert err_in < 0.5, err_in


def test_resumed_puzzlegan_equals_uninterrupted(tmp_path, tiny_spec):
    common = [*QUIET, "train.log_every=5"]
    straight = lg.train(tiny_spec, out=tmp_path / "straight", evaluate=False, overrides=[*common, "train.steps=30"])
    first = lg.train(tiny_spec, out=tmp_path / "resumed", evaluate=False,
                     overrides=[*common, "train.steps=13", "train.checkpoint_every=13"])
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    resumed = lg.resume(first.path, overrides=["train.steps=30"], evaluate=False)
    assert resumed.read_metrics() == straight.read_metrics()
    a = load_checkpoint(latest_checkpoint(straight.checkpoints))
    b = load_checkpoint(latest_checkpoint(resumed.checkpoints))
    assert a["step"] == b["step"] == 30
    assert_same(a["components"], b["components"], "components")
    assert_same(a["optimizers"], b["optimizers"], "optimizers")
    assert_same(a["rng"], b["rng"], "rng")
