"""Streamed datasets (lvmgraph/data/stream.py, image_folder's `data.stream: true`): the examples,
batches, losses and checkpoints of a streamed run are exactly those of the in-memory run; the
distributed sampler gives each process its share of every global batch; bad settings are refused
at their spec line."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lvmgraph.api as lg
from lvmgraph import DatasetUnavailable
from lvmgraph.data.loader import IndexBatcher
from lvmgraph.data.order import GlobalOrder
from lvmgraph.data.stream import GlobalBatchSampler, StreamBatcher, StreamedField, read_whole
from lvmgraph.spec.errors import SpecError
from lvmgraph.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from lvmgraph.train.trainer import Trainer
from lvmgraph_datasets import load_image_folder, stream_image_folder

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
TIMEOUT = 600


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """Two classes of 10x12 RGB PNGs (14 + 12), with an attribute CSV: small, non-square, coloured."""
    root = tmp_path_factory.mktemp("stream_pictures")
    rng = np.random.default_rng(0)
    rows = ["file,round,bright"]
    for label, (name, count, level) in enumerate([("dark", 14, 60), ("light", 12, 190)]):
        (root / name).mkdir()
        for i in range(count):
            pixels = np.clip(rng.normal(level, 40, (10, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
            rows.append(f"{name}/{i:02d}.png,{i % 2},{label}")
    (root / "attrs.csv").write_text("\n".join(rows) + "\n")
    return root


TRANSFORMS = {
    "as_stored": {},
    "every_transform": dict(channels=1, crop=9, crop_position="random", size=6, pad_to=8, value_range=[-1, 1],
                            binarize="threshold", attributes="attrs.csv", seed=3),
}


@pytest.mark.parametrize("case", sorted(TRANSFORMS))
def test_streamed_examples_are_the_in_memory_ones(pictures, case):
    settings = dict(root=str(pictures), **TRANSFORMS[case])
    memory, streamed = load_image_folder(**settings), stream_image_folder(**settings)
    assert streamed.streamed and not memory.streamed
    assert streamed.fields == memory.fields and streamed.field_shapes() == memory.field_shapes()
    assert len(streamed) == len(memory) == 23 and streamed.info == memory.info
    assert isinstance(streamed.train["x"], StreamedField)  # images are decoded on demand ...
    assert isinstance(streamed.train["y"], torch.Tensor)  # ... labels and attributes are held
    assert torch.equal(read_whole(streamed.train["x"]), memory.train["x"])
    assert torch.equal(streamed.train["x"][torch.tensor([5, 0])], memory.train["x"][[5, 0]])
    assert torch.equal(streamed.train["x"][-1], memory.train["x"][-1])
    for name in memory.fields:
        assert torch.equal(read_whole(streamed.train[name]), memory.train[name]), name
        assert torch.equal(streamed.test[name], memory.test[name]), name  # the test split is held


def batchers(data, streamed, **kw):
    common = dict(batch_size=5, device=CPU, seed=7, augment=data.augment, **kw)
    return IndexBatcher(data.train, **common), StreamBatcher(streamed.train, workers=2, **common)


def test_streamed_batches_and_flips_are_the_in_memory_ones_across_epochs(pictures):
    data = load_image_folder(root=str(pictures), flip="horizontal")
    streamed = stream_image_folder(root=str(pictures), flip="horizontal")
    memory, stream = batchers(data, streamed)
    flipped = 0
    for step in range(11):  # 23 examples, 4 batches of 5 an epoch: three epochs
        a, b = memory.next(), stream.next()
        assert a.keys() == b.keys() == {"x", "y"}
        for name in a:
            assert torch.equal(a[name], b[name]), (step, name)
        flipped += int((a["x"] != data.train["x"][memory.order[(memory.position - 5):memory.position]]).any())
    assert stream.epoch == memory.epoch == 2 and flipped > 0


def test_a_streamed_position_restores_exactly_and_is_the_in_memory_one(pictures):
    data = load_image_folder(root=str(pictures), flip="horizontal")
    streamed = stream_image_folder(root=str(pictures), flip="horizontal")
    memory, stream = batchers(data, streamed)
    for _ in range(6):  # mid-epoch 2; the workers have prefetched batches beyond this one
        memory.next(), stream.next()
    state = stream.state_dict()
    assert state.keys() == memory.state_dict().keys() and state["position"] == memory.position == 10
    expected = [stream.next() for _ in range(5)]
    _, resumed = batchers(data, streamed)
    resumed.load_state_dict(state)
    again = [resumed.next() for _ in range(5)]
    from_memory = IndexBatcher(data.train, batch_size=5, device=CPU, seed=0, augment=data.augment)
    from_memory.load_state_dict(state)  # the checkpoint entry reads the same in either mode
    for a, b, c in zip(expected, again, [from_memory.next() for _ in range(5)]):
        for name in a:
            assert torch.equal(a[name], b[name]) and torch.equal(a[name], c[name])


def test_a_new_batch_size_restarts_the_prefetched_stream(pictures):
    data, streamed = load_image_folder(root=str(pictures)), stream_image_folder(root=str(pictures))
    memory, stream = batchers(data, streamed)
    memory.next(), stream.next()
    memory.batch_size = stream.batch_size = 3  # a stage with another batch size
    for _ in range(4):
        a, b = memory.next(), stream.next()
        assert len(b["x"]) == 3 and torch.equal(a["x"], b["x"])


@pytest.mark.parametrize("drop_last", [True, False])
def test_the_sampler_gives_each_of_two_ranks_its_disjoint_share_of_every_global_batch(drop_last):
    n, b = 23, 4
    one = GlobalOrder(n, batch_size=2 * b, seed=5, drop_last=drop_last)
    ranks = [iter(GlobalBatchSampler(GlobalOrder(n, batch_size=b, seed=5, drop_last=drop_last, rank=r, world=2)))
             for r in range(2)]
    for _ in range(9):  # several epochs; without drop_last a short last batch of 7 each epoch
        whole = one.next().tolist()
        r0, r1 = next(ranks[0]), next(ranks[1])
        assert r0 and r1 and r0 + r1 == whole
        assert not set(r0) & set(r1)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_file_that_turns_out_unreadable_is_named_when_its_batch_is_decoded(tmp_path, workers):
    """Its header reads (the folder is scanned at load), its pixels do not: the error comes at its batch."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(tmp_path / split / f"{i}.png")
    broken = tmp_path / "train" / "2.png"
    broken.write_bytes(broken.read_bytes()[:-30])
    streamed = stream_image_folder(root=str(tmp_path))
    stream = StreamBatcher(streamed.train, batch_size=4, device=CPU, seed=0, workers=workers)
    with pytest.raises(DatasetUnavailable) as err:
        stream.next()
    assert str(err.value).startswith(f"image_folder: cannot read {broken} as an image")
    assert "Traceback" not in str(err.value)


