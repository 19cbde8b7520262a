"""One reference page per registered kind (components, priors, ops, losses, ...), written from
the registry: each item's plugin, docstring, settings model and, for ops and losses, signature."""
from __future__ import annotations

from pathlib import Path

from ..plugins import hookspecs
from ..plugins.describe import settings_of
from ..plugins.registry import HOOK_KINDS, Entry, Registry
from .markdown import anchor, docstring, first_paragraph, first_sentence, signature, table, yaml_value

#: how an item of each kind appears in a spec (kinds registered by newer hooks get none)
USAGE = {
    "component": "`components: {NAME: {type: %s, ...settings}}`, then `NAME(...)` in the graph",
    "prior": "`components: {NAME: {type: %s, ...settings}}`, then `NAME.sample(like=z)` in the graph "
             "or `sample: {set: {z: NAME}}`",
    "op": "`%s(...)` in a graph expression",
    "loss": "`%s(...)` in a graph expression; minimised by a phase",
    "dataset": "`data: {dataset: %s, batch_size: ..., ...settings}`",
    "metric": "`eval: {metrics: [%s]}` or `[{%s: {...settings}}]`",
    "schedule": "`schedules: {NAME: {type: %s, ...settings}}`, then NAME as a loss weight, "
                "an `lr_schedule` or a graph value",
    "optimizer": "`phases: [{..., optimizer: {type: %s, ...settings}}]`",
    "spec": "`extends: family:%s` or `imports: {PREFIX: family:%s}`",
}
TITLES = {"spec": "Spec templates"}
HOOK_OF = {kind: hook for hook, kind in HOOK_KINDS.items()}


def page_name(kind: str) -> str:
    return {"loss": "losses.md", "spec": "templates.md"}.get(kind, f"{kind}s.md")


def title(kind: str) -> str:
    return TITLES.get(kind, {"loss": "Losses"}.get(kind, f"{kind.capitalize()}s"))


def _hook_summary(kind: str) -> str:
    spec = getattr(hookspecs, HOOK_OF.get(kind, ""), None)
    return first_paragraph(spec.__doc__) if spec is not None else ""


def kind_page(kind: str, entries: list[Entry]) -> str:
    hook = HOOK_OF.get(kind)
    parts = [f"# {title(kind)}", ""]
    if hook is not None:
        parts += [_hook_summary(kind), "",
                  f"Registered through the `{hook}` hook ([hooks.md](hooks.md#{anchor(hook)})); "
                  f"`lvmgraph plugins --detail NAME` prints the same from the command line.", ""]
    parts += [table(["name", "plugin", "summary"],
                    [[f"[`{e.name}`](#{anchor(e.name)})", e.plugin, first_sentence(e.doc)] for e in entries]), ""]
    for e in entries:
        parts += [_item(e), ""]
    return "\n".join(parts).rstrip() + "\n"


def _item(e: Entry) -> str:
    out = [f"## `{e.name}`", "", f"Plugin `{e.plugin}`{_source(e)}."]
    if e.kind in USAGE:
        usage = USAGE[e.kind]
        out[-1] += " In a spec: " + usage.replace("%s", e.name) + "."
    if e.kind in ("op", "loss"):
        out += ["", "```python", signature(e.name, e.factory), "```"]
    if e.options.get("fields"):
        out += ["", "Batch fields: " + ", ".join(f"`{f}`" for f in e.options["fields"]) + "."]
    if e.options.get("stream"):
        out += ["", "Streams: `data.stream: true` decodes its training examples on demand (`data.workers`)."]
    if e.doc.strip():
        out += ["", docstring(e.doc)]
    if e.params is not None:
        out += ["", _settings(e)]
    if e.kind == "spec" and isinstance(e.factory, (str, Path)):
        out += ["", "```yaml", _yaml_body(Path(e.factory)), "```"]
    return "\n".join(out)


def _settings(e: Entry) -> str:
    settings = settings_of(e.params)
    if not settings:
        return "No settings."
    rows = [[f"`{name}`", f"`{s['type']}`", _default(s), s["description"]] for name, s in settings.items()]
    return table(["setting", "type", "default", "description"], rows)


def _default(setting: dict) -> str:
    if setting.get("from_data"):
        return f"from the data (`{setting['from_data']}`)"
    return "required" if setting["required"] else f"`{yaml_value(setting['default'])}`"


def _source(e: Entry) -> str:
    """Where the item is defined, as a dotted name or a path inside its package (never absolute)."""
    f = e.factory
    if isinstance(f, (str, Path)):
        return f", file `{_package_relative(Path(f))}`"
    module, qualname = getattr(f, "__module__", None), getattr(f, "__qualname__", None)
    if module and qualname and "<" not in qualname:
        return f", `{module}.{qualname}`"
    return f", module `{module}`" if module else ""


def _package_relative(path: Path) -> str:
    """``lvmgraph_vae/templates/vae.yaml``: the path below the outermost package holding it."""
    top = None
    for parent in path.resolve().parents:
        if (parent / "__init__.py").exists():
            top = parent
        elif top is not None:
            break
    return path.resolve().relative_to(top.parent).as_posix() if top is not None else path.name


def _yaml_body(path: Path) -> str:
    """A template's YAML without its leading comment block (already shown as the description)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines).rstrip()


def kind_pages(registry: Registry, keep=lambda entry: True) -> dict[str, str]:
    """{file name: Markdown} for every kind with at least one kept entry, plus the index."""
    kinds = list(dict.fromkeys([*HOOK_KINDS.values(), *(e.kind for e in registry.entries())]))
    pages, counts = {}, {}
    for kind in kinds:
        entries = [e for e in registry.entries(kind) if keep(e)]
        if entries:
            pages[page_name(kind)] = kind_page(kind, entries)
            counts[kind] = len(entries)
    pages["README.md"] = _index(counts)
    return pages


def _index(counts: dict[str, int]) -> str:
    rows = [[f"[{title(kind)}]({page_name(kind)})", n, _hook_summary(kind)] for kind, n in counts.items()]
    return "\n".join([
        "# Reference", "",
        "Generated from the code by `lvmgraph docs --out docs/reference`; edit the docstrings, parameter "
        "models and `lvmgraph/reference/spec_guide.md`, never these files. A test "
        "(`tests/test_docs_reference.py`) fails when they are out of date.", "",
        "- [The spec language](spec.md): every section and key of a spec file, with the graph syntax, "
        "phases, composition and `--set`.",
        "- [Plugin hooks](hooks.md): what a plugin implements, each hook with an example.", "",
        table(["page", "items", "what"], rows), "",
    ])
