"""The training loop: models learn, phase control (every / repeat), NaN guard, LR schedules, clipping."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import lvmgraph.api as lg
from lvmgraph.experiment import prepare
from lvmgraph.train.checkpoint import list_checkpoints, load_checkpoint
from lvmgraph.train.rundir import RunDir
from lvmgraph.train.trainer import NonFiniteLoss, Trainer

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
RUN_SPECS = ROOT / "tests" / "data" / "run_specs"
FAST = ["train.threads=1", "train.progress=false"]


def experiment(path: Path, *sets: str):
    return prepare(lg.load(path, [*FAST, *sets]), device="cpu")


def train_logged(path: Path, steps: int, every: int, *sets: str) -> tuple[Trainer, list[dict]]:
    """Train with log_every=every and return the logged rows (what metrics.jsonl would hold)."""
    rows: list[dict] = []

    def record(tr: Trainer) -> None:
        if tr.step % every == 0:
            rows.append({"step": tr.step, **tr.last_losses})

    tr = Trainer(experiment(path, f"train.steps={steps}", f"train.log_every={every}", *sets), callbacks=(record,))
    tr.fit()
    return tr, rows


def constant_predictor_bce(x: torch.Tensor) -> float:
    """Mean BCE of the best prediction that ignores the input: the per-pixel mean image."""
    p = x.mean(0, keepdim=True).clamp(1e-6, 1 - 1e-6).expand_as(x)
    return float(F.binary_cross_entropy(p, x))


def optimizer_steps(opt: torch.optim.Optimizer) -> int:
    counts = {int(opt.state[p]["step"]) for g in opt.param_groups for p in g["params"]}
    assert len(counts) == 1, counts
    return counts.pop()


# ----------------------------------------------------------------------------- learning

def test_aae_learns_to_reconstruct_digits():
    tr, rows = train_logged(SPECS / "aae_uniform.yaml", 300, 25)
    assert [r["step"] for r in rows] == list(range(25, 301, 25))
    first, last = rows[0]["rec_loss"], rows[-1]["rec_loss"]
    assert last < 0.75 * first, (first, last)
    # the code carries information: better than any reconstruction that ignores the input
    baseline = constant_predictor_bce(tr.exp.data.train["x"])
    assert last < 0.9 * baseline, (last, baseline)
    assert all(torch.isfinite(torch.tensor([r["d_loss"], r["g_loss"]])).all() for r in rows)


def test_vae_elbo_improves_past_a_latent_free_model():
    tr, rows = train_logged(SPECS / "vae.yaml", 300, 25)
    assert set(rows[0]) == {"step", "nll", "kl", "nll+kl"}
    for r in rows:
        assert r["nll+kl"] == pytest.approx(r["nll"] + r["kl"], rel=1e-5)
    first, last = rows[0]["nll+kl"], rows[-1]["nll+kl"]  # -ELBO in nats per image
    assert last < 0.85 * first, (first, last)
    # a model whose decoder ignores z scores at best the constant predictor's NLL (with KL = 0)
    x = tr.exp.data.train["x"]
    floor = constant_predictor_bce(x) * x[0].numel()
    assert last < floor - 0.5, (last, floor)
    assert rows[-1]["kl"] > 0.5  # the posterior is used


# ----------------------------------------------------------------------------- phase control

def test_every_and_repeat_run_phases_the_right_number_of_times():
    tr = Trainer(experiment(SPECS / "aae_uniform.yaml", "train.steps=10", "phases.1.repeat=3", "phases.2.every=2",
                            "components.encoder.hidden=[32]", "components.decoder.hidden=[32]",
                            "components.critic.hidden=[32]"))
    tr.fit()
    rec, critic, gen = (optimizer_steps(o) for o in tr.optimizers)
    assert (rec, critic, gen) == (10, 30, 5)  # gen runs at steps 0, 2, 4, 6, 8
    # every extra critic iteration draws a fresh batch: 10 + 2 * 10 = 30 batches of 100 from 14 per epoch
    assert (tr.loader.epoch, tr.loader.position) == (2, 200)


def test_every_skips_phase_on_steps_not_divisible():
    tr = Trainer(experiment(SPECS / "aae_uniform.yaml", "phases.2.every=3", "components.encoder.hidden=[32]",
                            "components.decoder.hidden=[32]", "components.critic.hidden=[32]"))
    seen = []
    for step in range(7):
        before = optimizer_steps(tr.optimizers[2]) if tr.optimizers[2].state else 0
        tr.train_step()
        seen.append(optimizer_steps(tr.optimizers[2]) - before)
    assert seen == [1, 0, 0, 1, 0, 0, 1]


# ----------------------------------------------------------------------------- non-finite losses

def test_nan_loss_stops_before_the_optimizer_step():
    snapshots = {}

    def keep(tr: Trainer) -> None:
        snapshots[tr.step] = ({k: v.clone() for k, v in tr.exp.modules.state_dict().items()},
                              [optimizer_steps(o) for o in tr.optimizers])

    tr = Trainer(experiment(RUN_SPECS / "nan_at_step3.yaml"), callbacks=(keep,))
    with pytest.raises(NonFiniteLoss) as err:
        tr.fit()
    msg = str(err.value)
    assert "step 3" in msg and "phase 'ae'" in msg and "blowup" in msg and "nan" in msg
    assert sorted(snapshots) == [1, 2, 3]  # steps 0..2 completed
    params, steps = snapshots[3]
    now = tr.exp.modules.state_dict()
    assert all(torch.equal(now[k], params[k]) for k in params), "a parameter changed at the failing step"
    assert [optimizer_steps(o) for o in tr.optimizers] == steps == [3]
    assert all(torch.isfinite(v).all() for v in now.values())


def test_nan_loss_in_a_run_writes_no_checkpoint_at_or_after_that_step(tmp_path):
    with pytest.raises(NonFiniteLoss, match="step 3"):
        lg.train(RUN_SPECS / "nan_at_step3.yaml", out=tmp_path / "run", overrides=FAST, evaluate=False)
    run = RunDir.open(tmp_path / "run")
    ckpts = list_checkpoints(run.checkpoints)
    assert [p.name for p in ckpts] == ["step_00000001", "step_00000002", "step_00000003"]
    assert load_checkpoint(ckpts[-1])["step"] == 3
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]


def test_skip_policy_drops_the_non_finite_update_and_goes_on(tmp_path):
    snapshots = {}

    def keep(tr: Trainer) -> None:
        snapshots[tr.step] = {k: v.clone() for k, v in tr.exp.modules.state_dict().items()}

    tr = Trainer(experiment(RUN_SPECS / "nan_at_step3.yaml", "train.nonfinite=skip"), callbacks=(keep,))
    tr.fit()
    assert tr.step == 10 and tr.skipped == 1
    assert [optimizer_steps(o) for o in tr.optimizers] == [9]  # every step but the NaN one
    assert all(torch.equal(snapshots[4][k], snapshots[3][k]) for k in snapshots[3])  # step 3 changed nothing
    assert not all(torch.equal(snapshots[5][k], snapshots[4][k]) for k in snapshots[4])  # step 4 trained again
    assert tr.state_dict()["skipped"] == 1  # checkpointed, so the bound holds across a resume


def test_skip_policy_escalates_past_max_skips():
    two_nans = "graph.blowup=rec_loss * 0.0 / ((step - 3) * (step - 5))"
    tr = Trainer(experiment(RUN_SPECS / "nan_at_step3.yaml", "train.nonfinite=skip", "train.max_skips=1", two_nans))
    with pytest.raises(NonFiniteLoss, match=r"step 5, phase 'ae'.*after 1 skipped updates \(train.max_skips 1\)"):
        tr.fit()
    assert tr.skipped == 1 and tr.step == 5


def test_a_non_finite_gradient_behind_a_finite_loss_stops_too():
    # 0 ** 0.5 is 0, but its derivative is infinite: inf * 0 = NaN in the gradient, the loss stays finite
    tr = Trainer(experiment(RUN_SPECS / "nan_at_step3.yaml", "graph.blowup=mean((z * 0.0) ** 0.5)"))
    before = {k: v.clone() for k, v in tr.exp.modules.state_dict().items()}
    with pytest.raises(NonFiniteLoss, match=r"step 0, phase 'ae': the gradient of encoder is not finite"):
        tr.fit()
    assert all(torch.equal(v, before[k]) for k, v in tr.exp.modules.state_dict().items())


def test_detect_anomaly_names_the_operation_that_made_the_nan():
    tr = Trainer(experiment(RUN_SPECS / "nan_at_step3.yaml", "graph.blowup=mean((z * 0.0) ** 0.5)",
                            "train.detect_anomaly=true"))
    # the NaN appears where inf (d/du u ** 0.5 at 0) meets the 0.0 factor: the product's backward
    with pytest.warns(UserWarning, match="Error detected in MulBackward0"), \
            pytest.raises(RuntimeError, match="Function 'MulBackward0' returned nan values"):
        tr.fit()
    # without the switch the same run stops at the trainer's own gradient check instead
    plain = Trainer(experiment(RUN_SPECS / "nan_at_step3.yaml", "graph.blowup=mean((z * 0.0) ** 0.5)"))
    with pytest.raises(NonFiniteLoss):
        plain.fit()


# ----------------------------------------------------------------------------- lr schedule and clipping

def sgd_trainer(*sets: str) -> Trainer:
    return Trainer(experiment(RUN_SPECS / "sgd_lr_schedule.yaml", *sets))


def trainable(tr: Trainer) -> list[torch.nn.Parameter]:
    return [p for g in tr.optimizers[0].param_groups for p in g["params"]]


def test_lr_schedule_multiplies_the_learning_rate():
    tr = sgd_trainer()
    warm = tr.exp.schedules["warm"]
    lrs = []
    for step in range(5):
        before = [p.detach().clone() for p in trainable(tr)]
        tr.train_step()
        lr = tr.optimizers[0].param_groups[0]["lr"]
        lrs.append(lr)
        assert lr == pytest.approx(0.5 * float(warm(step)), rel=1e-12)
        for b, p in zip(before, trainable(tr)):
            torch.testing.assert_close(p.detach(), b - lr * p.grad, rtol=0, atol=1e-7)
    assert lrs == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25])


def test_clip_grad_norm_limits_the_update():
    free = sgd_trainer()
    free.train_step()
    raw = [p.grad.clone() for p in trainable(free)]
    raw_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in raw])))

    clip = 1e-3
    tr = sgd_trainer(f"phases.0.clip_grad_norm={clip}")
    before = [p.detach().clone() for p in trainable(tr)]
    tr.train_step()
    grads = [p.grad for p in trainable(tr)]
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    assert raw_norm > 20 * clip
    assert norm == pytest.approx(clip, rel=1e-3)
    for g, r in zip(grads, raw):  # same direction, scaled down
        torch.testing.assert_close(g, r * (clip / raw_norm), rtol=1e-4, atol=1e-9)
    lr = tr.optimizers[0].param_groups[0]["lr"]
    for b, p, g in zip(before, trainable(tr), grads):
        torch.testing.assert_close(p.detach(), b - lr * g, rtol=0, atol=1e-8)


def test_phase_log_values_are_logged_without_being_minimised():
    """The hybrid's critic phase logs cls_acc (an accuracy) beside the terms it minimises."""
    spec = SPECS / "hybrid_aae_latent_classifier.yaml"
    tr, rows = train_logged(spec, 200, 50)
    assert [r["step"] for r in rows] == [50, 100, 150, 200]
    accs = [r["cls_acc"] for r in rows]
    assert all(0.0 <= a <= 1.0 for a in accs)
    # the critic's class head learns to read the class from the codes: well above chance (0.1)
    assert accs[-1] > 0.2 and accs[-1] > accs[0] + 0.05, accs
    assert {"d_loss", "cls_loss", "critic", "g_loss", "encoder_reg", "rec_loss"} <= set(rows[-1])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_fp32(precision):
    """Autocast forward passes (fp16 with a GradScaler) give finite losses close to fp32's."""
    _, full = train_logged(SPECS / "aae_uniform.yaml", 20, 20)
    tr, mixed = train_logged(SPECS / "aae_uniform.yaml", 20, 20, f"train.precision={precision}")
    assert (tr.scalers[0] is not None) == (precision == "fp16")
    for key in ("rec_loss", "d_loss", "g_loss"):
        assert abs(mixed[-1][key] - full[-1][key]) < 0.05 * abs(full[-1][key]) + 0.02, (key, mixed, full)


