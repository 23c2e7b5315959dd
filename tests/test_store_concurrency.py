"""A writer *process* publishes steps while this process reads in a loop: every visible step must be
complete (each table holds exactly the rows the writer put in it) and nothing beyond last_step is
ever seen."""

from __future__ import annotations

import multiprocessing as mp
import time
import warnings

from taorl.store import open_run
from taorl.store.bench import write_fake_run

STEPS = 60


def k_of(step: int) -> int:
    return 1 + step % 4  # rows per step differ, so a half-written or mixed step shows in the counts


def test_reader_only_sees_complete_steps(tmp_path):
    run_dir = tmp_path / "run"
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=write_fake_run, args=(run_dir, STEPS), kwargs={"k_of_step": k_of})
    proc.start()
    try:
        deadline = time.time() + 60
        while not (run_dir / "manifest.json").exists():
            assert proc.is_alive() or proc.exitcode == 0, f"writer died ({proc.exitcode})"
            assert time.time() < deadline
            time.sleep(0.01)
        seen_last, reads = set(), 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a skipped (unreadable) part would be a failure here
            while True:
                run = open_run(run_dir)
                last = run.last_step
                done = run.status == "finished"
                want = list(range(last + 1))
                m = run.metrics()
                assert m["step"].to_list() == want
                if last >= 0:
                    assert m["k"].to_list() == [float(k_of(s)) for s in want]
                    assert m["s"].to_list() == [float(s) for s in want]
                for table, per_k in (("groups", 1), ("trajectories", 2), ("tokens", 3)):
                    counts = dict(getattr(run, table)().group_by("step").len().iter_rows())
                    assert counts == {s: per_k * k_of(s) for s in want}, (table, last)
                seen_last.add(last)
                reads += 1
                if done:
                    break
                assert time.time() < deadline, "writer did not finish in time"
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    assert max(seen_last) == STEPS - 1
    # the reads really overlapped the writes: several intermediate states were observed
    assert len([s for s in seen_last if 0 <= s < STEPS - 1]) >= 3, (reads, sorted(seen_last))


def test_fake_tables_counts():
    """The generator itself: k groups, 2k trajectories, 3k tokens (what the test above relies on)."""
    from taorl.store.bench import fake_tables

    t = fake_tables(0, 3)
    assert (t["groups"].height, t["trajectories"].height, t["tokens"].height) == (3, 6, 9)
