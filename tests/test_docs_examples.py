"""Every Python block of docs/API.md and docs/tutorials/first_hybrid.md runs, in order, as a reader
would run them from the repository's root; the output each prints matches the ```text block shown
under it (words, names, shapes and counts exactly; decimals loosely, since they are one run's numbers).
"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "docs" / "API.md", ROOT / "docs" / "tutorials" / "first_hybrid.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
DECIMAL = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """[(line, code, expected output or None)]: each ```python block and the ```text block right after it."""
    fences = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(fences):
        if m.group(1) != "python":
            continue
        nxt = fences[i + 1] if i + 1 < len(fences) else None
        follows = nxt is not None and nxt.group(1) == "text" and not text[m.end():nxt.start()].strip()
        out.append((text.count("\n", 0, m.start()) + 1, m.group(2), nxt.group(2) if follows else None))
    return out


def same_output(expected: str, got: str) -> bool:
    """Equal after every decimal number is masked, with the same count of decimals on each line."""
    def mask(s: str) -> list[str]:
        return [DECIMAL.sub("#", line.rstrip()) for line in s.strip().splitlines()]
    return mask(expected) == mask(got)


def test_same_output_masks_decimals_only():
    assert same_output("loss 0.43 at step 100\n", "loss 0.4512 at step 100")
    assert not same_output("loss 0.43 at step 100", "loss 0.43 at step 200")
    assert not same_output("(16, 1, 8, 8)", "(16, 1, 28, 28)")
    assert not same_output("a\nb", "a")


def test_python_blocks_pairs_code_with_the_output_under_it():
    text = "intro\n```python\nprint(1)\n```\n\n```text\n1\n```\nthen\n```python\nx = 2\n```\nmore\n```text\nno\n```\n"
    assert python_blocks(text) == [(2, "print(1)\n", "1\n"), (10, "x = 2\n", None)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_examples_run_and_print_what_the_doc_shows(doc, tmp_path, monkeypatch):
    blocks = python_blocks(doc.read_text(encoding="utf-8"))
    assert blocks, f"{doc} has no python examples"
    # the reader's working directory: the repository's specs/, and runs/ written somewhere disposable
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for line, code, expected in blocks:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{doc.name}:{line}", "exec"), namespace)
        if expected is not None:
            assert same_output(expected, printed.getvalue()), (
                f"{doc.name} line {line}: the block printed\n{printed.getvalue()}\nbut the doc shows\n{expected}")


def test_first_hybrid_quotes_the_shipped_spec_and_its_graph():
    """The tutorial's YAML fragments are lines of the spec it builds, and its diagram is what
    `lvmgraph graph` draws for it, so neither drifts from specs/hybrid_vae_mixture_critic.yaml."""
    import lvmgraph.api as lg
    from lvmgraph.graph.render import to_mermaid

    spec = ROOT / "specs" / "hybrid_vae_mixture_critic.yaml"
    text = (ROOT / "docs" / "tutorials" / "first_hybrid.md").read_text(encoding="utf-8")
    def lines(block: str) -> list[str]:  # whitespace collapsed, comments dropped
        return [" ".join(line.split(" #")[0].split()) for line in block.splitlines() if line.strip()]

    shipped = set(lines(spec.read_text(encoding="utf-8")))
    fences = {kind: [m.group(2) for m in FENCE.finditer(text) if m.group(1) == kind] for kind in ("yaml", "mermaid")}
    assert len(fences["yaml"]) >= 4
    for block in fences["yaml"]:
        for line in lines(block):
            assert line in shipped, f"the tutorial shows {line!r}, which {spec.name} does not say"
    loaded, graph = lg.compile_spec(spec)
    assert fences["mermaid"] == [to_mermaid(graph, loaded.spec.phases)]
