"""The zygote: a warm tool interpreter that forks one child per code run. Standard library only.

It runs under the *tool* interpreter (Debian's /usr/bin/python3 or the tool venv), started by
taorl.tools.sandbox (as ``python -I -c <this source> <settings>``), possibly inside nsjail or
bwrap; never imported by taorl itself.

The zygote never sees a call's code or output, so it has nothing of one call to hand to the next:

    trainer --(control socket, SCM_RIGHTS)--> zygote: [call socket, code memfd, stdout, stderr]
    zygote:  new PID namespace for the child, fork, then only waits for it
    child:   new mount + IPC namespace, private tmpfs on /tmp and /dev/shm, fresh /proc, a uid
             of its own (root) or a user namespace of its own (no root), rlimits, no capabilities,
             a seccomp filter against the kernel keyring; reads its code from the memfd, runs it
    zygote --(call socket)--> trainer: the child's pidfd (the trainer enforces the wall clock and
             the output cap), then the raw wait status and rusage, from a buffer zeroed after use

The child is PID 1 of its namespace: when it ends, the kernel kills every process it left behind
and the namespace's tmpfs, SysV IPC and sockets go with it, so nothing is left to clean up. Where
namespaces cannot be made (isolation ``none``, or no user namespaces without root) the child
runs in a fresh directory that the zygote removes (iteratively, never raising) and the zygote,
a child subreaper, kills what the code left behind.

The sandbox runs this file with taorl/tools/sandbox_cleanup.py's source in front of it: that
defines ``remove_tree`` (both are standard library only).
"""

import ctypes
import errno
import gc
import io
import json
import os
import resource as R
import select
import signal
import socket
import sys
import traceback

EXIT_SYNTAX = 101  # compile() failed
EXIT_RUNTIME = 102  # uncaught exception
EXIT_MEMORY = 103  # MemoryError (or ENOMEM)
EXIT_SETUP = 104  # the child could not set itself up (a sandbox error)

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NAME = 1, 4, 15
PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 22, 38, 36
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE, MNT_DETACH = 1 << 14, 1 << 18, 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)

S = json.loads(sys.argv[1])  # settings, see sandbox._Zygote._settings
CTL = socket.socket(fileno=os.dup(0))  # the control socket from the trainer
_null = os.open(os.devnull, os.O_RDWR)
os.dup2(_null, 0)
os.dup2(2, 1)  # stray prints of the zygote go to its stderr log
CTL.set_inheritable(False)


def _check(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def _prctl(option, arg, arg2=0):
    return _libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg2), 0, 0)


def _mount(src, target, fstype, flags, data):
    _check(_libc.mount(src.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), "mount %s" % target)


# ------------------------------------------------------------------------------------ seccomp
def _seccomp_program():
    """BPF: add_key / request_key / keyctl (and every x32 call) fail with ENOSYS; all else passes.

    The kernel keyring outlives processes (a user's keyring is shared by all its processes), so
    it would carry notes from one call to the next."""
    ld_w_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | errno.ENOSYS
    x86_64, aarch64 = 0xC000003E, 0xC00000B7
    insns = [
        (ld_w_abs, 0, 0, 4),  # 0  A = arch
        (jeq, 0, 6, x86_64),  # 1  x86_64: 2, else 8
        (ld_w_abs, 0, 0, 0),  # 2  A = syscall number
        (jge, 10, 0, 0x40000000),  # 3  x32 ABI: deny
        (jeq, 9, 0, 248),  # 4  add_key
        (jeq, 8, 0, 249),  # 5  request_key
        (jeq, 7, 0, 250),  # 6  keyctl
        (ret, 0, 0, allow),  # 7
        (jeq, 0, 4, aarch64),  # 8  aarch64: 9, else 13
        (ld_w_abs, 0, 0, 0),  # 9
        (jeq, 3, 0, 217),  # 10 add_key
        (jeq, 2, 0, 218),  # 11 request_key
        (jeq, 1, 0, 219),  # 12 keyctl
        (ret, 0, 0, allow),  # 13
        (ret, 0, 0, deny),  # 14
    ]

    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]

    arr = (Insn * len(insns))(*[Insn(*i) for i in insns])
    return Prog(len(insns), arr), arr


