"""The zygote: a warm tool interpreter that forks one child per code run. Standard library only.

It runs under the *tool* interpreter (Debian's /usr/bin/python3 or the tool venv), started by
taorl.tools.sandbox, possibly inside nsjail or bwrap, never imported by taorl itself.

Protocol (one JSON object per line): argv[1] is the settings object; the zygote answers
``{"ready": ...}`` once warm, then reads requests ``{"code", "timeout_s"}`` on stdin and writes one
result ``{"exit", "timed_out", "flood", "stdout", "stdout_bytes", "stderr_tail", "wall_ms"}`` per
request on stdout. EOF on stdin: kill everything still running, clean up, exit.

One run:  fork -> child: setsid, fresh working dir, rlimits, drop to uid 65534, scrubbed
environment, stdout/stderr to pipes, ``exec`` of the code with ``final_answer`` defined.
The zygote waits on (stdout, stderr, pidfd, stdin) with a wall-clock deadline, then kills the
child's process group and, being a child subreaper, every process the code left behind.
"""

import ctypes
import gc
import io
import json
import os
import select
import shutil
import signal
import sys
import time
import traceback

EXIT_SYNTAX = 101  # compile() failed
EXIT_RUNTIME = 102  # uncaught exception
EXIT_MEMORY = 103  # MemoryError
EXIT_SETUP = 104  # the child could not set itself up (a sandbox error)

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)

S = json.loads(sys.argv[1])  # settings, see sandbox._zygote_settings
REQ_FD = os.dup(0)  # requests in
RESP_FD = os.dup(1)  # results out
_null = os.open(os.devnull, os.O_RDWR)
os.dup2(_null, 0)
os.dup2(2, 1)  # stray prints of the zygote go to its stderr log, never into the protocol
os.set_inheritable(REQ_FD, False)
os.set_inheritable(RESP_FD, False)


def _prctl(option, arg):
    return _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0)


def _send(obj):
    data = (json.dumps(obj) + "\n").encode()
    while data:
        n = os.write(RESP_FD, data)
        data = data[n:]


# ------------------------------------------------------------------------------------ warm-up
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = "1"  # threads count against RLIMIT_NPROC, and two cores are shared
PRELOADED = []
for _mod in S["preload"]:
    try:
        __import__(_mod)
        PRELOADED.append(_mod)
    except Exception:  # absent from this interpreter: the tool runs without it
        pass
if "numpy" in sys.modules:
    pass  # numpy 2 loads it lazily; each child re-seeds it below
gc.collect()
gc.freeze()  # pre-imported objects leave the collector's view: no copy-on-write storm in each child

_prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the code are re-parented to us, so we can kill them
NET_ISOLATED = bool(S.get("net_isolated", False))  # nsjail / bwrap made a network namespace already
if S.get("unshare_net"):
    flags = CLONE_NEWNET if os.geteuid() == 0 else (CLONE_NEWUSER | CLONE_NEWNET)
    NET_ISOLATED = _libc.unshare(flags) == 0

BASE = S["base"]
os.makedirs(BASE, mode=0o711, exist_ok=True)
os.chmod(BASE, 0o711)
UID = S["uid"]  # None: run the code as ourselves
KEEP_OUT = int(S["out_keep"])  # stdout bytes kept
HARD_OUT = int(S["out_hard"])  # stdout+stderr bytes after which the run is stopped
ERR_KEEP = 16384
STACK = 8 * 1024 * 1024


def _vm_size():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


BASE_VM = _vm_size()  # the pre-loaded interpreter's address space; memory_mb comes on top


# ------------------------------------------------------------------------------------ the child
def final_answer(x):
    """Print the final answer as \\boxed{x} (the episode ends when an observation contains it)."""
    print("\\boxed{" + str(x) + "}")


def _child(code, workdir, w_out, w_err):
    """Runs in the forked child; never returns."""
    try:
        os.setsid()
        os.dup2(w_out, 1)
        os.dup2(w_err, 2)
        os.dup2(_null, 0)
        os.closerange(3, 65536)
        os.chdir(workdir)
        import resource as R

        mb = 1024 * 1024
        R.setrlimit(R.RLIMIT_CORE, (0, 0))
        R.setrlimit(R.RLIMIT_CPU, (S["cpu_s"], S["cpu_s"] + 1))
        R.setrlimit(R.RLIMIT_AS, (BASE_VM + S["memory_mb"] * mb,) * 2)
        R.setrlimit(R.RLIMIT_FSIZE, (S["max_file_mb"] * mb,) * 2)
        R.setrlimit(R.RLIMIT_NOFILE, (S["max_open_files"],) * 2)
        R.setrlimit(R.RLIMIT_STACK, (STACK,) * 2)  # deep recursion ends in a fault, not an endless stack
        if UID is not None:
            # RLIMIT_NPROC counts every process of the uid; it binds only for a non-root uid
            R.setrlimit(R.RLIMIT_NPROC, (S["max_procs"],) * 2)
            os.setgroups([])
            os.setgid(UID)
            os.setuid(UID)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
        os.environ.clear()
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
                           "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                           "MKL_NUM_THREADS": "1"})
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.argv = ["<tool>"]
        sys.path.insert(0, workdir)
        if "numpy" in sys.modules:  # forked children would otherwise share one numpy random state
            sys.modules["numpy"].random.seed(None)
    except BaseException:
        try:
            os.write(2, ("SandboxError: " + traceback.format_exc().strip().splitlines()[-1] + "\n").encode())
        finally:
            os._exit(EXIT_SETUP)

    status = 0
    try:
        compiled = compile(code, "<tool>", "exec")
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
        traceback.print_exc(limit=0)
        status = EXIT_SYNTAX
    else:
        env = {"__name__": "__main__", "__builtins__": __builtins__, "final_answer": final_answer}
        try:
            exec(compiled, env)
        except SystemExit as e:
            if e.code is None or e.code == 0:
                status = 0
            elif isinstance(e.code, int):
                status = e.code if 0 < e.code < 256 and e.code not in (EXIT_SYNTAX, EXIT_MEMORY, EXIT_SETUP) \
                    else EXIT_RUNTIME
            else:
                print(e.code, file=sys.stderr)
                status = 1
        except MemoryError:
            status = EXIT_MEMORY
            try:
                sys.stderr.write("MemoryError: out of memory (limit %d MB)\n" % S["memory_mb"])
            except BaseException:
                pass
        except BaseException:
            try:
                etype, value, tb = sys.exc_info()
                traceback.print_exception(etype, value, tb.tb_next)  # hide the zygote's own frame
            except BaseException:
                pass
            status = EXIT_RUNTIME
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(status)


