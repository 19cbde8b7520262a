"""Composition: extends (deep merge, chains, loops, family templates), imports (namespacing), --set."""
from pathlib import Path

import pytest

from lvmgraph.graph import compile as C
from lvmgraph.plugins import get_registry
from lvmgraph.spec.compose import load_composed
from lvmgraph.spec.errors import SpecError
from lvmgraph.spec.load import load_spec

SPECS = Path(__file__).parent / "data" / "specs"


@pytest.fixture(scope="module")
def registry():
    return get_registry()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- extends

def test_extends_deep_merges_nested_keys_adds_and_removes_components():
    loaded = load_spec(SPECS / "child.yaml")
    assert loaded.problems == []
    comps = loaded.raw["components"]
    assert comps["encoder"] == {"type": "mlp", "in_shape": [1, 8, 8], "out_shape": [2], "hidden": [16],
                                "activation": "elu"}
    assert "extra" not in comps
    assert comps["critic"]["hidden"] == [8]
    assert list(comps) == ["encoder", "decoder", "critic"]
    assert loaded.spec.name == "child"
    assert loaded.raw["train"] == {"steps": 3, "log_every": 5}  # merged, not replaced
    assert set(loaded.raw["graph"]) == {"z", "x_hat", "rec", "d"}


def test_extends_replaces_lists_whole():
    loaded = load_spec(SPECS / "child.yaml")
    phases = loaded.spec.phases
    assert [p.minimize for p in phases] == ["rec", "d"]
    assert phases[0].optimizer.type == "sgd" and phases[0].optimizer.settings == {"lr": 0.1}
    assert loaded.raw["components"]["encoder"]["hidden"] == [16]  # [32, 32] replaced, not patched


def test_extends_keeps_each_key_located_in_the_file_that_wrote_it():
    loaded = load_spec(SPECS / "child.yaml")
    src = loaded.source
    base, child = str(SPECS / "base.yaml"), str(SPECS / "child.yaml")
    assert src.locate(("components", "encoder", "hidden")) == (child, 4)
    assert src.locate(("components", "encoder", "activation")) == (base, 4)
    assert src.locate(("components", "decoder", "hidden")) == (base, 5)
    assert src.locate(("components", "critic", "type")) == (child, 6)
    assert src.locate(("phases", 1, "update")) == (child, 11)
    assert src.locate(("train", "log_every")) == (base, 13)
    assert src.locate(("train", "steps")) == (child, 12)
    assert ("components", "extra") not in src.entries
    # a --set over an inherited setting is located at the override, not in the base file
    loaded = load_spec(SPECS / "child.yaml", ["components.decoder.out_activation=sigmod"])
    (p,) = loaded.problems
    assert p.file == "--set" and p.path == ("components", "decoder", "out_activation")


def test_problem_in_an_inherited_entry_points_into_the_base(tmp_path):
    write(tmp_path, "base.yaml", (SPECS / "base.yaml").read_text().replace("activation: elu", "activaton: elu"))
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: c\ntrain: {steps: 1}\n")
    (p,) = load_spec(child).problems
    assert p.file == str(tmp_path / "base.yaml") and p.line == 4
    assert p.hint == "did you mean 'activation'?"


def test_retyped_entry_is_replaced_not_merged(tmp_path):
    write(tmp_path, "base.yaml", (SPECS / "base.yaml").read_text())
    child = write(tmp_path, "c.yaml", "extends: base.yaml\nname: c\ncomponents:\n  encoder: {type: gaussian_encoder, "
                                      "in_shape: [1, 8, 8], latent_dim: 2}\n")
    loaded = load_spec(child)
    enc = loaded.raw["components"]["encoder"]
    assert enc == {"type": "gaussian_encoder", "in_shape": [1, 8, 8], "latent_dim": 2}  # no mlp settings left
    assert not [p for p in loaded.problems if p.path[:2] == ("components", "encoder")]


