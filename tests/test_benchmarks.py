"""The benchmark scripts still run end to end (on a tiny budget) and write their tables."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def benchmark(name: str):
    """A script of benchmarks/ imported as a module (it imports its siblings by name, so the folder
    is on the path while it loads)."""
    import importlib
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def test_all_specs_measures_a_spec_and_writes_its_rows_between_the_markers(tmp_path):
    all_specs = benchmark("all_specs")
    record = all_specs.measure(ROOT / "specs" / "aae_uniform.yaml", ["train.steps=20"])
    assert record["steps"] == 20 and record["train_cpu_s"] > 0
    before, after = record["before"], record["after"]
    assert set(before) == set(after) == {"reconstruction_error", "prior_mmd", "prior_ks"}
    assert after["reconstruction_error"]["mse"] < before["reconstruction_error"]["mse"]

    doc = tmp_path / "B.md"
    doc.write_text("# Benchmarks\n\nintro kept\n\n<!-- all_specs.py: begin -->\nold\n<!-- all_specs.py: end -->\ntail kept\n")
    all_specs.write_doc([record], doc)
    text = doc.read_text()
    assert "intro kept" in text and "tail kept" in text and "old" not in text
    row = next(line for line in text.splitlines() if line.startswith("| `aae_uniform`"))
    assert "test recon. MSE" in row and f"{after['reconstruction_error']['mse']:.4f}" in row
    assert f"(floor {after['prior_mmd']['floor']:.4f})" in text


def test_a_spec_this_script_never_ran_points_to_its_rows_across_seeds():
    table = benchmark("all_specs").table
    text = table([], unmeasured=["stargan_attributes", "progan_fashion_mnist"], seeded={"stargan_attributes": 3})
    star = next(line for line in text.splitlines() if line.startswith("| `stargan_attributes`"))
    pro = next(line for line in text.splitlines() if line.startswith("| `progan_fashion_mnist`"))
    assert "--only stargan_attributes" in star and 'over 3 seeds are in "Across seeds"' in star
    assert "--only progan_fashion_mnist" in pro and "Across seeds" not in pro


def test_seeds_script_reports_mean_and_standard_error_over_seeds(tmp_path):
    out = tmp_path / "seeds.json"
    proc = run_script(str(BENCH / "seeds.py"), "specs/gan_ring8.yaml", "--seeds", "2", "--set", "train.steps=30",
                      "--pack", "1", "--label", "tiny", "--json", str(out), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["tiny"]["rows"]
    assert [r["seed"] for r in rows] == [0, 1]
    assert all(r["steps"] == 30 for r in rows)
    modes = [r["figures"]["mode_coverage.modes"] for r in rows]
    summary = json.loads(out.read_text())["tiny"]["summary"]["mode_coverage.modes"]
    assert summary[0] == sum(modes) / 2
    assert summary[1] == abs(modes[0] - modes[1]) / 2  # s.e. of two values: |a − b| / 2
    assert "| tiny | 2 | modes captured |" in proc.stdout and "| – |" in proc.stdout  # a variant: no published figure


def test_seeds_rows_accumulate_by_seed_under_one_label():
    merge_rows = benchmark("seeds").merge_rows
    row = lambda seed, v: {"seed": seed, "figures": {"m.k": v}}  # noqa: E731
    recorded = {"spec": "s.yaml", "overrides": ["a=1"], "rows": [row(0, 0.5), row(1, 0.6)]}
    # a later session adds seed 2 and re-runs seed 1: seed 0 is kept, seed 1 replaced
    merged = merge_rows(recorded, "s.yaml", ["a=1"], [row(2, 0.7), row(1, 0.9)])
    assert [(r["seed"], r["figures"]["m.k"]) for r in merged] == [(0, 0.5), (1, 0.9), (2, 0.7)]
    # other overrides measured something else: their rows are not mixed in
    assert [r["seed"] for r in merge_rows(recorded, "s.yaml", ["a=2"], [row(2, 0.7)])] == [2]
    assert [r["seed"] for r in merge_rows(None, "s.yaml", [], [row(3, 0.1)])] == [3]


def test_step_time_paired_difference_on_known_rounds():
    paired_difference = benchmark("step_time").paired_difference
    rounds = [{"plain": 10.0, "lvmgraph": 10.2, "dataloader": 10.6},
              {"plain": 20.0, "lvmgraph": 20.6, "dataloader": 21.0}]  # differences -0.04 and -0.02 of plain
    d = paired_difference(rounds, "lvmgraph", "dataloader")
    assert d["rounds"] == 2 and d["mean"] == pytest.approx(-0.03)
    # s.d. of (-0.04, -0.02) is 0.01414; s.e. 0.01; interval mean +- 1.96 s.e.
    assert (d["low"], d["high"]) == (pytest.approx(-0.03 - 0.0196), pytest.approx(-0.03 + 0.0196))


def test_step_time_measures_three_ways_and_writes_ratios_between_the_markers(tmp_path):
    step_time = benchmark("step_time")
    doc, out = tmp_path / "B.md", tmp_path / "step_time.json"
    doc.write_text("# Benchmarks\n\n<!-- step_time.py: begin -->\nold\n<!-- step_time.py: end -->\ntail kept\n")
    assert step_time.main(["--only", "gan_ring8", "--steps", "4", "--block", "2", "--warmup", "1", "--json", str(out),
                           "--doc", str(doc), "--note", "A test run."]) == 0
    record = json.loads(out.read_text())
    case = record["cases"]["gan_ring8"]
    # no torchvision dataset class for 2-D data: three variants here
    assert case["steps"] == 4 and set(case["mean_ms"]) == set(case["median_ms"]) == {"lvmgraph", "plain", "dataloader"}
    ms, median = case["mean_ms"], case["median_ms"]
    assert case["ratio"]["lvmgraph/plain"] == pytest.approx(ms["lvmgraph"] / ms["plain"], rel=1e-3)
    assert case["ratio"]["dataloader/plain"] == pytest.approx(ms["dataloader"] / ms["plain"], rel=1e-3)
    assert case["median_ratio"]["lvmgraph/plain"] == pytest.approx(median["lvmgraph"] / median["plain"], rel=1e-3)
    paired = case["paired"]["lvmgraph-dataloader"]  # two rounds of two steps per variant
    assert paired["rounds"] == 2 and paired["low"] <= paired["mean"] <= paired["high"]
    assert set(case["paired"]) == {"lvmgraph-plain", "lvmgraph-dataloader"}
    assert record["machine"]["cores"] >= 1 and record["machine"]["torch"] == torch.__version__
    text = doc.read_text()
    assert "old" not in text and "tail kept" in text and "A test run." in text
    assert "| `gan_ring8` | 100 |" in text and record["machine"]["cpu"] in text


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
                    reason="needs the dataset-fashion-mnist package")
def test_step_time_torchvision_variant_reads_the_same_images_through_torchvision(tmp_path):
    """torchvision's own FashionMNIST class, fed the local IDX files, with the transforms the spec's
    padding and value range need, gives the same losses as lvmgraph and the preloaded loop."""
    step_time = benchmark("step_time")
    case = step_time.CASES["dcgan_fashion_mnist"]
    step_time.check_agreement(case, steps=2, folder=tmp_path)
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 16 + 60000 * 28 * 28

    # a transform chain that forgets Normalize feeds [0, 1] images where the spec has [-1, 1]: caught
    unnormalised = step_time.Case(case.name, case.spec, case.make_step, steps=2, block=1,
                                  torchvision_transform=lambda: step_time.fashion_mnist_transforms(pad=2, to_symmetric=False))
    with pytest.raises(AssertionError, match="torchvision loop's losses differ"):
        step_time.check_agreement(unnormalised, steps=1, folder=tmp_path)


def test_step_time_refuses_a_plain_loop_that_does_different_work():
    step_time = benchmark("step_time")
    case = step_time.CASES["gan_ring8"]
    step_time.check_agreement(case, steps=2)  # the shipped loop does the spec's work

    from lvmgraph_gan.ops import pack

    def ten_times_the_lr(m, opts):  # the same networks, data and losses, another learning rate
        return step_time._gan_step(m, opts, lambda v: pack(v, 2), "generator", "critic", "prior", lr=1e-2)
    wrong = step_time.Case("gan_ring8", case.spec, ten_times_the_lr, steps=2, block=1)
    with pytest.raises(AssertionError, match="do not do the same work"):
        step_time.check_agreement(wrong, steps=2)


def test_stream_throughput_times_the_memory_and_streamed_loaders():
    stream_throughput = benchmark("stream_throughput")
    lines = stream_throughput.main(["--images", "12", "--side", "8", "--size", "6", "--batch-size", "4",
                                    "--batches", "4", "--workers", "0", "1"])
    assert [line.split(":")[0] for line in lines] == ["in memory", "streamed, 0 workers", "streamed, 1 worker"]
    assert all(float(line.split(": ")[1].split(" images/s")[0].replace(",", "")) > 0 for line in lines)


def test_puzzle_patch_bound_is_order_invariant_and_learns_a_class_the_patches_show():
    pb = benchmark("puzzle_patch_bound")
    torch.manual_seed(0)
    model = pb.PatchSetClassifier(channels=1, size=4, classes=2).eval()
    patches = torch.randn(5, 3, 1, 4, 4)
    assert torch.allclose(model(patches), model(patches[:, [2, 0, 1]]), atol=1e-6)

    # class 0: vertical stripes, class 1: horizontal; any 4x4 patch of the object tells them apart
    def images(n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 2, (n,), generator=g)
        stripes = (torch.arange(12) % 2).float().reshape(1, 12).expand(12, 12) * 2 - 1
        x = torch.stack([stripes.T if c else stripes for c in y.tolist()]).unsqueeze(1)
        return x + 0.1 * torch.randn(x.shape, generator=g), y

    x_train, y_train = images(256, 0)
    x_test, y_test = images(200, 1)
    row = pb.bound((x_train, y_train, x_test, y_test), k=2, size=4, steps=60, batch=32, seed=0)
    assert row["n_test"] == 200 and row["k"] == 2 and row["size"] == 4
    assert row["accuracy"] > 0.95 and len(row["per_class"]) == 2


def _final_weights(step_overhead, routine_pieces, steps=3):
    """The ring8 spec's weights after ``steps`` trainer steps with the phase routine of these pieces
    (None: the trainer's own run_phase), from the same initial weights and noise."""
    runner = step_overhead.step_time.build(step_overhead.step_time.CASES["gan_ring8"],
                                           overrides=["schedules.decay.steps=2"])["lvmgraph"]
    if routine_pieces is not None:
        runner.trainer.run_phase = step_overhead.phase_routine(runner.trainer, frozenset(routine_pieces))
    torch.manual_seed(7)
    for _ in range(steps):
        runner.step()
    return [p.detach().clone() for p in runner.trainer.exp.modules.parameters()]


def test_step_overhead_versions_do_the_trainers_arithmetic():
    step_overhead = benchmark("step_overhead")
    shipped = _final_weights(step_overhead, None)
    itemised = _final_weights(step_overhead, step_overhead.PIECES)
    assert all(torch.equal(a, b) for a, b in zip(shipped, itemised))
    # the measurement could tell them apart: without the schedule (decaying to 0 within the run) it differs
    unscheduled = _final_weights(step_overhead, ("finite", "gradients", "meter"))
    assert not all(torch.equal(a, b) for a, b in zip(shipped, unscheduled))


def test_step_overhead_reports_each_piece(capsys):
    step_overhead = benchmark("step_overhead")
    assert step_overhead.main(["--rounds", "2", "--block", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("bare", "+finite", "+gradients", "+schedule", "+meter", "shipped", "plain"):
        assert f"| {name} |" in out


def test_stargan_class_ceiling_is_exact_when_every_domain_shows_the_garment_unchanged(capsys):
    """With one domain (normal red) a garment's rendering in the target domain is the test image
    itself, so the judge must agree with itself everywhere and score its own test accuracy; with
    two colours the per-domain rows must average to the overall figures."""
    ceiling = benchmark("stargan_class_ceiling")
    base = [str(ROOT / "specs" / "stargan_attributes.yaml"), "--variants", "8:keep",
            "--set", "data.base=digits", "--set", "data.thickness=[normal]"]
    assert ceiling.main([*base, "--set", "data.colours=[red]"]) == 0
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(one["by_target_domain"]) == ["normal red"]
    assert one["agreement_ceiling"] == 1.0
    assert one["accuracy_ceiling"] == pytest.approx(one["judge_on_real_test"], abs=1e-3)
    assert one["accuracy_ceiling"] > 0.5  # the judge learned the digits

    assert ceiling.main([*base, "--set", "data.colours=[red, green]"]) == 0
    two = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = two["by_target_domain"]
    assert list(rows) == ["normal red", "normal green"]
    for key, figure in (("accuracy", "accuracy_ceiling"), ("agreement", "agreement_ceiling")):
        assert sum(r[key] for r in rows.values()) / 2 == pytest.approx(two[figure], abs=2e-3)
    assert all(r["accuracy"] > 0.5 for r in rows.values())
