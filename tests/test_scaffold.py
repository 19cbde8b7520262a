"""``lvmgraph new``: the plugin package it writes installs and passes its own tests; the starter
spec it writes for each family template validates as written; bad names are refused, with the fix.

The generated package is pip-installed (no dependencies, no index) into a temporary folder put on
``PYTHONPATH`` of a pytest subprocess, so its entry point is found through ``importlib.metadata``
exactly as after ``pip install`` (as in tests/test_third_party_plugin.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lvmgraph.cli import main
from lvmgraph.plugins import get_registry

FAMILIES = get_registry().names("spec")


def _env(site: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LVMGRAPH_DISABLE_PLUGIN_AUTOLOAD", "LVMGRAPH_DISABLE_PLUGINS")}
    # the installed package first, then whatever makes this lvmgraph importable here
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def new(capsys, *argv) -> tuple[int, str, str]:
    code = main(["new", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- new plugin

def test_new_plugin_installs_and_passes_its_own_tests(tmp_path, capsys):
    code, out, err = new(capsys, "plugin", "lvmgraph_blocks", "--dir", tmp_path)
    assert code == 0, err
    root = tmp_path / "lvmgraph_blocks"
    assert out.splitlines()[0] == f"wrote the plugin package {root}:"
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert files == {"pyproject.toml", "README.md", ".gitignore", "lvmgraph_blocks/__init__.py",
                     "lvmgraph_blocks/components.py", "lvmgraph_blocks/specs/blocks_aae.yaml",
                     "tests/test_lvmgraph_blocks.py"}
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["lvmgraph"] == {"blocks": "lvmgraph_blocks"}
    assert project["project"]["name"] == "lvmgraph-blocks"

    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                           "--no-index", "--quiet", "--target", str(site), str(root)],
                          capture_output=True, text=True, timeout=300, env=_env(site))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "lvmgraph_blocks" / "specs" / "blocks_aae.yaml").exists(), "package data not installed"

    # the package's own tests, run as its author would, from its folder
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                          capture_output=True, text=True, timeout=600, env=_env(site))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "6 passed" in done.stdout.splitlines()[-1], done.stdout[-2000:]


@pytest.mark.parametrize("name, message", [
    ("3blocks", "plugin name '3blocks' is not a Python package name: use letters, digits and _"),
    ("my-blocks", "plugin name 'my-blocks' is not a Python package name: use letters, digits and _, "
                  "not starting with a digit; e.g. 'my_blocks'"),
    ("class", "plugin name 'class' is not a Python package name"),
    ("MyBlocks", "plugin name 'MyBlocks': package names are lowercase (PEP 8); use 'myblocks'"),
    ("torch", "plugin name 'torch': a module of that name is already importable"),
    ("vae", "plugin name 'vae': an installed plugin is already called 'vae'; choose another name"),
])
def test_new_plugin_refuses_a_bad_name_and_writes_nothing(tmp_path, capsys, name, message):
    code, out, err = new(capsys, "plugin", name, "--dir", tmp_path)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {message}"), err
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_never_overwrites_a_folder(tmp_path, capsys):
    (tmp_path / "lvmgraph_blocks").mkdir()
    (tmp_path / "lvmgraph_blocks" / "mine.txt").write_text("keep")
    code, _, err = new(capsys, "plugin", "lvmgraph_blocks", "--dir", tmp_path)
    assert code == 2
    assert err.strip() == (f"error: {tmp_path / 'lvmgraph_blocks'} already exists; choose another name or --dir "
                           "(nothing is overwritten)")
    assert [p.name for p in (tmp_path / "lvmgraph_blocks").iterdir()] == ["mine.txt"]


# ----------------------------------------------------------------------------- new spec

@pytest.mark.parametrize("family", FAMILIES)
def test_new_spec_of_every_family_validates_as_written(family, tmp_path, capsys):
    path = tmp_path / f"my_{family}.yaml"
    code, out, err = new(capsys, "spec", "--family", family, path)
    assert code == 0, err
    assert out.splitlines()[0] == f"wrote {path}"
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == f"# my_{family}: a {family} spec that extends the registered template family:{family}"
    assert f"# Run:   lvmgraph run {path}" in lines
    assert lines[lines.index(f"name: my_{family}") + 1] == f"extends: family:{family}"
    # the template is quoted, line for line, after the marker
    template = Path(get_registry().get("spec", family).factory).read_text().splitlines()
    quoted = lines[lines.index(next(line for line in lines if line.startswith("# ---- the template"))) + 1:]
    assert [q[4:] if q != "#" else "" for q in quoted] == template
    # structure, settings and the graph against the dataset's fields (the dry run would load data)
    assert main(["validate", "--no-dry-run", str(path)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == f"{path}: ok (structure only)"


def test_a_new_vae_spec_passes_the_full_validation_and_dry_run(tmp_path, capsys):
    path = tmp_path / "my_vae.yaml"
    assert new(capsys, "spec", "--family", "vae", path)[0] == 0
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == f"{path}: ok"


def test_new_spec_names_the_families_with_did_you_mean(tmp_path, capsys):
    code, out, err = new(capsys, "spec", "--family", "cyclegn", tmp_path / "x.yaml")
    assert (code, out) == (2, "")
    assert err.strip() == (f"error: unknown family 'cyclegn'; did you mean 'cyclegan'? families with a template: "
                           f"{', '.join(FAMILIES)} (see `lvmgraph plugins --kind spec`)")
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("file, message", [
    ("exists.yaml", "exists.yaml already exists; choose another file (nothing is overwritten)"),
    ("my spec.yaml", "my spec.yaml: the file name becomes the spec's name, which may hold only letters"),
    ("spec.txt", "spec.txt: a spec file ends in .yaml; e.g."),
])
def test_new_spec_refuses_a_bad_or_existing_file(tmp_path, capsys, file, message):
    (tmp_path / "exists.yaml").write_text("keep")
    code, _, err = new(capsys, "spec", "--family", "vae", tmp_path / file)
    assert code == 2
    assert err.startswith(f"error: {tmp_path / message}"), err
    assert (tmp_path / "exists.yaml").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.yaml"]
