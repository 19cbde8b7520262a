"""The run report (RUN/report.html): its sections follow what the run has, every picture it names
exists, it is written during training, after training and by `lvmgraph report`, a failure to
write it never stops training, and headless Chromium renders it with every image loaded."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lvmgraph.api as api
from lvmgraph.cli import main as cli_main
from lvmgraph.report import PAGE
from lvmgraph.report.browser import find_chromium, loaded_images, screenshot
from lvmgraph.report.curves import TOTAL_COLOUR, draw_panel, nice_ticks, panels
from lvmgraph.report.figures import reconstruction_pairs, traversals

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["train.progress=false", "train.threads=1"]
AAE = QUIET + ["train.steps=200", "train.log_every=20", "train.sample_every=100", "train.checkpoint_every=200"]
CYCLEGAN = """\
extends: family:cyclegan
name: cyclegan_tiny_digits
seed: 0
data: {dataset: digits, batch_size: 8, value_range: [-1, 1]}
components:
  g_ab:   {in_shape: [1, 8, 8], out_shape: [1, 8, 8], width: 8, n_blocks: 1}
  g_ba:   {in_shape: [1, 8, 8], out_shape: [1, 8, 8], width: 8, n_blocks: 1}
  d_a:    {in_shape: [1, 8, 8], width: 8, n_layers: 1}
  d_b:    {in_shape: [1, 8, 8], width: 8, n_layers: 1}
  pool_a: {shape: [1, 8, 8], size: 6}
  pool_b: {shape: [1, 8, 8], size: 6}
schedules:
  lr_decay: {delay: 20, steps: 20}
graph:
  x_a: x        # domain A: the digits
  x_b: -x       # domain B: the same digits, inverted
sample: {output: x_ab, grid: [x_a, x_ab, x_aba], n: 16}
train: {steps: 40, log_every: 5, checkpoint_every: 40, sample_every: 20, threads: 1, progress: false}
eval:
  metrics:
    - cycle_error: {input: x, reconstruction: x_aba, n: 64}
"""


class _Page(HTMLParser):
    """Section ids, image sources and whether the page reloads itself."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.refresh = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs["id"])
        elif tag in ("img", "object"):
            self.images.append(attrs.get("src") or attrs.get("data"))
        elif tag == "meta" and attrs.get("http-equiv") == "refresh":
            self.refresh = True


def parse(run_dir: Path) -> _Page:
    return _Page((run_dir / PAGE).read_text())


@pytest.fixture(scope="module")
def aae_run(tmp_path_factory) -> Path:
    seen = {}

    def look_mid_training(trainer):  # after the report written at step 100, before the next one
        if trainer.step == 101:
            seen["page"] = parse(trainer.run.path)
    run = api.train(ROOT / "specs" / "aae_uniform.yaml", out=tmp_path_factory.mktemp("aae") / "run",
                    overrides=AAE, callbacks=[look_mid_training])
    run.path.joinpath("mid_training_sections.txt").write_text(
        " ".join(seen["page"].sections) + ("\nrefresh" if seen["page"].refresh else "") + "\n"
        + " ".join(seen["page"].images))
    return run.path


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cyclegan")
    spec = folder / "cyclegan_tiny.yaml"
    spec.write_text(CYCLEGAN)
    return api.train(spec, out=folder / "run").path


def _assert_images_exist(run_dir: Path, page: _Page) -> None:
    assert page.images, "the page shows no pictures"
    for src in page.images:
        assert not src.startswith(("http:", "https:", "/")), src  # relative to the run directory
        assert (run_dir / src).is_file(), f"{src} is named by the page but missing"


# ----------------------------------------------------------------------------- structure

def test_aae_report_has_the_sections_of_an_autoencoder_with_a_2d_latent(aae_run):
    page = parse(aae_run)
    assert page.sections == ["summary", "losses", "samples", "latent", "reconstructions", "interpolations",
                             "graph", "run"]
    assert not page.refresh  # a finished run's page does not reload itself
    _assert_images_exist(aae_run, page)
    assert page.images.count("samples/step_00000200.png") == 1  # the latest grid, shown large
    assert "samples/step_00000100.png" in page.images            # and the history
    html = (aae_run / PAGE).read_text()
    assert html.count('<figure class="chart">') == 3  # a loss chart per phase
    assert "finished" in html and "prior_ks" in html  # status badge and the evaluation table
    assert "<svg" in html and "rec_loss" in html      # the model graph, inline


def test_report_is_written_during_training_with_curves_and_grids_only(aae_run):
    sections, refresh, images = (aae_run / "mid_training_sections.txt").read_text().split("\n")
    assert sections.split() == ["summary", "losses", "samples", "graph", "run"]
    assert refresh == "refresh"
    assert "samples/step_00000100.png" in images.split()