def test_extends_chain_nearest_file_wins():
    loaded = load_spec(SPECS / "chain_c.yaml")
    assert loaded.problems == []
    assert loaded.spec.name == "chain_c"
    assert loaded.spec.seed == 2               # from b, over a's 1
    assert loaded.spec.description == "from a"
    assert loaded.spec.train.steps == 7        # from b
    assert loaded.raw["components"]["decoder"]["hidden"] == [4, 4]            # from c
    assert loaded.raw["components"]["decoder"]["out_activation"] == "sigmoid"  # from a
    assert loaded.source.locate(("components", "decoder", "hidden"))[0] == str(SPECS / "chain_c.yaml")
    assert loaded.source.locate(("seed",))[0] == str(SPECS / "chain_b.yaml")


def test_extends_a_list_of_bases_later_wins(tmp_path):
    write(tmp_path, "one.yaml", "seed: 1\ndescription: one\ntrain: {steps: 1, log_every: 1}\n")
    write(tmp_path, "two.yaml", "seed: 2\ntrain: {steps: 2}\n")
    spec = write(tmp_path, "s.yaml", "extends: [one.yaml, two.yaml]\nname: s\n")
    raw, _ = load_composed(spec)
    assert raw == {"seed": 2, "description": "one", "train": {"steps": 2, "log_every": 1}, "name": "s"}


def test_extends_loop_is_a_clear_error():
    with pytest.raises(SpecError) as exc:
        load_spec(SPECS / "loop_a.yaml")
    (p,) = exc.value.problems
    assert "extends/imports loop" in p.message
    assert "loop_a.yaml -> " in p.message and "loop_b.yaml -> " in p.message
    assert p.message.endswith("loop_a.yaml")


def test_extends_missing_file_points_at_the_reference(tmp_path):
    spec = write(tmp_path, "s.yaml", "name: s\nextends: nowhere.yaml\n")
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    (p,) = exc.value.problems
    assert "no such file 'nowhere.yaml'" in p.message and p.line == 2 and p.file == str(spec)


def test_extends_a_mistyped_file_suggests_the_file_beside_it(tmp_path):
    write(tmp_path, "base_vae.yaml", "name: base\n")
    spec = write(tmp_path, "s.yaml", "name: s\nextends: base_vea.yaml\n")
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    (p,) = exc.value.problems
    assert p.hint == "did you mean 'base_vae.yaml'?" and p.line == 2


def test_extends_family_vae_template(tmp_path):
    spec = write(tmp_path, "v.yaml", "extends: family:vae\nname: my_vae\n"
                                     "components: {encoder: {latent_dim: 4}, decoder: {latent_dim: 4}, "
                                     "prior: {shape: [4]}}\ntrain: {steps: 2}\n")
    loaded = load_spec(spec)
    assert loaded.problems == []
    assert loaded.spec.name == "my_vae" and loaded.spec.train.steps == 2
    assert loaded.raw["components"]["encoder"] == {"type": "gaussian_encoder", "in_shape": [1, 8, 8],
                                                   "latent_dim": 4, "hidden": [256, 256]}
    assert loaded.spec.graph["nll"] == "nll(p_x, x)"
    assert loaded.spec.sample.set == {"z": "prior"}
    template = loaded.source.locate(("graph", "nll"))[0]
    assert template.endswith("vae.yaml") and template != str(spec)


def test_extends_family_aae_with_a_different_prior_as_its_template_documents(tmp_path):
    spec = write(tmp_path, "a.yaml", "extends: family:aae\nname: aae_roll\n"
                                     "components:\n  prior: {type: swiss_roll, shape: [2]}\n")
    loaded = load_spec(spec)
    assert loaded.problems == []
    assert loaded.raw["components"]["prior"] == {"type": "swiss_roll", "shape": [2]}
    assert [p.minimize for p in loaded.spec.phases] == ["rec_loss", "d_loss", "g_loss"]


def test_unknown_family_template(tmp_path):
    spec = write(tmp_path, "a.yaml", "name: a\nextends: family:vea\n")
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    (p,) = exc.value.problems
    assert "no template spec named 'vea'" in p.message and p.line == 2
    assert p.hint == "did you mean 'vae'?"


# ----------------------------------------------------------------------------- imports