def test_ema_follows_the_moving_average_recurrence_and_drives_sampling():
    """train.ema: {decoder: 0.9} keeps ema = 0.9 ema + 0.1 w after every decoder update."""
    snapshots = []

    def record(tr: Trainer) -> None:
        snapshots.append([p.detach().clone() for p in tr.exp.modules["decoder"].parameters()])

    exp = experiment(SPECS / "aae_uniform.yaml", "train.steps=5", "train.ema={decoder: 0.9}")
    initial = [p.detach().clone() for p in exp.modules["decoder"].parameters()]
    Trainer(exp, callbacks=(record,)).fit()
    expected = initial
    for snap in snapshots:  # the decoder is updated once per step (phase 0)
        expected = [0.9 * e + 0.1 * w for e, w in zip(expected, snap)]
    for got, want in zip(exp.ema["decoder"].parameters(), expected):
        assert torch.allclose(got, want, atol=1e-6)
        assert not got.requires_grad
    # generation uses the averaged decoder, training keeps the live one
    assert exp.sampling_modules()["decoder"] is exp.ema["decoder"]
    assert exp.sampling_modules()["encoder"] is exp.modules["encoder"]


def test_metrics_evaluate_graph_values_with_the_ema_copies():
    """A metric asking for graph values given inputs (translations, reconstructions) sees the EMA
    weights, as sampling does: x_hat through the averaged decoder, not the live one."""
    from lvmgraph.eval.runner import RunEvalContext
    exp = experiment(SPECS / "aae_uniform.yaml", "train.steps=5", "train.ema={decoder: 0.5}")
    Trainer(exp).fit()
    x = exp.data.test["x"][:16]
    got = RunEvalContext(exp).evaluate(["x_hat"], {"x": x})["x_hat"]
    with torch.no_grad():
        z = exp.modules["encoder"](x)
        averaged, live = exp.ema["decoder"](z), exp.modules["decoder"](z)
    assert not torch.allclose(averaged, live, atol=1e-4)  # five steps at decay 0.5 part the two
    assert torch.allclose(got, averaged, atol=1e-6)


