"""The tool venv: where the interpreter for model-written code lives, and how it is built.

    /usr/bin/python3 taorl/tools/tool_venv.py     # what `make tool-venv` runs (standard library only)

Tool code runs as a uid of its own (root) with a private /tmp per call (level rlimits), so the
interpreter must be readable by a stranger and must not lie under /tmp, /var/tmp, /dev/shm or
/run/lock. The checkout's `.cache/tool-venv` is used where it qualifies; a checkout that does not
(one inside `mktemp -d`, under /root or any 0700 directory, or under /tmp) gets a shared venv
named by its pins, outside the checkout:

    root:      /opt/taorl/tool-venv-<hash of the pins>
    no root:   ~/.cache/taorl/tool-venv-<hash>  (the code runs as the trainer's user there)

A venv counts as built once `.taorl-complete` is written, after numpy and sympy imported from
it; building takes a lock, so two checkouts can run `make tool-venv` at once. The sandbox asks
`location()` where to look (taorl.tools.sandbox_levels.tool_python) and checks at start that
tool code really reads every directory it imports from.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

BASE_PYTHON = "/usr/bin/python3"  # Debian's python: the venv's base, which every uid can run
PINS = ("numpy==2.4.6", "sympy==1.14.0", "mpmath==1.3.0")
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # each call's own tmpfs (level rlimits)
STAMP = ".taorl-complete"
KEY = hashlib.sha256("\n".join((BASE_PYTHON, *PINS)).encode()).hexdigest()[:10]
CHECKOUT_VENV = Path(".cache") / "tool-venv"


def _repo() -> Path:
    return Path(__file__).resolve().parents[2]


def out_of_reach(path: str | Path, *, root: bool | None = None) -> str | None:
    """Why tool code could not read `path` (None: it can).

    Under a per-call private dir it is gone for the call; as root the code runs as a stranger
    uid (no groups), which needs o+x on every directory above it."""
    root = os.geteuid() == 0 if root is None else root
    real = os.path.realpath(path)
    for d in PRIVATE_DIRS:
        if real == d or real.startswith(d + "/"):
            return f"{real} lies under {d}, which each tool call gets a private, empty copy of"
    if root:
        p = Path(real)
        for parent in reversed(p.parents):
            try:
                mode = os.stat(parent).st_mode
            except OSError:
                break
            if not mode & stat.S_IXOTH:
                return f"{parent} is mode {stat.S_IMODE(mode):04o}: tool code (a uid of its own) cannot enter it"
    return None


def shared_dir(root: bool | None = None) -> Path:
    """The shared venv for checkouts whose own .cache tool code cannot reach."""
    root = os.geteuid() == 0 if root is None else root
    if root:
        return Path("/opt/taorl") / f"tool-venv-{KEY}"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "taorl" / f"tool-venv-{KEY}"


def location(repo: str | Path | None = None) -> tuple[Path, str | None]:
    """(the venv to use or build, why not the checkout's own .cache/tool-venv or None)."""
    own = Path(repo or _repo()) / CHECKOUT_VENV
    why = out_of_reach(own)
    return (own, None) if why is None else (shared_dir(), why)


def is_built(venv: Path) -> bool:
    """A venv with its stamp; the checkout's own without one counts too (made by an older taorl)."""
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    return (venv / STAMP).exists() or venv.parent.name == ".cache"


def _imports_ok(python: Path) -> str | None:
    r = subprocess.run([str(python), "-I", "-c", "import numpy, sympy"], capture_output=True, text=True)
    if r.returncode == 0:
        return None
    return (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]


def build(venv: Path) -> None:
    """Create `venv` over BASE_PYTHON with PINS (world-readable), unless it is built already."""
    old = os.umask(0o022)
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)  # /opt/taorl: 0755
    finally:
        os.umask(old)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another checkout building the same venv: wait for it
        if (venv / STAMP).exists():
            return
        old = os.umask(0o022)
        try:
            if not (venv / "bin" / "python").exists():
                subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True)
            if _imports_ok(venv / "bin" / "python") is not None:
                subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PINS], check=True)
        finally:
            os.umask(old)
        for dirpath, dirnames, filenames in os.walk(venv):  # o+rX, as `chmod -R o+rX`
            for name in dirnames + filenames + [""]:
                p = os.path.join(dirpath, name) if name else dirpath
                if os.path.islink(p):
                    continue
                mode = os.stat(p).st_mode
                os.chmod(p, mode | stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else 0))
        err = _imports_ok(venv / "bin" / "python")
        if err:
            raise RuntimeError(f"{venv}: numpy/sympy do not import after the install: {err}")
        (venv / STAMP).write_text("\n".join(PINS) + "\n")


def main() -> int:
    venv, why = location()
    if not Path(BASE_PYTHON).exists():
        print(f"tool-venv: not built: no {BASE_PYTHON} (the sandbox then needs tool.python, an interpreter "
              "with numpy and sympy that tool code can run)", file=sys.stderr)
        return 1
    if why:
        print(f"tool-venv: the checkout's {CHECKOUT_VENV} would be out of tool code's reach ({why}); "
              f"using the shared {venv}")
    if (venv / STAMP).exists():
        broken = _imports_ok(venv / "bin" / "python")
        if broken is None:
            print(f"tool-venv: {venv} (numpy, sympy) is ready")
            return 0
        print(f"tool-venv: {venv} no longer imports numpy and sympy ({broken}); repairing it")
        (venv / STAMP).unlink()
    try:
        build(venv)
    except (OSError, subprocess.CalledProcessError, RuntimeError) as e:
        print(f"tool-venv: could not build {venv}: {e}", file=sys.stderr)
        return 1
    why = out_of_reach(venv / "bin" / "python")
    if why:
        print(f"tool-venv: built {venv}, but tool code cannot reach it ({why}); set tool.python to an "
              "interpreter with numpy and sympy elsewhere", file=sys.stderr)
        return 1
    print(f"tool-venv: {venv} (numpy, sympy) is ready; the sandbox finds it there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
