"""The report page: one static HTML file in the run directory, every picture a relative path.

No server and nothing from the internet: the CSS is inline, the model graph is inline SVG, and
the only script (inline) marks an image that failed to load, so a missing file shows as such.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from .collect import RunContents

if TYPE_CHECKING:  # figures imports the plotting stack, which the page does not need
    from .figures import Picture

TIMELINE = 8  # sample grids shown from the run's history (evenly spaced, the latest included)

CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --card:#ffffff; --bg:#f3f4f6; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif; }
header { background:#111827; color:#f9fafb; padding:18px 28px 14px; }
header h1 { margin:0 0 6px; font-size:22px; font-weight:650; letter-spacing:.2px; }
header .facts { display:flex; flex-wrap:wrap; gap:6px 18px; color:#d1d5db; font-size:13px; }
header .facts b { color:#fff; font-weight:600; }
.badge { display:inline-block; padding:1px 9px; border-radius:10px; font-size:12px; font-weight:600;
         vertical-align:3px; margin-left:10px; }
.badge.finished { background:#065f46; color:#d1fae5; } .badge.training { background:#92400e; color:#fef3c7; }
.badge.stopped { background:#374151; color:#e5e7eb; }
nav { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line);
      padding:8px 28px; display:flex; flex-wrap:wrap; gap:4px 16px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; } nav a:hover { text-decoration:underline; }
main { padding:18px 28px 40px; max-width:1600px; display:grid; gap:18px;
       grid-template-columns:repeat(auto-fit,minmax(520px,1fr)); grid-auto-flow:row dense; align-items:start; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 18px 16px;
          min-width:0; }
section.full { grid-column:1 / -1; }
h2 { margin:0 0 10px; font-size:17px; font-weight:650; }
h3 { margin:10px 0 6px; font-size:14px; font-weight:600; }
.note { color:var(--muted); font-size:12.5px; margin:2px 0 8px; }
.grid { display:grid; gap:14px; align-items:start;
        grid-template-columns:repeat(auto-fit,minmax(var(--min,300px),1fr)); }
figure { margin:0; }
.chart { border:1px solid var(--line); border-radius:8px; padding:8px 10px 6px; }
.chart h3 { margin:0 0 2px; } .chart h3 small { color:var(--muted); font-weight:400; margin-left:6px; }
.chart svg { display:block; }
.legend { display:flex; flex-wrap:wrap; gap:2px 14px; }
.key { white-space:nowrap; } .key i { display:inline-block; width:18px; border-top:2.5px solid; margin-right:5px;
       vertical-align:middle; } .key i.dash { border-top-style:dashed; }
.strip { display:grid; grid-auto-flow:column; grid-auto-columns:minmax(0,1fr); gap:8px; }
figure img { max-width:100%; height:auto; display:block; border:1px solid var(--line); border-radius:4px;
             background:#fff; }
img.pixels { image-rendering:pixelated; width:100%; max-height:460px; object-fit:contain;
             object-position:left top; border:none; border-radius:0; }
figcaption { color:var(--muted); font-size:12.5px; margin-top:4px; }
figcaption b { color:var(--ink); font-weight:600; }
table { border-collapse:collapse; font-size:13px; }
th, td { text-align:left; padding:4px 12px 4px 0; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; }
td.num { font-variant-numeric:tabular-nums; text-align:right; }
.last { flex:1 1 360px; }
.kv { display:grid; grid-template-columns:repeat(auto-fill,minmax(170px,1fr)); gap:6px; }
.kv div { border:1px solid var(--line); border-radius:6px; padding:4px 8px; display:flex; justify-content:space-between;
          gap:8px; font-size:13px; } .kv span { color:var(--muted); overflow:hidden; text-overflow:ellipsis; }
.kv b { font-weight:600; font-variant-numeric:tabular-nums; }
.cols { display:flex; flex-wrap:wrap; gap:18px 40px; align-items:flex-start; }
.diagram { overflow-x:auto; } .diagram svg { max-width:100%; height:auto; }
pre { background:#f9fafb; border:1px solid var(--line); border-radius:6px; padding:10px; overflow:auto;
      font-size:12px; max-height:480px; }
img.broken { min-height:40px; min-width:200px; outline:2px dashed #dc2626; }
.latest img { width:100%; max-width:460px; }
section.full .latest img { max-width:100%; }
.latest img.pixels { max-height:none; }
"""

# marks each image with its decoded width (0 = failed), and failed ones with class "broken"
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img');
  imgs.forEach(function (img) {
    img.setAttribute('data-natural-width', img.naturalWidth);
    if (!img.complete || img.naturalWidth === 0) { img.classList.add('broken'); }
  });
  document.body.setAttribute('data-images-checked', imgs.length);
});
"""


@dataclass
class PageParts:
    """What the page draws beyond the run directory's own files."""

    curves: list = field(default_factory=list)       # [(CurvePanel, svg, legend)]
    pictures: list[Picture] = field(default_factory=list)
    diagram_svg: str = ""
    phases: list = field(default_factory=list)       # PhaseSpec
    total_steps: int | None = None
    in_progress: bool = False


