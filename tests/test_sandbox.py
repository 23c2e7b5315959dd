"""The sandboxed Python tool against a corpus of hostile and ordinary code, at every isolation level.

Each case checks the status, that the test process and the pool survive (the next call works) and
that nothing outside the sandbox changed. Levels this machine cannot run are skipped with the reason.
"""

import logging
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from taorl.config import ToolConfig
from taorl.tools import Sandbox, SandboxUnavailable, classify
from taorl.tools import sandbox as sbmod

CFG = dict(timeout_s=1.5, cpu_s=1, memory_mb=64, max_procs=32, workers=2)
JAILED = ("nsjail", "bwrap")
ROOT = os.geteuid() == 0


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


def ok_after(box):
    """The pool still works after whatever ran before."""
    r = box.run("print(6*7)")
    assert (r.status, r.stdout) == ("ok", "42\n")


def pids_of_uids(lo, hi):
    """Host pids whose real uid is in [lo, hi) (the sandbox's pool of code uids)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                status = Path(f"/proc/{d}/status").read_text()
            except OSError:
                continue
            uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
            if lo <= int(uid) < hi:
                pids.append(int(d))
    return pids


def wait_until(pred, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# ---------------------------------------------------------------------------------- ordinary code
def test_ok_and_final_answer(sb):
    r = sb.run("print(17*23)")
    assert (r.status, r.stdout, r.stderr_last) == ("ok", "391\n", "")
    assert 0 < r.wall_ms < 1500
    r = sb.run("final_answer(17*23)")
    assert (r.status, r.stdout) == ("ok", "\\boxed{391}\n")


def test_statuses_of_plain_failures(sb):
    r = sb.run("x = (1,")
    assert r.status == "syntax_error" and r.stderr_last.startswith("SyntaxError")
    r = sb.run("print('before')\n1/0")
    assert r.status == "runtime_error" and r.stderr_last == "ZeroDivisionError: division by zero"
    assert r.stdout == "before\n"
    r = sb.run("x = 1")
    assert (r.status, r.stdout) == ("no_output", "")
    r = sb.run("import os\nprint('bye', flush=True)\nos._exit(0)")
    assert (r.status, r.stdout) == ("ok", "bye\n")
    r = sb.run("import os\nos._exit(0)")
    assert r.status == "no_output"
    r = sb.run("import os\nos._exit(3)")
    assert r.status == "runtime_error" and r.stderr_last == "exit status 3"
    r = sb.run("import sys\nsys.exit('bad input')")
    assert r.status == "runtime_error" and r.stderr_last == "bad input"
    r = sb.run("def f(n):\n    return f(n + 1)\nf(0)")
    assert r.status == "runtime_error" and r.stderr_last.startswith("RecursionError")
    ok_after(sb)


def test_numpy_sympy_are_usable_at_every_level(sb):
    assert {"numpy", "sympy"} <= set(sb.preloaded)  # the default tool interpreter always has both
    r = sb.run("import sympy, numpy as np\nprint(sympy.factorint(360), int(np.arange(5).sum()))")
    assert (r.status, r.stdout) == ("ok", "{2: 3, 3: 2, 5: 1} 10\n")
    # modules no zygote pre-imports: read from the tool venv's files as the code's own uid
    r = sb.run("import numpy.polynomial as P, sympy.combinatorics as C\nprint(P.Polynomial([1, 2]).degree(), "
               "C.Permutation([1, 0, 2]).order())")
    assert (r.status, r.stdout) == ("ok", "1 2\n")


def test_fresh_working_dir_and_scrubbed_env(sb):
    r = sb.run("import os\nopen('note.txt', 'w').write('x')\nprint(sorted(os.listdir('.')), 'TAORL_SECRET' in os.environ)")
    assert r.stdout == "['note.txt'] False\n"
    r = sb.run("import os\nprint(os.listdir('.'), os.getcwd() == os.environ['HOME'])")
    assert r.stdout == "[] True\n"  # the next call starts in an empty directory again


# ---------------------------------------------------------------------------------- resource abuse
def test_infinite_loop_is_a_timeout(sb):
    t0 = time.monotonic()
    r = sb.run("while True:\n    pass")
    assert r.status == "timeout" and r.stderr_last.startswith("TimeoutError")
    assert time.monotonic() - t0 < 4.0
    r = sb.run("import time\nprint('start', flush=True)\ntime.sleep(30)")  # wall clock, no CPU used
    assert r.status == "timeout" and r.stdout == "start\n"
    ok_after(sb)


def test_memory_bomb(sb):
    r = sb.run("x = bytearray(4 * 1024**3)")
    assert r.status == "memory" and "MemoryError" in r.stderr_last
    r = sb.run("x = []\nwhile True:\n    x.append(bytearray(10**7))")
    assert r.status == "memory"
    ok_after(sb)


def test_flooding_stdout(sb):
    r = sb.run("while True:\n    print('y' * 1000)")
    assert r.status == "output_truncated"
    assert r.stdout == ("y" * 1000 + "\n") * 8 + "y" * (8192 - 8008)  # exactly max_output_chars=8192
    r = sb.run("print('z' * 10000)")  # a program that finishes with output over the cap
    assert r.status == "output_truncated" and r.stdout == "z" * 8192 and r.stderr_last == ""
    ok_after(sb)


def test_busy_children_do_not_outlive_the_call(sb):
    tag = "tb" + uuid.uuid4().hex[:10]
    code = textwrap.dedent(f"""
        import ctypes, os
        for i in range(3):
            if os.fork() == 0:
                os.setsid()  # leave the call's process group on purpose
                ctypes.CDLL(None).prctl(15, b"{tag}", 0, 0, 0)
                if os.fork() == 0:
                    while True:
                        pass
                while True:
                    pass
        print("spawned")
    """)
    r = sb.run(code)
    assert (r.status, r.stdout) == ("ok", "spawned\n")

    def tagged():
        found = []
        for d in os.listdir("/proc"):
            try:
                if d.isdigit() and Path(f"/proc/{d}/comm").read_text().strip() == tag:
                    found.append(d)
            except OSError:
                pass
        return found

    assert wait_until(lambda: not tagged(), 2.0), f"children survived: {tagged()}"
    ok_after(sb)


def test_fork_bomb(sb):
    if not (ROOT and sb.isolation != "none"):
        pytest.skip("checks the pool of code uids, which only root has (without root: test_sandbox_attacks)")
    pool = (sb._uid_base, sb._uid_base + len(sb._all))
    r = sb.run("import os\nwhile True:\n    os.fork()")
    assert r.status in ("runtime_error", "timeout")
    assert pids_of_uids(*pool) == []  # gone before the answer came back
    ok_after(sb)


def test_killing_its_parent(sb):
    before = [z.proc.pid for z in sb._all]
    r = sb.run("import os\nppid = os.getppid()\nprint(ppid)\nif ppid:\n    os.kill(ppid, 9)\nprint('alive')")
    if sb.call_namespaces:  # PID 1 of its own namespace: the zygote has no pid it could name
        assert (r.status, r.stdout) == ("ok", "0\nalive\n")
        assert [z.proc.pid for z in sb._all] == before
    elif sb.isolation == "none" and ROOT:  # same uid as the zygote: the zygote dies, the pool replaces it
        assert r.status in ("sandbox_error", "ok")
    ok_after(sb)
    ok_after(sb)


def test_zygote_killed_from_outside_is_replaced(sb):
    for z in sb._all:
        os.killpg(z.proc.pid, 9)
        z.proc.wait()
    res = sb.run_many(["print(1)", "print(2)"])
    assert [(r.status, r.stdout) for r in res] == [("ok", "1\n"), ("ok", "2\n")]


# ---------------------------------------------------------------------------------- isolation
@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def test_no_network(sb, listener):
    if not sb.net_isolated:
        pytest.skip(f"isolation={sb.isolation} leaves the network open")
    port = listener.getsockname()[1]
    r = sb.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')")
    assert r.status == "runtime_error" and r.stdout == ""
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody reached us
    r = sb.run("import socket\nsocket.getaddrinfo('example.com', 80)")
    assert r.status == "runtime_error"


@pytest.fixture
def host_dirs():
    """A root-owned 0755 dir holding a 0600 secret, and a world-writable 0777 dir (outside /tmp)."""
    base = Path(tempfile.mkdtemp(prefix="taorl-sbtest-", dir="/var/tmp"))
    base.chmod(0o755)
    secret = base / "secret.txt"
    secret.write_text("TOPSECRET-" + uuid.uuid4().hex)
    secret.chmod(0o600)
    open_dir = base / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    yield base, secret, open_dir
    subprocess.run(["rm", "-rf", str(base)], check=False)


def test_cannot_read_a_root_only_file(sb, host_dirs, tmp_path):
    if not ROOT or sb.isolation == "none":
        pytest.skip("without a uid of its own the code reads what the trainer reads (README table)")
    _, secret, _ = host_dirs
    tmp_secret = tmp_path / "secret2.txt"  # under pytest's root-only /tmp/pytest-of-root
    tmp_secret.write_text(secret.read_text())
    for path in (secret, tmp_secret):
        r = sb.run(f"print(open({str(path)!r}).read())")
        assert r.status == "runtime_error" and secret.read_text() not in r.stdout
        assert r.stderr_last.startswith(("PermissionError", "FileNotFoundError"))
    r = sb.run("print(open('/usr/lib/os-release').read() != '')")  # world-readable system files stay readable
    assert r.stdout == "True\n"


def test_cannot_write_outside_its_dir(sb, host_dirs):
    if not ROOT or sb.isolation == "none":
        pytest.skip("without a uid of its own the code writes what the trainer writes (README table)")
    base, _, open_dir = host_dirs
    # jailed levels: read-only file system even for a world-writable dir; rlimits: permissions only
    target = (open_dir if sb.isolation in JAILED else base) / "planted.txt"
    r = sb.run(f"open({str(target)!r}, 'w').write('x')")
    assert r.status == "runtime_error"
    assert r.stderr_last.startswith(("OSError: [Errno 30]", "PermissionError", "FileNotFoundError"))
    assert not target.exists()
    assert sorted(p.name for p in base.iterdir()) == ["open", "secret.txt"]
    if sb.isolation in JAILED:  # the host's /tmp is not visible, and writing to /tmp stays inside
        name = "taorl-planted-" + uuid.uuid4().hex
        r = sb.run(f"open('/tmp/{name}', 'w').write('x')\nprint('ok')")
        assert not Path("/tmp", name).exists()


# ---------------------------------------------------------------------------------- the pool
def test_run_many_is_concurrent_and_ordered(sb):
    codes = [f"import time\ntime.sleep(0.3)\nprint({i})" for i in range(6)]
    t0 = time.monotonic()
    res = sb.run_many(codes)
    elapsed = time.monotonic() - t0
    assert [r.stdout for r in res] == [f"{i}\n" for i in range(6)]
    assert elapsed < 1.5, f"6 x 0.3 s on 2 workers took {elapsed:.2f} s"  # sequential: 1.8 s


def test_closing_removes_its_files():
    with Sandbox(ToolConfig(isolation="rlimits", **{**CFG, "workers": 1})) as box:
        base = box._host_base
        assert box.run("open('f', 'w').write('x')").status == "no_output"
        assert Path(base).exists()
    assert not Path(base).exists()


def test_zygotes_die_with_the_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        from taorl.config import ToolConfig
        from taorl.tools import Sandbox
        sb = Sandbox(ToolConfig(isolation="rlimits", workers=2, timeout_s=5))
        print(sb._host_base, " ".join(str(z.proc.pid) for z in sb._all), flush=True)
        sb.run("import time; time.sleep(0.01)")
        os.kill(os.getpid(), 9)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    host_base, *pids = out.stdout.split()
    pids = [int(p) for p in pids]
    assert len(pids) in (2, 4)  # lean (+ full, when the tool interpreter has numpy/sympy) zygotes

    def gone():
        return not any(Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]
                       for p in pids)
    assert wait_until(gone, 5.0)
    # nothing of the calls is left (their tmpfs went with them); only the (empty) logs remain
    logs = [f"zygote-{i}.log" for i in range(len(pids))]
    assert wait_until(lambda: sorted(p.name for p in Path(host_base).iterdir()) == logs)
    subprocess.run(["rm", "-rf", host_base], check=True)


# ---------------------------------------------------------------------------------- fallback
def test_auto_falls_back_with_a_warning(monkeypatch, caplog):
    real = sbmod.level_problem
    monkeypatch.setattr(sbmod, "level_problem",
                        lambda lvl: "disabled by the test" if lvl in JAILED else real(lvl))
    with caplog.at_level(logging.INFO, logger="taorl.tools.sandbox"):
        with Sandbox(ToolConfig(isolation="auto", **{**CFG, "workers": 1})) as box:
            assert box.isolation == "rlimits"
            assert box.run("print(1)").stdout == "1\n"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("nsjail unavailable (disabled by the test)" in w for w in warnings)
    assert any("bwrap unavailable (disabled by the test)" in w for w in warnings)
    assert any("isolation=rlimits" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_a_level_that_cannot_start_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(sbmod, "level_problem", lambda lvl: None)
    monkeypatch.setattr(sbmod, "nsjail_binary", lambda: "/bin/false")  # starts, exits at once
    with caplog.at_level(logging.WARNING, logger="taorl.tools.sandbox"):
        with Sandbox(ToolConfig(isolation="auto", **{**CFG, "workers": 1})) as box:
            assert box.isolation != "nsjail"
    assert any("isolation nsjail unavailable" in r.getMessage() for r in caplog.records)


def test_each_unprotected_thing_is_one_warning_line(caplog):
    with caplog.at_level(logging.WARNING, logger="taorl.tools.sandbox"):
        with Sandbox(ToolConfig(isolation="none", **{**CFG, "workers": 1})) as box:
            assert box.isolation == "none" and not box.call_namespaces and not box.net_isolated
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "sandbox: isolation=none: tool code can reach the network" in warnings
    assert any(w.startswith("sandbox: isolation=none: no per-call namespaces") for w in warnings)
    assert any(w.startswith("sandbox: isolation=none: tool code sees the host file system, the checkout")
               for w in warnings)
    assert all("\n" not in w for w in warnings)


def test_without_user_namespaces_the_jails_say_why(monkeypatch):
    monkeypatch.setattr(sbmod.os, "geteuid", lambda: 1000)
    real = sbmod.Path.read_text
    monkeypatch.setattr(sbmod.Path, "read_text", lambda self, *a, **k: "0" if str(self).endswith(
        "unprivileged_userns_clone") else real(self, *a, **k))
    assert sbmod.level_problem("bwrap") == ("needs root or unprivileged user namespaces, which this kernel "
                                            "refuses (kernel.unprivileged_userns_clone=0)")


def test_explicit_unavailable_level_raises(monkeypatch):
    monkeypatch.setattr(sbmod, "level_problem", lambda lvl: "no nsjail binary (test)" if lvl == "nsjail" else None)
    with pytest.raises(SandboxUnavailable, match="tool.isolation=nsjail: unavailable here: no nsjail binary"):
        Sandbox(ToolConfig(isolation="nsjail", **CFG))


# ---------------------------------------------------------------------------------- classification
def raw(**kw):
    base = {"exit": 0, "timed_out": False, "flood": False, "stdout": "", "stdout_bytes": 0,
            "stderr_tail": "", "wall_ms": 3.0, "cpu_s": 0.01}
    base.update(kw)
    return base


@pytest.mark.parametrize("answer,status,line", [
    (raw(stdout="2\n", stdout_bytes=2), "ok", ""),
    (raw(stdout=" \n", stdout_bytes=2), "no_output", ""),
    (raw(exit=101, stderr_tail="  File x\nSyntaxError: bad\n\n"), "syntax_error", "SyntaxError: bad"),
    (raw(exit=102, stderr_tail="Traceback\nKeyError: 1\n"), "runtime_error", "KeyError: 1"),
    (raw(exit=103, stderr_tail="MemoryError: out of memory\n"), "memory", "MemoryError: out of memory"),
    (raw(exit=1, stderr_tail="Traceback\nMemoryError\n"), "memory", "MemoryError"),
    (raw(exit=-9, timed_out=True), "timeout", "TimeoutError: execution exceeded the 2 s time limit"),
    (raw(exit=-9, cpu_s=1.0), "timeout", "TimeoutError: execution exceeded the 1 s CPU time limit"),
    (raw(exit=-24, cpu_s=0.99), "timeout", "TimeoutError: execution exceeded the 1 s CPU time limit"),
    (raw(exit=-9, cpu_s=0.2), "runtime_error", "killed by signal SIGKILL"),  # not the CPU limit: not "memory"
    (raw(exit=1101, stderr_tail=""), "runtime_error", "exit status 101"),  # the code's own os._exit(101)
    (raw(exit=1104, stderr_tail=""), "runtime_error", "exit status 104"),
    (raw(exit=102, stderr_tail="Traceback\nOSError: [Errno 12] Cannot allocate memory\n"), "runtime_error",
     "OSError: [Errno 12] Cannot allocate memory"),  # the child reports ENOMEM as 103 (tested live)
    (raw(exit=-11), "runtime_error", "killed by signal SIGSEGV"),
    (raw(exit=104, stderr_tail="SandboxError: setuid failed\n"), "sandbox_error", "SandboxError: setuid failed"),
    (raw(exit=-9, flood=True, stdout="y" * 100, stdout_bytes=10**7), "output_truncated",
     "output limit exceeded: stopped after 10000000 bytes"),
    (raw(stdout="a" * 100, stdout_bytes=300), "output_truncated", ""),
    ({"error": "OSError: boom"}, "sandbox_error", "SandboxError: OSError: boom"),
])
def test_classify(answer, status, line):
    cfg = ToolConfig(cpu_s=1, max_output_chars=64)
    r = classify(answer, cfg, timeout_s=2.0)
    assert (r.status, r.stderr_last) == (status, line)
    if status == "output_truncated":
        assert len(r.stdout) == 64
