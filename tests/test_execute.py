"""Execution semantics of a phase (DESIGN.md "Execution semantics to get right"), on the real AAE spec.

specs/aae_uniform.yaml:  z = encoder(x); x_hat = decoder(z); z_prior = prior.sample(like=z)
    phase 0  rec_loss  update [encoder, decoder]
    phase 1  d_loss    update [critic]      d_loss = gan_discriminator_loss(critic(z_prior), critic(z))
    phase 2  g_loss    update [encoder]     g_loss = gan_generator_loss(critic(z))
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import lvmgraph.api as lg
from lvmgraph.experiment import prepare
from lvmgraph.graph.execute import Executor, PhaseRun
from lvmgraph.train.trainer import Trainer
from lvmgraph_core.losses import gan_discriminator_loss, gan_generator_loss

SPECS = Path(__file__).resolve().parents[1] / "specs"
REC, CRITIC, GEN = 0, 1, 2


def aae(*sets: str):
    loaded = lg.load(SPECS / "aae_uniform.yaml", ["data.batch_size=16", "train.progress=false", "train.threads=1", *sets])
    return prepare(loaded, device="cpu")


def started_trainer(*sets: str) -> tuple[Trainer, dict]:
    """A trainer whose executor holds the first batch of step 0 (no phase run yet)."""
    tr = Trainer(aae(*sets))
    batch = tr.loader.next()
    tr.executor.begin(batch, 0)
    return tr, batch


def params(module) -> list[torch.Tensor]:
    return list(module.parameters())


def snapshot(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def clear_grads(modules) -> None:
    for p in modules.parameters():
        p.grad = None


def values_only(graph, names) -> set[str]:
    return {n for n in names if n in graph.values}


# ----------------------------------------------------------------------------- gradients per phase

def test_generator_phase_trains_encoder_through_the_frozen_critic():
    tr, batch = started_trainer()
    mods = tr.exp.modules
    tr.run_phase(REC, tr.spec.phases[REC])
    tr.run_phase(CRITIC, tr.spec.phases[CRITIC])
    clear_grads(mods)
    # the gradient an independent autograd computation gives, at the parameters the phase starts from
    enc, critic = copy.deepcopy(mods["encoder"]), copy.deepcopy(mods["critic"])
    for p in [*enc.parameters(), *critic.parameters()]:
        p.requires_grad_(True)
    ref_loss = gan_generator_loss(critic(enc(batch["x"])))
    ref_grads = torch.autograd.grad(ref_loss, list(enc.parameters()))
    critic_before, encoder_before = snapshot(mods["critic"]), snapshot(mods["encoder"])

    loss = tr.run_phase(GEN, tr.spec.phases[GEN])

    assert torch.allclose(loss, ref_loss, rtol=1e-6, atol=0)
    assert all(p.grad is None for p in params(mods["critic"])), "the frozen critic accumulated a gradient"
    assert all(p.grad is None for p in params(mods["decoder"]))
    enc_grads = [p.grad for p in params(mods["encoder"])]
    assert all(g is not None for g in enc_grads), "the encoder got no gradient through the critic"
    for got, want in zip(enc_grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert sum(float(g.abs().sum()) for g in enc_grads) > 0
    # the critic's weights were not stepped, the encoder's were
    assert all(torch.equal(a, b) for a, b in zip(critic_before, params(mods["critic"])))
    assert not all(torch.equal(a, b) for a, b in zip(encoder_before, params(mods["encoder"])))


def test_critic_phase_gives_the_encoder_no_gradient():
    tr, batch = started_trainer()
    mods = tr.exp.modules
    clear_grads(mods)
    encoder_before = snapshot(mods["encoder"])
    tr.run_phase(CRITIC, tr.spec.phases[CRITIC])
    assert all(p.grad is None for p in params(mods["encoder"]))
    assert all(p.grad is None for p in params(mods["decoder"]))
    critic_grads = [p.grad for p in params(mods["critic"])]
    assert all(g is not None for g in critic_grads)
    assert sum(float(g.abs().sum()) for g in critic_grads) > 0
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, params(mods["encoder"])))
    # z has no path from the critic: it was computed without autograd
    z = tr.executor.evaluate(["z"], updated=frozenset({"critic"}), token=object())["z"]
    assert not z.requires_grad and z.grad_fn is None


def test_a_value_shared_with_a_later_phase_is_computed_once_with_the_right_gradients():
    """Runs announced with the batch: the critic phase computes z the generator phase's way (with its
    graph) and trains on it detached; the generator phase reuses it and gets exact gradients."""
    tr, batch = started_trainer()
    mods, ex, phases = tr.exp.modules, tr.executor, tr.spec.phases
    ex.begin(batch, 0, [PhaseRun(phases[i].terms, phases[i].update) for i in (CRITIC, GEN)])
    clear_grads(mods)
    tr.run_phase(CRITIC, phases[CRITIC])
    assert all(p.grad is None for p in params(mods["encoder"])), "the critic phase reached the encoder"
    assert all(p.grad is not None for p in params(mods["critic"]))
    assert ex.computed == ["z", "z_prior", "d_loss"]
    assert all(not p.requires_grad for p in params(mods["encoder"])), "the encoder stays frozen in the critic phase"

    enc, critic = copy.deepcopy(mods["encoder"]), copy.deepcopy(mods["critic"])
    for p in [*enc.parameters(), *critic.parameters()]:
        p.requires_grad_(True)
    ref_grads = torch.autograd.grad(gan_generator_loss(critic(enc(batch["x"]))), list(enc.parameters()))
    clear_grads(mods)
    tr.run_phase(GEN, phases[GEN])
    assert ex.computed == ["z", "z_prior", "d_loss", "g_loss"], "z was computed again"
    for p, want in zip(params(mods["encoder"]), ref_grads):
        torch.testing.assert_close(p.grad, want, rtol=1e-5, atol=1e-7)
    ex.trainable_all()


def test_no_value_is_computed_ahead_for_a_run_after_an_update_of_its_components():
    exp = aae()
    ex = exp.executor()
    critic, gen = PhaseRun(["d_loss"], ["critic"]), PhaseRun(["g_loss"], ["encoder"])
    encoder_only = PhaseRun([], ["encoder"])  # updates the encoder without reading z
    ex.begin({"x": exp.data.train["x"][:16]}, 0, [critic, gen])
    assert ex.run_ahead("z", critic) is gen
    assert ex.run_ahead("z", gen) is None and ex.run_ahead("z_prior", critic) is None  # nothing later needs it
    ex.begin({"x": exp.data.train["x"][:16]}, 0, [critic, encoder_only, gen])
    assert ex.run_ahead("z", critic) is None  # z would be stale by then
    assert ex.run_ahead("z", PhaseRun(["d_loss"], ["critic"])) is None  # a run not announced with the batch


def test_parameters_trainable_again_after_fit():
    tr = Trainer(aae("train.steps=2"))
    tr.fit()
    assert all(p.requires_grad for p in tr.exp.modules.parameters())


# ----------------------------------------------------------------------------- what is computed

def test_a_phase_computes_only_the_ancestors_of_its_terms():
    for i in (REC, CRITIC, GEN):
        tr, _ = started_trainer()
        phase = tr.spec.phases[i]
        tr.run_phase(i, phase)
        graph = tr.exp.graph
        needed = values_only(graph, graph.ancestors(list(phase.terms)))
        assert set(tr.executor.computed) == needed, phase.label
    # concretely, the critic phase never decodes
    assert needed != set(graph.values)


def test_one_training_step_recomputes_z_after_each_encoder_update():
    tr, _ = started_trainer()
    tr.executor.computed.clear()
    tr.train_step()
    # phase 0 computes z; phase 1 recomputes it because phase 0 updated the encoder (and computes it
    # once although d_loss reads it twice). Phase 2 needs z with gradients into the encoder, and the
    # critic update in between does not touch the encoder: phase 1 computed z phase 2's way (with its
    # graph) and used it detached, so phase 2 reuses it.
    assert tr.executor.computed == ["z", "x_hat", "rec_loss", "z", "z_prior", "d_loss", "g_loss"]


def test_cached_value_reused_until_a_dependency_is_updated():
    exp = aae()
    ex = exp.executor()
    x = exp.data.train["x"][:16]
    ex.begin({"x": x}, 0)
    critic = frozenset({"critic"})

    z0 = ex.evaluate(["z"], updated=critic, token=object())["z"]
    assert ex.computed == ["z"]
    ex.computed.clear()
    ex.evaluate(["d_loss"], updated=critic, token=object())
    assert ex.computed == ["z_prior", "d_loss"], "z was recomputed although nothing it depends on changed"

    ex.computed.clear()
    ex.mark_updated(["critic"])
    assert torch.equal(ex.evaluate(["z"], updated=critic, token=object())["z"], z0)
    assert ex.computed == [], "z does not depend on the critic, so a critic update must not invalidate it"
    ex.evaluate(["d_loss"], updated=critic, token=object())
    assert ex.computed == ["d_loss"]

    # change the encoder for real, then mark it: z must be recomputed and reflect the new weights
    with torch.no_grad():
        for p in exp.modules["encoder"].parameters():
            p.add_(0.05)
    ex.mark_updated(["encoder"])
    ex.computed.clear()
    z1 = ex.evaluate(["z"], updated=critic, token=object())["z"]
    assert ex.computed == ["z"]
    with torch.no_grad():
        assert torch.equal(z1, exp.modules["encoder"](x))
    assert not torch.equal(z1, z0)

    ex.begin({"x": x}, 1)  # a new batch forgets everything
    ex.evaluate(["z"], updated=critic, token=object())
    assert ex.computed == ["z"]


def test_value_needing_grad_reused_only_within_the_same_phase_run():
    exp = aae()
    ex = exp.executor()
    ex.begin({"x": exp.data.train["x"][:16]}, 0)
    enc = frozenset({"encoder"})
    ex.set_trainable(enc)
    token = object()
    z = ex.evaluate(["z"], updated=enc, token=token)["z"]
    assert z.requires_grad
    g = ex.evaluate(["g_loss"], updated=enc, token=token)["g_loss"]
    assert ex.computed == ["z", "g_loss"]  # same phase run: z reused with its graph
    g.backward()
    assert all(p.grad is not None for p in exp.modules["encoder"].parameters())
    ex.computed.clear()
    ex.evaluate(["g_loss"], updated=enc, token=object())  # a later phase run: its own graph
    assert ex.computed == ["z", "g_loss"]
    ex.trainable_all()


# ----------------------------------------------------------------------------- results equal recomputation

def seeded(fn, seed=7):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def test_cached_phase_losses_equal_losses_from_scratch():
    tr, batch = started_trainer()
    ex, phases = tr.executor, tr.spec.phases
    z_before = seeded(lambda: ex.evaluate(["z"], use_cache=False)["z"]).detach()
    tr.run_phase(REC, phases[REC])

    def d_loss(**kw):
        ex.set_trainable(["critic"])
        return seeded(lambda: ex.evaluate(["d_loss"], updated=frozenset({"critic"}), token=object(), **kw))["d_loss"]

    cached, fresh = d_loss(), d_loss(use_cache=False)
    assert torch.equal(cached, fresh)
    # the check can fail: the encoder output from before phase 0 would give another loss
    stale = d_loss(overrides={"z": z_before})
    assert not torch.equal(stale, fresh)

    tr.run_phase(CRITIC, phases[CRITIC])
    ex.set_trainable(["encoder"])
    cached = ex.evaluate(["g_loss"], updated=frozenset({"encoder"}), token=object())["g_loss"]
    fresh = ex.evaluate(["g_loss"], updated=frozenset({"encoder"}), token=object(), use_cache=False)["g_loss"]
    assert torch.equal(cached, fresh)
    ex.trainable_all()


class NoCacheExecutor(Executor):
    def evaluate(self, names, **kw):
        kw["use_cache"] = False
        return super().evaluate(names, **kw)


def test_training_with_the_cache_equals_training_without_it():
    # one after the other: both draw prior samples from the global RNG, which prepare() seeds
    a = Trainer(aae())
    for _ in range(4):
        a.train_step()
    b = Trainer(aae())
    b.executor = NoCacheExecutor(b.exp.graph, b.exp.modules, b.exp.schedules, b.exp.device)
    for _ in range(4):
        b.train_step()
    assert "z" in a.executor.computed and a.executor._cache  # the cache was really used
    sa, sb = a.exp.modules.state_dict(), b.exp.modules.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ----------------------------------------------------------------------------- detaching reused values

def test_value_reused_without_grad_is_detached_from_an_earlier_phase():
    exp = aae()
    ex = exp.executor()
    ex.begin({"x": exp.data.train["x"][:16]}, 0)
    ae = frozenset({"encoder", "decoder"})
    ex.set_trainable(ae)
    rec = ex.evaluate(["rec_loss"], updated=ae, token=object())["rec_loss"]
    rec.backward()  # frees phase 0's graph, which z belongs to
    clear_grads(exp.modules)

    critic = frozenset({"critic"})
    ex.set_trainable(critic)
    ex.computed.clear()
    token = object()
    z = ex.evaluate(["z"], updated=critic, token=token)["z"]
    assert ex.computed == [], "z should be reused: nothing it depends on was updated"
    assert z.grad_fn is None and not z.requires_grad
    d = ex.evaluate(["d_loss"], updated=critic, token=token)["d_loss"]
    d.backward()  # would raise "backward through the graph a second time" if z were still attached
    assert all(p.grad is None for p in exp.modules["encoder"].parameters())
    assert all(p.grad is not None for p in exp.modules["critic"].parameters())
    # the reused value is the phase-0 value, only cut from autograd
    with torch.no_grad():
        torch.testing.assert_close(d, gan_discriminator_loss(exp.modules["critic"](ex._cache["z_prior"].value),
                                                             exp.modules["critic"](z)))
    ex.trainable_all()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