def _src(path: Path, root: Path) -> str:
    return escape(Path(os.path.relpath(path, root)).as_posix(), quote=True)


def _img(path: Path, root: Path, alt: str, pixels: bool = True) -> str:
    cls = ' class="pixels"' if pixels else ""
    return f'<img src="{_src(path, root)}" alt="{escape(alt, quote=True)}" loading="eager"{cls}>'


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s"


def status(contents: RunContents, parts: PageParts) -> str:
    if parts.in_progress:
        return "training"
    done = parts.total_steps is not None and (contents.last_step or 0) >= parts.total_steps
    return "finished" if done else "stopped"


def _header(contents: RunContents, parts: PageParts, name: str) -> str:
    state = status(contents, parts)
    info = contents.info
    step = contents.last_step
    facts = [f"step <b>{step if step is not None else 0}</b>"
             + (f" of {parts.total_steps}" if parts.total_steps is not None else ""),
             f"device <b>{escape(str(info.get('device', '?')))}</b>",
             f"time <b>{_duration(contents.elapsed())}</b>"]
    if info.get("spec"):
        facts.append(f"spec <b>{escape(str(info['spec']))}</b>")
    if info.get("overrides"):
        facts.append("--set " + escape(" ".join(map(str, info["overrides"]))))
    facts.append(f"report written {time.strftime('%Y-%m-%d %H:%M:%S')}")
    return (f'<header><h1>{escape(name)}<span class="badge {state}">{state}</span></h1>'
            f'<div class="facts">{"".join(f"<span>{f}</span>" for f in facts)}</div></header>')


def _section(anchor: str, title: str, body: str, note: str = "", *, full: bool = False) -> tuple[str, str, str]:
    """(anchor, title, html) of one section; ``full`` spans the page's width, others share a row."""
    note_html = f'<p class="note">{note}</p>' if note else ""
    cls = ' class="full"' if full else ""
    return anchor, title, f'<section id="{anchor}"{cls}><h2>{escape(title)}</h2>{note_html}{body}</section>'


def _summary(contents: RunContents) -> tuple[str, str, str] | None:
    blocks = []
    if contents.evaluation and contents.evaluation.get("results"):
        rows = []
        for metric, out in contents.evaluation["results"].items():
            protocol = out.get("protocol") if isinstance(out, dict) else None
            tip = f' title="{escape(json.dumps(protocol, default=str), quote=True)}"' if protocol else ""
            for key, value in (out.items() if isinstance(out, dict) else []):
                if key in ("protocol", "seconds", "metric") or isinstance(value, (dict, list)):
                    continue
                rows.append(f"<tr{tip}><td>{escape(metric)}</td><td>{escape(key)}</td>"
                            f'<td class="num">{_fmt(value)}</td></tr>')
        step = contents.evaluation.get("step")
        blocks.append(f'<div><h3>Evaluation{f" at step {step}" if step is not None else ""}</h3>'
                      f"<table><tr><th>metric</th><th>result</th><th>value</th></tr>{''.join(rows)}</table>"
                      '<p class="note">from eval.json; hover a row for its protocol</p></div>')
    if contents.metrics:
        last = contents.metrics[-1]
        cells = "".join(f'<div><span>{escape(k)}</span><b>{_fmt(v)}</b></div>' for k, v in last.items() if k != "step")
        blocks.append(f'<div class="last"><h3>Last logged values (step {last.get("step")})</h3>'
                      f'<div class="kv">{cells}</div><p class="note">means over the last logging interval</p></div>')
    if not blocks:
        return None
    return _section("summary", "Summary", f'<div class="cols">{"".join(blocks)}</div>', full=True)


def _curves(parts: PageParts):
    if not parts.curves:
        return None
    figs = []
    for panel, svg, legend in parts.curves:
        keys = "".join(f'<span class="key"><i style="border-color:{colour}"{" class=dash" if dashed else ""}></i>'
                       f"{escape(key)}</span>" for key, colour, dashed in legend)
        figs.append(f'<figure class="chart"><h3>{escape(panel.title)} <small>{escape(panel.subtitle)}</small></h3>'
                    f'{svg}<figcaption class="legend">{keys}</figcaption></figure>')
    return _section("losses", "Loss curves per phase", f'<div class="grid" style="--min:360px">{"".join(figs)}</div>',
                    "from metrics.jsonl: faint lines are the logged means, bold lines a moving average", full=True)


def _timeline(samples: list[tuple[int, Path]]) -> list[tuple[int, Path]]:
    if len(samples) <= TIMELINE:
        return samples
    picks = {round(i * (len(samples) - 1) / (TIMELINE - 1)) for i in range(TIMELINE)}
    return [samples[i] for i in sorted(picks)]


