"""Golden tests of what `lvmgraph validate` prints: every problem at once, each with its line and fix.

If a message is improved on purpose, update the golden text here; anything else that changes it is a
regression in what users see.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lvmgraph import cli

SPECS = Path(__file__).parent / "data" / "specs"


def lvmgraph_cmd():
    exe = Path(sys.executable).parent / "lvmgraph"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("lvmgraph")
    return [found] if found else [sys.executable, "-m", "lvmgraph"]


def run_cli(*args):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run(lvmgraph_cmd() + list(args), cwd=SPECS, env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=300)


ACCEPTANCE = """\
acceptance.yaml: 3 problems
  line 6   components.encoder.type: unknown component 'gausian_encoder' — did you mean 'gaussian_encoder'? (see `lvmgraph plugins --kind component`)
  line 7   components.decoder.hiden: unknown setting 'hiden' — did you mean 'hidden'?
  line 12  graph.p_x: uses 'zz', which is neither a data field (x, y) nor a graph value, component or schedule — did you mean 'z'?
"""

GRAPH_ERRORS = """\
graph_errors.yaml: 8 problems
  line 12  graph.rec: bce(x_hat: 'torch.Tensor', x: 'torch.Tensor', reduction: 'Reduction' = 'mean') -> 'torch.Tensor': got an unexpected keyword argument 'reductoin' — did you mean 'reduction='?
  line 13  graph.a: values depend on each other in a cycle: a -> b -> a
  line 15  graph.c: 'z' cannot be called: it is a graph value, not an op or a component — only ops and components take arguments
  line 16  graph.d: method 'numpy' cannot be called on a value — allowed: cdf, entropy, expand, icdf, log_prob, rsample, sample; read attributes without ()
  line 17  graph.e: 'gan_generator_los' is neither a registered op nor a component of this spec — did you mean 'gan_generator_loss'?
  line 19  phases[0].minimize: minimizes 'recc', which is not a graph value — did you mean 'rec'?
  line 19  phases[0].update[1]: updates 'decodr', which is not a component — did you mean 'decoder'?
  line 21  sample.output: output 'x_hatt' is not a graph value — did you mean 'x_hat'?
"""

STRUCTURE_ERRORS = """\
structure_errors.yaml: 6 problems
  line 1   phases: required setting is missing
  line 3   data.batch_size: Input should be a valid integer, unable to parse string as an integer — write a whole number, e.g. 1000
  line 5   components.encoder.type: unknown component 'gausian_encoder' — did you mean 'gaussian_encoder'? (see `lvmgraph plugins --kind component`)
  line 6   components.decoder.hiden: unknown setting 'hiden' — did you mean 'hidden'?
  line 10  phasess: unknown setting 'phasess' — did you mean 'phases'?
  line 12  train.progres: unknown setting 'progres' — did you mean 'progress'?
"""

SHAPE_MISMATCH = """\
shape_mismatch.yaml: 1 problem
  line 9   graph.x_hat: decoder(z) fails on a batch of 4: mlp 'in_shape' expects inputs of shape (batch, 2) but got (batch, 3); change `in_shape` to [3] or feed it a value of the right shape
"""

YAML11 = """\
yaml11.yaml: 2 problems
  line 3   data.shuffle: expected true or false, got the string 'no' — write true or false (YAML 1.2 reads yes/no/on/off as strings)
  line 5   components.encoder.batch_norm: expected true or false, got the string 'off' — write true or false (YAML 1.2 reads yes/no/on/off as strings)
"""


def test_acceptance_case_through_the_cli():
    """A misspelled type, a misspelled parameter and an undefined value: exit 2, all three with line and fix."""
    result = run_cli("validate", "acceptance.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == ACCEPTANCE


def test_several_files_are_each_reported_through_the_cli():
    result = run_cli("validate", "clean.yaml", "acceptance.yaml", "missing.yaml")
    assert result.returncode == 2
    assert result.stdout == "clean.yaml: ok\n"
    assert ACCEPTANCE in result.stderr
    assert "missing.yaml: 1 problem\n" in result.stderr and "no such file: missing.yaml" in result.stderr
    assert result.stderr.index("acceptance.yaml:") < result.stderr.index("missing.yaml:")


@pytest.fixture
def in_specs(monkeypatch):
    monkeypatch.chdir(SPECS)


def validate(capsys, *args):
    code = cli.main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_clean_spec_exits_0(in_specs, capsys):
    assert validate(capsys, "clean.yaml") == (0, "clean.yaml: ok\n", "")


@pytest.mark.parametrize("spec, golden", [
    ("graph_errors.yaml", GRAPH_ERRORS),
    ("structure_errors.yaml", STRUCTURE_ERRORS),
    ("shape_mismatch.yaml", SHAPE_MISMATCH),
    ("yaml11.yaml", YAML11),
])
def test_golden_messages(in_specs, capsys, spec, golden):
    assert validate(capsys, spec) == (2, "", golden)


def test_structure_only_validation_reports_the_same_graph_problems(in_specs, capsys):
    assert validate(capsys, "--no-dry-run", "graph_errors.yaml") == (2, "", GRAPH_ERRORS)
    assert validate(capsys, "--no-dry-run", "clean.yaml") == (0, "clean.yaml: ok (structure only)\n", "")


def test_set_problems_are_located_at_the_override(in_specs, capsys):
    code, out, err = validate(capsys, "clean.yaml", "--set", "train.stpes=5", "--set", "data.batch_size=0")
    assert code == 2 and out == ""
    assert err == ("clean.yaml: 2 problems\n"
                   "  --set data.batch_size: Input should be greater than 0\n"
                   "  --set train.stpes: unknown setting 'stpes' — did you mean 'steps'?\n")


def test_unused_component_warning_is_printed_but_validation_passes(tmp_path, capsys):
    spec = tmp_path / "spare.yaml"
    spec.write_text((SPECS / "clean.yaml").read_text().replace(
        "graph:", "  spare:   {type: normal, shape: [2]}\ngraph:"))
    code, out, err = validate(capsys, str(spec))
    assert code == 0 and out == f"{spec}: ok\n"
    assert err == f"warning: {spec}:7 components.spare: component 'spare' is never used in the graph\n"