def test_imports_namespace_components_values_and_rewrite_expressions(tmp_path, registry):
    spec = write(tmp_path, "h.yaml", "name: h\nimports: {vae: family:vae}\n"
                                     "components:\n  critic: {type: mlp, in_shape: [8], out_shape: [1], hidden: [8]}\n"
                                     "graph:\n  g: gan_generator_loss(critic(vae.z))\n"
                                     "phases:\n  - {minimize: {vae.nll: 1.0, vae.kl: 1.0}, update: [vae.encoder, vae.decoder]}\n"
                                     "  - {minimize: g, update: [critic]}\n"
                                     "sample: {set: {vae.z: vae.prior}, output: vae.x_hat}\n")
    loaded = load_spec(spec)
    assert loaded.problems == []
    assert set(loaded.spec.components) == {"critic", "vae.encoder", "vae.decoder", "vae.prior"}
    graph = loaded.spec.graph
    assert graph["vae.q"] == "vae.encoder(x)"          # component callee renamed, data field kept
    assert graph["vae.z"] == "vae.q.rsample()"
    assert graph["vae.p_x"] == "vae.decoder(vae.z)"
    assert graph["vae.x_hat"] == "vae.p_x.mean"
    assert graph["vae.nll"] == "nll(vae.p_x, x)"       # the op nll is not the value nll
    assert graph["vae.kl"] == "kl(vae.q, vae.prior)"
    assert "imports" not in loaded.raw and "nll" not in graph
    # the rewritten graph compiles: vae.nll calls the op with the value vae.p_x
    g, problems = C.compile_graph(loaded, registry, ("x", "y"))
    assert [p for p in problems if p.severity == "error"] == []
    nll = g.values["vae.nll"]
    assert isinstance(nll, C.OpCall) and nll.op == "nll" and nll.args[0] == C.Ref("value", "vae.p_x")
    assert g.values["vae.q"] == C.ComponentCall("vae.encoder", None, (C.Ref("data", "x"),), ())
    assert g.component_deps["g"] == {"critic", "vae.encoder"}


def test_importing_spec_overrides_a_part_entry(tmp_path):
    spec = write(tmp_path, "h.yaml", "name: h\nimports: {vae: family:vae}\n"
                                     "components:\n  vae.prior: {type: normal, shape: [8], scale: 2.0}\n"
                                     "graph: {}\nphases:\n  - {minimize: vae.nll, update: [vae.encoder, vae.decoder]}\n")
    loaded = load_spec(spec)
    assert loaded.raw["components"]["vae.prior"] == {"type": "normal", "shape": [8], "scale": 2.0}
    assert loaded.source.locate(("components", "vae.prior")) == (str(spec), 4)


def test_import_problems_point_into_the_imported_file(registry):
    loaded = load_spec(SPECS / "imports_part.yaml")
    part = str(SPECS / "parts" / "ae_part.yaml")
    (p,) = loaded.problems
    assert p.path == ("components", "ae.decoder", "hiden")
    assert (p.file, p.line) == (part, 5)
    assert p.hint == "did you mean 'hidden'?"
    # a value named like an op (mean: mean(z)) stays an op call after the rename
    assert loaded.spec.graph["ae.mean"] == "mean(ae.z)"
    assert loaded.source.locate(("graph", "ae.rec")) == (part, 9)
    g, problems = C.compile_graph(loaded, registry, ("x", "y"))
    assert isinstance(g.values["ae.mean"], C.OpCall)
    errors = SpecError(loaded.problems + problems, file=str(SPECS / "imports_part.yaml"))
    assert f"{part}:5 components.ae.decoder.hiden: unknown setting 'hiden'" in errors.render()