def test_ema_of_an_unknown_component_is_a_spec_error():
    from lvmgraph.spec.errors import SpecError
    with pytest.raises(SpecError, match="ema names 'decodr'.*did you mean 'decoder'"):
        experiment(SPECS / "aae_uniform.yaml", "train.ema={decodr: 0.9}")


# ----------------------------------------------------------------------------- best-by-metric checkpoints

def test_the_checkpoint_with_the_best_logged_value_is_kept_besides_the_last(tmp_path):
    from lvmgraph.train.checkpoint import best_checkpoint, read_manifest

    run = lg.train(SPECS / "aae_uniform.yaml", out=tmp_path / "run", evaluate=False, overrides=[
        *FAST, "train.steps=40", "train.log_every=5", "train.checkpoint_every=5", "train.keep_checkpoints=1",
        "train.best=rec_loss", "train.best_mode=max"])  # max: an early checkpoint wins, so two are kept
    rows = {r["step"]: r["rec_loss"] for r in run.read_metrics()}
    best_step = max(rows, key=rows.get)
    assert best_step < 40
    kept = [p.name for p in list_checkpoints(run.checkpoints)]
    assert kept == sorted({f"step_{best_step:08d}", "step_00000040"})  # the best and the newest, nothing else
    best = best_checkpoint(run.checkpoints)
    assert read_manifest(best)["metric"] == {"value": pytest.approx(rows[best_step]), "mode": "max"}
    assert load_checkpoint(best)["step"] == best_step


