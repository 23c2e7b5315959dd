"""RunWriter: the only code that writes a run directory's tables and manifest.

Publishing one step (write_step):
    1. for each table: rows -> validated DataFrame with the schema's columns and dtypes
    2. write <table>/step=N/.part-0.parquet.<pid>.tmp (zstd), fsync, rename to part-0.parquet
    3. fsync the step and table directories
    4. manifest.json (last_step = N, revision + 1): temp, fsync, rename, fsync the run directory
Readers only look at steps <= manifest last_step, so until step 4 the new step does not exist for
them, and after it every table of the step is whole. A process killed between 2 and 4 leaves a
step > last_step on disk: invisible, and removed when the run is resumed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import polars as pl
import yaml

from taorl.store._files import (
    CONFIG,
    MANIFEST,
    STEP_DIR_RE,
    SchemaError,
    SchemaVersionError,
    StoreError,
    atomic_write_bytes,
    fsync_dir,
    fsync_file,
    part_name,
    read_manifest,
    step_dirname,
    tmp_name,
)
from taorl.store.schema import SCHEMA_VERSION, TABLES

Rows = pl.DataFrame | Sequence[Mapping[str, Any]]
STATUSES = ("running", "finished", "failed")
# what polars raises on values that do not fit a dtype (TypeError, ComputeError, overflow, ...)
_CONVERT_ERRORS = (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError)


def to_frame(table: str, rows: Rows) -> pl.DataFrame:
    """Rows (a DataFrame or a list of dicts) -> DataFrame with exactly the schema's columns, in
    schema order and dtypes. Missing or extra columns, or values of the wrong type, raise
    SchemaError naming the table and the column."""
    schema = TABLES[table]
    expected = set(schema)
    if isinstance(rows, pl.DataFrame):
        _check_columns(table, set(rows.columns), expected, where="")
        out = []
        for col, dtype in schema.items():
            try:
                out.append(rows.get_column(col).cast(dtype, strict=True))
            except _CONVERT_ERRORS as e:
                raise SchemaError(f"table {table!r}, column {col!r}: cannot cast "
                                  f"{rows.schema[col]} to {dtype} ({_first_line(e)})") from None
        return pl.DataFrame(out)
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise SchemaError(f"table {table!r}: expected a polars DataFrame or a list of dicts, "
                          f"got {type(rows).__name__}")
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise SchemaError(f"table {table!r}, row {i}: expected a dict, got {type(r).__name__}")
        if r.keys() != expected:
            _check_columns(table, set(r), expected, where=f", row {i}")
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame([_column(table, col, dtype, [r[col] for r in rows]) for col, dtype in schema.items()])


def _column(table: str, col: str, dtype: pl.DataType, values: list) -> pl.Series:
    """Strict conversion; values that only convert loosely must convert losslessly (1 -> True,
    2.0 -> 2 are fine; "2" -> 2.0, 1.5 -> 1, ["x"] -> [null] are errors)."""
    try:
        s = pl.Series(col, values, dtype=dtype, strict=True)
        return s if s.dtype == dtype else s.cast(dtype, strict=True)  # numpy arrays give Array(...)
    except _CONVERT_ERRORS as e:
        err = _first_line(e)
    try:
        loose = pl.Series(col, values, dtype=dtype, strict=False)
        back = loose.to_list()
        bad = next((i for i, (a, b) in enumerate(zip(values, back, strict=True)) if not _same(a, b)), None)
    except _CONVERT_ERRORS as e:
        err, bad, loose = _first_line(e), 0, None
    if loose is not None and bad is None:
        return loose
    where = f", row {bad}" if bad is not None else ""
    value = f": {values[bad]!r:.80}" if bad is not None else ""
    raise SchemaError(f"table {table!r}, column {col!r}{where}: value does not fit {dtype}{value} ({err})")


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)  # 1 == True == 1.0, but "2" != 2.0 and 1.5 != 1
    except (TypeError, ValueError):  # e.g. numpy arrays (ambiguous truth value)
        return False


def _check_columns(table: str, got: set[str], expected: set[str], where: str) -> None:
    missing, extra = sorted(expected - got), sorted(got - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"unknown column(s) {', '.join(map(repr, extra))}")
        raise SchemaError(f"table {table!r}{where}: {'; '.join(parts)} "
                          f"(expected the columns of taorl.store.schema.{table.upper()})")


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"config: expected a dict or taorl.config.Config, got {type(config).__name__}")


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Same recipe as Config.hash(): sha256 of the sorted-key JSON, 12 hex digits."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]


class RunWriter:
    """Writes one run directory. Not thread-safe; one writer per directory at a time.

    RunWriter(run_dir, config, run_id=None, resume=False, extra=None, from_step=None)
      fresh (resume=False): creates run_dir (it may exist but must not hold a manifest.json),
        writes config.yaml and manifest.json (status "running", last_step -1).
      resume=True: reopens the run (a fresh one is created if there is no manifest): keeps
        last_step, or lowers it to from_step - 1 when from_step is given (the trainer resumes from
        a checkpoint and rewrites the steps after it); removes step partitions > last_step and
        stray temp files left by a killed writer; rewrites config.yaml; status back to "running".
    """

    def __init__(self, run_dir: str | Path, config: Any = None, run_id: str | None = None,
                 resume: bool = False, extra: Mapping[str, Any] | None = None,
                 from_step: int | None = None):
        self.run_dir = Path(run_dir)
        cfg = _config_dict(config)
        now = time.time()
        manifest_path = self.run_dir / MANIFEST
        if manifest_path.exists() and not resume:
            raise StoreError(f"{self.run_dir}: already holds a run ({MANIFEST} exists); "
                             f"resume it or choose another directory")
        if resume and manifest_path.exists():
            try:
                m = read_manifest(self.run_dir)
            except StoreError as e:
                raise StoreError(f"{e}; `taorl train --resume {self.run_dir}` rebuilds it from config.yaml, the "
                                 "checkpoints and the step tables (taorl.train.resume)") from None
            if int(m["schema_version"]) > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{manifest_path}: schema_version {m['schema_version']} is newer than this "
                    f"taorl's ({SCHEMA_VERSION}); upgrade taorl to resume this run")
            last = int(m["last_step"])
            if from_step is not None:
                last = min(last, int(from_step) - 1)
            m.update(last_step=last, status="running", run_id=run_id or m.get("run_id") or self.run_dir.name,
                     schema_version=SCHEMA_VERSION)
            if cfg:
                m["config_hash"] = config_hash(cfg)
            if extra:
                m["extra"] = {**m.get("extra", {}), **dict(extra)}
            m.setdefault("revision", 0)
            m["eval_parts"] = {k: v for k, v in (m.get("eval_parts") or {}).items() if int(k) <= last}
            self.manifest = m
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.manifest = {
                "schema_version": SCHEMA_VERSION,
                "run_id": run_id or self.run_dir.resolve().name,
                "config_hash": config_hash(cfg),
                "status": "running",
                "last_step": -1,
                "revision": 0,
                "created_at": now,
                "updated_at": now,
                "started_wall": now,
                "extra": dict(extra or {}),
                "eval_parts": {},  # step -> number of evals part files (part-0 .. part-n-1)
            }
        if cfg or not (self.run_dir / CONFIG).exists():
            atomic_write_bytes(self.run_dir / CONFIG,
                               yaml.safe_dump(cfg, sort_keys=False).encode())
        self._publish()  # first: readers stop seeing steps > last_step before they are removed
        if resume:
            self._remove_leftovers()

    # ------------------------------------------------------------------------------------ public
    @property
    def last_step(self) -> int:
        return int(self.manifest["last_step"])

    def write_step(self, step: int, *, metrics: Mapping[str, Any], groups: Rows, trajectories: Rows,
                   tokens: Rows | None = None, evals: Rows | None = None) -> None:
        """Publish one step: every table, then the manifest (last_step = step). `metrics` maps a
        metric name to a number (None -> null); the rows carry `wall_s` = seconds since the run
        started. Steps must increase; a step's old partition (a killed writer's leftover) is
        replaced as a whole."""
        step = int(step)
        if step <= self.last_step:
            raise StoreError(f"write_step({step}): steps must increase (last published step is "
                             f"{self.last_step})")
        if self.manifest["status"] != "running":
            raise StoreError(f"write_step({step}): the run is already {self.manifest['status']}")
        wall_s = time.time() - float(self.manifest["started_wall"])
        frames = {
            "metrics": self._metrics_frame(metrics, wall_s),
            "groups": to_frame("groups", groups),
            "trajectories": to_frame("trajectories", trajectories),
        }
        if tokens is not None:
            frames["tokens"] = to_frame("tokens", tokens)
        if evals is not None:
            frames["evals"] = to_frame("evals", evals)
        for table, df in frames.items():
            step_dir = self.run_dir / table / step_dirname(step)
            if step_dir.exists():  # leftover of a killed writer: invisible, replace it whole
                shutil.rmtree(step_dir)
            self._write_part(step_dir, 0, df)
        for table in TABLES:  # a table not written this step must not keep a leftover partition
            if table not in frames:
                stale = self.run_dir / table / step_dirname(step)
                if stale.exists():
                    shutil.rmtree(stale)
        parts = self.manifest.setdefault("eval_parts", {})
        parts.pop(str(step), None)
        if evals is not None:
            parts[str(step)] = 1
        self.manifest["last_step"] = step
        self._publish()

    def write_evals(self, step: int, rows: Rows) -> None:
        """Add evaluation rows for an already published step (e.g. the final eval). The rows go to
        a new part file of evals/step=N, renamed into place whole, then the manifest's revision is
        bumped so that caches keyed on it refresh."""
        step = int(step)
        if step > self.last_step or step < 0:
            raise StoreError(f"write_evals({step}): step not published (last published step is "
                             f"{self.last_step}); pass evals= to write_step for the current step")
        df = to_frame("evals", rows)
        parts = self.manifest.setdefault("eval_parts", {})
        n = int(parts.get(str(step), 0))
        self._write_part(self.run_dir / "evals" / step_dirname(step), n, df)
        parts[str(step)] = n + 1  # readers of the new manifest read parts 0..n
        self._publish()

    def finish(self, status: str = "finished") -> None:
        """Mark the run finished (or failed). Idempotent."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"finish(status={status!r}): expected 'finished' or 'failed'")
        self.manifest["status"] = status
        self._publish()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.manifest["status"] == "running":
            self.finish("failed" if exc_type is not None else "finished")

    # ----------------------------------------------------------------------------------- private
    @staticmethod
    def _metrics_frame(metrics: Mapping[str, Any], wall_s: float) -> pl.DataFrame:
        if not isinstance(metrics, Mapping):
            raise SchemaError(f"table 'metrics': expected a dict name -> number, got {type(metrics).__name__}")
        names, values = [], []
        for k, v in metrics.items():
            if not isinstance(k, str) or k in ("step", "wall_s"):
                raise SchemaError(f"table 'metrics': bad metric name {k!r} (a string other than "
                                  f"'step' and 'wall_s', which are the wide table's index columns)")
            if v is None:
                values.append(None)
            else:
                try:
                    values.append(float(v))
                except (TypeError, ValueError):
                    raise SchemaError(f"table 'metrics', metric {k!r}: expected a number, "
                                      f"got {type(v).__name__} {v!r:.60}") from None
            names.append(k)
        return pl.DataFrame({"name": names, "value": values, "wall_s": [wall_s] * len(names)},
                            schema=TABLES["metrics"])

    @staticmethod
    def _write_part(step_dir: Path, n: int, df: pl.DataFrame) -> None:
        new_dirs = [d for d in (step_dir.parent, step_dir) if not d.exists()]
        step_dir.mkdir(parents=True, exist_ok=True)
        final = step_dir / part_name(n)
        tmp = tmp_name(final)
        try:
            df.write_parquet(tmp, compression="zstd", statistics=True)
            fsync_file(tmp)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(step_dir)
        for d in new_dirs:  # make the new directory entries themselves durable
            fsync_dir(d.parent)

    def _publish(self) -> None:
        self.manifest["updated_at"] = time.time()
        self.manifest["revision"] = int(self.manifest.get("revision", 0)) + 1
        data = json.dumps(self.manifest, indent=1, allow_nan=False,
                          default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
        atomic_write_bytes(self.run_dir / MANIFEST, data.encode())

    def _remove_leftovers(self) -> None:
        """Step partitions beyond last_step and temp files: what a killed writer left behind."""
        last = self.last_step
        for table in TABLES:
            tdir = self.run_dir / table
            if not tdir.is_dir():
                continue
            for sd in tdir.iterdir():
                m = STEP_DIR_RE.match(sd.name)
                if m and int(m.group(1)) > last:
                    shutil.rmtree(sd, ignore_errors=True)
                elif m and sd.is_dir():
                    for f in sd.iterdir():
                        if f.name.endswith(".tmp") and f.name.startswith("."):
                            f.unlink(missing_ok=True)
        for f in self.run_dir.iterdir():
            if f.name.startswith(".") and f.name.endswith(".tmp"):
                f.unlink(missing_ok=True)