_SECCOMP = _seccomp_program()


def _drop_capabilities():
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable x 2: all zero
    _check(_libc.capset(ctypes.byref(Header(0x20080522, 0)), data), "capset")


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
gc.collect()
gc.freeze()  # pre-imported objects leave the collector's view: no copy-on-write storm in each child

_prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the trainer (or the jail) died: so do we
_prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the code come back to us (no-namespace mode)
NET_ISOLATED = bool(S.get("net_isolated", False))  # nsjail / bwrap made a network namespace already


def _own_namespaces():
    """Level rlimits: our own network namespace; without root also our own user namespace (so we
    are root there and may make namespaces for each call) and PID namespace (so we may return to
    it after each call's fork). The process that unshared stays behind as a waiter."""
    global NET_ISOLATED
    if os.geteuid() == 0:
        NET_ISOLATED = _libc.unshare(CLONE_NEWNET) == 0
        return
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID) != 0:
        return
    for name, text in (("setgroups", "deny"), ("uid_map", "0 %d 1" % uid), ("gid_map", "0 %d 1" % gid)):
        with open("/proc/self/" + name, "w") as f:
            f.write(text)
    NET_ISOLATED = True
    pid = os.fork()
    if pid:  # the waiter: ends with the zygote (and takes it along if the trainer kills the waiter)
        CTL.close()
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


if S.get("unshare_net"):
    _own_namespaces()
_prctl(PR_SET_DUMPABLE, 0)  # no ptrace, no /proc/<pid>/{mem,fd} for anyone without CAP_SYS_PTRACE


def _can_namespace():
    """Can we give each call its own PID, mount and IPC namespace? (root, or root of a user ns
    that owns our PID namespace). Tried in a throw-away child: a half success cannot be undone."""
    if not S.get("call_namespaces", True):
        return None
    try:
        fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    pid = os.fork()
    if pid == 0:
        ok = _libc.unshare(CLONE_NEWPID) == 0 and _libc.setns(fd, CLONE_NEWPID) == 0
        ok = ok and _libc.unshare(CLONE_NEWNS | CLONE_NEWIPC) == 0
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        os.close(fd)
        return None
    return fd


OWN_PIDNS = _can_namespace()  # an fd for our own PID namespace, or None: no per-call namespaces
UID = S["uid"]  # the code's uid (root: one per zygote of the pool) or None: stay who we are
TMP_MB = int(S["tmp_mb"])
STACK = 8 * 1024 * 1024
BASE = S["base"]  # no-namespace mode: the parent of each call's directory
if OWN_PIDNS is None:
    os.makedirs(BASE, mode=0o711, exist_ok=True)
    os.chmod(BASE, 0o711)
else:
    for _d in ("/tmp", "/dev/shm"):
        try:
            os.makedirs(_d, exist_ok=True)
        except OSError:
            pass


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