def _samples(contents: RunContents, root: Path, wide: bool):
    if not contents.samples:
        return None
    step, latest = contents.samples[-1]
    body = (f'<figure class="latest">{_img(latest, root, f"samples at step {step}")}'
            f"<figcaption><b>latest: step {step}</b> ({escape(latest.name)})</figcaption></figure>")
    earlier = _timeline(contents.samples)[:-1]
    if earlier:
        figs = "".join(f"<figure>{_img(path, root, f'samples at step {s}')}<figcaption>step {s}</figcaption></figure>"
                       for s, path in earlier)
        layout = 'class="grid" style="--min:400px"' if wide else 'class="strip"'  # small grids: one row
        body += f"<h3>Over time</h3><div {layout}>{figs}</div>"
    return _section("samples", "Samples during training", body,
                    "the same prior draws (or test inputs) at every step, so the grids show progress", full=wide)


def _pictures(parts: PageParts, root: Path, kind: str, anchor: str, title: str, note: str, width: int,
              full: bool = False):
    chosen = [p for p in parts.pictures if p.kind == kind]
    if not chosen:
        return None
    figs = "".join(f"<figure>{_img(p.path, root, p.title)}<figcaption><b>{escape(p.title)}</b> — "
                   f"{escape(p.caption)}</figcaption></figure>" for p in chosen)
    return _section(anchor, title, f'<div class="grid" style="--min:{width}px">{figs}</div>', note, full=full)


def _latent(contents: RunContents, root: Path):
    if contents.latent_plot is None:
        return None
    return _section("latent", "Latent space",
                    f'<figure class="latest">{_img(contents.latent_plot, root, "latent plot", pixels=False)}</figure>',
                    "encoded test data coloured by label over prior samples (a PCA projection above 2-D)")


def _graph(parts: PageParts):
    if not parts.diagram_svg:
        return None
    rows = []
    for i, phase in enumerate(parts.phases):
        terms = ", ".join(f"{t}" if w == 1 or w == 1.0 else f"{w} × {t}" for t, w in phase.terms.items())
        extra = [f"every {phase.every}"] if phase.every > 1 else []
        extra += [f"repeat {phase.repeat}"] if phase.repeat > 1 else []
        extra += [f"lr × {phase.lr_schedule}"] if phase.lr_schedule else []
        rows.append(f"<tr><td>{i}</td><td>{escape(phase.label)}</td><td>{escape(terms)}</td>"
                    f"<td>{escape(', '.join(phase.update))}</td><td>{escape(phase.optimizer.type)}</td>"
                    f"<td>{escape(', '.join(extra))}</td></tr>")
    table = ("<h3>Phases (run in this order at every step)</h3><table><tr><th>#</th><th>phase</th><th>minimises</th>"
             f"<th>updates</th><th>optimizer</th><th></th></tr>{''.join(rows)}</table>") if rows else ""
    return _section("graph", "Model graph", f'<div class="diagram">{parts.diagram_svg}</div>{table}',
                    "dashed edges: a component is called; solid: a value is used. Hover a node for its expression.",
                    full=True)


def _run_info(contents: RunContents):
    info = dict(contents.info)
    if "started" in info:
        info["started"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
    if contents.checkpoints:
        info["checkpoints"] = ", ".join(f"step {s}" for s in contents.checkpoints)
    info["run directory"] = str(contents.run.path)
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(json.dumps(v) if isinstance(v, list) else str(v))}"
                   "</td></tr>" for k, v in info.items())
    spec = (f"<details><summary>spec.yaml (resolved, every default filled in)</summary>"
            f"<pre>{escape(contents.spec_text)}</pre></details>") if contents.spec_text else ""
    return _section("run", "Run", f"<table>{rows}</table>{spec}", full=True)


def render(contents: RunContents, parts: PageParts, name: str) -> str:
    root = contents.run.path
    wide = bool(contents.samples) and _is_wide(contents.samples[-1][1])
    sections = [s for s in (
        _summary(contents),
        _curves(parts),
        _samples(contents, root, wide),
        _latent(contents, root),  # beside the samples: both are tall
        _pictures(parts, root, "translations", "translations", "Translations",
                  "generated from the trained weights for this report", 460, full=True),
        _pictures(parts, root, "reconstructions", "reconstructions", "Reconstructions",
                  "test data and what the model makes of it", 360),
        _pictures(parts, root, "interpolations", "interpolations", "Interpolations", "", 360),
        _pictures(parts, root, "traversals", "traversals", "Code traversals",
                  "what each code controls, the rest held fixed", 360),
        _graph(parts),
        _run_info(contents),
    ) if s is not None]
    nav = "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t, _ in sections)
    refresh = '<meta http-equiv="refresh" content="60">' if parts.in_progress else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}"
            f"<title>{escape(name)} — lvmgraph report</title><style>{CSS}</style>"
            f"<script>{SCRIPT}</script></head><body>"
            + _header(contents, parts, name) + f"<nav>{nav}</nav><main>"
            + "".join(html for _, _, html in sections) + "</main></body></html>\n")


def _is_wide(path: Path) -> bool:
    from PIL import Image
    try:
        with Image.open(path) as im:
            return im.width > 1.6 * im.height
    except OSError:
        return False


def write_page(path: Path, html: str) -> Path:
    """Atomically: a browser reloading mid-write never sees half a page."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
