"""The run directory: atomic writers and polars readers (contract: schema.py, DESIGN.md).

Writing (the trainer):
    w = RunWriter(run_dir, config, run_id=None, resume=False, extra=None, from_step=None)
    w.write_step(step, metrics={name: float}, groups=rows, trajectories=rows, tokens=None, evals=None)
    w.write_evals(step, rows)          # late evals for an already published step
    w.finish("finished" | "failed")
  rows: a polars DataFrame or a list of dicts with exactly the schema's columns (SchemaError
  otherwise); parts are written temp -> fsync -> rename, manifest.json last, so readers never see
  half a step.

Reading (dashboard, notebooks, tests):
    run = open_run(run_dir)            # snapshot of manifest.json; run.refresh() to see new steps
    run.manifest, run.last_step, run.status, run.revision, run.config()
    run.metrics(wide=True)             # step, wall_s, <one column per metric>
    run.groups(steps=None, columns=None), run.trajectories(steps=None, columns=None)
    run.tokens(step=None, traj=None, columns=None), run.evals(steps=None)
    run.scan(table, steps=None)        # pl.LazyFrame, for custom queries
    list_runs(runs_dir) -> [RunInfo]   # a run dir itself or a tree of them
  Table methods return eager pl.DataFrames: `step` (Int64) first, then the schema's columns; only
  published steps (<= last_step); empty frames with the schema's columns for an empty run.

Errors (all taorl.errors.UserError): SchemaError (bad rows), SchemaVersionError (newer run),
RunGone (deleted while open), NotARun (no manifest.json), StoreError (base).
"""

from taorl.store._files import NotARun, RunGone, SchemaError, SchemaVersionError, StoreError
from taorl.store.reader import Run, RunInfo, list_runs, open_run
from taorl.store.schema import SCHEMA_VERSION, TABLES
from taorl.store.writer import RunWriter

__all__ = [
    "SCHEMA_VERSION", "TABLES", "NotARun", "Run", "RunGone", "RunInfo", "RunWriter", "SchemaError",
    "SchemaVersionError", "StoreError", "list_runs", "open_run",
]
