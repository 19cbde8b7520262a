"""Compiling a spec's graph: name resolution, problems with their line and fix, dependencies, render."""
from pathlib import Path

import pytest

import lvmgraph.api as api
from lvmgraph import cli
from lvmgraph.graph import expr as E
from lvmgraph.graph.compile import DISTRIBUTION_METHODS, ComponentCall, MethodCall, OpCall, Ref, compile_graph
from lvmgraph.plugins import get_registry
from lvmgraph.spec.errors import SpecError
from lvmgraph.spec.load import load_spec

ROOT = Path(__file__).parent.parent
SPECS = Path(__file__).parent / "data" / "specs"

AAE = """\
name: g
data: {dataset: digits, batch_size: 16}
components:
  encoder: {type: mlp, in_shape: [1, 8, 8], out_shape: [2], hidden: [8]}
  decoder: {type: mlp, in_shape: [2], out_shape: [1, 8, 8], hidden: [8], out_activation: sigmoid}
  critic:  {type: mlp, in_shape: [2], out_shape: [1], hidden: [8]}
  prior:   {type: normal, shape: [2]}
graph:
  z:       encoder(x)
  x_hat:   decoder(z)
  rec:     bce(x_hat, x)
  z_prior: prior.sample(like=z)
  d_loss:  gan_discriminator_loss(critic(z_prior), critic(z))
  g_loss:  gan_generator_loss(critic(z))
phases:
  - {minimize: rec, update: [encoder, decoder]}
  - {minimize: d_loss, update: [critic]}
  - {minimize: g_loss, update: [encoder]}
sample: {set: {z: prior}, output: x_hat}
"""
LAST_GRAPH_LINE = "  g_loss:  gan_generator_loss(critic(z))\n"


@pytest.fixture(scope="module")
def registry():
    return get_registry()


@pytest.fixture
def compile_text(tmp_path, registry):
    def run(text, fields=("x", "y")):
        path = tmp_path / "g.yaml"
        path.write_text(text)
        loaded = load_spec(path)
        assert [p for p in loaded.problems if p.severity == "error"] == [], loaded.problems
        graph, problems = compile_graph(loaded, registry, fields)
        return graph, [p for p in problems if p.severity == "error"], [p for p in problems if p.severity == "warning"]
    return run


def with_values(*lines):
    return AAE.replace(LAST_GRAPH_LINE, LAST_GRAPH_LINE + "".join(f"  {line}\n" for line in lines))


def the_error(errors):
    assert len(errors) == 1, [p.render() for p in errors]
    return errors[0]


# ----------------------------------------------------------------------------- a clean graph

def test_clean_graph_resolves_every_name(compile_text):
    g, errors, warnings = compile_text(AAE)
    assert errors == [] and warnings == []
    v = g.values
    assert v["z"] == ComponentCall("encoder", None, (Ref("data", "x"),), ())
    assert v["z_prior"] == ComponentCall("prior", "sample", (), (("like", Ref("value", "z")),))
    assert isinstance(v["rec"], OpCall) and v["rec"].op == "bce"
    assert v["rec"].args == (Ref("value", "x_hat"), Ref("data", "x"))
    assert v["d_loss"].args[0] == ComponentCall("critic", None, (Ref("value", "z_prior"),), ())
    order = g.order
    assert order.index("z") < order.index("x_hat") < order.index("rec")
    assert order.index("z_prior") < order.index("d_loss")
    assert g.g.nodes["x"]["kind"] == "data" and g.g.nodes["critic"]["kind"] == "component"
    assert g.sources["z_prior"] == "prior.sample(like=z)"


def test_component_deps(compile_text):
    g, _, _ = compile_text(AAE)
    assert g.component_deps["z"] == {"encoder"}
    assert g.component_deps["rec"] == {"encoder", "decoder"}
    assert g.component_deps["z_prior"] == {"prior", "encoder"}
    assert g.component_deps["d_loss"] == {"critic", "prior", "encoder"}
    assert g.component_deps["g_loss"] == {"critic", "encoder"}


def test_values_needed_and_data_needed_with_overrides(compile_text):
    g, _, _ = compile_text(AAE)
    assert g.values_needed(["rec"]) == ["z", "x_hat", "rec"]
    assert g.values_needed(["rec"], given=["z"]) == ["x_hat", "rec"]
    assert g.values_needed(["x_hat"], given=["z"]) == ["x_hat"]
    assert g.values_needed(["x_hat"], given=["x_hat"]) == []
    assert g.values_needed(["d_loss"]) == ["z", "z_prior", "d_loss"]
    assert g.data_needed(["x_hat"]) == {"x"}
    assert g.data_needed(["x_hat"], given=["z"]) == set()   # sampling: z from the prior, no data
    assert g.data_needed(["rec"], given=["z"]) == {"x"}     # rec still reads x itself
    assert g.data_needed(["x"]) == {"x"}
    assert g.data_needed(["x"], given=["x"]) == set()


