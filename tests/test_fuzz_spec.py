"""Fuzzing the spec loader (RELIABILITY.md, "Bad input"): whatever the bytes, the result is a valid
spec or lvmgraph's own SpecError naming the file and line, never another exception. Plus the
YAML traps one by one: duplicate keys, YAML 1.1 booleans, numbers written as strings, tabs,
anchors and merge keys, tags, alias bombs.

Hypothesis runs derandomized (the same examples on every run) with a bounded number of examples,
so this file stays well under a minute.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvmgraph.graph.compile import compile_graph
from lvmgraph.plugins import get_registry
from lvmgraph.spec.errors import SpecError
from lvmgraph.spec.load import load_spec
from lvmgraph.spec.schema import EvalSpec, PhaseSpec, Spec, TrainSpec
from lvmgraph.spec.yaml_io import MAX_VALUES, dump_yaml, parse_scalar, parse_yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC_TEXTS = {p.name: p.read_text() for p in sorted((ROOT / "specs").glob("*.yaml"))}
# LVMGRAPH_FUZZ_EXAMPLES=5000 explores further with fresh random examples each run
_EXPLORE = int(os.environ.get("LVMGRAPH_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_EXPLORE or 120, deadline=None, derandomize=not _EXPLORE, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

_DIR = Path(tempfile.mkdtemp(prefix="lvmgraph-fuzz-spec-"))
# the data fields of each spec's dataset (loading some datasets takes seconds, compiling needs only names)
TRANSLATION = ("x_a", "x_b", "y_a", "y_b", "index_a", "index_b")
FIELDS = {"cyclegan_sneaker2boot.yaml": TRANSLATION, "cyclegan_thin2thick.yaml": TRANSLATION,
          "hybrid_cyclegan_semantic.yaml": TRANSLATION,
          "stargan_attributes.yaml": ("x", "y", "domain", "attributes"),
          "text2image_fashion.yaml": ("x", "y", "domain", "attributes", "text", "text_length", "held_out")}


# the real specs beside the fuzzed one, so a spec that `extends:` another by a relative path finds it
for _name, _text in SPEC_TEXTS.items():
    (_DIR / _name).write_text(_text, encoding="utf-8")


def write(text: str, name: str = "fuzzed.yaml") -> Path:
    path = _DIR / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def outcome(path: Path, *, compile_it: bool = True, fields=("x", "y")):
    """Load (and compile the graph of) a spec. Returns the LoadedSpec or the SpecError; any other
    exception propagates and fails the test. Every error must say where it is."""
    try:
        loaded = load_spec(path)
        loaded.raise_if_errors()
        if compile_it:
            _, problems = compile_graph(loaded, get_registry(), fields)
            errors = [p for p in problems if p.severity == "error"]
            if errors:
                raise SpecError(errors, file=str(path))
        return loaded
    except SpecError as exc:
        assert exc.errors, "a SpecError without an error"
        text = str(exc)
        for p in exc.errors:
            assert p.file, f"a problem without a file: {p}"
            assert p.message.strip()
            # located: a line, or (for problems about the whole document) at least the file
            assert p.line is not None or p.path in ((), ("extends",)), f"a problem without a line: {p}"
        assert text.splitlines()[0].startswith(exc.file or "spec")
        return exc


# ----------------------------------------------------------------------------- random text

YAMLISH = st.text(alphabet=st.sampled_from(list("ab:xyz-_ []{},&*!|>'\"#%?@~<.\n\n\n  \t0123456789eE+")),
                  max_size=160)


@FUZZ
@given(text=YAMLISH | st.text(max_size=80))
def test_random_text_is_a_spec_or_a_located_spec_error(text):
    result = outcome(write(text))
    assert isinstance(result, SpecError)  # random text never is a complete spec


@FUZZ
@given(data=st.binary(max_size=120))
def test_random_bytes_are_a_located_spec_error(data):
    path = _DIR / "bytes.yaml"
    path.write_bytes(data)
    assert isinstance(outcome(path), SpecError)


# ----------------------------------------------------------------------------- mutated real specs

TOKENS = ["yes", "no", "on", "off", "~", "null", "1e3", "'1e3'", "-1", "0", ".inf", ".nan", "[]", "{}",
          "[1, 2]", "{a: 1}", "&a x", "*a", "&a", "!!python/object:os.system {}", "!foo x", "!!binary aGk=",
          "!!set {x}", "2024-01-01", "'", '"', "\t", "<<: *a", "? [a]", "%YAML 1.1", "---", "|", ">", "#",
          "@", "`", "mlp", "adam", "encoder(x)", "x", "family:aae", "type", "hidden", "update", "minimize",
          "- ", ": ", ", ", "extends: fuzzed.yaml", "imports: {p: family:vae}", "\x00", "é", "1_000",
          "0o17", "0x1F", "true", "[", "]", "{", "}", "prior.sample(like=z)", "critic(x).logit", "__import__"]

WORD = re.compile(r"[A-Za-z0-9_.\-]+")


def mutate(text: str, op: str, a: int, b: int, token: str) -> str:
    lines = text.split("\n")
    i, j = a % max(len(lines), 1), b % max(len(lines), 1)
    if op == "token":
        words = list(WORD.finditer(text))
        if not words:
            return text
        w = words[a % len(words)]
        return text[:w.start()] + token + text[w.end():]
    if op == "insert":
        k = a % (len(text) + 1)
        return text[:k] + token + text[k:]
    if op == "delete_line":
        del lines[i]
    elif op == "duplicate_line":
        lines.insert(i, lines[i])
    elif op == "swap_lines":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "indent":
        lines[i] = " " * (1 + b % 3) + lines[i]
    elif op == "dedent":
        lines[i] = lines[i][1 + b % 3:]
    elif op == "truncate":
        return text[: a % (len(text) + 1)]
    elif op == "cut":
        k = a % (len(text) + 1)
        return text[:k] + text[k + b % 40:]
    return "\n".join(lines)


OPS = st.tuples(st.sampled_from(["token", "token", "insert", "delete_line", "duplicate_line", "swap_lines",
                                 "indent", "dedent", "truncate", "cut"]),
                st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from(TOKENS))


@FUZZ
@given(name=st.sampled_from(sorted(SPEC_TEXTS)), ops=st.lists(OPS, min_size=1, max_size=4))
def test_mutated_real_specs_are_valid_or_a_located_spec_error(name, ops):
    text = SPEC_TEXTS[name]
    for op in ops:
        text = mutate(text, *op)
    outcome(write(text), fields=FIELDS.get(name, ("x", "y")))


def test_the_real_specs_themselves_load_and_compile():
    for name, text in SPEC_TEXTS.items():
        result = outcome(write(text), fields=FIELDS.get(name, ("x", "y")))
        assert not isinstance(result, SpecError), f"{name}: {result}"


# values of any YAML shape, including the awkward ones
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["yes", "no", "1e3", "2024-01-01", "mlp", "adam", "x", "z",
                                                    "encoder", "critic", "prior", "encoder(x)", "rec_loss"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8) | st.sampled_from(["type", "hidden", "lr", "steps"]),
                                        inner, max_size=3), max_leaves=8)


def key_paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from key_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from key_paths(v, prefix + (i,))


def set_path(node, path, value, action):
    *parents, last = path
    for p in parents:
        node = node[p]
    if action == "delete":
        del node[last]
    elif action == "rename" and isinstance(node, dict):
        node[str(last) + "x"] = node.pop(last)
    else:
        node[last] = value


@FUZZ
@given(name=st.sampled_from(sorted(SPEC_TEXTS)), choice=st.integers(0, 10**6),
       action=st.sampled_from(["set", "set", "delete", "rename"]), value=VALUES)
def test_structurally_mutated_specs_are_valid_or_a_located_spec_error(name, choice, action, value):
    raw, _ = parse_yaml(SPEC_TEXTS[name], name)
    paths = [p for p in key_paths(raw) if p]
    set_path(raw, paths[choice % len(paths)], value, action)
    path = _DIR / "structural.yaml"
    dump_yaml(raw, path)
    outcome(path, fields=FIELDS.get(name, ("x", "y")))


# ----------------------------------------------------------------------------- did-you-mean

SECTIONS = {(): Spec, ("train",): TrainSpec, ("eval",): EvalSpec, ("phases", 0): PhaseSpec}


def one_edit(word: str, kind: int, at: int, letter: str) -> str:
    k = at % (len(word) + 1)
    if kind == 0:
        return word[:k] + letter + word[k:]           # insertion
    k = min(k, len(word) - 1)
    if kind == 1:
        return word[:k] + word[k + 1:]                # deletion
    return word[:k] + letter + word[k + 1:]           # substitution


def distance_one(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(section=st.sampled_from(sorted(SECTIONS)), pick=st.integers(0, 100), kind=st.integers(0, 2),
       at=st.integers(0, 30), letter=st.sampled_from("abcdefghijklmnopqrstuvwxyz_"))
def test_a_typo_at_edit_distance_one_suggests_the_key(section, pick, kind, at, letter):
    model = SECTIONS[section]
    keys = sorted(model.model_fields)
    key = keys[pick % len(keys)]
    typo = one_edit(key, kind, at, letter)
    # only unambiguous typos: not a key itself and at distance 1 of this key alone
    if len(key) < 3 or typo in keys or [k for k in keys if distance_one(typo, k)] != [key]:
        return
    raw = parse_yaml(SPEC_TEXTS["aae_uniform.yaml"])[0]
    assert_suggests(raw, section, key, typo)


def assert_suggests(raw: dict, section: tuple, key: str, typo: str) -> None:
    node = raw
    for p in section:
        node = node[p]
    node[typo] = node.pop(key, 1)
    path = _DIR / "typo.yaml"
    dump_yaml(raw, path)
    result = outcome(path, compile_it=False)
    assert isinstance(result, SpecError)
    problem = {p.path: p for p in result.problems}[section + (typo,)]
    assert problem.message == f"unknown setting '{typo}'"
    assert problem.hint == f"did you mean '{key}'?"


def test_a_typo_under_sample_suggests_the_key():
    assert_suggests(parse_yaml(SPEC_TEXTS["aae_uniform.yaml"])[0], ("sample",), "output", "outptu")


# ----------------------------------------------------------------------------- YAML traps, one by one

GOOD = """\
name: t
data: {dataset: digits, batch_size: 16}
components:
  encoder: &mlp {type: mlp, in_shape: [1, 8, 8], out_shape: [2], hidden: [8]}
  decoder: {<<: *mlp, in_shape: [2], out_shape: [1, 8, 8], out_activation: sigmoid}
