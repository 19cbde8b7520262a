"""docs/reference is generated from the code (`lvmgraph docs`) and must match it: a stale page fails here.

Regenerate after changing a component, op, loss, prior, dataset, metric, schedule, optimizer,
template, hook or the spec schema:  lvmgraph docs --out docs/reference
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from lvmgraph.cli import main
from lvmgraph.plugins import build_registry, hookspecs, make_plugin_manager
from lvmgraph.reference import builtin_plugins, generate, stale, write
from lvmgraph.reference.hooks_page import hook_functions
from lvmgraph.reference.registry_pages import page_name
from lvmgraph.reference.spec_page import sections

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"


@pytest.fixture(autouse=True)
def _all_builtin_plugins(monkeypatch):
    # the pages document every built-in plugin, whatever a developer's shell disables
    monkeypatch.delenv("LVMGRAPH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("LVMGRAPH_DISABLE_PLUGINS", raising=False)


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return generate()


def test_docs_reference_is_current(pages):
    problems = stale(pages, REFERENCE)
    assert not problems, ("docs/reference is out of date; regenerate with `lvmgraph docs --out docs/reference`:\n"
                          + "\n".join(f"  {path}: {why}" for path, why in problems))


def test_generation_is_deterministic(pages):
    assert generate() == pages
    text = "".join(pages.values())
    assert " at 0x" not in text  # no object addresses
    assert str(ROOT) not in text and "/home/" not in text  # no machine paths


def test_every_builtin_entry_is_documented_with_its_settings(pages):
    pm = make_plugin_manager()
    registry = build_registry(pm)
    builtin = builtin_plugins(pm)
    assert {"core", "vae", "aae", "gan", "datasets", "eval"} <= builtin
    entries = [e for e in registry.entries() if e.plugin in builtin]
    assert len(entries) > 100
    for e in entries:
        page = pages[page_name(e.kind)]
        section = page.split(f"\n## `{e.name}`\n", 1)
        assert len(section) == 2, f"{e.kind} {e.name} has no section in {page_name(e.kind)}"
        body = section[1].split("\n## ", 1)[0]
        assert f"Plugin `{e.plugin}`" in body
        for name in (e.params.model_fields if e.params is not None else ()):
            assert f"| `{name}` |" in body, f"{e.kind} {e.name}: setting {name} missing"
        if e.kind in ("op", "loss"):
            assert f"```python\n{e.name}(" in body  # the signature


def test_only_builtin_plugins_unless_all_plugins_is_asked_for():
    from pydantic import Field

    from lvmgraph import Params, hookimpl

    class WidthParams(Params):
        width: int = Field(3, gt=0, description="how wide")

    class Local:
        @staticmethod
        @hookimpl
        def register_ops(register):
            def widen(x, factor: float = 2.0):
                """x (b d) -> (b d) scaled by factor."""
                return x * factor
            register("widen", widen)

        @staticmethod
        @hookimpl
        def register_schedules(register):
            register("wide", lambda width=3: (lambda step: float(width)), params=WidthParams, doc="A local schedule.")

    pm = make_plugin_manager(extra_plugins=[Local()])
    assert "widen" not in generate(pm=pm)["ops.md"]
    pages = generate(pm=pm, all_plugins=True)
    widen = pages["ops.md"].split("\n## `widen`\n", 1)[1].split("\n## ", 1)[0]
    assert "widen(x, factor: float = 2.0)" in widen and "scaled by factor" in widen
    assert "| `width` | `int` | `3` | how wide |" in pages["schedules.md"]
    assert "A local schedule." in pages["schedules.md"]


def test_settings_show_type_default_and_description(pages):
    mlp = pages["components.md"].split("\n## `mlp`\n", 1)[1].split("\n## ", 1)[0]
    assert "| `in_shape` | `list[int]` | required |" in mlp
    assert re.search(r"\| `hidden` \| `list\[int\]` \| `\[256, 256\]` \| \S", mlp)
    assert "`'none' \\| 'sigmoid' \\| 'tanh'`" in mlp  # Literal choices, pipes escaped in the table
    concat = pages["ops.md"].split("\n## `concat`\n", 1)[1]
    assert "concat(*xs: torch.Tensor, dim: int = 1) -> torch.Tensor" in concat


def test_every_hook_is_documented_with_an_example(pages):
    hooks = hook_functions()
    assert len(hooks) >= 9
    for f in hooks:
        body = pages["hooks.md"].split(f"\n## `{f.__name__}`\n", 1)[1].split("\n## ", 1)[0]
        assert f"def {f.__name__}(register):" in body, f"{f.__name__}: no example"
        assert "```python\n@hookimpl" in body  # the rst literal block became a fenced block
    assert hookspecs.__doc__.split("\n")[0] in pages["hooks.md"]


def test_spec_page_lists_every_schema_key(pages):
    spec = pages["spec.md"]
    for path, model in sections():
        heading = f"### `{path}`" if path else "### Top level"
        assert heading in spec
        block = spec.split(heading + "\n", 1)[1].split("\n### ", 1)[0]
        for name, field in model.model_fields.items():
            assert f"| `{name}` |" in block, f"{path or 'top level'}.{name} missing"
            assert field.description, f"{model.__name__}.{name} has no description in lvmgraph/spec/schema.py"
    # the hand-written guide is there too, around the generated tables
    for part in ("## Graph expressions", "## Phases", "## Composition: `extends` and `imports`",
                 "## Overrides: `--set`", "## Every key"):
        assert part in spec
    assert "{{keys}}" not in spec


def test_nested_sections_link_to_their_keys(pages):
    assert "(keys: [`phases[i]`](#phasesi))" in pages["spec.md"]
    assert "| `train` | `mapping` | see below |" in pages["spec.md"]


def test_check_names_each_stale_page_and_the_command(tmp_path, capsys):
    out = tmp_path / "reference"
    assert main(["docs", "--out", str(out)]) == 0
    assert main(["docs", "--check", "--out", str(out)]) == 0
    capsys.readouterr()

    page = out / "losses.md"
    page.write_text(page.read_text().replace("binary cross-entropy", "binary crossentropy", 1))
    (out / "priors.md").unlink()
    (out / "widgets.md").write_text((out / "ops.md").read_text())  # a generated page no kind produces now
    (out / "notes.md").write_text("# my notes\n")  # not generated: left alone
    assert main(["docs", "--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{page}: differs from the code (first at line " in err
    assert f"{out / 'priors.md'}: missing" in err
    assert f"{out / 'widgets.md'}: is no longer generated" in err
    assert "notes.md" not in err
    assert f"regenerate with: lvmgraph docs --out {out}" in err

    assert main(["docs", "--out", str(out)]) == 0  # one command brings them back
    assert stale(generate(), out) == []
    assert not (out / "widgets.md").exists() and (out / "notes.md").exists()


def test_write_leaves_unchanged_pages_untouched(tmp_path, pages):
    write(pages, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.md")}
    write(pages, tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.md")} == before


LINK = re.compile(r"\]\(([^)\s]+)\)")


def heading_anchors(text: str) -> set[str]:
    from lvmgraph.reference.markdown import anchor
    return {anchor(line.lstrip("#").strip().replace("`", "")) for line in text.splitlines() if line.startswith("#")}


def test_links_in_the_docs_resolve(pages):
    """Every relative link of the reference pages, docs/README.md, docs/API.md and the tutorials names
    an existing file and, with #anchor, one of its headings. (A tutorial another branch adds may be
    missing until the merge; links into docs/tutorials/ are checked once the file is there.)"""
    docs = ROOT / "docs"
    sources = {REFERENCE / name: text for name, text in pages.items()}
    for path in [docs / "README.md", docs / "API.md", *sorted((docs / "tutorials").glob("*.md"))]:
        if path.exists():
            sources[path] = path.read_text(encoding="utf-8")
    assert len(sources) > 12
    for path, text in sources.items():
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s):, mailto:
            file, _, fragment = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            if not resolved.exists():
                assert resolved.parent == (docs / "tutorials").resolve(), f"{path.name}: broken link {target}"
                continue
            if fragment and resolved.suffix == ".md":
                page = sources.get(resolved) or resolved.read_text(encoding="utf-8")
                assert fragment in heading_anchors(page), f"{path.name}: no heading for {target}"