# ---- training -------------------------------------------------------------------------------------

AAE = """\
name: aae_stream
seed: 0
data: {{dataset: image_folder, root: {root}, size: 8, channels: 1, flip: horizontal, batch_size: 5{extra}}}
components:
  encoder: {{type: mlp, in_shape: [1, 8, 8], out_shape: [2], hidden: [16], out_activation: tanh}}
  decoder: {{type: mlp, in_shape: [2], out_shape: [1, 8, 8], hidden: [16], out_activation: sigmoid}}
  critic:  {{type: mlp, in_shape: [2], out_shape: [1], hidden: [16]}}
  prior:   {{type: uniform, low: -1.0, high: 1.0, shape: [2]}}
graph:
  z:        encoder(x)
  x_hat:    decoder(z)
  z_prior:  prior.sample(like=z)
  rec_loss: bce(x_hat, x)
  d_loss:   gan_discriminator_loss(critic(z_prior), critic(z))
  g_loss:   gan_generator_loss(critic(z))
phases:
  - {{minimize: rec_loss, update: [encoder, decoder], optimizer: {{type: adam, lr: 1.0e-2}}}}
  - {{minimize: d_loss, update: [critic]}}
  - {{minimize: g_loss, update: [encoder]}}
train: {{steps: 10, log_every: 1, checkpoint_every: 5, sample_every: 1000, threads: 1, progress: false}}
"""


