"""`taorl dashboard [RUNS_DIR]`: start the Streamlit app (app/Home.py) over a run directory or a
directory of runs, during or after training, and print its URL. Ctrl-C or SIGTERM stops the
Streamlit server too (it runs as a child process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from taorl.errors import UserError

APP = Path(__file__).resolve().parents[2] / "app" / "Home.py"


def app_path() -> Path:
    if not APP.is_file():
        raise UserError(f"{APP}: the dashboard app is missing (taorl dashboard needs a source checkout "
                        f"or an editable install: pip install -e .)")
    return APP


def streamlit_command(runs_dir: str | Path, host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """The command line that serves the dashboard (headless; no usage statistics). The toolbar is in
    Streamlit's "viewer" mode: no Deploy button, no rerun / clear-cache developer items (the live
    refresh switch re-reads the runs), only what a user of the dashboard can use."""
    return [sys.executable, "-m", "streamlit", "run", str(app_path()),
            "--server.headless", "true", "--server.address", host, "--server.port", str(port),
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--client.toolbarMode", "viewer",
            "--", "--runs-dir", str(Path(runs_dir).resolve())]


def dashboard_main(args) -> int:
    runs = Path(args.runs_dir)
    if not runs.is_dir():
        raise UserError(f"{runs}: no such directory (expected a run directory or a directory of runs; "
                        f"write a demo one with: taorl synth {runs}/demo)")
    cmd = streamlit_command(runs, args.host, args.port)
    print(f"taorl dashboard: serving {runs.resolve()} at http://{args.host}:{args.port}  (Ctrl-C to stop)",
          flush=True)
    env = {**os.environ, "TAORL_RUNS_DIR": str(runs.resolve())}
    proc = subprocess.Popen(cmd, env=env)

    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)  # unwinds to the finally below, which stops the server

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        stop_server(proc)
        signal.signal(signal.SIGTERM, previous)


def stop_server(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate the Streamlit process (SIGTERM, then SIGKILL after `timeout` seconds)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