# ------------------------------------------------------------------------------------ the parent
def _children():
    """Pids of our direct children (re-parented orphans included)."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan /proc for our children
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            kids.append(int(d))
                except (OSError, IndexError, ValueError):
                    pass
        return kids


def _kill_descendants():
    """SIGKILL every descendant; killing one re-parents its children to us, so repeat until none."""
    for _ in range(10000):
        kids = _children()
        if not kids:
            return
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for k in kids:
            try:
                os.waitpid(k, 0)
            except ChildProcessError:
                pass


def _read_request(buf):
    """One request line (bytes) or None at EOF; buf holds bytes already read."""
    while b"\n" not in buf:
        data = os.read(REQ_FD, 1 << 20)
        if not data:
            return None
        buf += data
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line


def _run(code, timeout_s, n):
    workdir = os.path.join(BASE, "call-%d" % n)
    shutil.rmtree(workdir, ignore_errors=True)
    os.mkdir(workdir, 0o700)
    if UID is not None:
        os.chown(workdir, UID, UID)
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _child(code, workdir, w_out, w_err)
        finally:
            os._exit(EXIT_SETUP)
    os.close(w_out)
    os.close(w_err)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    out, err = bytearray(), bytearray()
    counts = {r_out: 0, r_err: 0}
    open_fds = [r_out, r_err]
    deadline = t0 + timeout_s
    timed_out = flood = parent_gone = exited = False

    def take(fd, data):
        counts[fd] += len(data)
        if fd == r_out:
            if len(out) < KEEP_OUT:
                out.extend(data[: KEEP_OUT - len(out)])
        else:
            err.extend(data)
            del err[:-ERR_KEEP]

    while True:
        wait = deadline - time.monotonic()
        if wait <= 0:
            timed_out = True
            break
        watch = open_fds + [REQ_FD] + ([pidfd] if pidfd is not None else [])
        ready, _, _ = select.select(watch, [], [], wait if pidfd is not None else min(wait, 0.005))
        if REQ_FD in ready:  # the parent never writes during a run: this is EOF, the parent is gone
            parent_gone = True
            break
        for fd in (r_out, r_err):
            if fd in ready:
                data = os.read(fd, 1 << 16)
                if data:
                    take(fd, data)
                else:
                    open_fds.remove(fd)
        if counts[r_out] + counts[r_err] > HARD_OUT:
            flood = True
            break
        if pidfd is None:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                exited = True
                status = _
                break
        elif pidfd in ready:
            exited = True
            break
    try:
        os.killpg(pid, signal.SIGKILL)  # the child's session: itself and what it forked
    except (ProcessLookupError, PermissionError):
        pass
    if not (exited and pidfd is None):
        _, status = os.waitpid(pid, 0)
    wall_ms = (time.monotonic() - t0) * 1000.0
    _kill_descendants()  # processes that left the session (setsid) or outlived the child
    for fd in (r_out, r_err):  # every writer is dead now: read what is left up to EOF
        if fd in open_fds:
            while True:
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                if counts[r_out] + counts[r_err] <= HARD_OUT:
                    take(fd, data)
                else:
                    flood = True
        os.close(fd)
    if pidfd is not None:
        os.close(pidfd)
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
        "flood": flood,
        "parent_gone": parent_gone,
        "stdout": out.decode("utf-8", "replace"),
        "stdout_bytes": counts[r_out],
        "stderr_tail": err.decode("utf-8", "replace"),
        "wall_ms": wall_ms,
    }


def main():
    _send({"ready": True, "pid": os.getpid(), "uid": os.geteuid(), "python": sys.version.split()[0],
           "executable": sys.executable, "preloaded": PRELOADED, "net_isolated": NET_ISOLATED})
    buf = bytearray()
    n = 0
    while True:
        line = _read_request(buf)
        if line is None:
            break
        req = json.loads(line)
        n += 1
        try:
            res = _run(req["code"], float(req["timeout_s"]), n)
        except Exception as e:  # the zygote itself failed: report it, stay alive
            _kill_descendants()
            res = {"error": "%s: %s" % (type(e).__name__, e)}
        if res.get("parent_gone"):
            break
        _send(res)
    _kill_descendants()
    shutil.rmtree(BASE, ignore_errors=True)


if __name__ == "__main__":
    main()
