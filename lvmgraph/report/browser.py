"""Render a report page in headless Chromium: a screenshot, and which images the browser loaded.

Used by the tests and ``benchmarks/report_screenshots.py``; needs Debian's ``chromium`` package
(or ``$LVMGRAPH_CHROMIUM``). Every run gets a fresh profile and no network features, so nothing
is fetched and no state is shared between runs.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000"]


def find_chromium() -> str | None:
    env = os.environ.get("LVMGRAPH_CHROMIUM")
    if env:
        return env
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _run(page: Path, extra: list[str], timeout: float) -> subprocess.CompletedProcess:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium found (apt-get install chromium, or set LVMGRAPH_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="lvmgraph-chromium-") as profile:
        return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *extra, Path(page).resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 2400, timeout: float = 120) -> Path:
    """A PNG of the top ``width`` x ``height`` pixels of the page."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    done = _run(page, [f"--screenshot={out}", f"--window-size={width},{height}"], timeout)
    if not out.exists():
        raise RuntimeError(f"chromium wrote no screenshot of {page} (exit {done.returncode}): {done.stderr[-2000:]}")
    return out


def loaded_images(page: Path, *, timeout: float = 120) -> dict[str, int]:
    """{img src: decoded width in pixels} after the page's load event (0: it failed to load), read
    from the ``data-natural-width`` attributes the report's own script sets."""
    done = _run(page, ["--dump-dom"], timeout)
    if "data-images-checked" not in done.stdout:
        raise RuntimeError(f"the page's image check did not run in chromium: {done.stderr[-2000:]}")
    out = {}
    for tag in re.findall(r"<img\b[^>]*>", done.stdout):
        src = re.search(r'\bsrc="([^"]*)"', tag)
        width = re.search(r'\bdata-natural-width="(\d+)"', tag)
        out[src.group(1) if src else "?"] = int(width.group(1)) if width else 0
    return out