def aae_spec(tmp_path: Path, root: Path, name: str, extra: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(AAE.format(root=root, extra=extra))
    return path


def weights(run) -> dict:
    return load_checkpoint(latest_checkpoint(run.checkpoints))["components"]


def test_streamed_training_equals_in_memory_training_and_resumes_exactly(pictures, tmp_path):
    """The AAE draws prior samples inside its graph: starting workers must not touch the global
    RNG. 10 steps of 5 from 23 images cross two epoch ends; the checkpoint at 5 is mid-epoch."""
    memory = lg.train(aae_spec(tmp_path, pictures, "memory"), out=tmp_path / "memory", evaluate=False)
    streamed_spec = aae_spec(tmp_path, pictures, "streamed", ", stream: true, workers: 2")
    streamed = lg.train(streamed_spec, out=tmp_path / "streamed", evaluate=False)
    rows = memory.read_metrics()
    assert len(rows) == 10 and streamed.read_metrics() == rows  # every logged loss, exactly
    for name, value in weights(memory).items():
        assert torch.equal(value, weights(streamed)[name]), name

    first = lg.train(streamed_spec, out=tmp_path / "first", evaluate=False, overrides=["train.steps=5"])
    at_5 = load_checkpoint(list_checkpoints(first.checkpoints)[-1])["data"]
    assert (at_5["epoch"], at_5["position"]) == (1, 5)  # mid-epoch
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    resumed = lg.resume(first.path, overrides=["train.steps=10"], evaluate=False)
    assert resumed.read_metrics() == rows
    for name, value in weights(memory).items():
        assert torch.equal(value, weights(resumed)[name]), name


def test_a_run_resumes_exactly_with_streaming_switched_on(pictures, tmp_path, capsys):
    spec = aae_spec(tmp_path, pictures, "memory")
    straight = lg.train(spec, out=tmp_path / "straight", evaluate=False, overrides=["train.steps=7"])
    first = lg.train(spec, out=tmp_path / "first", evaluate=False, overrides=["train.steps=3"])
    capsys.readouterr()
    resumed = lg.resume(first.path, overrides=["train.steps=7", "data.stream=true", "data.workers=1"],
                        evaluate=False)
    assert "data" not in capsys.readouterr().err  # not a difference a resume warns about
    assert resumed.read_metrics() == straight.read_metrics()
    for name, value in weights(straight).items():
        assert torch.equal(value, weights(resumed)[name]), name


def test_two_streaming_processes_train_on_the_global_batch_one_process_draws(pictures, tmp_path):
    """A real 2-process run (gloo, `lvmgraph run --nproc 2`) streaming 5 examples per process
    against one in-memory process with batch 10: a deterministic autoencoder (no noise, no batch
    statistics), so the two differ only in the order of float sums unless a process trained on
    other examples than its share (an update's size, ~1e-2)."""
    ae = (AAE.split("graph:")[0].replace("aae_stream", "ae_stream").replace(", flip: horizontal", "")
          + "graph:\n  z: encoder(x)\n  rec_loss: bce(decoder(z), x)\n"
          + "phases:\n  - {{minimize: rec_loss, update: [encoder, decoder], optimizer: {{type: sgd, lr: 0.5}}}}\n"
          + "train: {{steps: 6, log_every: 2, checkpoint_every: 6, sample_every: 1000, threads: 1, progress: false}}\n")
    ae = ae.replace("  critic:  {{type: mlp, in_shape: [2], out_shape: [1], hidden: [16]}}\n", "")
    ae = ae.replace("  prior:   {{type: uniform, low: -1.0, high: 1.0, shape: [2]}}\n", "")
    (tmp_path / "two.yaml").write_text(ae.format(root=pictures, extra=", stream: true, workers: 1"))
    (tmp_path / "one.yaml").write_text(ae.format(root=pictures, extra="").replace("batch_size: 5", "batch_size: 10"))
    result = subprocess.run([sys.executable, "-m", "lvmgraph", "run", str(tmp_path / "two.yaml"), "--nproc", "2",
                             "--out", str(tmp_path / "two"), "--no-eval", "--quiet"], cwd=tmp_path, text=True,
                            capture_output=True, timeout=TIMEOUT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-4000:]
    one = lg.train(tmp_path / "one.yaml", out=tmp_path / "one", evaluate=False)
    two = load_checkpoint(list_checkpoints(tmp_path / "two" / "checkpoints")[-1])
    assert two["step"] == 6 and len(two["replicas"]["ranks"]) == 2
    for name, value in weights(one).items():
        torch.testing.assert_close(two["components"][name], value, rtol=0, atol=1e-6)
    rows2 = [json.loads(r) for r in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["rec_loss"] for r in rows2] == pytest.approx([r["rec_loss"] for r in one.read_metrics()], abs=1e-6)


def test_fit_shuts_the_workers_down_and_a_later_fit_restarts_them_in_place(pictures, tmp_path):
    exp = lg.validate(aae_spec(tmp_path, pictures, "streamed", ", stream: true, workers: 2"), ["train.steps=2"])
    trainer = Trainer(exp, None, progress=False)
    trainer.fit()
    assert multiprocessing.active_children() == []  # while the trainer lives on
    trainer.fit(5)
    assert multiprocessing.active_children() == [] and (trainer.loader.epoch, trainer.loader.position) == (1, 5)


# ---- validation -----------------------------------------------------------------------------------

def problems(spec: Path, overrides: list[str]) -> str:
    with pytest.raises(SpecError) as err:
        lg.validate(spec, overrides)
    return str(err.value)


@pytest.mark.parametrize("overrides, expected", [
    (["data.stream=true"], ["aae_uniform.yaml", "data.stream", "dataset 'digits' cannot stream",
                            "a dataset that streams: image_folder"]),
    (["data.workers=-1", "data.stream=true"], ["data.workers", "greater than or equal to 0"]),
    (["data.workers=2"], ["data.workers: 2 decodes a streamed dataset, but data.stream is off",
                          "set data.stream: true"]),
    (["data.streem=true"], ["unknown setting 'streem'", "did you mean 'stream'?"]),
    (["data.wrokers=2"], ["unknown setting 'wrokers'", "did you mean 'workers'?"]),
    (["data.stream=true", "data.binarize=stochastic"], ["data.binarize", "cannot stream",
                                                        "binarize: threshold or none"]),
])
def test_bad_stream_settings_are_refused_at_their_line(pictures, tmp_path, overrides, expected):
    on_digits = "data.stream=true" in overrides and len(overrides) == 1
    message = problems(ROOT / "specs" / "aae_uniform.yaml" if on_digits else aae_spec(tmp_path, pictures, "bad"),
                       overrides)
    for text in expected:
        assert text in message, message
