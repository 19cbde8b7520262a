"""YAML reading: YAML 1.2 semantics, line numbers, duplicate keys, and --set value parsing."""
from pathlib import Path

import pytest

from lvmgraph.spec.errors import SpecError
from lvmgraph.spec.load import load_spec
from lvmgraph.spec.yaml_io import load_yaml, parse_scalar, parse_yaml

SPECS = Path(__file__).parent / "data" / "specs"


def _only_problem(exc_info):
    problems = exc_info.value.problems
    assert len(problems) == 1, exc_info.value.render()
    return problems[0]


def test_duplicate_top_level_key_is_an_error_at_the_second_occurrence():
    text = "name: a\nseed: 1\nname: b\n"
    with pytest.raises(SpecError) as exc:
        parse_yaml(text, "dup.yaml")
    p = _only_problem(exc)
    assert (p.file, p.line) == ("dup.yaml", 3)
    assert "'name' appears twice" in p.message
    assert str(exc.value).startswith("dup.yaml: 1 problem")


def test_duplicate_nested_key_names_the_key_and_its_line(tmp_path):
    path = tmp_path / "nested.yaml"
    path.write_text("name: a\ncomponents:\n  encoder: {type: mlp}\n  decoder: {type: mlp}\n  encoder: {type: normal}\n")
    with pytest.raises(SpecError) as exc:
        load_yaml(path)
    p = _only_problem(exc)
    assert (p.file, p.line) == (str(path), 5)
    assert "'encoder' appears twice" in p.message


def test_yaml_1_2_scalars():
    data, _ = parse_yaml("lr: 1e-4\nlr2: 1.0e-3\nflag: no\nother: on\nyes_word: yes\nt: true\nn: 10\nnothing: null\n")
    # PyYAML (YAML 1.1) would read 1e-4 as a string and no/on/yes as booleans
    assert data["lr"] == pytest.approx(1e-4) and isinstance(data["lr"], float)
    assert data["lr2"] == pytest.approx(1e-3) and isinstance(data["lr2"], float)
    assert data["flag"] == "no" and data["other"] == "on" and data["yes_word"] == "yes"
    assert data["t"] is True and data["n"] == 10 and type(data["n"]) is int and data["nothing"] is None


def test_values_are_plain_python_types():
    data, _ = parse_yaml("a: {b: [1, {c: 2.5}]}\n")
    assert type(data) is dict and type(data["a"]["b"]) is list and type(data["a"]["b"][1]) is dict
    assert data == {"a": {"b": [1, {"c": 2.5}]}}


def test_source_map_records_the_line_of_every_key_and_list_item():
    text = ("name: x\n"
            "components:\n"
            "  enc: {type: mlp, hidden: [1, 2]}\n"
            "phases:\n"
            "  - minimize: a\n"
            "    update: [enc]\n"
            "  - {minimize: b, update: [enc]}\n")
    _, smap = parse_yaml(text, "m.yaml")
    assert smap.locate(("name",)) == ("m.yaml", 1)
    assert smap.locate(("components", "enc", "hidden")) == ("m.yaml", 3)
    assert smap.locate(("phases", 0, "update")) == ("m.yaml", 6)
    assert smap.locate(("phases", 1)) == ("m.yaml", 7)
    # an unknown path falls back to its nearest recorded parent
    assert smap.locate(("phases", 1, "optimizer", "lr")) == ("m.yaml", 7)
    assert smap.locate(("nope",)) == ("m.yaml", 1)


def test_bool_field_given_no_is_an_error_with_the_fix():
    loaded = load_spec(SPECS / "yaml11.yaml")
    with pytest.raises(SpecError) as exc:
        loaded.raise_if_errors()
    by_path = {p.path: p for p in exc.value.problems}
    assert set(by_path) == {("data", "shuffle"), ("components", "encoder", "batch_norm")}
    shuffle, batch_norm = by_path[("data", "shuffle")], by_path[("components", "encoder", "batch_norm")]
    assert shuffle.line == 3 and "'no'" in shuffle.message
    assert batch_norm.line == 5 and "'off'" in batch_norm.message
    for p in (shuffle, batch_norm):
        assert p.hint.startswith("write true or false")
    # the float written 1e-4 is a float, not a string problem
    assert loaded.spec.phases[0].optimizer.settings["lr"] == pytest.approx(1e-4)


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ndata: {dataset: digits}\ncomponents: {encoder: {type: mlp, hidden: [1, 2}\n"
                    "graph: {}\n")
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    p = _only_problem(exc)
    assert p.file == str(path)
    assert p.line == 3
    assert p.message.startswith("invalid YAML")
    assert str(exc.value).splitlines()[1].strip().startswith("line 3")


def test_bad_indentation_is_reported_at_its_line():
    with pytest.raises(SpecError) as exc:
        parse_yaml("phases:\n  - a\n - b\n", "indent.yaml")
    assert _only_problem(exc).line == 3


def test_a_spec_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert "must be a mapping" in _only_problem(exc).message


def test_missing_file(tmp_path):
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path / "nope.yaml")
    assert "no such file" in _only_problem(exc).message


def test_a_missing_spec_file_suggests_the_closest_name_beside_it(tmp_path):
    (tmp_path / "aae_uniform.yaml").write_text("name: a\n")
    (tmp_path / "vae_mnist.yaml").write_text("name: v\n")
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path / "aae_unifrm.yaml")
    assert _only_problem(exc).hint == "did you mean 'aae_uniform.yaml'?"
    with pytest.raises(SpecError) as exc:  # no close name: the few files there are listed
        load_spec(tmp_path / "progressive_growing.yaml")
    assert _only_problem(exc).hint == f"{tmp_path} holds aae_uniform.yaml, vae_mnist.yaml"
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path / "specz" / "aae_uniform.yaml")
    assert _only_problem(exc).hint == f"there is no folder {tmp_path / 'specz'}"


@pytest.mark.parametrize("text, expected", [
    ("5", 5),
    ("1e-4", 1e-4),
    ("0.5", 0.5),
    ("[32]", [32]),
    ("[32, 16]", [32, 16]),
    ("{type: sgd, lr: 0.1}", {"type": "sgd", "lr": 0.1}),
    ("true", True),
    ("no", "no"),          # YAML 1.2: a string
    ("'5'", "5"),          # quoted: a string
    ("null", None),
    ("relu", "relu"),
    ("[1, 2", "[1, 2"),    # not valid YAML: kept as the text written
])
def test_parse_scalar_reads_set_values_like_yaml(text, expected):
    value = parse_scalar(text)
    assert value == expected
    assert type(value) is type(expected)
