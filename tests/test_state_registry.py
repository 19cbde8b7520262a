"""The training-state registry (lvmgraph/train/state.py) and the resume conditions
(lvmgraph/train/exactness.py): a checkpoint is exactly the registered entries; a checkpoint that
lacks one or holds an unknown one is refused; a component that keeps tensors outside its
state_dict is refused at build time; a resume that cannot be exact refuses or warns, one line per
reason, and run.json records it."""
from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import pytest
import torch
from helpers import assert_same
from pydantic import Field
from torch import nn

import lvmgraph.api as lg
from lvmgraph import Params, hookimpl
from lvmgraph.cli import main as cli_main
from lvmgraph.experiment import prepare
from lvmgraph.plugins import build_registry, make_plugin_manager, use_registry
from lvmgraph.spec.errors import SpecError
from lvmgraph.spec.load import load_spec
from lvmgraph.train.checkpoint import latest_checkpoint, load_checkpoint
from lvmgraph.train.exactness import compare, conditions
from lvmgraph.train.state import StateMismatch, TrainingState, hidden_state
from lvmgraph.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
AAE = ROOT / "specs" / "aae_uniform.yaml"
SMALL = ["components.encoder.hidden=[16]", "components.decoder.hidden=[16]", "components.critic.hidden=[16]",
         "train.threads=1", "train.progress=false", "train.log_every=4", "train.checkpoint_every=100",
         "train.sample_every=100"]


# ---- the registry ------------------------------------------------------------------------------

def counter_state() -> tuple[TrainingState, dict]:
    box = {"a": 1, "b": [2], "order": []}
    state = TrainingState()

    def setter(name):
        def set_(value):
            box["order"].append(name)
            box[name] = value
        return set_

    state.register("a", lambda: box["a"], setter("a"), what="the a counter")
    state.register("b", lambda: box["b"], setter("b"), what="the b list")
    return state, box


def test_state_dict_is_every_registered_entry_restored_in_order():
    state, box = counter_state()
    assert state.state_dict() == {"a": 1, "b": [2]}
    state.load_state_dict({"b": [5], "a": 7})
    assert (box["a"], box["b"], box["order"]) == (7, [5], ["a", "b"])  # registration order, not the dict's
    with pytest.raises(ValueError, match="'a' is registered twice"):
        state.register("a", lambda: 0, lambda v: None, what="again")


def test_a_checkpoint_missing_an_entry_or_holding_an_unknown_one_is_refused_before_anything_is_restored():
    state, box = counter_state()
    with pytest.raises(StateMismatch) as exc:
        state.load_state_dict({"a": 3, "c": 4})
    lines = str(exc.value).splitlines()
    assert lines[0] == "the checkpoint does not fit this run:"
    assert "the checkpoint has no 'b' (the b list)" in lines[1]
    assert "the checkpoint holds 'c', which this run does not keep" in lines[2] and "keeps: a, b" in lines[2]
    assert box["order"] == []  # nothing half-restored