graph:
  z: encoder(x)
  x_hat: decoder(z)
  rec: bce(x_hat, x)
phases:
  - {minimize: rec, update: [encoder, decoder], optimizer: {type: adam, lr: 1e-3}}
train: {steps: 1e3, progress: false}
"""


def spec_error(text: str) -> SpecError:
    result = outcome(write(text, "trap.yaml"))
    assert isinstance(result, SpecError), "expected a SpecError"
    return result


def only(exc: SpecError):
    assert len(exc.errors) == 1, exc.render()
    return exc.errors[0]


def test_the_trap_free_spec_loads_with_merge_keys_and_yaml_1_2_numbers():
    loaded = outcome(write(GOOD, "trap.yaml"))
    assert not isinstance(loaded, SpecError), loaded
    dec = loaded.component_params("decoder")
    # merged from the encoder's anchor, own keys win
    assert dec.hidden == [8] and dec.in_shape == [2] and dec.out_activation == "sigmoid"
    assert loaded.component_params("encoder").in_shape == [1, 8, 8]
    assert loaded.spec.train.steps == 1000 and type(loaded.spec.train.steps) is int  # 1e3 is a number in 1.2
    assert loaded.params[("phases", 0)].lr == pytest.approx(1e-3)
    # merged keys are located where the anchor wrote them; own keys on their own line
    assert loaded.source.locate(("components", "decoder", "hidden"))[1] == 4
    assert loaded.source.locate(("components", "decoder", "in_shape"))[1] == 5


@pytest.mark.parametrize("text, key, line", [
    (GOOD.replace("name: t\n", "name: t\nname: u\n"), "name", 2),
    (GOOD.replace("  z: encoder(x)\n", "  z: encoder(x)\n  z: decoder(x)\n"), "z", 8),
    (GOOD.replace("{minimize: rec,", "{minimize: rec, minimize: x_hat,"), "minimize", 11),
    (GOOD.replace("{steps: 1e3,", "{steps: 1e3, steps: 5,"), "steps", 12),
])
def test_duplicate_keys_anywhere_are_errors_at_the_second_one(text, key, line):
    p = only(spec_error(text))
    assert f"'{key}' appears twice" in p.message and p.line == line and p.hint == "keep one of them"


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes", "OFF", "y", "n"])
def test_yaml_1_1_booleans_in_a_bool_field_are_errors_with_the_fix(word):
    p = only(spec_error(GOOD.replace("progress: false", f"progress: {word}")))
    assert p.path == ("train", "progress") and p.line == 12
    assert f"'{word}'" in p.message and p.hint.startswith("write true or false")


@pytest.mark.parametrize("word", ["yes", "no", "on", "off"])
def test_yaml_1_1_booleans_elsewhere_stay_strings(word):
    loaded = outcome(write(GOOD.replace("name: t", f"name: {word}"), "trap.yaml"))
    assert loaded.spec.name == word
    assert parse_scalar(word) == word


def test_a_percent_yaml_1_1_line_is_an_error_not_a_switch_to_yes_booleans():
    p = only(spec_error("%YAML 1.1\n---\n" + GOOD))
    assert p.line == 1 and "YAML 1.2" in p.message and "remove the %YAML line" in p.hint
    loaded = outcome(write("%YAML 1.2\n---\n" + GOOD, "trap.yaml"))
    assert loaded.spec.train.steps == 1000


@pytest.mark.parametrize("written, value", [("1e3", 1000), ("1.5e3", 1500), ("1_000", 1000), ("017", 17),
                                            ("0o17", 15), ("0x10", 16)])
def test_numbers_read_as_yaml_1_2_numbers(written, value):
    loaded = outcome(write(GOOD.replace("steps: 1e3", f"steps: {written}"), "trap.yaml"))
    assert loaded.spec.train.steps == value


def test_numbers_written_as_strings():
    # a quoted number in a number field is read as that number, not kept as text
    loaded = outcome(write(GOOD.replace("lr: 1e-3", "lr: '1e-3'"), "trap.yaml"))
    assert loaded.params[("phases", 0)].lr == pytest.approx(1e-3)
    # ... but a quoted number that is not a whole number where one is needed says to drop the quotes
    p = only(spec_error(GOOD.replace("steps: 1e3", "steps: '1e3'")))
    assert p.path == ("train", "steps") and p.line == 12 and p.hint == "write a number without quotes"
    # a quoted weight would become a schedule name: the compiler says so at the line
    p = only(spec_error(GOOD.replace("{minimize: rec,", "{minimize: {rec: '1e-3'},")))
    assert p.line == 11 and "'1e-3' is not a number or a schedule name" in p.message
    # where text is expected, an unquoted number is an error at its line (quote it to make it text)
    p = only(spec_error(GOOD.replace("name: t", "name: 1e3")))
    assert p.path == ("name",) and p.line == 1
    assert outcome(write(GOOD.replace("name: t", "name: '1e3'"), "trap.yaml")).spec.name == "1e3"


def test_dates_are_strings_as_in_yaml_1_2():
    loaded = outcome(write(GOOD.replace("name: t", "name: 2024-01-01"), "trap.yaml"))
    assert loaded.spec.name == "2024-01-01"
    assert parse_yaml("d: 2001-12-14 21:59:43.10\n")[0] == {"d": "2001-12-14 21:59:43.10"}


@pytest.mark.parametrize("text, line", [
    (GOOD.replace("  z: encoder(x)", "\tz: encoder(x)"), 7),
    (GOOD.replace("phases:\n  -", "phases:\n\t-"), 11),
    (GOOD.replace("name: t", "name:\tt"), 1),
])
def test_tabs_are_errors_at_their_line_saying_use_spaces(text, line):
    p = only(spec_error(text))
    assert p.line == line and "tabs" in p.hint and "spaces" in p.hint


def test_a_typo_inside_a_merged_anchor_is_reported_for_both_users_at_the_anchor():
    exc = spec_error(GOOD.replace("hidden: [8]}", "hiden: [8]}"))
    by_path = {p.path: p for p in exc.errors}
    for component in ("encoder", "decoder"):
        p = by_path[("components", component, "hiden")]
        assert p.line == 4 and p.hint == "did you mean 'hidden'?"


def test_aliases_copy_values_and_a_merge_into_a_non_mapping_is_an_error():
    data, smap = parse_yaml("a: &h [8, 8]\nb: *h\n")
    assert data == {"a": [8, 8], "b": [8, 8]} and data["a"] is not data["b"]
    p = only(spec_error(GOOD.replace("{<<: *mlp,", "{<<: 5,")))
    assert p.line == 5 and p.message.startswith("invalid YAML")
    p = only(spec_error(GOOD.replace("{<<: *mlp,", "{<<: *nope,")))
    assert p.line == 5 and "undefined alias" in p.message and "&name" in p.hint


def test_recursive_aliases_and_alias_bombs_are_errors():
    p = only(spec_error(GOOD + "description: &d [1, *d]\n"))
    assert p.path == ("description", 1) and p.line == 13 and "recursive" in p.message
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))
    p = only(spec_error(bomb))
    assert f"more than {MAX_VALUES} values" in p.message and "alias bomb" in p.hint
    p = only(spec_error("a: " + "[" * 70 + "]" * 70 + "\n"))
    assert "nested" in p.message and p.line == 1
    p = only(spec_error("a: " + "[" * 3000 + "]" * 3000 + "\n"))
    assert "nested" in p.message


@pytest.mark.parametrize("tagged, tag", [
    ("!!python/object:os.system {}", "!!python/object:os.system"),
    ("!!python/name:builtins.exec x", "!!python/name:builtins.exec"),
    ("!foo bar", "!foo"), ("!!binary aGk=", "!!binary"), ("!!set {x}", "!!set"), ("!!omap [a: 1]", "!!omap"),
    ("!!timestamp 2001-01-01", "!!timestamp"),
])
def test_tags_that_would_build_objects_are_errors(tagged, tag):
    p = only(spec_error(GOOD.replace("name: t", f"name: t\ndescription: {tagged}")))
    assert p.path == ("description",) and p.line == 2
    assert f"the YAML tag '{tag}' is not allowed" in p.message
    assert parse_scalar(tagged) == tagged  # a --set value with a tag stays the text written


def test_core_tags_written_explicitly_are_fine():
    loaded = outcome(write(GOOD.replace("name: t", "name: !!str 1e3\ndescription: !!str yes"), "trap.yaml"))
    assert loaded.spec.name == "1e3" and loaded.spec.description == "yes"


@pytest.mark.parametrize("text, line, words", [
    (GOOD + "? [a, b]\n: c\n", 13, "list or mapping is used as a key"),
    (GOOD + "---\nname: u\n", 13, "one YAML document"),
    (GOOD.replace("name: t", "name: t\x00"), 1, "remove it"),
    (GOOD.replace("name: t", "name: t\x07"), 1, "remove it"),
])
def test_other_yaml_surprises_are_located(text, line, words):
    p = only(spec_error(text))
    assert p.line == line and words in (p.message + " " + (p.hint or ""))


# ----------------------------------------------------------------------------- found by the fuzzer

@pytest.mark.parametrize("replace, by", [("graph:\n", "graph:\ngraph_was:\n"), ("graph:\n", "graph: [1]\nold:\n"),
                                         ("components:\n", "components: x\nold:\n")])
def test_imports_into_a_section_that_is_not_a_mapping_is_a_spec_error(replace, by):
    text = SPEC_TEXTS["hybrid_vae_gan.yaml"].replace(replace, by, 1)
    assert isinstance(outcome(write(text)), SpecError)
