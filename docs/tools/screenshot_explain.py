"""Take docs/img/explain-html.png: the bundled example's `ftsc explain --format html` page in
headless Chromium, with the tooltip of one cell showing.

Input: examples/explain/ (schedule and manifest). Output: the PNG (overwritten). Needs the
`playwright` package and a Chromium binary (`--chromium PATH`, default /usr/bin/chromium);
nothing is downloaded. Run from the repository root:

    python docs/tools/screenshot_explain.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMAND = ["explain", "examples/explain/schedule.ftsc", "--manifest", "examples/explain/manifest.json",
           "--world-size", "2", "--format", "html"]


def main(argv: list[str] | None = None) -> int:
    """Render the page, hover phase 1 of `backbone.2`, save the screenshot."""
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("-o", "--output", default=str(REPO / "docs/img/explain-html.png"))
    args = ap.parse_args(argv)
    page_html = subprocess.run([sys.executable, "-m", "ftsc", *COMMAND], cwd=REPO, check=True,
                               capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "explain.html"
        path.write_text(page_html, encoding="utf-8")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 900, "height": 560})
            page.goto(path.as_uri())
            page.hover('td.cell[data-unit="backbone.2"][data-phase="1"]')
            page.screenshot(path=args.output, full_page=True)
            browser.close()
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