def test_a_guard_entry_is_checked_before_completeness_and_setter_errors_name_the_entry():
    state, box = counter_state()

    def guard(value):
        if value != "ok":
            raise StateMismatch(f"refused: {value}")

    state.register("conditions", lambda: "ok", guard, what="conditions", guard=True)
    with pytest.raises(StateMismatch, match="refused: changed"):
        state.load_state_dict({"conditions": "changed"})  # (also incomplete: the guard speaks first)
    state.register("n", lambda: 0, lambda v: int(v), what="a number")
    with pytest.raises(StateMismatch, match=r"cannot restore 'n' \(a number\) from the checkpoint: invalid literal"):
        state.load_state_dict({"conditions": "ok", "a": 1, "b": 2, "n": "x"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small AAE trained 6 steps (a log row at 4, so the meter is open), and its checkpoint."""
    run = lg.train(AAE, out=tmp_path_factory.mktemp("aae") / "run", evaluate=False,
                   overrides=[*SMALL, "train.steps=6"])
    return run, load_checkpoint(latest_checkpoint(run.checkpoints))


def fresh_trainer(overrides=()) -> Trainer:
    return Trainer(prepare(load_spec(AAE, [*SMALL, *overrides]), check=False))


def test_the_trainer_state_is_the_registry_and_round_trips_completely(trained):
    _, saved = trained
    trainer = fresh_trainer()
    assert list(saved) == trainer.state.names() == [
        "exactness", "step", "components", "ema", "optimizers", "scalers", "data", "meter", "skipped", "rng", "replicas"]
    assert saved["meter"]["counts"] and saved["data"]["position"] > 0
    trainer.load_state_dict(saved)
    assert trainer.resume_warnings == []
    assert_same(trainer.state_dict(), saved, "state")  # everything a checkpoint holds comes back


def test_a_staged_trainer_registers_its_stage(tmp_path):
    from test_progan_resume import SPEC
    path = tmp_path / "progan_tiny.yaml"
    path.write_text(SPEC)
    names = Trainer(prepare(load_spec(path), check=False)).state.names()
    assert names.index("step") < names.index("stage") < names.index("optimizers")


def test_a_real_checkpoint_without_an_entry_or_with_an_extra_one_is_refused(trained):
    _, saved = trained
    trainer = fresh_trainer()
    with pytest.raises(StateMismatch, match=r"the checkpoint has no 'meter' \(the losses accumulated"):
        trainer.load_state_dict({k: v for k, v in saved.items() if k != "meter"})
    with pytest.raises(StateMismatch, match=r"holds 'pools', which this run does not keep"):
        trainer.load_state_dict({**saved, "pools": {}})


def test_a_data_position_from_another_training_set_size_is_refused(trained):
    _, saved = trained
    data = dict(saved["data"], order=saved["data"]["order"][:100])
    with pytest.raises(StateMismatch, match=r"cannot restore 'data' .*covers 100 rows, the training set now has 1438"):
        fresh_trainer().load_state_dict({**saved, "data": data})


# ---- components that hold state outside their state_dict ----------------------------------------

class LeakyParams(Params):
    leak: str = Field(description="which kind of hidden state: none, tensor, list, generator, nested")


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.cache = {"last": torch.zeros(3)}  # a dict of tensors: not in the state dict


class Leaky(nn.Module):
    """A linear map that (depending on ``leak``) also keeps state where state_dict cannot see it."""

    def __init__(self, *, leak: str):
        super().__init__()
        self.net = nn.Linear(8, 8)
        self.lstm = nn.LSTM(4, 4)  # keeps aliases of its weights in a plain list: fine
        self.sn = nn.utils.spectral_norm(nn.Linear(8, 8))  # a derived 'weight' attribute, recomputed: fine
        self.register_buffer("seen", torch.zeros(()))
        self.shape = (8,)  # plain settings are fine
        if leak == "tensor":
            self.running = torch.zeros(8)
        elif leak == "list":
            self.history = [torch.zeros(8), torch.ones(8)]
        elif leak == "generator":
            self.rng = torch.Generator().manual_seed(0)
        elif leak == "nested":
            self.inner = Inner()
        elif leak == "modules":
            self.heads = [nn.Linear(8, 8)]  # not an nn.ModuleList: its weights are not saved

    def forward(self, x):
        return self.net(x)


def _register_leaky(register):
    register("leaky", Leaky, params=LeakyParams)


LEAKY = types.ModuleType("leaky_plugin")  # a plugin module, as an entry point would load it
LEAKY.register_components = hookimpl(_register_leaky)


def leaky_spec(tmp_path: Path, leak: str) -> Path:
    path = tmp_path / "leaky.yaml"
    path.write_text(f"""\
name: leaky
data: {{dataset: digits, batch_size: 16}}
components:
  enc: {{type: mlp, in_shape: [1, 8, 8], out_shape: [8], hidden: [8]}}
  head: {{type: leaky, leak: {leak}}}
  dec: {{type: mlp, in_shape: [8], out_shape: [1, 8, 8], hidden: [8], out_activation: sigmoid}}
graph:
  x_hat: dec(head(enc(x)))
  loss: bce(x_hat, x)
phases:
  - {{minimize: loss, update: [enc, head, dec]}}
""")
    return path


@pytest.fixture(scope="module")
def leaky_registry():
    return build_registry(make_plugin_manager(extra_plugins=[LEAKY]))


@pytest.mark.parametrize("leak, attribute, what", [
    ("tensor", "running", "a tensor"),
    ("list", "history", "a list holding a tensor"),
    ("generator", "rng", "a torch.Generator"),
    ("nested", "inner.cache", "a dict holding a tensor"),
    ("modules", "heads", "a list holding a Linear module"),
])
def test_a_component_with_state_outside_its_state_dict_is_refused_at_build_time(
        tmp_path, leaky_registry, leak, attribute, what):
    with use_registry(leaky_registry), pytest.raises(SpecError) as exc:
        prepare(load_spec(leaky_spec(tmp_path, leak)), check=False)
    [problem] = exc.value.problems
    assert problem.path == ("components", "head") and problem.line == 5
    assert f"component 'head' ({__name__}.Leaky) keeps state outside its state_dict" in problem.message
    assert f"'{attribute}' is {what}" in problem.message
    assert "register_buffer" in problem.message


def test_a_component_whose_state_is_all_in_its_state_dict_builds(tmp_path, leaky_registry):
    with use_registry(leaky_registry):
        exp = prepare(load_spec(leaky_spec(tmp_path, "none")))
    assert hidden_state(exp.modules["head"]) == []


# ---- resume conditions: refuse, warn, record ---------------------------------------------------

def test_the_checkpoint_records_what_exactness_depends_on(trained):
    run, saved = trained
    rec = saved["exactness"]
    assert (rec["torch"], rec["threads"], rec["device"], rec["world_size"]) == (torch.__version__, 1, "cpu", 1)
    spec = json.loads(rec["spec"])
    assert spec["components"]["encoder"]["hidden"] == [16] and "steps" not in spec["train"]
    assert rec == conditions(lg.load(run.spec_file).resolved(), torch.device("cpu"))


def conds(**changes) -> dict:
    base = conditions(lg.load(AAE, SMALL).resolved(), torch.device("cpu"))
    return {**base, **changes}


def spec_conds(*overrides) -> dict:
    return conditions(lg.load(AAE, [*SMALL, *overrides]).resolved(), torch.device("cpu"))


def test_compare_sorts_each_difference_into_refusal_warning_or_nothing():
    saved = conds()
    assert compare(saved, spec_conds("train.steps=999", "train.log_every=7", "eval.samples=3")) == ([], [])
    refusals, warnings = compare(saved, spec_conds("components.encoder.hidden=[32]", "phases.0.update=[decoder]",
                                                   "phases.0.optimizer.type=sgd"))
    assert refusals == ["components.encoder.hidden changed from [16] to [32]",
                        'phases.0 update changed from ["encoder", "decoder"] to ["decoder"]',
                        'phases.0 optimizer type changed from "adam" to "sgd"']
    refusals, warnings = compare(saved, spec_conds("phases.0.optimizer.lr=0.01", "phases.1.repeat=2", "seed=3"))
    assert refusals == []
    assert warnings == ["phases.0.optimizer.lr changed from 0.001 to 0.01", "phases.1.repeat changed from 1 to 2",
                        "seed changed from 0 to 3"]
    _, warnings = compare(saved, conds(torch="9.9", threads=4, device="cuda", world_size=2))
    assert warnings == [f"torch version changed from {torch.__version__} to 9.9", "thread count changed from 1 to 4",
                        "device changed from cpu to cuda",
                        "world size changed from 1 to 2: the data order is the same, but each process's batch slice "
                        "and random draws differ"]


def test_resume_with_a_changed_model_is_refused_naming_the_change_and_trains_nothing(trained, tmp_path, capsys):
    run, _ = trained
    copy = shutil.copytree(run.path, tmp_path / "run")
    spec_yaml = (copy / "spec.yaml").read_text()
    code = cli_main(["resume", str(copy), "--set", "components.encoder.hidden=[32]", "--set", "train.steps=8",
                     "--no-eval", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[0] == (f"error: {copy}/checkpoints/step_00000006: cannot resume: the model or its phases "
                                   "changed since the checkpoint was written, so its state does not describe this model:")
    assert err.splitlines()[1] == "  components.encoder.hidden changed from [16] to [32]"
    assert "resumes" not in json.loads((copy / "run.json").read_text())
    assert (copy / "spec.yaml").read_text() == spec_yaml
    assert [p.name for p in (copy / "checkpoints").iterdir()] == ["step_00000006"]


def test_an_inexact_resume_warns_once_per_reason_and_records_them_in_run_json(trained, tmp_path, capsys):
    run, _ = trained
    copy = shutil.copytree(run.path, tmp_path / "run")
    code = cli_main(["resume", str(copy), "--set", "train.steps=8", "--set", "train.threads=2",
                     "--set", "phases.0.optimizer.lr=0.002", "--no-eval", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    warned = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warned == [f"warning: the resume of {copy} at step 6 is not exact: {reason}" for reason in
                      ("phases.0.optimizer.lr changed from 0.001 to 0.002", "thread count changed from 1 to 2")]
    [entry] = json.loads((copy / "run.json").read_text())["resumes"]
    assert entry["step"] == 6 and entry["threads"] == 2
    assert entry["overrides"] == ["train.steps=8", "train.threads=2", "phases.0.optimizer.lr=0.002"]
    assert entry["not_exact"] == ["phases.0.optimizer.lr changed from 0.001 to 0.002",
                                  "thread count changed from 1 to 2"]
    torch.set_num_threads(1)  # (the resume set two)
    # the next resume compares with the conditions the last checkpoint was written under: nothing new
    code = cli_main(["resume", str(copy), "--set", "train.steps=9", "--set", "train.threads=2", "--no-eval", "--quiet"])
    torch.set_num_threads(1)
    assert code == 0 and "warning:" not in capsys.readouterr().err
    assert json.loads((copy / "run.json").read_text())["resumes"][-1]["not_exact"] == []