def _private_mounts(workdir):
    """In the child, before the drop: its own mount + IPC namespace, tmpfs on /tmp and /dev/shm,
    a /proc that shows only its own PID namespace (where the kernel allows a fresh one)."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare(mount, ipc)")
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    owner = "" if UID is None else ",uid=%d,gid=%d" % (UID, UID)
    for target in S["tmpfs"]:  # /tmp, /dev/shm (+ host's world-writable dirs at level rlimits)
        if os.path.isdir(target):
            _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV,
                   "size=%dm,nr_inodes=%d,mode=0700%s" % (TMP_MB, S["tmp_inodes"], owner))
    _hide(S.get("hide", []), S.get("keep", []))
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    except OSError:  # an unprivileged jail whose /proc is partly covered: keep the jail's /proc
        pass
    os.mkdir(workdir, 0o700)
    if UID is not None:
        os.chown(workdir, UID, UID)


def _hide(paths, keep):
    """Level rlimits (no jail): cover `paths` (the checkout, the shared data, home directories)
    with empty read-only tmpfs, and bring back the `keep` paths below them (the tool venv)."""
    staged = []
    for i, path in enumerate(keep):
        if os.path.isdir(path):
            stage = "/tmp/.keep-%d" % i
            os.mkdir(stage, 0o755)
            _mount(path, stage, None, MS_BIND | MS_REC, None)
            staged.append((stage, path))
    hidden = []
    for path in paths:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=1000,mode=0755")
            hidden.append(path)
    for stage, path in staged:
        os.makedirs(path, 0o755, exist_ok=True)  # inside the covering tmpfs
        _mount(stage, path, None, MS_BIND | MS_REC, None)
        _libc.umount2(stage.encode(), MNT_DETACH)
        os.rmdir(stage)
    for path in hidden:
        _mount("none", path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _stage(tag):
    try:
        os.write(3, tag)
    except OSError:
        pass


def _child(fds, workdir, namespaced):
    """Runs in the forked child; never returns."""
    call_fd, code_fd, w_out, w_err, w_stage = fds
    try:
        os.close(call_fd)
        os.dup2(w_out, 1)
        os.dup2(w_err, 2)
        os.dup2(_null, 0)
        os.dup2(w_stage, 3)  # stages reached, for the trainer: closed before the code runs
        os.set_inheritable(3, False)
        os.setsid()
        if namespaced:
            _private_mounts(workdir)
        with os.fdopen(code_fd, "rb", closefd=True) as f:
            code = f.read().decode("utf-8", "surrogateescape")
        os.closerange(4, 65536)
        os.chdir(workdir)
        if UID is not None:
            os.setgroups([])
            os.setgid(UID)
            os.setuid(UID)
        if namespaced or UID is not None:
            # a user namespace of its own: RLIMIT_NPROC counts only this call's processes, and its
            # user keyring is its own (the keyring calls are also filtered below)
            _libc.unshare(CLONE_NEWUSER)
        _drop_capabilities()  # whatever we held (root of the jail's user namespace, or of the new one)
        mb = 1024 * 1024
        R.setrlimit(R.RLIMIT_CORE, (0, 0))
        R.setrlimit(R.RLIMIT_CPU, (S["cpu_s"], S["cpu_s"]))  # at the limit: SIGKILL (see classify)
        R.setrlimit(R.RLIMIT_AS, (BASE_VM + S["memory_mb"] * mb,) * 2)
        R.setrlimit(R.RLIMIT_FSIZE, (S["max_file_mb"] * mb,) * 2)
        R.setrlimit(R.RLIMIT_NOFILE, (S["max_open_files"],) * 2)
        R.setrlimit(R.RLIMIT_STACK, (STACK,) * 2)  # deep recursion ends in a fault, not an endless stack
        if namespaced or UID is not None:
            R.setrlimit(R.RLIMIT_NPROC, (S["max_procs"],) * 2)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
        _check(_prctl(PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")
        _check(_libc.prctl(PR_SET_SECCOMP, 2, ctypes.byref(_SECCOMP[0]), 0, 0), "seccomp")
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
    _stage(b"s")  # set up: an exit with EXIT_SETUP from here on is the code's own
    try:
        compiled = compile(code, "<tool>", "exec")
    except MemoryError:
        sys.stderr.write("MemoryError: out of memory while compiling (limit %d MB)\n" % S["memory_mb"])
        status = EXIT_MEMORY
    except (SyntaxError, ValueError, OverflowError, RecursionError):
        traceback.print_exc(limit=0)
        status = EXIT_SYNTAX
    else:
        _stage(b"c")  # compiled: an exit with EXIT_SYNTAX from here on is the code's own
        os.close(3)
        env = {"__name__": "__main__", "__builtins__": __builtins__, "final_answer": final_answer}
        del code
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
        except BaseException as e:
            try:
                etype, value, tb = sys.exc_info()
                traceback.print_exception(etype, value, tb.tb_next)  # hide the zygote's own frame
            except BaseException:
                pass
            status = EXIT_MEMORY if isinstance(e, OSError) and e.errno == errno.ENOMEM else EXIT_RUNTIME
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
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan /proc for our children
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            kids.append(int(d))
                except (OSError, IndexError, ValueError):
                    pass
        return kids


def _kill_descendants():
    """SIGKILL every descendant; killing one re-parents its children to us, so repeat until none."""
    for _ in range(100000):
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


class _Rusage(ctypes.Structure):
    _fields_ = [("utime_s", ctypes.c_long), ("utime_us", ctypes.c_long), ("stime_s", ctypes.c_long),
                ("stime_us", ctypes.c_long), ("rest", ctypes.c_long * 14)]


class _Answer(ctypes.Structure):
    """What the trainer gets after the child ended: raw wait status, CPU time, whether the leftover
    files were removed. Written from this buffer and zeroed after, so no Python object of ours
    ever held a call's result."""
    _fields_ = [("status", ctypes.c_int), ("cleaned", ctypes.c_int), ("usage", _Rusage)]


