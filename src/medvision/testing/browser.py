"""Load an HTML report in headless Chromium and measure its layout (tests and benchmarks).

The report itself forbids scripts (its Content-Security-Policy), so the measuring script lives
in a wrapper page that shows the report in an ``<iframe>`` of the requested width (the
window the reader has) and reads the frame's document once it has loaded (Chromium runs with
``--allow-file-access-from-files`` so the wrapper may read a ``file://`` frame). Measured:

* ``closed`` / ``opened``: the document's ``scrollWidth`` and ``clientWidth`` (CSS px) as
  loaded and after opening every ``<details>``; ``scrollWidth > clientWidth`` is a horizontal
  scrollbar;
* ``overflowing``: up to 5 shown elements (not inside a closed ``<details>``) reaching past
  the right edge, as loaded;
* ``load_ms``: from setting the frame's address to its ``load`` event (parse, layout and
  image decoding), in real time;
* ``board_bottom``: bottom of the first leaderboard table (px from the top);
* ``charts`` and ``details`` / ``details_open``: counts as loaded.

Console messages of both pages are collected from Chromium's log (``--enable-logging``); the
wrapper writes none.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BrowserLoad", "chromium", "load_report"]

_WRAPPER = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>harness</title></head>
<body style="margin:0"><iframe id="f" style="width:%(w)dpx;height:%(h)dpx;border:0"></iframe>
<pre id="out">pending</pre><script>
const f = document.getElementById('f');
let t0 = 0;
f.onload = () => {
  const t1 = performance.now();
  const d = f.contentDocument, el = d.documentElement;
  const edge = el.clientWidth + 0.5;
  const shown = e => {  // not hidden in a closed <details> (its <summary> is shown)
    const c = e.closest('details:not([open])');
    return !c || c.querySelector('summary').contains(e);
  };
  const overflowing = [...d.querySelectorAll('body *')]
    .filter(e => shown(e) && e.getBoundingClientRect().right > edge)
    .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
  const board = d.querySelector('table');
  const r = {
    load_ms: t1 - t0, title: d.title, overflowing,
    closed: {scroll: el.scrollWidth, client: el.clientWidth},
    board_bottom: board ? board.getBoundingClientRect().bottom : null,
    charts: d.querySelectorAll('svg.chart').length,
    details: d.querySelectorAll('details').length,
    details_open: d.querySelectorAll('details[open]').length,
  };
  d.querySelectorAll('details').forEach(x => { x.open = true; });
  r.opened = {scroll: el.scrollWidth, client: el.clientWidth};
  document.getElementById('out').textContent = JSON.stringify(r);
};
t0 = performance.now();
f.src = %(src)s;
</script></body></html>
"""


@dataclass(frozen=True)
class BrowserLoad:
    """What :func:`load_report` measured (see the module docstring).

    Attributes:
        metrics: The wrapper's measurements.
        console: Chromium log lines of console messages (should be empty).
    """

    metrics: dict[str, Any]
    console: list[str]


#: Headless Chromium on a closed machine: no sandbox (root), no GPU, and none of the background
#: connections a closed network refuses.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str | None:
    """Path of Debian's ``chromium`` (or ``chromium-browser``), or ``None``."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def load_report(path: Path, *, width: int = 1400, height: int = 900) -> BrowserLoad:
    """Load ``path`` in headless Chromium inside a ``width`` x ``height`` frame and measure it.

    Args:
        path: The HTML file.
        width: Frame width in CSS pixels (the reader's window).
        height: Frame height in CSS pixels.

    Returns:
        The :class:`BrowserLoad`.

    Raises:
        RuntimeError: If Chromium is missing, fails, or the wrapper reports nothing.
    """
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "wrapper.html"
        src = json.dumps(Path(path).resolve().as_uri())
        wrapper.write_text(_WRAPPER % {"w": width, "h": height, "src": src}, encoding="utf-8")
        proc = subprocess.run(
            [
                exe,
                *HEADLESS_FLAGS,
                "--allow-file-access-from-files",
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--window-size={width + 100},{height + 200}",
                "--enable-logging=stderr",
                "--v=0",
                "--dump-dom",
                wrapper.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    m = re.search(r'<pre id="out">(.*?)</pre>', proc.stdout, re.S)
    if m is None or m.group(1) == "pending":
        raise RuntimeError(f"the harness measured nothing; stderr: {proc.stderr[-2000:]}")
    text = m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    metrics = json.loads(text.replace("&amp;", "&"))
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return BrowserLoad(metrics=metrics, console=console)