def test_best_must_name_a_logged_value():
    from lvmgraph.spec.errors import SpecError
    with pytest.raises(SpecError, match="train.best names 'rec_los', which is not logged.*did you mean 'rec_loss'"):
        experiment(SPECS / "aae_uniform.yaml", "train.best=rec_los")


# ----------------------------------------------------------------------------- SIGTERM / SIGINT

@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_finishes_the_step_saves_and_resume_equals_an_uninterrupted_run(tmp_path, signame):
    import os
    import signal

    from lvmgraph.train.trainer import TrainingStopped

    sets = [*FAST, "train.steps=40", "train.log_every=7", "train.checkpoint_every=20"]
    straight = lg.train(SPECS / "aae_uniform.yaml", out=tmp_path / "straight", overrides=sets, evaluate=False)

    def signal_at_step_13(tr: Trainer) -> None:
        if tr.step == 13:
            os.kill(os.getpid(), getattr(signal, signame))  # arrives between steps, as from `kill`

    # an interactive shell's handlers (under nohup, or in CI, SIGINT may start out ignored)
    outside = {sig: signal.signal(sig, handler) for sig, handler in
               ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler))}
    try:
        with pytest.raises(TrainingStopped, match=f"{signame} received: stopped after step 13") as info:
            lg.train(SPECS / "aae_uniform.yaml", out=tmp_path / "stopped", overrides=sets, evaluate=False,
                     callbacks=(signal_at_step_13,))
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored after training
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        for sig, handler in outside.items():
            signal.signal(sig, handler)
    assert info.value.saved and info.value.step == 13
    ckpts = [p.name for p in list_checkpoints(tmp_path / "stopped" / "checkpoints")]
    assert ckpts == ["step_00000013"]  # off schedule: saved because of the signal

    resumed = lg.resume(tmp_path / "stopped", evaluate=False, overrides=["train.progress=false"])
    a = load_checkpoint(list_checkpoints(resumed.checkpoints)[-1])
    b = load_checkpoint(list_checkpoints(straight.checkpoints)[-1])
    assert a["step"] == b["step"] == 40
    for name in b["components"]:
        assert torch.equal(a["components"][name], b["components"][name]), name
    assert resumed.read_metrics() == straight.read_metrics()


