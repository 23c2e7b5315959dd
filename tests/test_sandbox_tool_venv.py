"""Where the tool interpreter lives, and what happens when tool code cannot reach it (issue 23).

A checkout in a directory other users cannot enter (`mktemp -d`, /root) or under /tmp gets the
shared tool venv; no default interpreter without numpy and sympy is ever taken; an interpreter tool
code cannot read stops the sandbox at start with one line saying so. CI also runs test_sandbox*.py
from a clone inside `mktemp -d` (.ci/run).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from taorl.config import ToolConfig
from taorl.tools import Sandbox, SandboxUnavailable, tool_venv
from taorl.tools import sandbox_levels as levels

ROOT = os.geteuid() == 0
needs_base = pytest.mark.skipif(not Path(tool_venv.BASE_PYTHON).exists(),
                                reason=f"no {tool_venv.BASE_PYTHON} to build a tool venv on")


def test_out_of_reach_names_the_directory(tmp_path):
    locked = Path("/var/lib") / f"taorl-test-{os.getpid()}" if ROOT else None
    assert tool_venv.out_of_reach("/usr/bin/python3", root=True) is None
    assert tool_venv.out_of_reach("/tmp/x/taorl/.cache/tool-venv", root=False) == (
        "/tmp/x/taorl/.cache/tool-venv lies under /tmp, which each tool call gets a private, empty copy of")
    if locked is None:
        pytest.skip("needs root to make a 0700 directory outside /tmp that the test can remove")
    (locked / "repo").mkdir(parents=True)
    try:
        locked.chmod(0o700)
        assert tool_venv.out_of_reach(locked / "repo" / ".cache", root=True) == (
            f"{locked} is mode 0700: tool code (a uid of its own) cannot enter it")
        assert tool_venv.out_of_reach(locked / "repo" / ".cache", root=False) is None  # the code is the trainer
        venv, why = tool_venv.location(locked / "repo")
        assert venv == Path("/opt/taorl") / f"tool-venv-{tool_venv.KEY}" and "mode 0700" in why
    finally:
        subprocess.run(["rm", "-rf", str(locked)], check=True)


def test_a_reachable_checkout_keeps_its_own_venv():
    if tool_venv.out_of_reach(levels.REPO) is not None:
        pytest.skip(f"this checkout is itself out of tool code's reach: {tool_venv.out_of_reach(levels.REPO)}")
    assert tool_venv.location(levels.REPO) == (levels.REPO / ".cache" / "tool-venv", None)


def test_no_tool_venv_is_one_clear_error_not_a_python_without_numpy(monkeypatch, tmp_path):
    monkeypatch.setattr(tool_venv, "location", lambda repo: (tmp_path / "tool-venv", "/x is mode 0700"))
    monkeypatch.setattr(levels, "_usable_for_tools", lambda python: False)  # no other python has both
    with pytest.raises(SandboxUnavailable) as e:
        Sandbox(ToolConfig(isolation="none", workers=1))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == (f"no interpreter with numpy and sympy for tool code: the tool venv {tmp_path / 'tool-venv'} is "
                   "not built (the checkout's .cache/tool-venv would be out of tool code's reach: /x is mode "
                   f"0700); run `make tool-venv` in {levels.REPO}, or set tool.python")


@needs_base
def test_an_interpreter_tool_code_cannot_read_stops_the_sandbox(tmp_path):
    """tool.python in a venv under pytest's 0700 tmp dir: the zygote (root) starts it, but tool code
    (its own uid) could not import from it; the start-up call finds that out."""
    if not ROOT:
        pytest.skip("without root tool code runs as the trainer's user, who reads what the trainer reads")
    good = levels.tool_python(ToolConfig())
    where = "import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))"
    site = subprocess.run([good, "-I", "-c", where], capture_output=True, text=True, check=True).stdout.strip()
    venv = tmp_path / "venv"
    subprocess.run([tool_venv.BASE_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    own_site = next(venv.glob("lib/python3*/site-packages"))
    # numpy + sympy from the good venv, via its own site dir; and a directory under /root (hidden from
    # each call, and sorted before /tmp, as a checkout at /check/... is): the interpreter's own
    # site-packages is still the one named, the others counted
    early = Path(tempfile.mkdtemp(prefix="taorl-test-", dir="/root")) if Path("/root").is_dir() else None
    try:
        (own_site / "tool.pth").write_text(f"{early or ''}\n{site}\n")
        with pytest.raises(SandboxUnavailable) as e:
            Sandbox(ToolConfig(isolation="rlimits", workers=1, python=str(venv / "bin" / "python")))
    finally:
        if early:
            early.rmdir()
    msg = str(e.value)
    assert msg.startswith("tool.isolation=rlimits: unavailable here: uid ") and "\n" not in msg
    assert f"cannot read what the tool interpreter {venv / 'bin' / 'python'} imports from ({own_site}" in msg
    assert early is None or f"({own_site} and " in msg


@needs_base
def test_make_tool_venv_reports_where_it_is():
    out = subprocess.run([tool_venv.BASE_PYTHON, str(Path(tool_venv.__file__))], capture_output=True, text=True,
                         timeout=600)
    venv, _ = tool_venv.location()
    assert out.returncode == 0, out.stderr
    assert f"tool-venv: {venv} (numpy, sympy) is ready" in out.stdout
    assert levels.tool_python(ToolConfig()) == str(venv / "bin" / "python")
    assert sys.executable != levels.tool_python(ToolConfig())