def test_values_needed_follows_arithmetic_and_schedules(compile_text):
    text = with_values("total: rec + beta * g_loss").replace(
        "graph:", "schedules:\n  beta: {type: linear, start: 0.0, end: 1.0, steps: 10}\ngraph:")
    g, errors, _ = compile_text(text)
    assert errors == []
    assert g.values["total"] == E.BinOp("+", Ref("value", "rec"),
                                        E.BinOp("*", Ref("schedule", "beta"), Ref("value", "g_loss")))
    assert g.values_needed(["total"]) == [v for v in g.order if v in {"z", "x_hat", "rec", "g_loss", "total"}]
    assert g.g.has_edge("beta", "total")


def test_builtin_step_is_a_name(compile_text):
    g, errors, _ = compile_text(with_values("w: rec * step"))
    assert errors == []
    assert g.values["w"] == E.BinOp("*", Ref("value", "rec"), Ref("builtin", "step"))


# ----------------------------------------------------------------------------- graph problems

def test_unknown_name_with_did_you_mean_and_no_follow_up_errors(compile_text):
    _, errors, _ = compile_text(AAE.replace("decoder(z)", "decoder(zz)"))
    p = the_error(errors)  # not also "updates 'encoder' but its loss does not depend on it"
    assert p.path == ("graph", "x_hat") and p.line == 10
    assert p.message == ("uses 'zz', which is neither a data field (x, y) nor a graph value, component or schedule")
    assert p.hint == "did you mean 'z'?"


def test_a_name_used_twice_in_one_value_is_reported_once(compile_text):
    p = the_error(compile_text(with_values("w: l1(qq, qq)"))[1])
    assert "uses 'qq'" in p.message and p.path == ("graph", "w")


@pytest.mark.parametrize("override, where", [
    ("data.batch_sise=3", ("data", "batch_sise")),                   # a typo: the data is not loaded
    ("data.base_settings.root=/nonexistent", ("data", "dataset")),   # the data is not found
    ("data.dataset=domain", ("data", "dataset")),                    # an unknown dataset: no declared fields
])
def test_a_data_problem_does_not_make_the_datasets_fields_unknown(override, where):
    # the graph is checked against the fields the dataset declares (x_a, x_b, ...), or for an
    # unknown dataset takes x_a as a field, so the one problem in `data` is all that is reported
    with pytest.raises(SpecError) as exc:
        api.validate(ROOT / "specs" / "cyclegan_thin2thick.yaml", [override], device="cpu")
    assert [p.path[:len(where)] for p in exc.value.errors] == [where], exc.value.errors


def test_with_an_unknown_dataset_other_names_are_taken_as_its_fields(tmp_path, registry):
    path = tmp_path / "g.yaml"
    path.write_text(AAE.replace("encoder(x)", "encoder(pixels)"))
    graph, problems = compile_graph(load_spec(path), registry, None)
    assert problems == [] and set(graph.data_fields) == {"x", "pixels"}
    assert graph.data_needed(["x_hat"]) == {"pixels"}


def test_unknown_dotted_name(compile_text):
    p = the_error(compile_text(with_values("w: critc.sample(like=z)"))[1])
    assert "uses 'critc'" in p.message and p.hint == "did you mean 'critic'?" and p.line == 15


def test_unknown_op(compile_text):
    p = the_error(compile_text(AAE.replace("bce(x_hat, x)", "bcee(x_hat, x)"))[1])
    assert p.message == "'bcee' is neither a registered op nor a component of this spec"
    assert p.hint == "did you mean 'bce'?" and p.line == 11


def test_dunder_import_is_only_an_unknown_op(compile_text, tmp_path):
    marker = tmp_path / "pwned"
    _, errors, _ = compile_text(with_values(f"w: __import__('os').system('touch {marker}')"))
    assert any("'__import__' is neither a registered op" in p.message for p in errors)
    assert not marker.exists()


def test_cycle(compile_text):
    p = the_error(compile_text(with_values("a: sigmoid(b)", "b: tanh(a)"))[1])
    assert p.message in ("values depend on each other in a cycle: a -> b -> a",
                         "values depend on each other in a cycle: b -> a -> b")
    assert p.path[0] == "graph" and p.line in (15, 16)


def test_self_reference_is_a_cycle(compile_text):
    p = the_error(compile_text(with_values("a: tanh(a)"))[1])
    assert "cycle: a -> a" in p.message


