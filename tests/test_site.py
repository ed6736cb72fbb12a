"""The built site as a reader's browser shows it: Debian's chromium, headless, driven by
Playwright (no browser download), opens every page of the table of contents from a local HTTP
server with every request off that server refused, so the pages must work offline. On each page:
MathJax typeset every formula (none left as raw TeX, no TeX error), every image loaded, no error
output, code cells have a copy button, solutions are hidden behind their toggles, a
notebook's Colab button opens that notebook, and no code block, output or table is wider than
the text column (no sideways scrolling at the 1280 px window; `scripts/page_width.py` measures
the same at other widths). A full-page screenshot of each page is written to
``_build/screenshots/`` (the test's artefacts).

``make test-browser`` builds the site, installs chromium where it is missing and sets
``MIXLIB_BROWSER_TEST=1``; without it the module is skipped, and with it a missing piece (the
site, chromium, Playwright) is an error, not a skip.
"""
import functools
import http.server
import importlib.util
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
REQUIRED = os.environ.get("MIXLIB_BROWSER_TEST", "0") not in ("", "0")


def _missing() -> str | None:
    if not (SITE / "index.html").is_file():
        return f"no built site in {SITE} (make test-book)"
    if shutil.which("chromium") is None:
        return "no chromium on PATH (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements.txt)"
    return None


if not REQUIRED:  # a plain `pytest tests` may hold a stale site, or none: `make test-browser`
    pytest.skip("the browser test runs under MIXLIB_BROWSER_TEST=1 (make test-browser)",
                allow_module_level=True)
if (_reason := _missing()) is not None:
    raise RuntimeError(f"MIXLIB_BROWSER_TEST=1 but {_reason}")

import yaml  # noqa: E402  (comes with jupyter-book)
from playwright.sync_api import sync_playwright  # noqa: E402


def _page_width_script():
    path = ROOT / "scripts" / "page_width.py"
    spec = importlib.util.spec_from_file_location("page_width", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OVERFLOWING = _page_width_script().OVERFLOWING  # [kind, pixels over, first characters]


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc["chapters"]]


def colab_prefix() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{repo}/blob/{config['repository']['branch']}/"


@pytest.fixture(scope="module")
def server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"))
        yield browser
        browser.close()


def test_every_toc_page_was_built():
    missing = [page for page in toc_pages() if not (SITE / f"{page}.html").is_file()]
    assert not missing, f"pages of _toc.yml missing from the site: {missing}"


# Wait for MathJax's typesetting and for every image; then what the page reports about itself.
SETTLE = """async () => {
  if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
  const images = [...document.querySelectorAll('article img')];
  for (const img of images) { img.loading = 'eager'; }
  await Promise.all(images.map(img => img.decode().catch(() => null)));
}"""
INSPECT = """async () => {
  const images = [...document.querySelectorAll('article img')];
  const article = document.querySelector('article').cloneNode(true);
  article.querySelectorAll('pre, code, .highlight, mjx-container, script').forEach(e => e.remove());
  return {
    text: article.innerText,
    math: document.querySelectorAll('article .math').length,
    typeset: document.querySelectorAll('article .math mjx-container').length,
    tex_errors: document.querySelectorAll('article mjx-merror').length,
    images: images.map(img => ({src: img.getAttribute('src'), width: img.naturalWidth})),
    errors: document.querySelectorAll('article .output.error, article .output.traceback').length,
    code_cells: document.querySelectorAll('article .cell .cell_input').length,
    copy_buttons: document.querySelectorAll('article .cell_input button.copybtn').length,
    solutions: await Promise.all([...document.querySelectorAll('article .solution.dropdown')].map(
        async s => {
          const shown = () => [...s.children].slice(1).some(
              child => child.offsetParent !== null && child.getBoundingClientRect().height > 0);
          const before = shown();
          s.querySelector('button.toggle-button').click();
          await new Promise(resolve => setTimeout(resolve, 500));
          return {hidden_before: !before, shown_after_click: shown()};
        })),
    colab: [...document.querySelectorAll('a[href*="colab.research.google.com"]')].map(a => a.href),
  };
}"""


@pytest.mark.parametrize("page", toc_pages())
def test_page_renders_offline(page, server, browser):
    refused = []

    def only_local(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    tab.route("**/*", only_local)
    console_errors = []
    tab.on("pageerror", lambda error: console_errors.append(str(error)))
    response = tab.goto(f"{server}/{page}.html", wait_until="load")
    assert response is not None and response.ok, f"{page}: HTTP {response and response.status}"
    tab.evaluate(SETTLE)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{page.replace('/', '__')}.png"), full_page=True)
    overflowing = tab.evaluate(OVERFLOWING)  # before the solutions open
    report = tab.evaluate(INSPECT)  # opens the solutions: after the screenshot
    tab.close()

    assert not refused, f"{page} asked the network for {refused[:5]}"
    assert not console_errors, f"{page}: JavaScript errors {console_errors[:3]}"
    # math: every formula typeset, none left as raw TeX, no TeX error
    assert report["typeset"] == report["math"], \
        f"{page}: {report['math'] - report['typeset']} of {report['math']} formulas not typeset"
    assert report["tex_errors"] == 0, f"{page}: {report['tex_errors']} TeX errors"
    raw = re.findall(r"\$\$|\\\(|\\\[|\\frac|\\sum", report["text"])
    assert not raw, f"{page}: raw TeX left in the text: {raw[:5]}"
    # figures
    broken = [img["src"] for img in report["images"] if img["width"] == 0]
    assert not broken, f"{page}: images that did not load: {broken}"
    assert report["errors"] == 0, f"{page}: {report['errors']} error outputs"
    assert not overflowing, f"{page}: blocks wider than the column: {overflowing}"
    if page.startswith("notebooks/"):
        assert report["math"] > 0, f"{page}: a chapter without a formula? (the count is wrong)"
        assert report["images"], f"{page}: a chapter without a figure"
        assert report["code_cells"] > 0 and report["copy_buttons"] == report["code_cells"], \
            f"{page}: {report['copy_buttons']} copy buttons for {report['code_cells']} code cells"
        assert all(s["hidden_before"] for s in report["solutions"]), \
            f"{page}: a solution is visible before its toggle: {report['solutions']}"
        assert all(s["shown_after_click"] for s in report["solutions"]), \
            f"{page}: a solution's toggle does not show it: {report['solutions']}"
        expected = colab_prefix() + f"{page}.ipynb"
        assert expected in report["colab"], f"{page}: Colab links {report['colab']}, want {expected}"
