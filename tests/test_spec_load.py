"""Loading and validating a spec: unknown keys, types and settings with did-you-mean, all reported at once."""
from pathlib import Path

import pytest

from lvmgraph.spec.errors import SpecError
from lvmgraph.spec.load import load_spec, load_spec_dict
from lvmgraph.spec.yaml_io import dump_yaml

SPECS = Path(__file__).parent / "data" / "specs"
ROOT = Path(__file__).parent.parent


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """\
name: t
data: {dataset: digits, batch_size: 16}
components:
  encoder: {type: mlp, in_shape: [1, 8, 8], out_shape: [2], hidden: [8]}
  decoder: {type: mlp, in_shape: [2], out_shape: [1, 8, 8], hidden: [8], out_activation: sigmoid}
graph:
  z: encoder(x)
  x_hat: decoder(z)
  rec: bce(x_hat, x)
phases:
  - {minimize: rec, update: [encoder, decoder]}
"""


def problems_of(path, overrides=()):
    """Every problem load_spec finds, whether raised at once (structure) or collected (plugin settings)."""
    try:
        loaded = load_spec(path, overrides)
    except SpecError as exc:
        return exc.problems
    return loaded.problems


def by_path(problems):
    return {p.path: p for p in problems}


def test_a_good_spec_loads_without_problems(tmp_path):
    loaded = load_spec(write(tmp_path, GOOD))
    assert loaded.problems == []
    assert loaded.spec.data.batch_size == 16
    assert list(loaded.spec.components) == ["encoder", "decoder"]
    assert loaded.component_params("decoder").out_activation == "sigmoid"


def test_unknown_top_level_key_suggests_the_right_one(tmp_path):
    path = write(tmp_path, GOOD.replace("phases:", "phasess:"))
    probs = by_path(problems_of(path))
    p = probs[("phasess",)]
    assert p.line == 10 and p.file == str(path)
    assert "unknown" in p.message and "'phasess'" in p.message
    assert p.hint == "did you mean 'phases'?"
    assert ("phases",) in probs  # and the real key is reported missing


def test_unknown_component_type_suggests_the_registered_one(tmp_path):
    path = write(tmp_path, GOOD.replace("encoder: {type: mlp", "encoder: {type: gausian_encoder"))
    p = by_path(problems_of(path))[("components", "encoder", "type")]
    assert p.line == 4
    assert p.message == "unknown component 'gausian_encoder'"
    assert p.hint.startswith("did you mean 'gaussian_encoder'?")


def test_unknown_component_setting_suggests_the_right_one(tmp_path):
    path = write(tmp_path, GOOD.replace("hidden: [8], out_activation", "hiden: [8], out_activation"))
    p = by_path(problems_of(path))[("components", "decoder", "hiden")]
    assert p.line == 5
    assert p.message == "unknown setting 'hiden'"
    assert p.hint == "did you mean 'hidden'?"


def test_unknown_optimizer_dataset_and_metric_names(tmp_path):
    text = (GOOD.replace("dataset: digits", "dataset: digit")
            .replace("update: [encoder, decoder]}", "update: [encoder, decoder], optimizer: {type: adamm}}")
            + "eval: {metrics: [reconstruction_eror]}\n")
    probs = by_path(problems_of(write(tmp_path, text)))
    assert probs[("data", "dataset")].hint.startswith("did you mean 'digits'?")
    assert probs[("data", "dataset")].line == 2
    assert probs[("phases", 0, "optimizer", "type")].hint.startswith("did you mean 'adam'?")
    assert probs[("phases", 0, "optimizer", "type")].line == 11
    assert probs[("eval", "metrics", 0)].hint.startswith("did you mean 'reconstruction_error'?")
    assert probs[("eval", "metrics", 0)].line == 12


def test_wrong_type_names_the_line_and_the_fix(tmp_path):
    path = write(tmp_path, GOOD.replace("batch_size: 16", "batch_size: many"))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    p = by_path(exc.value.problems)[("data", "batch_size")]
    assert p.line == 2
    assert "integer" in p.message
    assert p.hint == "write a whole number, e.g. 1000"  # 'many' is no number: not a quoting problem
    assert "line 2   data.batch_size:" in str(exc.value)


def test_a_misspelled_type_key_is_suggested_beside_the_components_settings(tmp_path):
    path = write(tmp_path, GOOD.replace("batch_size: 16", "batch_size: '16'"))
    assert not problems_of(path)  # a quoted number is still that number
    text = GOOD.replace("encoder: {type: mlp,", "encoder: {type: mlp, typ: mlp,")
    p = by_path(problems_of(write(tmp_path, text)))[("components", "encoder", "typ")]
    assert p.message == "unknown setting 'typ'" and p.hint == "did you mean 'type'?"


