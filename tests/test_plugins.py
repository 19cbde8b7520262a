"""The plugin system: entry-point loading, the registry, clashes, switches and the `plugins` command.

Inline plugins are plain modules built here with ``@hookimpl`` functions — the same objects
pluggy gets from an entry point — so no mock stands in for the real manager or registry.
"""
from __future__ import annotations

import importlib.metadata as md
import inspect
import json
import re
import sys
import types
from pathlib import Path

import pluggy
import pytest
import torch
from pydantic import Field, PositiveInt
from torch import nn

import lvmgraph.api as api
from lvmgraph import Params, hookimpl
from lvmgraph.cli import main
from lvmgraph.plugins import (PluginClashError, Registry, build_registry, get_registry, make_plugin_manager,
                              use_registry)
from lvmgraph.plugins import hookspecs
from lvmgraph.plugins.manager import plugin_listing
from lvmgraph.plugins.registry import HOOK_KINDS
from lvmgraph.spec.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
BUILTINS = {name: f"lvmgraph_{name}" for name in
            ("core", "datasets", "vae", "aae", "eval", "gan", "dcgan", "infogan", "wae", "cyclegan", "stargan",
             "text2image", "puzzlegan", "progan")}


@pytest.fixture(autouse=True)
def _plugin_env(monkeypatch):
    # the switches are read from the environment; start every test from "all plugins on"
    monkeypatch.delenv("LVMGRAPH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("LVMGRAPH_DISABLE_PLUGINS", raising=False)


def inline_plugin(name: str, **hooks) -> types.ModuleType:
    """A module named ``name`` whose ``hooks`` are marked with ``@hookimpl``, as a plugin package would be."""
    mod = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(mod, hook_name, hookimpl(fn))
    return mod


class AffineParams(Params):
    shape: list[PositiveInt] = Field(description="per-sample shape of the input")


class Affine(nn.Module):
    """x (b, *shape) -> x * scale + shift, one learnable scale and shift per element."""

    def __init__(self, *, shape):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(*shape))
        self.shift = nn.Parameter(torch.zeros(*shape))

    def forward(self, x):
        return x * self.scale + self.shift


def register_affine(register):
    register("affine", Affine, params=AffineParams)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parse_listing(text: str) -> dict[str, dict]:
    """`lvmgraph plugins` text -> {plugin: {"package": ..., "version": ..., "registers": {label: [names]}}}."""
    plugins: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        head = re.fullmatch(r"(\S+)  \((\S+) ?(\S*)\)", line)
        if head:
            current = plugins[head[1]] = {"package": head[2], "version": head[3], "registers": {}}
            continue
        item = re.fullmatch(r"  (\w+):\s+(.*)", line)
        assert item and current is not None, f"unexpected line in `lvmgraph plugins` output: {line!r}"
        current["registers"][item[1]] = item[2].split(", ")
    return plugins


# ----------------------------------------------------------------------------- entry points

def test_builtins_are_declared_as_entry_points_of_the_lvmgraph_group():
    eps = {ep.name: ep for ep in md.entry_points(group="lvmgraph")}
    for name, module in BUILTINS.items():
        assert name in eps, f"built-in plugin {name!r} is not an entry point; reinstall with `pip install -e .`"
        assert eps[name].value == module
        assert eps[name].dist.name == "lvmgraph"


def test_installed_entry_points_match_pyproject_and_plugin_folders():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lvmgraph"]
    folders = {p.parent.name for p in (ROOT / "plugins").glob("*/__init__.py")}
    # a plugin folder that is not declared would silently never load
    assert folders == set(declared.values()), "every package under plugins/ needs an entry in pyproject.toml"
    installed = {ep.name: ep.value for ep in md.entry_points(group="lvmgraph") if ep.dist.name == "lvmgraph"}
    assert installed == declared, "the installed metadata is stale: run `pip install -e .` again"