_ANSWER = _Answer()
_libc.wait4.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)


def _one_call(fds, n):
    """One call: fork the child with the trainer's fds, hand back its pidfd, wait, answer."""
    namespaced = OWN_PIDNS is not None
    workdir = "/tmp/work" if namespaced else os.path.join(BASE, "call-%d" % n)
    if not namespaced:
        remove_tree(workdir)  # noqa: F821 (module doc)
        os.mkdir(workdir, 0o700)
        if UID is not None:
            os.chown(workdir, UID, UID)
    if namespaced:
        _check(_libc.unshare(CLONE_NEWPID), "unshare(pid)")  # the child is PID 1 of a new one
    pid = -1
    try:
        pid = os.fork()
    finally:
        if pid != 0 and namespaced and _libc.setns(OWN_PIDNS, CLONE_NEWPID) != 0:
            os._exit(EXIT_SETUP)  # cannot go back: the trainer starts a fresh zygote
    if pid == 0:
        try:
            _child(fds, workdir, namespaced)
        finally:
            os._exit(EXIT_SETUP)
    for fd in fds[1:]:
        os.close(fd)
    del fds[1:]
    call = socket.socket(fileno=fds.pop())
    pidfd = os.pidfd_open(pid)
    try:
        socket.send_fds(call, [b"p"], [pidfd])  # the trainer kills the child at its deadline
        # wait for the child; anything on the sockets meanwhile means the trainer gave up or is gone
        ready, _, _ = select.select([pidfd, call, CTL], [], [])
        if pidfd not in ready:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
    _libc.wait4(pid, ctypes.addressof(_ANSWER), 0, ctypes.addressof(_ANSWER.usage))
    if not namespaced:
        _kill_descendants()  # processes that left the session (setsid) or outlived the child
        _ANSWER.cleaned = 1 if remove_tree(workdir) else 0  # noqa: F821 (module doc)
    else:
        _ANSWER.cleaned = 1  # the tmpfs went with the namespace
    try:
        call.sendall(memoryview(_ANSWER).cast("B"))
    except OSError:
        pass
    ctypes.memset(ctypes.byref(_ANSWER), 0, ctypes.sizeof(_ANSWER))
    call.close()


def main():
    info = {"ready": True, "pid": os.getpid(), "uid": os.geteuid(), "python": sys.version.split()[0],
            "executable": sys.executable, "preloaded": PRELOADED, "net_isolated": NET_ISOLATED,
            "call_namespaces": OWN_PIDNS is not None, "answer_size": ctypes.sizeof(_Answer)}
    CTL.sendall((json.dumps(info) + "\n").encode())
    n = 0
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(CTL, 1, 5)
        except OSError:
            break
        if not msg:  # EOF: the trainer closed the sandbox
            break
        n += 1
        if len(fds) != 5:
            for fd in fds:
                os.close(fd)
            continue
        try:
            _one_call(fds, n)  # closes every fd it was given
        except Exception as e:  # the zygote itself failed: the trainer sees the call socket close
            try:
                os.write(2, ("zygote: %s: %s\n" % (type(e).__name__, e)).encode())
            except OSError:
                pass
            _kill_descendants()
            for fd in fds:  # those _one_call did not get to
                try:
                    os.close(fd)
                except OSError:
                    pass
        del msg, fds
    _kill_descendants()
    if OWN_PIDNS is None:
        remove_tree(BASE)  # noqa: F821 (module doc)


if __name__ == "__main__":
    main()
