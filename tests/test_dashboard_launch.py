"""`taorl dashboard` stops its Streamlit server when it is stopped with SIGTERM (a service manager,
`kill`, a notebook's process handle), not only on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        out += [int(x) for x in text.split()]
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_sigterm_stops_the_streamlit_server(tmp_path):
    (tmp_path / "runs").mkdir()
    port = _free_port()
    dash = subprocess.Popen([sys.executable, "-m", "taorl.cli", "dashboard", str(tmp_path / "runs"),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        server = None
        while time.time() < deadline and server is None:  # the server is up once its port answers
            kids = _children(dash.pid)
            with socket.socket() as s:
                if kids and s.connect_ex(("127.0.0.1", port)) == 0:
                    server = kids[0]
            time.sleep(0.2)
        assert server is not None, dash.stdout.read1().decode() if dash.poll() is not None else "no server"
        os.kill(dash.pid, signal.SIGTERM)
        assert dash.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.time() + 15
        while _alive(server) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(server), "the Streamlit server outlived taorl dashboard"
    finally:
        if dash.poll() is None:
            dash.kill()