def test_builtins_load_through_entry_points_with_their_distribution():
    pm = make_plugin_manager()
    loaded = dict(pm.list_name_plugin())
    for name, module in BUILTINS.items():
        assert loaded[name] is sys.modules[module]
    dists = {pm.get_name(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    assert {name: dists[name].metadata["Name"] for name in BUILTINS} == dict.fromkeys(BUILTINS, "lvmgraph")

    registry = build_registry(pm)
    owners = {(e.kind, e.name): e.plugin for e in registry.entries()}
    # one known item of each family, and each entry knows which plugin registered it
    assert owners[("component", "mlp")] == "core"
    assert owners[("prior", "uniform")] == "core"
    assert owners[("loss", "bce")] == "core"
    assert owners[("dataset", "digits")] == "datasets"
    assert owners[("component", "gaussian_encoder")] == "vae"
    assert owners[("metric", "prior_mmd")] == "aae"
    assert owners[("spec", "aae")] == "aae"
    assert set(owners.values()) >= set(BUILTINS)


# ----------------------------------------------------------------------------- the `plugins` command

def test_plugins_command_lists_each_plugin_with_what_it_registers(capsys):
    code, text, _ = run_cli(capsys, "plugins")
    assert code == 0
    code, js, _ = run_cli(capsys, "plugins", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(js)}
    listed = parse_listing(text)
    assert set(BUILTINS) <= set(rows) == set(listed)

    registry = get_registry()
    labels = {"loss": "losses"}
    for name in BUILTINS:
        expected = {}
        for e in registry.entries():
            if e.plugin == name:
                expected.setdefault(e.kind, []).append(e.name)
        assert rows[name]["registers"] == {k: sorted(v) for k, v in expected.items()}
        assert (rows[name]["package"], rows[name]["version"]) == ("lvmgraph", md.version("lvmgraph"))
        # the text listing says the same as the JSON
        assert listed[name]["registers"] == {labels.get(k, k + "s"): v for k, v in rows[name]["registers"].items()}
        assert (listed[name]["package"], listed[name]["version"]) == ("lvmgraph", md.version("lvmgraph"))
    assert "mlp" in rows["core"]["registers"]["component"]
    assert "gaussian_encoder" in listed["vae"]["registers"]["components"]


def test_plugins_detail_shows_each_setting_with_type_default_and_description(capsys):
    from lvmgraph_core.components import MLPParams
    code, out, _ = run_cli(capsys, "plugins", "--detail", "mlp")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "component mlp  (plugin core)"
    assert "multilayer perceptron" in lines[1]
    settings = {m[1]: m[2] for line in lines if (m := re.fullmatch(r"    (\w+): (.*)", line))}
    assert list(settings) == list(MLPParams.model_fields)
    for name, field in MLPParams.model_fields.items():
        shown = "(required)" if field.is_required() else f"(default {field.default!r})"
        assert shown in settings[name] and settings[name].endswith(field.description), settings[name]
    assert settings["hidden"].startswith("list[int] (default [256, 256])")
    # a Literal setting lists its choices, so the help is enough to write the spec entry
    assert settings["activation"].startswith("'relu' | 'leaky_relu' | 'elu' | 'tanh' | 'silu' (default 'relu')")

    code, js, _ = run_cli(capsys, "plugins", "--detail", "mlp", "--json")
    (mlp,) = json.loads(js)
    assert mlp["settings"]["in_shape"] == {"type": "list[int]", "required": True, "default": None,
                                           "description": MLPParams.model_fields["in_shape"].description}
    assert mlp["settings"]["dropout"]["default"] == 0.0


def test_plugins_detail_of_a_name_in_two_namespaces_and_did_you_mean(capsys):
    # `elbo` is both a core loss and a vae metric: different namespaces, no clash
    code, js, _ = run_cli(capsys, "plugins", "--detail", "elbo", "--json")
    assert code == 0
    assert sorted((d["kind"], d["plugin"]) for d in json.loads(js)) == [("loss", "core"), ("metric", "vae")]
    code, js, _ = run_cli(capsys, "plugins", "--detail", "elbo", "--kind", "metric", "--json")
    assert [(d["kind"], d["plugin"]) for d in json.loads(js)] == [("metric", "vae")]
    assert set(json.loads(js)[0]["settings"]) == set(get_registry().get("metric", "elbo").params.model_fields)

    code, out, err = run_cli(capsys, "plugins", "--detail", "gausian_encoder")
    assert code == 2 and out == ""
    assert err.strip() == "nothing registered as 'gausian_encoder'; did you mean 'gaussian_encoder'?"


def test_plugins_kind_filter(capsys):
    code, js, _ = run_cli(capsys, "plugins", "--kind", "prior", "--json")
    assert code == 0
    rows = json.loads(js)
    assert [r["name"] for r in rows] == ["core"]  # the only plugin with priors
    assert rows[0]["registers"] == {"prior": get_registry().names("prior")}
    assert "uniform" in rows[0]["registers"]["prior"] and "mlp" not in rows[0]["registers"]["prior"]

    code, text, _ = run_cli(capsys, "plugins", "--kind", "prior")
    assert parse_listing(text) == {"core": {"package": "lvmgraph", "version": md.version("lvmgraph"),
                                            "registers": {"priors": get_registry().names("prior")}}}


def test_plugins_kind_takes_the_plural_the_listing_prints_and_refuses_an_unknown_kind(capsys):
    for plural, kind in (("priors", "prior"), ("losses", "loss")):
        assert run_cli(capsys, "plugins", "--kind", plural, "--json") == run_cli(capsys, "plugins", "--kind", kind, "--json")
    with pytest.raises(SystemExit) as exc:  # was: an empty listing and exit code 0
        main(["plugins", "--kind", "prio"])
    assert exc.value.code == 2
    assert "unknown kind 'prio'; did you mean 'prior'?" in capsys.readouterr().err


# ----------------------------------------------------------------------------- clashes and checks

def test_same_component_in_two_plugins_is_an_error_naming_both():
    first = inline_plugin("widgets_one", register_components=register_affine)
    second = inline_plugin("widgets_two", register_components=register_affine)
    pm = make_plugin_manager(autoload=False, extra_plugins=[first, second])
    with pytest.raises(PluginClashError) as exc:
        build_registry(pm)
    msg = str(exc.value)
    assert "component 'affine'" in msg
    assert "'widgets_one'" in msg and "'widgets_two'" in msg
    assert "LVMGRAPH_DISABLE_PLUGINS=" in msg  # and says how to get out of it


def test_a_prior_named_like_a_builtin_component_clashes_with_core():
    # components and priors share one namespace (both are spec components)
    def register_priors(register):
        register("mlp", Affine, params=AffineParams)

    pm = make_plugin_manager(extra_plugins=[inline_plugin("shadowing", register_priors=register_priors)])
    with pytest.raises(PluginClashError, match=r"registered by two plugins: 'core' and 'shadowing'"):
        build_registry(pm)


def test_a_loss_named_like_a_builtin_op_clashes():
    def register_losses(register):
        register("concat", lambda a, b: (a - b).abs().mean())

    pm = make_plugin_manager(extra_plugins=[inline_plugin("my_losses", register_losses=register_losses)])
    with pytest.raises(PluginClashError, match=r"loss 'concat'.*'core' and 'my_losses'"):
        build_registry(pm)


def test_a_name_that_is_not_an_identifier_is_refused():
    def register_components(register):
        register("my-widget", Affine, params=AffineParams)

    pm = make_plugin_manager(autoload=False, extra_plugins=[inline_plugin("dashes", register_components=register_components)])
    with pytest.raises(ValueError, match=r"plugin 'dashes': component name 'my-widget' must be a Python identifier"):
        build_registry(pm)


def test_misspelled_hook_implementation_fails_loudly_at_load():
    bad = inline_plugin("typo_plugin", register_componentz=register_affine)
    with pytest.raises(pluggy.PluginValidationError, match="register_componentz") as exc:
        make_plugin_manager(autoload=False, extra_plugins=[bad])
    assert "typo_plugin" in str(exc.value)


# ----------------------------------------------------------------------------- switches

def test_disable_plugin_autoload_loads_none(monkeypatch, capsys):
    monkeypatch.setenv("LVMGRAPH_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = make_plugin_manager()
    assert pm.list_name_plugin() == []
    assert build_registry(pm).entries() == []
    code, out, _ = run_cli(capsys, "plugins", "--json")
    assert code == 0 and json.loads(out) == []
    # plugins passed explicitly still register: this is how tests bring their own
    pm = make_plugin_manager(extra_plugins=[inline_plugin("only_me", register_components=register_affine)])
    assert [(e.kind, e.name, e.plugin) for e in build_registry(pm).entries()] == [("component", "affine", "only_me")]


def test_disable_plugins_blocks_the_named_ones(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("LVMGRAPH_DISABLE_PLUGINS", "aae")
    pm = make_plugin_manager()
    assert pm.is_blocked("aae") and not pm.is_blocked("core")
    names = {name for name, plugin in pm.list_name_plugin() if plugin is not None}
    assert names == set(BUILTINS) - {"aae"}
    registry = build_registry(pm)
    assert registry.get("metric", "prior_mmd") is None and registry.get("spec", "aae") is None
    assert registry.get("component", "mlp") is not None

    code, out, _ = run_cli(capsys, "plugins", "--json")
    assert "aae" not in {r["name"] for r in json.loads(out)}

    # a spec that uses the blocked plugin's metric no longer validates, and says why
    with use_registry(registry), pytest.raises(SpecError) as exc:
        api.load(ROOT / "specs" / "aae_uniform.yaml").raise_if_errors()
    assert "prior_mmd" in str(exc.value)

    monkeypatch.setenv("LVMGRAPH_DISABLE_PLUGINS", "aae, vae")
    names = {name for name, plugin in make_plugin_manager().list_name_plugin() if plugin is not None}
    assert names == set(BUILTINS) - {"aae", "vae"}


# ----------------------------------------------------------------------------- use_registry

AFFINE_SPEC = """\
name: inline_affine
data: {dataset: digits, batch_size: 16}
components:
  net: {type: affine, shape: [1, 8, 8]}
graph:
  x_hat: net(x)
  loss:  mse(x_hat, x)
phases:
  - {minimize: loss, update: [net]}
"""


def test_use_registry_makes_an_inline_plugin_usable_in_specs(tmp_path):
    spec = tmp_path / "affine.yaml"
    spec.write_text(AFFINE_SPEC)
    default = get_registry()
    registry = build_registry(make_plugin_manager(
        extra_plugins=[inline_plugin("affine_plugin", register_components=register_affine)]))

    with use_registry(registry) as active:
        assert active is registry and get_registry() is registry
        exp = api.validate(spec)  # full dry run through the inline component
        assert isinstance(exp.modules["net"], Affine)
        inner = Registry()
        with use_registry(inner):
            assert get_registry() is inner
        assert get_registry() is registry  # nesting restores the outer one
    assert get_registry() is default

    with pytest.raises(SpecError) as exc:
        api.validate(spec)  # outside the context the component is unknown again
    assert "line 4" in str(exc.value) and "components.net.type: unknown component 'affine'" in str(exc.value)


def test_use_registry_restores_on_error():
    default = get_registry()
    with pytest.raises(RuntimeError), use_registry(Registry()):
        raise RuntimeError("boom")
    assert get_registry() is default


# ----------------------------------------------------------------------------- documentation meta-tests

def _hookspecs():
    return [(name, fn) for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "lvmgraph_spec")]


def test_every_hookspec_is_documented_with_an_example():
    specs = _hookspecs()
    assert specs, "no hookspecs found"
    for name, fn in specs:
        doc = inspect.getdoc(fn) or ""
        assert doc.split("\n")[0].strip(), f"{name} has no summary line"
        assert "Example::" in doc, f"{name}'s docstring has no `Example::` block"
        example = doc.split("Example::", 1)[1]
        assert "@hookimpl" in example and f"def {name}(register):" in example, f"{name}'s example does not implement it"
        assert list(inspect.signature(fn).parameters) == ["register"]


def test_every_hookspec_is_called_when_building_the_registry():
    # a hook missing from HOOK_KINDS would be declared but never called
    assert {name for name, _ in _hookspecs()} == set(HOOK_KINDS)


def test_every_builtin_item_is_documented():
    undocumented, no_params, no_descriptions = [], [], []
    for e in get_registry().entries():
        if e.plugin not in BUILTINS:
            continue
        if not e.summary:
            undocumented.append(f"{e.kind} {e.name}")
        if e.kind in ("op", "loss", "spec"):  # ops and losses take call arguments; templates have no settings
            continue
        if e.params is None or not issubclass(e.params, Params):
            no_params.append(f"{e.kind} {e.name}")
            continue
        missing = [f for f, info in e.params.model_fields.items() if not (info.description or "").strip()]
        if missing:
            no_descriptions.append(f"{e.kind} {e.name}: {', '.join(missing)}")
    assert undocumented == [], "registered without a docstring summary"
    assert no_params == [], "registered without a Params model (extra='forbid')"
    assert no_descriptions == [], "settings without a description"


def test_spec_templates_are_described_by_their_header_comment():
    registry = get_registry()
    for name in registry.names("spec"):
        entry = registry.get("spec", name)
        first = Path(entry.factory).read_text().splitlines()[0]
        assert first.startswith("# ") and entry.summary == first[2:].strip()


def test_an_undocumented_component_class_does_not_borrow_nn_module_doc():
    class Bare(nn.Module):
        pass

    registry = Registry()
    registry.add("component", "bare", Bare, plugin="p")
    assert registry.get("component", "bare").doc == ""
