"""Store benchmark and load generator: `python -m taorl.store.bench [--steps 1000] [--traj 256]`.

Writes a run of `steps` steps x `traj` trajectories (filler values, real Parquet through
RunWriter), then times the readers the dashboard uses. `fake_tables` is also the writer side of
the concurrency test (tests/test_store_concurrency.py): step s holds k rows of groups, 2k of
trajectories and 3k of tokens, and metrics {"k": k, "s": s}, so a reader can check that every
visible step is complete.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl

from taorl.store.schema import GROUPS, TOKENS, TRAJECTORIES


def fake_tables(step: int, k: int, tok_per_traj: int = 3) -> dict[str, pl.DataFrame]:
    """groups: k rows; trajectories: 2k rows; tokens: tok_per_traj * k rows (trajs 0..k-1)."""
    g = pl.DataFrame({
        "group": range(k), "problem_id": [f"p{step}-{i}" for i in range(k)], "problem": ["q"] * k,
        "answer": ["1"] * k, "rewards": [[1.0, 0.0]] * k, "pass_rate": [0.5] * k, "reward_std": [0.5] * k,
        "n_untruncated": [2] * k, "kept": [True] * k, "reason": [None] * k, "duplicates": [0] * k,
    }, schema=GROUPS)
    n = 2 * k
    t = pl.DataFrame({
        "traj": range(n), "group": [i // 2 for i in range(n)], "index": [i % 2 for i in range(n)],
        "problem_id": [f"p{step}-{i // 2}" for i in range(n)], "reward": [float(i % 2) for i in range(n)],
        "reward_info": ["1"] * n, "n_turns": [2] * n, "n_call": [1] * n, "n_ok": [1] * n,
        "statuses": [["ok"]] * n, "call_ms": [[2.0]] * n, "void": [False] * n, "truncated": [False] * n,
        "finish": ["answer"] * n, "length": [100] * n, "n_model_tokens": [80] * n, "advantage": [0.5] * n,
        "weight": [1.0] * n, "reason": [None] * n, "group_kept": [True] * n, "has_tokens": [True] * n,
        "text": ["some response text " * 20] * n,
    }, schema=TRAJECTORIES)
    m = tok_per_traj * k
    tok = pl.DataFrame({
        "traj": [i // tok_per_traj for i in range(m)], "pos": [i % tok_per_traj for i in range(m)],
        "turn": [0] * m, "token_id": [7] * m, "token": ["x"] * m, "segment": ["model"] * m,
        "offset": [0] * m, "entropy": [0.5] * m, "logprob_sample": [-0.5] * m, "logprob_train": [-0.5] * m,
        "advantage": [0.5] * m, "shaped_advantage": [0.5] * m, "weight": [1.0] * m, "gate": [1.0] * m,
    }, schema=TOKENS)
    return {"groups": g, "trajectories": t, "tokens": tok}


def write_fake_run(run_dir: str | Path, steps: int, k_of_step=lambda s: 1 + s % 4, tok_per_traj: int = 3,
                   n_metrics: int = 0, finish: bool = True) -> None:
    """Write `steps` fake steps through RunWriter (used by the concurrency test, in a subprocess)."""
    from taorl.store.writer import RunWriter

    w = RunWriter(run_dir, {"fake": True})
    for s in range(steps):
        k = k_of_step(s)
        metrics = {"k": k, "s": s, **{f"m/{i}": 0.001 * i * s for i in range(n_metrics)}}
        w.write_step(s, metrics=metrics, **fake_tables(s, k, tok_per_traj))
    if finish:
        w.finish()


def main(argv: list[str] | None = None) -> None:
    from taorl.store.reader import open_run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--traj", type=int, default=256, help="trajectories per step (groups = traj/2)")
    ap.add_argument("--metrics", type=int, default=60)
    ap.add_argument("--dir", default=None, help="run directory (default: a temp dir)")
    a = ap.parse_args(argv)
    root = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="taorl-bench-"))
    run_dir = root / "run"
    if not (run_dir / "manifest.json").exists():
        t = time.perf_counter()
        write_fake_run(run_dir, a.steps, k_of_step=lambda s: a.traj // 2, tok_per_traj=2, n_metrics=a.metrics)
        dt = time.perf_counter() - t
        print(f"write: {a.steps} steps in {dt:.1f} s ({1000 * dt / a.steps:.1f} ms/step)")

    def timed(label, fn, reps=3):
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t)
        print(f"{label:<48} {1000 * best:8.1f} ms  {getattr(out, 'shape', '')}")

    from taorl.store import reader

    def cold_metrics():
        reader._PART_OK.clear()  # footer checks redone
        return open_run(run_dir).metrics()

    timed("open_run + metrics() (cold footer cache)", cold_metrics)
    timed("open_run + metrics() (warm)", lambda: open_run(run_dir).metrics())
    run = open_run(run_dir)
    timed("groups() all steps", run.groups)
    timed("trajectories(columns=[reward, n_call]) all", lambda: run.trajectories(columns=["reward", "n_call"]))
    timed("trajectories(steps=last)", lambda: run.trajectories(steps=run.last_step))
    timed("tokens(step=last, traj=3)", lambda: run.tokens(step=run.last_step, traj=3))
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