@pytest.mark.parametrize("expression, what", [("z(x)", "graph value"), ("x(z)", "data field")])
def test_calling_a_value_or_data_field(compile_text, expression, what):
    p = the_error(compile_text(with_values(f"w: {expression}"))[1])
    assert p.message == f"'{expression[0]}' cannot be called: it is a {what}, not an op or a component"


def test_calling_a_call_result(compile_text):
    p = the_error(compile_text(with_values("w: sigmoid(z)(x)"))[1])
    assert p.message == "only names, components and methods can be called"


@pytest.mark.parametrize("method", sorted(DISTRIBUTION_METHODS))
def test_distribution_methods_are_allowed(compile_text, method):
    g, errors, _ = compile_text(with_values(f"w: z.{method}()"))
    assert errors == []
    assert g.values["w"] == MethodCall(Ref("value", "z"), method, (), ())


@pytest.mark.parametrize("expression", ["z.numpy()", "z.mean()", "critic(z).backward()", "x.cuda()"])
def test_other_methods_are_refused(compile_text, expression):
    p = the_error(compile_text(with_values(f"w: {expression}"))[1])
    method = expression.rsplit(".", 1)[1][:-2]
    assert p.message == f"method '{method}' cannot be called on a value"
    assert "read attributes without ()" in p.hint and "rsample" in p.hint


def test_attribute_reads_are_not_calls(compile_text):
    g, errors, _ = compile_text(with_values("w: critic(z).logit", "m: z.mean"))
    assert errors == []
    assert g.values["w"] == E.Attr(ComponentCall("critic", None, (Ref("value", "z"),), ()), "logit")
    assert g.values["m"] == E.Attr(Ref("value", "z"), "mean")


def test_op_signature_mismatch_suggests_the_keyword(compile_text):
    p = the_error(compile_text(AAE.replace("bce(x_hat, x)", "bce(x_hat, x, reductoin='sum')"))[1])
    assert "got an unexpected keyword argument 'reductoin'" in p.message
    assert p.message.startswith("bce(")
    assert p.hint == "did you mean 'reduction='?"


@pytest.mark.parametrize("expression, detail", [
    ("bce(x_hat)", "missing a required argument: 'x'"),
    ("bce(x_hat, x, 'sum', 1)", "too many positional arguments"),
])
def test_op_signature_arity(compile_text, expression, detail):
    p = the_error(compile_text(AAE.replace("bce(x_hat, x)", expression))[1])
    assert detail in p.message and p.line == 11


def test_syntax_and_forbidden_constructs_are_located(compile_text):
    _, errors, _ = compile_text(with_values("a: encoder(x", "b: z[0]", "c: 'lambda: z'"))
    by_value = {p.path[1]: p for p in errors}
    assert by_value["a"].message == "cannot parse 'encoder(x': '(' was never closed" and by_value["a"].line == 15
    assert by_value["b"].message.startswith("Subscript is not allowed") and by_value["b"].line == 16
    assert by_value["c"].message.startswith("Lambda is not allowed") and by_value["c"].line == 17


def test_value_named_like_a_data_field(compile_text):
    p = the_error(compile_text(with_values("y: sigmoid(z)"))[1])
    assert p.message == "graph value 'y' has the name of a data field" and p.line == 15


# ----------------------------------------------------------------------------- phases and sampling

def test_phase_minimizing_a_non_value(compile_text):
    p = the_error(compile_text(AAE.replace("minimize: rec,", "minimize: recc,"))[1])
    assert p.message == "minimizes 'recc', which is not a graph value"
    assert p.hint == "did you mean 'rec'?" and p.line == 16 and p.path == ("phases", 0, "minimize")


def test_phase_updating_a_non_component(compile_text):
    p = the_error(compile_text(AAE.replace("update: [encoder, decoder]", "update: [encoder, decodr]"))[1])
    assert p.message == "updates 'decodr', which is not a component"
    assert p.hint == "did you mean 'decoder'?" and p.path == ("phases", 0, "update", 1) and p.line == 16


def test_phase_updating_a_component_its_loss_does_not_reach(compile_text):
    p = the_error(compile_text(AAE.replace("update: [critic]", "update: [critic, decoder]"))[1])
    assert p.message == "updates 'decoder' but its loss (d_loss) does not depend on it"
    assert p.path == ("phases", 1, "update", 1) and p.line == 17


