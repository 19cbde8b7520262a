"""Every shipped spec validates (full dry run), trains a few steps on CPU and says how to run it.

Like torchtune's config test: a spec in ``specs/`` that no longer loads, builds or trains fails
here, before a user finds it. Fashion-MNIST specs run on 256 training images.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

import lvmgraph.api as api
from lvmgraph.eval.runner import named_entries
from lvmgraph.train.checkpoint import latest_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SAMPLE_PLUGIN_SPECS = [ROOT / "tests" / "sample_plugin" / "lvmgraph_sample_plugin" / "specs" / "aae_residual.yaml"]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
STEPS = 3
DERIVED = ("domains", "attributes", "captions")  # their base defaults to fashion_mnist
BATCH = 32  # smaller than the specs' batches: this checks that they run, not how well they learn


def _id(path: Path) -> str:
    return path.stem


def data_overrides(path: Path) -> list[str]:
    """Small-data overrides, or skip when the spec's dataset is not installed here."""
    data = api.load(path).spec.data
    # derived datasets (domains, attributes, captions) name the image dataset they are built from as `base`
    base = data.settings.get("base", "fashion_mnist") if data.dataset in DERIVED else data.dataset
    if base == "fashion_mnist":
        if not FASHION_MNIST.is_dir():
            pytest.skip(f"Fashion-MNIST is not installed at {FASHION_MNIST} (apt-get install dataset-fashion-mnist)")
        if data.dataset in DERIVED:  # a class-subset domain holds ~1/10 of the images: keep enough for a batch
            return ["data.limit_train=1024", "data.limit_test=256"]
        return ["data.limit_train=256", "data.limit_test=128"]
    return []


def stage_overrides(path: Path) -> tuple[list[str], int]:
    """A growing spec's stage plan in miniature (one step per fade-in and per stabilisation, every
    resolution visited) and the steps it takes; other specs run STEPS steps."""
    stages = api.load(path).spec.stages
    if not stages:
        return [], STEPS
    mini = [{"resolution": s.resolution, "stable_steps": 1, **({"fade_steps": 1} if i else {})}
            for i, s in enumerate(stages)]
    return [f"stages={json.dumps(mini)}"], 1 + 2 * (len(stages) - 1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # tiny steps gain nothing from a second thread, and lose a lot to contention on a busy machine
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def test_there_are_specs():
    assert len(SPECS) >= 4, SPECS


@pytest.mark.parametrize("path", SPECS, ids=_id)
def test_spec_validates_and_trains_a_few_steps(path, tmp_path):
    staged, steps = stage_overrides(path)
    overrides = data_overrides(path) + [f"data.batch_size={BATCH}"] + staged
    exp = api.validate(path, overrides)  # load, compile, build, dry run on a tiny batch
    errors = [w for w in exp.warnings if w.severity == "error"]
    assert errors == []
    initial = {k: v.detach().clone() for k, v in exp.modules.state_dict().items()}

    run = api.train(path, out=tmp_path / "run", overrides=overrides + [
        f"train.steps={steps}", "train.log_every=1", f"train.checkpoint_every={steps}", f"train.sample_every={steps}"],
        progress=False, evaluate=False)
    spec = exp.spec

    # one metrics row per step, each with every minimised term and phase total, all finite
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    expected = {term for phase in spec.phases for term in phase.terms} | {
        phase.label for phase in spec.phases if len(phase.terms) > 1}  # a weighted sum also logs its total
    for row in rows:
        assert expected <= set(row), f"step {row['step']} lacks {expected - set(row)}"
        bad = {k: v for k, v in row.items() if k in expected and not math.isfinite(v)}
        assert bad == {}, f"step {row['step']}: non-finite losses {bad}"

    # a complete, verified checkpoint at the last step, holding every component
    ckpt = latest_checkpoint(run.checkpoints)
    assert ckpt is not None, f"no checkpoint in {run.checkpoints}"
    state = load_checkpoint(ckpt)
    assert int(state["step"]) == steps
    weights = state["components"]
    assert set(weights) == set(initial)

    # every component some phase updates has moved away from its initial weights
    updated = {name for phase in spec.phases for name in phase.update}
    for name in updated:
        prefix = name.replace(".", "/") + "."
        keys = [k for k in initial if k.startswith(prefix) and initial[k].is_floating_point()]
        assert keys, f"component {name} has no parameters in the state dict"
        assert any(not torch.equal(initial[k], weights[k]) for k in keys), f"{name} was not updated"

    # the run directory's resolved spec is itself a valid spec
    assert api.load(run.spec_file).spec.name == spec.name

    # the spec's own evaluation section runs (on few samples) and every result is a finite number
    results = api.open_run(run.path).evaluate([(m, small(m, s)) for m, s in spec.eval.items()], write=False)
    assert set(results) == {r for r, _, _ in named_entries(spec.eval.items())}
    for metric, out in results.items():
        numbers = {k: v for k, v in out.items() if isinstance(v, (int, float)) and k != "seconds"}
        # NaN is a documented "undefined" (e.g. reverse KL with no high-quality sample after 3 steps);
        # infinities and all-NaN results are not
        assert numbers and any(math.isfinite(v) for v in numbers.values()), (metric, out)
        assert not any(math.isinf(v) for v in numbers.values()), (metric, out)


def small(metric: str, settings: dict) -> dict:
    """A metric's settings shrunk to a handful of samples (n, k, subsets) for a smoke run."""
    from lvmgraph.plugins import get_registry
    fields = get_registry().get("metric", metric).params.model_fields
    shrink = {"n": 24, "k": 4, "chunk": 4, "n_per_class": 4, "n_per_code": 4, "subsets": 2, "subset_size": 8,
              "n_validation": 16}
    out = {**settings, **{k: v for k, v in shrink.items() if k in fields}}
    if isinstance(out.get("judge"), dict):  # a judge trained for one epoch: this checks the wiring, not the score
        out["judge"] = {**out["judge"], "epochs": 1}
    return out


@pytest.mark.parametrize("path", SPECS + SAMPLE_PLUGIN_SPECS, ids=_id)
def test_spec_opens_with_a_comment_saying_what_it_is_and_how_to_run_it(path):
    lines = path.read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 2, f"{path.name}: start with a comment block: what it is, the paper, the run command"
    assert len(header[0].lstrip("# ").strip()) > 20, f"{path.name}: the first line should say what the spec is"
    runs = [line for line in header if re.match(r"#\s*Run:", line)]
    assert runs, f"{path.name}: the header needs a `# Run:  lvmgraph run ...` line"
    command = re.match(r"#\s*Run:\s*(lvmgraph run \S+)", runs[0])
    assert command, f"{path.name}: the Run line should start with `lvmgraph run <spec>`: {runs[0]!r}"
    # the command names this very file, relative to the repository root
    assert command[1] == f"lvmgraph run {path.relative_to(ROOT).as_posix()}"
