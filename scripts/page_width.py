"""Which code cells, outputs and tables of the built book are wider than their page column.

Issue 20 asks for code visible within the page width, with no sideways scrolling at the book's
default width. This opens every built page in Debian's chromium (as tests/test_site.py does) at
one window width and lists, per page, each code block, output or table whose content is wider
than its box (so the reader must scroll it sideways), with how many pixels it overflows by and
its first characters. Hidden inputs (`hide-input`) count only when shown.

    make book && python scripts/page_width.py [--width 1280] [--html _build/html]
"""
import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

OVERFLOWING = """() => {
  const found = [];
  const add = (kind, el, box) => {
    if (el.offsetParent && el.scrollWidth > box.clientWidth + 1)
      found.push([kind, el.scrollWidth - box.clientWidth, el.innerText.trim().slice(0, 60)]);
  };
  for (const t of document.querySelectorAll("article table")) add("table", t, t.parentElement);
  for (const p of document.querySelectorAll("article pre")) add("pre", p, p);
  return found;
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280, help="the window's width in pixels")
    parser.add_argument("--html", type=Path, default=Path("_build/html"), help="the built book")
    args = parser.parse_args()
    pages = sorted(p for folder in ("book", "notebooks") for p in (args.html / folder).glob("*.html"))
    if not pages:
        parser.error(f"--html: no built pages in {args.html} (run make book first)")
    total = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        tab = browser.new_page(viewport={"width": args.width, "height": 900})
        for page in pages:
            tab.goto(page.resolve().as_uri(), wait_until="load")
            found = tab.evaluate(OVERFLOWING)
            total += len(found)
            if found:
                print(f"{page.relative_to(args.html)}: {len(found)}")
                for kind, pixels, text in found:
                    print(f"    {kind:5s} +{pixels:4d} px  {text.splitlines()[0] if text else ''!r}")
        browser.close()
    print(f"{total} blocks wider than their column at a {args.width} px window")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
