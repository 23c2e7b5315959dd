"""Sandbox calls/s and latency per isolation level, side by side with a bare subprocess per call.

    .venv/bin/python benchmarks/bench_sandbox.py [--calls 300] [--workers 2] [--levels nsjail,bwrap,rlimits,none]

Two workloads: plain code (print(1+1)) and code that imports sympy (sympy.factorint). For each
level that starts here, and for the baseline most RL frameworks use, a fresh
`subprocess.run([python, "-c", code])` per call with the same tool interpreter (no isolation):
sequential calls/s (one at a time), pooled calls/s (`workers` at a time: run_many / a thread
pool of subprocesses), and p50 / p99 of the per-call round trip in the pooled run. Targets
(issue 11, 2 cores): pooled >= 300 calls/s plain, >= 150 calls/s sympy, p99 <= 50 ms.
The ratio column is pooled calls/s over the bare subprocess's pooled calls/s. On a loaded machine
the CPU time per call (all processes of the run) is the figure that does not depend on the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from taorl.config import ToolConfig
from taorl.tools import LEVELS, Sandbox
from taorl.tools.sandbox import level_problem, tool_python

WORKLOADS = {
    "plain": ("print(1+1)", "2\n"),
    "sympy": ("import sympy\nprint(sympy.factorint(360))", "{2: 3, 3: 2, 5: 1}\n"),
}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds of the live processes under `roots` (and their reaped children), this process
    included with its reaped children: what a run cost, whatever else the machine was doing."""
    parent, cpu = {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d)] = int(f[1])
            cpu[int(d)] = sum(int(x) for x in f[11:15]) / TICK  # utime stime cutime cstime
    total, todo = 0.0, list(roots)
    seen = set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in cpu:
            continue
        seen.add(pid)
        total += cpu[pid]
        todo += [c for c, p in parent.items() if p == pid]
    me = os.times()
    return total + me.user + me.system + me.children_user + me.children_system


def measure(run_one, run_many, code: str, want: str, calls: int, cpu) -> dict:
    for _ in range(5):  # warm-up
        assert run_one(code)[0] == want
    t0 = time.perf_counter()
    for _ in range(calls):
        out, _ = run_one(code)
        assert out == want, out
    seq_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), cpu()
    res = run_many([code] * calls)
    pool_s, cpu_ms = time.perf_counter() - t0, (cpu() - c0) * 1000 / calls
    assert all(out == want for out, _ in res), res[:3]
    lat = [ms for _, ms in res]
    return {"seq_cps": calls / seq_s, "pool_cps": calls / pool_s, "p50": statistics.median(lat), "p99": pct(lat, 0.99),
            "cpu_ms": cpu_ms}


def bare(python: str, workers: int):
    def one(code):
        t = time.perf_counter()
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60).stdout
        return out, (time.perf_counter() - t) * 1000

    pool = ThreadPoolExecutor(workers)
    return one, (lambda codes: list(pool.map(one, codes))), pool


def sandboxed(sb: Sandbox):
    def one(code):
        r = sb.run(code)
        return r.stdout, r.wall_ms

    return one, (lambda codes: [(r.stdout, r.wall_ms) for r in sb.run_many(codes)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--levels", default=",".join(LEVELS))
    ap.add_argument("--bare-sympy-calls", type=int, default=40,
                    help="calls for the bare subprocess importing sympy (each one imports it: ~0.5 s)")
    ap.add_argument("--python", default=None, help="tool interpreter (default: as the sandbox picks)")
    a = ap.parse_args()
    python = a.python or tool_python(ToolConfig())
    rows = []
    one, many, pool = bare(python, a.workers)
    for name, (code, want) in WORKLOADS.items():
        n = a.calls if name == "plain" else min(a.calls, a.bare_sympy_calls)
        rows.append({"level": "subprocess", "workload": name, "start_s": 0.0,
                     **measure(one, many, code, want, n, lambda: tree_cpu_s([]))})
    pool.shutdown()
    for level in [x.strip() for x in a.levels.split(",")]:
        why = level_problem(level)
        if why:
            print(f"{level:8s} skipped: {why}")
            continue
        t0 = time.perf_counter()
        sb = Sandbox(ToolConfig(isolation=level, workers=a.workers, python=python))
        start_s = time.perf_counter() - t0
        try:
            one, many = sandboxed(sb)
            for name, (code, want) in WORKLOADS.items():
                roots = [z.proc.pid for z in sb._all]
                rows.append({"level": level, "workload": name, "start_s": start_s,
                             **measure(one, many, code, want, a.calls, lambda roots=roots: tree_cpu_s(roots))})
        finally:
            sb.close()
    base = {r["workload"]: r["pool_cps"] for r in rows if r["level"] == "subprocess"}
    load = os.getloadavg()[0]
    print(f"\n{a.calls} calls per workload ({min(a.calls, a.bare_sympy_calls)} for the bare sympy subprocess), {a.workers} workers, {os.cpu_count()} CPUs, load average {load:.1f} "
          f"at the end, root={os.geteuid() == 0}, tool python {python}")
    print(f"{'level':10s} {'workload':8s} {'start s':>7s} {'seq calls/s':>11s} {'pool calls/s':>12s} "
          f"{'pool p50 ms':>11s} {'pool p99 ms':>11s} {'x subprocess':>12s} {'CPU ms/call':>11s} "
          f"{'idle-CPU bound calls/s':>22s}")
    for r in rows:
        print(f"{r['level']:10s} {r['workload']:8s} {r['start_s']:7.2f} {r['seq_cps']:11.0f} {r['pool_cps']:12.0f} "
              f"{r['p50']:11.1f} {r['p99']:11.1f} {r['pool_cps'] / base[r['workload']]:12.1f} {r['cpu_ms']:11.2f} "
              f"{a.workers * 1000 / max(r['cpu_ms'], 1e-9):22.0f}")
    print("CPU ms/call: CPU time of the trainer, zygotes and children per pooled call; idle-CPU bound: "
          "`workers` cores divided by it (what the pooled run would reach with those cores to itself).")


if __name__ == "__main__":
    main()
