"""The dashboard in a real browser: a Streamlit server on 127.0.0.1 (free port) over two synthetic
runs, headless Debian Chromium driven by Playwright, every page opened, no error element, a
screenshot per page (tmp/test-artifacts/dashboard/)."""

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parents[1]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tmp" / "test-artifacts" / "dashboard"
PAGES = ["overview", "curves", "groups", "boundaries", "tokens", "browser", "group", "tools", "benchmarks",
         "ablation", "experiment"]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: Path, home: Path) -> tuple[subprocess.Popen, str]:
    from taorl.viz.launch import streamlit_command

    port = free_port()
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.Popen(streamlit_command(runs, "127.0.0.1", port), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"streamlit did not start: {proc.stderr.read().decode()[-2000:]}")


def wait_rendered(page, timeout_ms: int = 30000) -> None:
    """Streamlit finished running: the app view is there and no element shows 'running'."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='stApp']\")?.getAttribute('data-test-script-state') !== 'running'"
        " && !document.querySelector(\"[data-testid='stStatusWidget'] [data-testid='stStatusWidgetRunningIcon']\")"
        " && document.querySelector(\"[data-testid='stMain'] h1\")",
        timeout=timeout_ms)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("no /usr/bin/chromium (make browser-deps)")
    from taorl.lab.synthetic import write_synthetic_run

    runs = tmp_path_factory.mktemp("runs")
    write_synthetic_run(runs / "shaping-on", steps=40, trajectories_per_step=64, token_trajectories=8, seed=0)
    write_synthetic_run(runs / "shaping-off", steps=40, trajectories_per_step=64, token_trajectories=8, seed=1,
                        shaping=False)
    from test_app_experiment import _experiment

    _experiment(runs)  # runs/experiments/mini: an experiment folder (synthetic runs), for the Experiment page
    home = tmp_path_factory.mktemp("home")
    proc, url = start_server(runs, home)
    yield url, home
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _hover_label(page) -> str | None:
    """Move the pointer down the middle of the first Vega-Lite chart until a hover label shows (the
    curve crosses that vertical somewhere); its text, or None."""
    box = page.locator("[data-testid='stVegaLiteChart']").first.bounding_box()
    for dy in range(0, int(box["height"]), 3):
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + dy)
        tip = page.locator("#vg-tooltip-element.visible")
        if tip.count():
            return tip.inner_text()
    return None


def test_every_page_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, home = server
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1500, "height": 1000}, env={**os.environ, "HOME": str(home)})
        page = browser.new_page()
        errors = []
        for name in PAGES:
            # compare the two runs on the multi-run pages
            page.goto(f"{url}/{name}?run=shaping-on")
            wait_rendered(page)
            if name in ("boundaries", "ablation", "benchmarks", "curves"):
                box = page.locator("[data-testid='stSidebar'] [data-testid='stMultiSelect']").first
                box.click()
                page.get_by_role("option", name="shaping-off").click()
                page.keyboard.press("Escape")
                wait_rendered(page)
            if name in ("overview", "curves", "boundaries"):  # drawn first, in Vega-Lite
                page.wait_for_selector("[data-testid='stVegaLiteChart'] .marks", timeout=30000)
            elif name not in ("tokens", "browser", "group"):
                page.wait_for_selector(".js-plotly-plot", timeout=30000)
            if name == "overview":
                tip = _hover_label(page) or ""
                if not ("training step" in tip and "reward (mean)" in tip):
                    errors.append(f"overview: no hover label with the step and reward on the reward curve ({tip!r})")
            if name == "experiment":  # the experiment folder under runs/, picked in the sidebar
                assert page.locator("[data-testid='stMain'] h1").first.inner_text() == "Experiment · mini"
                page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3",
                                       timeout=30000)  # two training curves and the held-out figure
                assert page.locator("[data-testid='stDataFrame']").count() >= 2  # runs table, held-out table
            page.wait_for_timeout(400)
            # a local research tool: no Deploy button, no developer items in the toolbar
            if page.locator("[data-testid='stAppDeployButton']").count():
                errors.append(f"{name}: a Deploy button is shown")
            bad = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']")
            if bad.count():
                errors.append(f"{name}: {bad.first.inner_text()[:300]}")
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        browser.close()
    assert not errors, errors
    assert all((ARTIFACTS / f"{n}.png").stat().st_size > 10_000 for n in PAGES)