def test_a_constraint_violation_in_a_plugin_setting(tmp_path):
    path = write(tmp_path, GOOD.replace("hidden: [8]}", "hidden: [8, 0]}"))
    p = by_path(problems_of(path))[("components", "encoder", "hidden", 1)]
    assert p.line == 4 and "greater than 0" in p.message


def test_all_problems_are_reported_at_once():
    path = SPECS / "structure_errors.yaml"
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    got = {(p.path, p.line) for p in exc.value.problems}
    assert got >= {
        (("data", "batch_size"), 3),
        (("components", "encoder", "type"), 5),
        (("components", "decoder", "hiden"), 6),
        (("phasess",), 10),
        (("train", "progres"), 12),
    }
    text = str(exc.value)
    assert text.startswith(f"{path}: {len(exc.value.errors)} problems")
    for fix in ("did you mean 'gaussian_encoder'?", "did you mean 'hidden'?", "did you mean 'phases'?",
                "did you mean 'progress'?"):
        assert fix in text
    lines = [p.line for p in exc.value.problems]
    assert lines == sorted(lines), "problems are listed in file order"


def test_names_shared_by_a_component_and_a_value_are_an_error(tmp_path):
    path = write(tmp_path, GOOD.replace("z: encoder(x)", "decoder: encoder(x)"))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert "names used twice" in str(exc.value) and "'decoder'" in str(exc.value)


def test_graph_numbers_are_expressions(tmp_path):
    loaded = load_spec(write(tmp_path, GOOD.replace("  rec: bce(x_hat, x)\n", "  rec: bce(x_hat, x)\n  c: 0.5\n")))
    assert loaded.spec.graph["c"] == "0.5"


def test_optimizer_without_a_type_is_adam(tmp_path):
    path = write(tmp_path, GOOD.replace("update: [encoder, decoder]}", "update: [encoder, decoder], optimizer: {lr: 0.01}}"))
    loaded = load_spec(path)
    assert loaded.problems == []
    assert loaded.spec.phases[0].optimizer.type == "adam"
    assert loaded.resolved()["phases"][0]["optimizer"]["lr"] == 0.01


def test_resolved_fills_every_default(tmp_path):
    loaded = load_spec(write(tmp_path, GOOD))
    out = loaded.resolved()
    enc = out["components"]["encoder"]
    assert enc["type"] == "mlp"
    assert enc["activation"] == "relu" and enc["out_activation"] == "none"
    assert enc["batch_norm"] is False and enc["dropout"] == 0.0
    assert out["components"]["decoder"]["out_activation"] == "sigmoid"  # written values kept
    assert out["phases"][0]["optimizer"]["type"] == "adam"
    assert out["phases"][0]["optimizer"]["lr"] == pytest.approx(1e-3)
    assert out["phases"][0]["every"] == 1 and out["phases"][0]["repeat"] == 1
    assert out["data"]["batch_size"] == 16 and out["data"]["shuffle"] is True
    assert out["train"]["steps"] == 1000
    assert out["graph"] == {"z": "encoder(x)", "x_hat": "decoder(z)", "rec": "bce(x_hat, x)"}


@pytest.mark.parametrize("spec", ["aae_uniform.yaml", "vae.yaml", "hybrid_vae_mixture_critic.yaml"])
def test_resolved_spec_written_back_validates_to_the_same_spec(tmp_path, spec):
    loaded = load_spec(ROOT / "specs" / spec)
    assert [p for p in loaded.problems if p.severity == "error"] == []
    out = loaded.resolved()
    dump_yaml(out, tmp_path / "resolved.yaml", header="resolved")
    again = load_spec(tmp_path / "resolved.yaml")
    assert again.problems == []
    assert again.resolved() == out


def test_load_spec_dict_validates_in_memory():
    raw = {"name": "d", "components": {"enc": {"type": "mlp", "in_shape": [2], "out_shape": [2], "hidn": [3]}},
           "graph": {"z": "enc(x)"}, "phases": [{"minimize": "z", "update": ["enc"]}]}
    loaded = load_spec_dict(raw)
    (p,) = loaded.problems
    assert p.path == ("components", "enc", "hidn") and p.hint == "did you mean 'hidden'?"
    with pytest.raises(SpecError):
        loaded.raise_if_errors()


def test_phase_needs_an_update_list(tmp_path):
    path = write(tmp_path, GOOD.replace("update: [encoder, decoder]", "update: []"))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    (p,) = exc.value.problems
    assert p.path == ("phases", 0, "update") and p.line == 11
