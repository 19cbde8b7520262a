"""The parts of ``lvmgraph.api`` the command line delegates to: structural checks without data,
loading that reports bad plugin settings, and evaluation by metric name with a sample count."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lvmgraph.api as lg
from lvmgraph.cli import main
from lvmgraph.spec.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
AAE = ROOT / "specs" / "aae_uniform.yaml"
TINY = ["train.steps=10", "train.log_every=5", "train.checkpoint_every=10", "train.threads=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api") / "run"
    lg.train(AAE, out=out, overrides=TINY, progress=False, evaluate=False)
    return out


def test_load_raises_on_a_bad_plugin_setting():
    with pytest.raises(SpecError) as err:
        lg.load(AAE, ["components.critic.activaton=relu"])
    assert "did you mean 'activation'?" in err.value.render()


def test_compile_spec_checks_the_graph_without_loading_data(tmp_path):
    # a dataset whose files do not exist: compiling never reads it
    spec = AAE.read_text().replace("data: {dataset: digits, batch_size: 100}",
                                   "data: {dataset: fashion_mnist, root: /nonexistent, batch_size: 100}")
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    loaded, graph = lg.compile_spec(path)
    assert loaded.spec.data.dataset == "fashion_mnist"
    assert set(graph.order) == set(loaded.spec.graph)

    path.write_text(spec.replace("x_hat:    decoder(z)", "x_hat:    decoder(zz)"))
    with pytest.raises(SpecError) as err:
        lg.compile_spec(path, ["components.critic.activaton=relu"])
    text = err.value.render()
    assert "2 problems" in text  # the setting and the graph, reported together
    assert "did you mean 'z'?" in text and "did you mean 'activation'?" in text


def test_evaluate_by_name_with_a_sample_count(trained):
    run = lg.open_run(trained)
    results = run.evaluate(["prior_mmd", "reconstruction_error"], n=100, write=False)
    assert list(results) == ["prior_mmd", "reconstruction_error"]
    assert results["prior_mmd"]["protocol"]["n"] == 100
    assert not (trained / "eval.json").exists()
    pairs = run.evaluate([("prior_ks", {"n": 50, "as": "ks_50"})], write=False)
    assert pairs["ks_50"]["protocol"]["n"] == 50 and pairs["ks_50"]["metric"] == "prior_ks"


def test_cli_eval_n_sets_the_sample_count(trained, capsys):
    assert main(["eval", str(trained), "--metrics", "prior_ks", "--n", "120"]) == 0
    written = json.loads((trained / "eval.json").read_text())
    assert list(written["results"]) == ["prior_ks"]
    assert written["results"]["prior_ks"]["protocol"]["n"] == 120
    assert written["step"] == 10
    assert "prior_ks" in capsys.readouterr().out


def test_evaluator_refuses_unknown_and_non_image_datasets(capsys):
    with pytest.raises(lg.UnknownDataset, match="did you mean 'digits'"):
        lg.evaluator("digts")
    assert main(["evaluator", "train", "--dataset", "toy2d"]) == 2
    assert "'toy2d' is not an image dataset" in capsys.readouterr().err


def test_build_gives_the_seeded_untrained_components():
    a, b = lg.build(AAE), lg.build(AAE, ["seed=1"])
    again = lg.build(AAE)
    w = lambda exp: exp.modules["encoder"].net[0].weight  # noqa: E731
    assert torch.equal(w(a), w(again)) and not torch.equal(w(a), w(b))
    assert a.warnings == [] and set(a.modules) == {"encoder", "decoder", "critic", "prior"}
