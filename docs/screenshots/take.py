"""Screenshots of dashboard pages of one run, in headless Chromium (the README's images).

    .venv/bin/python docs/screenshots/take.py RUNS_DIR RUN [PAGE ...] [--compare RUN2] [--out docs/screenshots]

RUNS_DIR is what `taorl dashboard` would be given, RUN the run's label in the sidebar (its path
under RUNS_DIR; `-` for none); PAGE is a url path (default: boundaries tokens), with a query if wanted
(`tokens?step=39&traj=21` opens that trajectory). Writes dashboard-<page>.png. The experiment view
of an experiment folder:

    .venv/bin/python docs/screenshots/take.py runs/experiments/NAME - experiment --height 2400
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_browser import CHROMIUM, FLAGS, start_server, wait_rendered  # noqa: E402

NAMES = {"boundaries": "entropy-at-tool-calls", "tokens": "token-view", "experiment": "experiment"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_dir")
    ap.add_argument("run")
    ap.add_argument("pages", nargs="*", default=["boundaries", "tokens"])
    ap.add_argument("--compare", default=None, help="a second run to overlay on multi-run pages")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--open", action="store_true",
                    help="open the page's expanders first (the entropy page draws its heatmaps when opened)")
    ap.add_argument("--height", type=int, default=1100,
                    help="window height in pixels (Streamlit scrolls inside the page: a taller window shows more)")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="taorl-shots-"))
    proc, url = start_server(Path(a.runs_dir), tmp)
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(str(tmp / "profile"), executable_path=CHROMIUM,
                                                       headless=True, args=FLAGS,
                                                       viewport={"width": 1500, "height": a.height},
                                                       env={**os.environ, "HOME": str(tmp)})
            page = ctx.new_page()
            for spec in a.pages:
                name, _, query = spec.partition("?")
                params = "&".join(x for x in (f"run={a.run}" if a.run != "-" else "", query) if x)
                page.goto(f"{url}/{name}" + (f"?{params}" if params else ""))
                wait_rendered(page, 120_000)
                if a.compare and name in ("boundaries", "curves", "ablation", "benchmarks"):
                    page.locator("[data-testid='stSidebar'] [data-testid='stMultiSelect']").first.click()
                    page.get_by_role("option", name=a.compare).click()
                    page.keyboard.press("Escape")
                    wait_rendered(page, 120_000)
                if a.open:
                    for summary in page.locator("[data-testid='stMain'] [data-testid='stExpander'] summary").all():
                        summary.click()
                        wait_rendered(page, 120_000)
                if name not in ("tokens", "browser", "group"):
                    page.wait_for_selector(".js-plotly-plot .main-svg, [data-testid='stVegaLiteChart'] .marks",
                                           timeout=120_000)
                page.wait_for_timeout(800)
                out = Path(a.out) / f"dashboard-{NAMES.get(name, name)}.png"
                page.screenshot(path=str(out))
                print(f"wrote {out}")
            ctx.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