def test_the_cli_exits_75_after_sigterm_with_a_checkpoint_at_the_step_it_stopped(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = Path(sys.executable).parent / "lvmgraph"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "lvmgraph"]
    out = tmp_path / "run"
    proc = subprocess.Popen([*cmd, "run", str(SPECS / "aae_uniform.yaml"), "--out", str(out), "--quiet",
                             "--set", "train.steps=1000000", "--set", "train.log_every=5",
                             "--set", "train.checkpoint_every=100000", "--set", "train.threads=1"],
                            env=dict(os.environ, OMP_NUM_THREADS="1"), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and metrics.read_text().strip()) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr
    assert "SIGTERM received: stopped after step" in stderr and "lvmgraph resume" in stderr
    ckpts = list_checkpoints(out / "checkpoints")
    assert len(ckpts) == 1
    step = load_checkpoint(ckpts[0])["step"]
    assert 5 <= step < 100000 and ckpts[0].name == f"step_{step:08d}"


def test_an_ignored_sigint_stays_ignored_during_training():
    import os
    import signal

    def sigint_at_step_3(tr: Trainer) -> None:
        if tr.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    outside = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup
    try:
        tr = Trainer(experiment(SPECS / "aae_uniform.yaml", "train.steps=6"), callbacks=(sigint_at_step_3,))
        tr.fit()  # no TrainingStopped: the process chose to ignore Ctrl-C
        assert tr.step == 6 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, outside)