def test_import_graph_problem_located_in_the_part(tmp_path, registry):
    write(tmp_path, "parts/p.yaml", "name: p\ncomponents:\n  enc: {type: mlp, in_shape: [2], out_shape: [2], hidden: []}\n"
                                    "graph:\n  a: enc(x)\n  b: sigmoid(aa)\n")
    spec = write(tmp_path, "s.yaml", "name: s\nimports: {p: parts/p.yaml}\ngraph: {}\n"
                                     "phases:\n  - {minimize: p.a, update: [p.enc]}\n")
    loaded = load_spec(spec)
    _, problems = C.compile_graph(loaded, registry, ("x",))
    (p,) = [p for p in problems if p.severity == "error"]
    assert (p.file, p.line) == (str(tmp_path / "parts" / "p.yaml"), 6)
    assert "uses 'aa'" in p.message and p.path == ("graph", "p.b")


def test_imports_must_be_a_mapping(tmp_path):
    spec = write(tmp_path, "s.yaml", "name: s\nimports: [family:vae]\n")
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    (p,) = exc.value.problems
    assert p.line == 2 and "imports must map a prefix" in p.message


# ----------------------------------------------------------------------------- --set

def test_set_overrides_typed_values():
    loaded = load_spec(SPECS / "clean.yaml", ["train.steps=5", "phases.0.optimizer.lr=1e-4",
                                              "components.encoder.hidden=[32]", "data.shuffle=false"])
    assert loaded.problems == []
    assert loaded.spec.train.steps == 5
    assert loaded.spec.phases[0].optimizer.settings["lr"] == pytest.approx(1e-4)
    assert loaded.component_params("encoder").hidden == [32]
    assert loaded.spec.data.shuffle is False
    assert loaded.source.locate(("train", "steps")) == ("--set", None)
    assert loaded.source.locate(("components", "encoder", "in_shape"))[0] == str(SPECS / "clean.yaml")


def test_set_on_a_phase_without_optimizer_gives_adam_with_that_lr(tmp_path):
    spec = write(tmp_path, "s.yaml", (SPECS / "clean.yaml").read_text().replace(", optimizer: {type: adam, lr: 1.0e-3}", ""))
    loaded = load_spec(spec, ["phases.0.optimizer.lr=1e-4"])
    assert loaded.problems == []
    assert loaded.spec.phases[0].optimizer.type == "adam"
    assert loaded.spec.phases[0].optimizer.settings == {"lr": pytest.approx(1e-4)}


def test_set_dotted_component_names_of_imported_parts():
    loaded = load_spec(Path(__file__).parent.parent / "specs" / "hybrid_vae_mixture_critic.yaml",
                       ["components.vae.encoder.latent_dim=3", "components.vae.decoder.latent_dim=3"])
    assert loaded.raw["components"]["vae.encoder"]["latent_dim"] == 3
    assert loaded.raw["components"]["vae.decoder"]["latent_dim"] == 3
    assert "vae" not in loaded.raw["components"]


def test_set_unknown_key_is_located_at_the_override():
    with pytest.raises(SpecError) as exc:
        load_spec(SPECS / "clean.yaml", ["train.stpes=5"])
    (p,) = exc.value.problems
    assert p.path == ("train", "stpes") and p.file == "--set" and p.hint == "did you mean 'steps'?"


def test_set_replacing_a_list_drops_the_old_locations():
    loaded = load_spec(SPECS / "clean.yaml", ["components.encoder.hidden=[4, 0]"])
    (p,) = loaded.problems
    assert p.path == ("components", "encoder", "hidden", 1) and p.file == "--set"


@pytest.mark.parametrize("item, message", [
    ("phases.7.lr=1", "--set phases.7.lr: no list item or mapping at 7"),
    ("train.steps.x=1", "--set train.steps.x: cannot assign here"),
    ("phases.name=x", "--set phases.name: cannot assign here"),
    ("train.steps", "--set 'train.steps': write key.path=value"),
])
def test_set_bad_paths(item, message):
    with pytest.raises(SpecError) as exc:
        load_spec(SPECS / "clean.yaml", [item])
    (p,) = exc.value.problems
    assert p.message == message and p.file == "--set"


def test_set_past_the_end_of_a_list_says_how_long_it_is():
    with pytest.raises(SpecError) as exc:
        load_spec(SPECS / "clean.yaml", ["phases.7.lr=1"])
    (p,) = exc.value.problems
    assert p.hint == "the list has 1 item, numbered from 0"
