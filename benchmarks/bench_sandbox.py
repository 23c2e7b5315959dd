"""Sandbox throughput and latency per isolation level, on trivial code (print(1+1)).

    .venv/bin/python benchmarks/bench_sandbox.py [--calls 200] [--workers 2] [--levels nsjail,bwrap,rlimits,none]

For each level that starts here: zygote start-up time, then sequential calls (one at a time) and
pooled calls (run_many over `workers` zygotes): calls/s, p50 and p99 of the per-call round trip as
seen by the caller (sequential) and of the in-zygote wall time. Targets: >= 200 calls/s on 2
cores, p50 <= 20 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

from taorl.config import ToolConfig
from taorl.tools import LEVELS, Sandbox
from taorl.tools.sandbox import level_problem

CODE = "print(1+1)"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def bench(level: str, calls: int, workers: int, python: str | None = None) -> dict | None:
    why = level_problem(level)
    if why:
        print(f"{level:8s} skipped: {why}")
        return None
    t0 = time.perf_counter()
    sb = Sandbox(ToolConfig(isolation=level, workers=workers, python=python))
    start_s = time.perf_counter() - t0
    try:
        for _ in range(10):  # warm-up
            sb.run(CODE)
        lat = []
        t0 = time.perf_counter()
        for _ in range(calls):
            t = time.perf_counter()
            r = sb.run(CODE)
            lat.append((time.perf_counter() - t) * 1000)
            assert r.status == "ok" and r.stdout == "2\n", r
        seq_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = sb.run_many([CODE] * calls)
        pool_s = time.perf_counter() - t0
        assert all(r.status == "ok" for r in res)
        inner = [r.wall_ms for r in res]
        return {"level": level, "start_s": start_s, "preloaded": ",".join(m for m in sb.preloaded if m in ("numpy", "sympy")),
                "seq_cps": calls / seq_s, "seq_p50": statistics.median(lat), "seq_p99": pct(lat, 0.99),
                "pool_cps": calls / pool_s, "inner_p50": statistics.median(inner), "inner_p99": pct(inner, 0.99)}
    finally:
        sb.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--levels", default=",".join(LEVELS))
    ap.add_argument("--python", default=None, help="tool interpreter (default: as the sandbox picks)")
    a = ap.parse_args()
    rows = [r for lvl in a.levels.split(",") if (r := bench(lvl.strip(), a.calls, a.workers, a.python))]
    print(f"\n{a.calls} calls of {CODE!r}, {a.workers} workers (pre-imported: {rows[0]['preloaded'] if rows else '-'})")
    print(f"{'level':8s} {'start s':>8s} {'seq calls/s':>12s} {'seq p50 ms':>11s} {'seq p99 ms':>11s} "
          f"{'pool calls/s':>13s} {'child p50 ms':>13s} {'child p99 ms':>13s}")
    for r in rows:
        print(f"{r['level']:8s} {r['start_s']:8.2f} {r['seq_cps']:12.0f} {r['seq_p50']:11.1f} {r['seq_p99']:11.1f} "
              f"{r['pool_cps']:13.0f} {r['inner_p50']:13.1f} {r['inner_p99']:13.1f}")


if __name__ == "__main__":
    main()
