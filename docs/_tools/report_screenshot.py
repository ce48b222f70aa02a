"""Look at the review report in a real browser: what the browser test checks, and the
screenshots of the demo report in docs/images.

The browser is Debian's Chromium (``/usr/bin/chromium``, ``apt-get install chromium``)
driven by Playwright for Python; nothing is downloaded, and the page is read from disk
with every network feature of the browser turned off. Run it again when the report's
layout or the demo changes::

    python docs/_tools/report_screenshot.py                 # runs the demo
    python docs/_tools/report_screenshot.py clothseg-demo   # reuses a demo folder

It writes ``docs/images/report-wide.jpg`` (a 1400 px window) and
``docs/images/report-phone.jpg`` (a 420 px phone screen), both showing the first image
of the report with its overlay, colour legend, label PNG and cutout.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

IMAGES = Path(__file__).resolve().parents[1] / "images"
#: The screenshots: file name -> window width in CSS pixels.
SHOTS = {"report-wide.jpg": 1400, "report-phone.jpg": 420}
#: Debian's Chromium; a browser Playwright would download is never used.
CHROMIUM = Path("/usr/bin/chromium")
#: Headless, no sandbox (containers), and no network of its own: no QUIC, sync,
#: component updates or background requests.
BROWSER_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# In the page: scroll each picture into view (they load lazily), wait for it, and say
# whether it decoded; then every element whose box passes the window's right edge.
_INSPECT_JS = """
async () => {
  const images = [];
  for (const img of document.images) {
    img.scrollIntoView();
    try { await img.decode(); } catch (e) {}
    images.push({src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0});
  }
  window.scrollTo(0, 0);
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll("body *")]
    .filter(el => el.getBoundingClientRect().right > width + 0.5)
    .map(el => el.tagName.toLowerCase() + (el.className ? "." + el.className : ""));
  const pairs = [...document.querySelectorAll("article .pair")].map(pair => {
    const img = pair.querySelector("img"), legend = pair.querySelector("ul.legend");
    if (!img || !legend) return null;
    const a = img.getBoundingClientRect(), b = legend.getBoundingClientRect();
    return {beside: b.left >= a.right - 1 || b.top >= a.bottom - 1,
            items: legend.querySelectorAll("li").length, visible: b.width > 0 && b.height > 0};
  });
  return {
    scrollWidth: document.documentElement.scrollWidth,
    width: width,
    images: images,
    overflowing: wide,
    articles: document.querySelectorAll("article").length,
    pairs: pairs,
  };
}
"""


def unavailable() -> str | None:
    """Why the browser cannot run here, or ``None`` when it can."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install playwright)"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, started headless through Playwright, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(BROWSER_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def opened(browser: Any, page: Path, width: int, height: int = 900) -> Iterator[Any]:
    """``page`` loaded in a fresh window of ``width`` CSS pixels."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        tab = context.new_page()
        tab.goto(page.resolve().as_uri())
        tab.wait_for_load_state("load")
        yield tab
    finally:
        context.close()


def inspect(browser: Any, page: Path, width: int) -> dict[str, Any]:
    """What the browser made of ``page`` at ``width``: which pictures loaded, which
    elements pass the right edge, and where each legend sits against its overlay."""
    with opened(browser, page, width) as tab:
        result: dict[str, Any] = tab.evaluate(_INSPECT_JS)
    return result


def capture(browser: Any, page: Path, width: int, out: Path) -> Path:
    """A JPEG of the window at ``width``, scrolled to the report's first image."""
    with opened(browser, page, width, height=1000 if width > 800 else 1400) as tab:
        tab.evaluate(_INSPECT_JS)  # every picture decoded first
        tab.evaluate("document.querySelector('article').scrollIntoView()")
        out.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(out), type="jpeg", quality=80)
    return out


def main(argv: list[str]) -> int:
    reason = unavailable()
    if reason is not None:
        print(f"Cannot take the screenshots: {reason}.", file=sys.stderr)
        return 1
    from clothseg_tools.demo import run_demo

    work = None
    if argv:
        demo = Path(argv[0])
    else:
        work = tempfile.mkdtemp(prefix="clothseg-report-shot-")
        demo = Path(work) / "demo"
        run_demo(demo)
    try:
        page = demo / "results" / "report.html"
        with chromium() as browser:
            for name, width in SHOTS.items():
                print(capture(browser, page, width, IMAGES / name))
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