def test_schedule_weights(compile_text):
    schedules = "schedules:\n  beta: {type: linear, start: 0.0, end: 1.0, steps: 10}\ngraph:"
    ok = AAE.replace("graph:", schedules).replace("minimize: rec,", "minimize: {rec: 1.0, g_loss: beta},")
    g, errors, _ = compile_text(ok)
    assert errors == [] and g.schedules == ("beta",)
    p = the_error(compile_text(ok.replace("g_loss: beta}", "g_loss: betta}"))[1])
    assert p.message == "weight 'betta' is not a number or a schedule name"
    assert p.hint == "did you mean 'beta'?" and p.path == ("phases", 0, "minimize", "g_loss")
    p = the_error(compile_text(ok.replace("update: [critic]}", "update: [critic], lr_schedule: bta}"))[1])
    assert p.message == "lr_schedule 'bta' is not a schedule name" and p.hint == "did you mean 'beta'?"


def test_unused_component_is_a_warning_not_an_error(compile_text):
    text = AAE.replace("  prior:   {type: normal, shape: [2]}\n",
                       "  prior:   {type: normal, shape: [2]}\n  spare:   {type: normal, shape: [2]}\n")
    _, errors, warnings = compile_text(text)
    assert errors == []
    (w,) = warnings
    assert w.message == "component 'spare' is never used in the graph" and w.line == 8
    assert w.render().startswith("warning: ")


def test_a_prior_used_only_by_sampling_is_used(compile_text):
    text = AAE.replace("  prior:   {type: normal, shape: [2]}\n",
                       "  prior:   {type: normal, shape: [2]}\n  prior2:  {type: uniform, shape: [2]}\n")
    _, errors, warnings = compile_text(text.replace("set: {z: prior}", "set: {z: prior2}"))
    assert errors == [] and warnings == []


def test_sample_set_and_output_checks(compile_text):
    _, errors, _ = compile_text(AAE.replace("sample: {set: {z: prior}, output: x_hat}",
                                            "sample: {set: {zz: priorr}, output: x_hatt}"))
    got = {(p.path, p.message, p.hint) for p in errors}
    assert got == {
        (("sample", "set", "zz"), "sets 'zz', which is not a graph value", "did you mean 'z'?"),
        (("sample", "set", "zz"), "'priorr' is not a component", "did you mean 'prior'?"),
        (("sample", "output"), "output 'x_hatt' is not a graph value", "did you mean 'x_hat'?"),
    }
    assert all(p.line == 19 for p in errors)


# ----------------------------------------------------------------------------- dry run and render

def test_shape_mismatch_found_by_the_dry_run():
    with pytest.raises(SpecError) as exc:
        api.validate(SPECS / "shape_mismatch.yaml", device="cpu")
    (p,) = exc.value.errors
    assert p.path == ("graph", "x_hat") and p.line == 9 and p.file == str(SPECS / "shape_mismatch.yaml")
    assert p.message.startswith("decoder(z) fails on a batch of")
    assert "in_shape" in p.message and "(batch, 2)" in p.message and "(batch, 3)" in p.message


def test_a_misspelled_component_method_is_found_when_components_are_built():
    with pytest.raises(SpecError) as exc:
        api.validate(SPECS / "unknown_method.yaml", device="cpu")
    (p,) = exc.value.errors
    assert p.path == ("graph", "zp") and p.line == 10
    assert p.message == "component 'prior' has no method 'sampel'" and p.hint == "did you mean 'sample'?"


def test_a_clean_spec_passes_full_validation():
    exp = api.validate(SPECS / "clean.yaml", device="cpu")
    assert exp.warnings == []
    assert set(exp.modules) == {"encoder", "decoder"}


@pytest.mark.parametrize("fmt, head, edge", [("mermaid", "flowchart LR", " --> "), ("dot", "digraph lvmgraph {", " -> ")])
def test_graph_command_renders_every_component_and_value(capsys, fmt, head, edge):
    spec = ROOT / "specs" / "aae_uniform.yaml"
    assert cli.main(["graph", str(spec), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == head
    loaded = load_spec(spec)
    ids = {name: "n_" + name for name in list(loaded.spec.components) + list(loaded.spec.graph) + ["x"]}
    for name, node_id in ids.items():
        assert f'{node_id}' in out and name in out, name
    for comp, entry in loaded.spec.components.items():
        assert entry.type in out
    # every dependency is drawn: x -> z, encoder -> z, z -> x_hat, critic -> d_loss, ...
    for u, v in [("x", "z"), ("encoder", "z"), ("z", "x_hat"), ("critic", "d_loss"), ("z_prior", "d_loss")]:
        assert f"n_{u}{edge}n_{v}" in out, (u, v)
    for i in range(len(loaded.spec.phases)):
        assert f"n_phase{i}" in out
    if fmt == "dot":
        assert out.rstrip().endswith("}")