def test_cyclegan_report_shows_translations_not_reconstructions(cyclegan_run):
    page = parse(cyclegan_run)
    assert page.sections == ["summary", "losses", "samples", "translations", "graph", "run"]
    _assert_images_exist(cyclegan_run, page)
    grid = Image.open(cyclegan_run / "report" / "translations.png")
    tile = 32 + 2  # 8x8 digits enlarged to 32 pixels, 2-pixel separators
    assert grid.size == (16 * tile + 2, 3 * tile + 2)  # 16 test inputs; rows x_a, x_ab, x_aba


def test_lvmgraph_report_regenerates_the_page(aae_run, capsys):
    (aae_run / PAGE).unlink()
    assert cli_main(["report", str(aae_run)]) == 0
    assert f"wrote {aae_run / PAGE}" in capsys.readouterr().out
    assert parse(aae_run).sections[:3] == ["summary", "losses", "samples"]
    assert "reconstructions" in parse(aae_run).sections


def test_report_of_a_run_without_a_checkpoint_shows_what_there_is(aae_run, tmp_path):
    early = tmp_path / "early"
    early.mkdir()
    (early / "spec.yaml").write_text((aae_run / "spec.yaml").read_text())
    rows = (aae_run / "metrics.jsonl").read_text().splitlines()[:3]
    (early / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    assert api.report(early) == early / PAGE
    assert parse(early).sections == ["summary", "losses", "graph", "run"]


def test_a_report_that_cannot_be_written_warns_and_training_finishes(tmp_path):
    def block_report_folder(trainer):
        if trainer.step == 1:
            (trainer.run.path / "report").write_text("a file where the report's folder goes")
    with pytest.warns(UserWarning, match="report.html not written"):
        run = api.train(ROOT / "specs" / "aae_uniform.yaml", out=tmp_path / "run", callbacks=[block_report_folder],
                        overrides=QUIET + ["train.steps=4", "train.sample_every=2", "train.checkpoint_every=4"])
    assert (run.path / "checkpoints" / "step_00000004" / "manifest.json").exists()
    assert run.eval_file.exists()


# ----------------------------------------------------------------------------- parts

def test_loss_panels_group_logged_values_by_phase():
    spec = api.load(ROOT / "specs" / "infogan_digits.yaml").spec
    keys = ["step", "d_loss", "g_loss", "info", "generator_q", "mi_lower_bound", "info_u", "nonfinite_skipped"]
    got = [(p.title, p.keys, p.total) for p in panels(spec.phases, keys)]
    assert got == [("phase 0: d_loss", ["d_loss"], None),
                   ("phase 1: generator_q", ["generator_q", "g_loss", "info", "mi_lower_bound", "info_u"],
                    "generator_q"),
                   ("other logged values", ["nonfinite_skipped"], None)]


@pytest.mark.parametrize("lo, hi, expected", [
    (0.0, 1.0, [0.0, 0.25, 0.5, 0.75, 1.0]),
    (0.33, 0.87, [0.2, 0.4, 0.6, 0.8, 1.0]),
    (20.0, 3000.0, [0.0, 1000.0, 2000.0, 3000.0]),
    (-1.3, 2.1, [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]),
    (5.0, 5.0, [2.0, 4.0, 6.0, 8.0]),  # one value: a range around it
])
def test_nice_ticks_are_round_and_cover_the_data(lo, hi, expected):
    assert nice_ticks(lo, hi) == expected


def test_a_chart_draws_each_term_and_puts_the_weighted_total_on_a_right_axis():
    spec = api.load(ROOT / "specs" / "infogan_digits.yaml").spec
    rows = [{"step": s, "d_loss": 1.0 / s, "g_loss": 2.0, "info": 0.5, "generator_q": 40.0 + s} for s in (10, 20, 30)]
    panel = panels(spec.phases, list(rows[0]))[1]
    svg, legend = draw_panel(panel, rows)
    root = ET.fromstring(svg)
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == 3  # g_loss, info, and the total (3 points: no smoothing, no faint copy)
    assert [k for k, _, dashed in legend] == ["g_loss", "info", "generator_q (weighted total, right axis)"]
    assert [dashed for *_, dashed in legend] == [False, False, True]
    assert paths[-1].get("stroke-dasharray")
    right_labels = [t.text for t in root.findall("{http://www.w3.org/2000/svg}text") if t.get("fill") == TOTAL_COLOUR]
    assert right_labels[0] == "50" and right_labels[-1] == "70"  # the total's own scale, 50..70


def test_reconstructions_are_found_through_the_encoder_not_through_a_prior_draw():
    aae = api.validate(ROOT / "specs" / "aae_uniform.yaml", QUIET)
    assert reconstruction_pairs(aae) == [("x", "x_hat")]
    # InfoGAN's x_fake depends on x only through noise.sample(like=x): not a reconstruction
    infogan = api.validate(ROOT / "specs" / "infogan_digits.yaml", QUIET)
    assert reconstruction_pairs(infogan) == []


def test_infogan_traversals_give_one_row_per_category_and_sweep_each_small_code(tmp_path):
    exp = api.validate(ROOT / "specs" / "infogan_digits.yaml", QUIET)
    run = api.Run(None, exp, 0)
    pictures = {p.path.name: p for p in traversals(run, tmp_path)}
    assert sorted(pictures) == ["traversal_c.png", "traversal_u.png"]  # not the 32-D noise z
    tile = 32 + 2
    assert Image.open(tmp_path / "traversal_c.png").size == (10 * tile + 2, 10 * tile + 2)  # 10 categories
    assert Image.open(tmp_path / "traversal_u.png").size == (10 * tile + 2, 8 * tile + 2)   # 2 dims x 4 draws
    # rows of the category picture differ (the code is used), columns share the rest
    grid = np.asarray(Image.open(tmp_path / "traversal_c.png"), dtype=float)
    assert np.abs(grid[2:2 + 32] - grid[2 + tile:2 + tile + 32]).mean() > 0


def test_graph_svg_is_well_formed_and_marks_losses():
    from lvmgraph.graph.svg import STYLE, to_svg
    exp = api.validate(ROOT / "specs" / "aae_uniform.yaml", QUIET)
    root = ET.fromstring(to_svg(exp.graph, exp.spec.phases))
    ns = {"s": "http://www.w3.org/2000/svg"}
    titles = {g.find("s:title", ns).text.split(":")[0]: g.find("s:rect", ns).get("fill")
              for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert set(titles) == {"x", "y", "encoder", "decoder", "critic", "prior", "z", "x_hat", "z_prior",
                           "rec_loss", "d_loss", "g_loss"}
    assert {titles[n] for n in ("rec_loss", "d_loss", "g_loss")} == {STYLE["loss"][0]}
    assert titles["encoder"] == STYLE["component"][0] and titles["x"] == STYLE["data"][0]
    assert titles["z"] == STYLE["value"][0]


def test_lvmgraph_graph_prints_the_same_svg(capsys):
    assert cli_main(["graph", str(ROOT / "specs" / "cyclegan_thin2thick.yaml"), "--format", "svg"]) == 0
    root = ET.fromstring(capsys.readouterr().out)
    names = {t.text.split(":")[0] for t in root.iter("{http://www.w3.org/2000/svg}title")}
    assert {"g_ab", "g_ba", "x_ab", "x_aba", "cycle_a", "d_loss_b"} <= names


# ----------------------------------------------------------------------------- in a browser

chromium = pytest.mark.skipif(find_chromium() is None,
                              reason="headless Chromium is not installed (apt-get install chromium)")


def _assert_rendered(run_dir: Path, tmp_path: Path) -> None:
    shot = np.asarray(Image.open(screenshot(run_dir / PAGE, tmp_path / "shot.png")).convert("RGB"))
    assert shot.shape[:2] == (2400, 1280)
    assert shot.std() > 20, "the screenshot is (nearly) one colour"
    colours = np.unique(shot.reshape(-1, 3), axis=0)
    assert len(colours) > 200, f"only {len(colours)} colours: plots and grids did not render"
    loaded = loaded_images(run_dir / PAGE)
    assert set(loaded) == set(parse(run_dir).images)
    assert all(width > 0 for width in loaded.values()), {s: w for s, w in loaded.items() if not w}


@chromium
def test_aae_report_renders_in_chromium_with_every_image(aae_run, tmp_path):
    _assert_rendered(aae_run, tmp_path)


@chromium
def test_cyclegan_report_renders_in_chromium_with_every_image(cyclegan_run, tmp_path):
    _assert_rendered(cyclegan_run, tmp_path)


@chromium
def test_a_missing_image_is_caught_in_the_browser(cyclegan_run, tmp_path):
    copy = tmp_path / "run"
    import shutil
    shutil.copytree(cyclegan_run, copy, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    (copy / "report" / "translations.png").unlink()
    loaded = loaded_images(copy / PAGE)
    assert loaded["report/translations.png"] == 0
    assert all(w > 0 for s, w in loaded.items() if s != "report/translations.png")
