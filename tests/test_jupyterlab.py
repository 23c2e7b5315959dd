"""The notebooks in JupyterLab itself, as a person steps through them: `make lab` serves a copy of the
notebooks (free port, token), headless Debian Chromium driven by Playwright opens the quickstart and
the criterion-1 ablation, runs all cells from the Run menu, and checks that no cell shows an error,
both in the page and in the notebook JupyterLab saves. The quickstart is then run again with
"Restart Kernel and Run All Cells", the step that used to stop at "already holds a run". A probe
notebook checks that the checker sees an error when there is one and that tqdm draws a progress-bar
widget. Screenshots: tmp/test-artifacts/jupyterlab/."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parents[1]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tmp" / "test-artifacts" / "jupyterlab"
NOTEBOOKS = ["00_quickstart", "04_criterion1_failed_tools"]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
RUN_TIMEOUT_MS = 420_000  # one notebook on the tiny profile takes about a minute on 2 cores

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook tab in front
# every code cell's prompt: "[ ]:" not run, "[*]:" running or queued, "[n]:" done
PROMPTS = f"() => [...document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim())"
RUNNING = f"() => ({PROMPTS})().some(p => p.includes('*'))"
SETTLED = f"() => {{ const p = ({PROMPTS})(); return p.some(x => /\\[\\d+\\]/.test(x)) && !p.some(x => x.includes('*')); }}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe_notebook(path: Path) -> None:
    import nbformat as nbf

    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbf.v4.new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass"),
                nbf.v4.new_code_cell("1 / 0"),
                nbf.v4.new_code_cell("print('never reached')")]
    nbf.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base url, token, folder served): `make lab` on a copy of the notebooks plus the probe."""
    if not Path(CHROMIUM).exists():
        pytest.skip("no /usr/bin/chromium (make browser-deps)")
    from taorl.models import cache_root

    served = tmp_path_factory.mktemp("notebooks")
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", served)
    probe_notebook(served / "probe.ipynb")
    state = tmp_path_factory.mktemp("jupyter")
    # user settings of a fresh JupyterLab: start the notebook's own kernel without the "Select Kernel"
    # dialog (it pops up at random when the kernel list loads after the notebook), no news prompt
    for ext, text in {"notebook-extension/tracker": '{"autoStartDefaultKernel": true}',
                      "apputils-extension/notification": '{"fetchNews": "false"}'}.items():
        f = state / "settings" / "@jupyterlab" / f"{ext}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "TAORL_CACHE": str(cache_root()), "IPYTHONDIR": str(state / "ipython"),
           "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(state / "ws")}
    env.pop("TAORL_NOTEBOOK_RUNS", None)  # runs go beside the served notebooks, as for a person
    args = (f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --IdentityProvider.token={token} "
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate "
            "--ServerApp.shutdown_no_activity_timeout=900")  # a server left behind by a killed run ends itself
    # the Makefile's own `lab` target; -o: the venv is installed already (never reinstall from a test)
    log = open(state / "lab.log", "w")  # noqa: SIM115 (the server writes to it until teardown)
    proc = subprocess.Popen(["make", "-C", str(ROOT), "--no-print-directory", "-o", ".venv/.installed", "lab",
                             f"BIN={Path(sys.executable).parent}", f"NB_DIR={served}", f"LAB_ARGS={args}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                os.killpg(proc.pid, signal.SIGTERM)
                pytest.fail(f"make lab did not start: {(state / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url, token, served
    os.killpg(proc.pid, signal.SIGTERM)  # make and the jupyter server it started (own session)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def open_notebook(browser, lab, name: str):
    url, token, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/lab/tree/{name}.ipynb?reset&token={token}")  # reset: no tabs restored from before
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=60_000)
    # the notebook's kernel (python3) started and idle, as named in the toolbar
    page.wait_for_selector(f"{PANEL} .jp-NotebookPanel-toolbar .jp-KernelName:has-text('Python 3')", timeout=90_000)
    page.wait_for_selector(f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
    return page


def run_menu(page, command: str) -> None:
    """Run menu -> `command` (runmenu:run-all, runmenu:restart-and-run-all), confirming any dialog."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.click(f"li[data-command='{command}']")
    if command == "runmenu:restart-and-run-all":  # the old prompts stay numbered until the rerun starts
        page.click(".jp-Dialog button.jp-mod-accept", timeout=30_000)
        page.wait_for_function(RUNNING, timeout=60_000)
    page.wait_for_function(SETTLED, timeout=RUN_TIMEOUT_MS, polling=1000)


def page_errors(page) -> list[str]:
    """Tracebacks shown in the page: rendered stderr outputs that hold one."""
    texts = page.eval_on_selector_all(f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                                      "els => els.map(e => e.textContent)")
    return [t[:300] for t in texts if "Traceback (most recent call last)" in t]


def saved_errors(page, path: Path) -> tuple[list[str], int, int]:
    """Save from the File menu, then read what JupyterLab wrote: (errors, cells run, code cells)."""
    import nbformat

    before = path.stat().st_mtime_ns
    page.get_by_role("menuitem", name="File", exact=True).click()
    page.click("li[data-command='docmanager:save']")
    # the server writes the notebook in place (truncate, then write), so the new mtime can show before
    # the text does: read once the mtime moved and the file parses, or fail after 30 s saying so
    deadline = time.time() + 30
    while True:
        if path.stat().st_mtime_ns != before:
            try:
                nb = nbformat.read(path, as_version=4)
                break
            except nbformat.reader.NotJSONError:  # caught mid-write
                pass
        if time.time() > deadline:
            raise AssertionError(f"JupyterLab did not save {path.name} within 30 s (mtime or text unchanged)")
        time.sleep(0.2)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [f"{o['ename']}: {o['evalue']}" for c in code for o in c.outputs if o.output_type == "error"]
    return errors, sum(c.execution_count is not None for c in code), len(code)


def screenshots(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-top.png"))
    views = page.locator(f"{PANEL} .tao-tokens")
    for k in range(min(views.count(), 2)):
        views.nth(k).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{name}-tokens-{k}.png"))
    page.locator(f"{PANEL} .jp-Cell").last.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"{name}-end.png"))


def test_probe_error_is_seen_and_progress_bars_are_widgets(lab, browser):
    page = open_notebook(browser, lab, "probe")
    run_menu(page, "runmenu:run-all")
    assert page.locator(f"{PANEL} .jp-OutputArea-output .widget-hprogress").count() == 1   # tqdm drew a widget
    assert "IProgress not found" not in page.content()
    assert len(page_errors(page)) == 1
    errors, ran, n = saved_errors(page, lab[2] / "probe.ipynb")
    assert errors == ["ZeroDivisionError: division by zero"] and (ran, n) == (2, 3)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "probe.png"))
    page.close()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_all_cells_without_error(lab, browser, name):
    page = open_notebook(browser, lab, name)
    run_menu(page, "runmenu:run-all")
    assert page_errors(page) == []
    errors, ran, n = saved_errors(page, lab[2] / f"{name}.ipynb")
    assert errors == [] and ran == n, f"{name}: {ran} of {n} cells ran; errors {errors}"
    screenshots(page, name)
    if name == "00_quickstart":  # what people do most: restart the kernel and run everything again
        run_menu(page, "runmenu:restart-and-run-all")
        assert page_errors(page) == []
        errors, ran, n = saved_errors(page, lab[2] / f"{name}.ipynb")
        assert errors == [] and ran == n, f"{name}, second run: {ran} of {n} cells ran; errors {errors}"
        screenshots(page, f"{name}-again")
        runs = sorted((lab[2] / "runs" / "00").glob("*/quickstart/manifest.json"))
        assert len(runs) == 2                              # each execution has its own run beside the notebook
    page.close()
