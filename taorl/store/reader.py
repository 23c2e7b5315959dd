"""Readers of a run directory: `open_run(path) -> Run`, `list_runs(path) -> [RunInfo]`.

A Run is a snapshot: it reads manifest.json once (refresh() re-reads it) and every table read
through it only sees steps <= that manifest's last_step, so a page reading metrics then groups
sees the same steps even while the trainer keeps writing.

Which files are read. The file list of a table is built from the manifest and the known names
(`<table>/step=N/part-K.parquet`, N <= last_step), never from a recursive glob, so temp files and
partitions of unpublished steps are never touched. Each final-named part gets a cheap footer check
('PAR1' at both ends) the first time it is seen (cached on path, inode, size, mtime); a part that
fails it, or fails to decode, is skipped with a warning and remembered as bad. `Run.unreadable()`
lists what was skipped (table, step, file, why), and the published steps whose metrics, groups or
trajectories part is missing (the writer writes those three every step), so a reader can say
which step and table it could not read instead of silently starting its curves later.

Every table method returns an eager pl.DataFrame whose first column is `step` (Int64, from the
partition directory name), followed by the schema's columns in schema order (or the requested
`columns`). `Run.scan(table, steps)` gives the same data as a pl.LazyFrame for custom queries.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from taorl.store._files import (
    CONFIG,
    MANIFEST,
    STEP_DIR_RE,
    NotARun,
    RunGone,
    SchemaVersionError,
    StoreError,
    parquet_footer_ok,
    part_name,
    read_manifest,
    step_dirname,
)
from taorl.store.schema import SCHEMA_VERSION, TABLES

_STEP_FROM_PATH = r"step=(\d+)[/\\][^/\\]*$"
_PATH_COL = "__taorl_path"
_READ_ERRORS = (pl.exceptions.PolarsError, OSError)  # missing file, bad footer/page, schema mismatch
EVERY_STEP = ("metrics", "groups", "trajectories")  # tables RunWriter.write_step writes for every step

# path -> ((inode, size, mtime_ns), ok). Shared by every Run of the process: published parts never
# change in place (a resume replaces them by rename, which changes the inode).
_PART_OK: dict[str, tuple[tuple[int, int, int], bool]] = {}


def _check_version(m: dict[str, Any], where: Path) -> None:
    v = int(m.get("schema_version", 0))
    if v > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where / MANIFEST}: schema_version {v} is newer than this taorl reads "
            f"(<= {SCHEMA_VERSION}); upgrade taorl to read this run")


class Run:
    """A run directory opened for reading (a snapshot of its manifest; see refresh())."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._bad: dict[tuple[str, int], Unreadable] = {}  # (table, step) -> what a read skipped
        self.refresh()

    # ------------------------------------------------------------------------------ manifest
    def refresh(self) -> Run:
        """Re-read manifest.json (new published steps become visible). Returns self."""
        try:
            m = read_manifest(self.path)
        except NotARun:
            if getattr(self, "manifest", None) is not None:
                raise RunGone(f"{self.path}: the run directory was deleted while open") from None
            raise
        _check_version(m, self.path)
        self.manifest: dict[str, Any] = m
        self._files: dict[tuple[str, int], list[tuple[int, str]]] = {}  # (table, rev) -> [(step, path)]
        return self

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.path.name))

    @property
    def last_step(self) -> int:
        return int(self.manifest["last_step"])

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "running"))

    @property
    def revision(self) -> int:
        """Bumped on every publish (step, late evals, finish): a cache key finer than last_step."""
        return int(self.manifest.get("revision", 0))

    @property
    def updated_at(self) -> float:
        return float(self.manifest.get("updated_at", 0.0))

    def config(self) -> dict[str, Any]:
        """The run's resolved config (config.yaml) as a dict."""
        path = self.path / CONFIG
        try:
            text = path.read_text()
        except FileNotFoundError:
            self._gone_check()
            return {}
        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f": line {mark.line + 1}" if mark is not None else ""
            raise StoreError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, last_step={self.last_step}, status={self.status!r})"

    # -------------------------------------------------------------------------------- tables
    def metrics(self, wide: bool = True) -> pl.DataFrame:
        """wide=True: one row per step, columns step, wall_s, then one Float64 column per metric
        name (first-seen order). wide=False: the long rows step, name, value, wall_s."""
        long = self._read("metrics", None)
        if not wide:
            return long
        if long.is_empty():
            return pl.DataFrame(schema={"step": pl.Int64, "wall_s": pl.Float64})
        names = long.get_column("name").unique(maintain_order=True).to_list()
        wall = long.group_by("step").agg(pl.col("wall_s").first())
        wide_df = long.pivot(on="name", index="step", values="value", aggregate_function="last")
        return (wall.join(wide_df, on="step", how="left").sort("step")
                .select("step", "wall_s", *names))

    def groups(self, steps: int | Iterable[int] | None = None,
               columns: list[str] | None = None) -> pl.DataFrame:
        return self._read("groups", steps, columns)

    def trajectories(self, steps: int | Iterable[int] | None = None,
                     columns: list[str] | None = None) -> pl.DataFrame:
        return self._read("trajectories", steps, columns)

    def tokens(self, step: int | Iterable[int] | None = None, traj: int | Iterable[int] | None = None,
               columns: list[str] | None = None) -> pl.DataFrame:
        """Token rows of one step (or several / all), optionally of some trajectories only,
        sorted by (step, traj, pos)."""
        pred = None
        if traj is not None:
            trajs = [int(traj)] if isinstance(traj, Integral) else [int(t) for t in traj]
            pred = pl.col("traj").is_in(trajs)
        df = self._read("tokens", step, columns, predicate=pred)
        keys = [k for k in ("step", "traj", "pos") if k in df.columns]
        return df.sort(keys) if not df.is_empty() else df

    def evals(self, steps: int | Iterable[int] | None = None) -> pl.DataFrame:
        return self._read("evals", steps)

    def steps(self, table: str = "metrics") -> list[int]:
        """Published steps that have a (readable-looking) part of `table`."""
        return sorted({s for s, _ in self._table_files(table)})

    def unreadable(self, tables: Iterable[str] | None = None) -> list[Unreadable]:
        """Parts of published steps skipped by the reads made so far through this Run (or by a
        reader that reported them with mark_unreadable), by table then step; `tables` limits them."""
        want = set(tables) if tables is not None else None
        return sorted((u for (t, s), u in self._bad.items() if s <= self.last_step and (want is None or t in want)),
                      key=lambda u: (u.table, u.step))

    def mark_unreadable(self, table: str, step: int, path: str, why: str) -> None:
        """Remember a part that failed to decode (the table methods call it; so does queries.LiveRun)."""
        self._bad[(table, int(step))] = Unreadable(table, int(step), str(path), why)

    def scan(self, table: str, steps: int | Iterable[int] | None = None) -> pl.LazyFrame:
        """Lazy frame over the published, footer-checked parts of `table` (step column first).
        Decoding errors surface at collect(); the table methods above skip such parts instead."""
        files = self._select(table, steps)
        return self._scan(table, [p for _, p in files])

    # ------------------------------------------------------------------------------- private
    def _gone_check(self) -> None:
        if not (self.path / MANIFEST).exists():
            raise RunGone(f"{self.path}: the run directory was deleted while open")

    def _table_files(self, table: str) -> list[tuple[int, str]]:
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
        key = (table, self.revision)
        if key not in self._files:
            self._files[key] = self._list_files(table)
        return self._files[key]

    def _list_files(self, table: str) -> list[tuple[int, str]]:
        """[(step, path)] of good-looking final part files of published steps, by step."""
        last = self.last_step
        tdir = self.path / table
        if last < 0:
            return []
        base = str(tdir)
        if table == "evals":  # the manifest lists the parts of each step (late evals add parts)
            if not tdir.is_dir():
                self._gone_check()
                return []
            parts = self.manifest.get("eval_parts") or {}
            cands = sorted((int(s), os.path.join(base, step_dirname(int(s)), part_name(k)))
                           for s, n in parts.items() if int(s) <= last for k in range(int(n)))
        else:  # one part-0 per step: build names from last_step instead of listing directories
            if not tdir.is_dir():
                self._gone_check()
                return []
            cands = [(s, os.path.join(base, step_dirname(s), part_name(0))) for s in range(last + 1)]
        out = []
        for s, p in cands:
            try:
                st = os.stat(p)
            except FileNotFoundError:
                if table in EVERY_STEP:  # written for every step: its absence is damage
                    self.mark_unreadable(table, s, p, "missing")
                continue  # else a step without this table (e.g. no tokens that step)
            sig = (st.st_ino, st.st_size, st.st_mtime_ns)
            hit = _PART_OK.get(p)
            if hit is None or hit[0] != sig:
                ok = parquet_footer_ok(Path(p), st.st_size)
                _PART_OK[p] = (sig, ok)
                if not ok:
                    warnings.warn(f"{p}: not a complete parquet file; skipped", stacklevel=3)
            if _PART_OK[p][1]:
                out.append((s, p))
                self._bad.pop((table, s), None)  # e.g. replaced by a resume
            elif (table, s) not in self._bad:
                self.mark_unreadable(table, s, p, "not a complete parquet file")
        return out

    def _select(self, table: str, steps: int | Iterable[int] | None) -> list[tuple[int, str]]:
        files = self._table_files(table)
        if steps is None:
            return files
        want = {int(steps)} if isinstance(steps, Integral) else {int(s) for s in steps}
        return [(s, p) for s, p in files if s in want]

    @staticmethod
    def _empty(table: str, columns: list[str] | None = None) -> pl.DataFrame:
        schema = {"step": pl.Int64, **TABLES[table]}
        cols = ["step", *(columns if columns is not None else TABLES[table])]
        return pl.DataFrame(schema={c: schema[c] for c in cols})

    @staticmethod
    def _scan(table: str, paths: list[str]) -> pl.LazyFrame:
        if not paths:
            return Run._empty(table).lazy()
        lf = pl.scan_parquet(paths, schema=dict(TABLES[table]), include_file_paths=_PATH_COL)
        step = pl.col(_PATH_COL).str.extract(_STEP_FROM_PATH).cast(pl.Int64).alias("step")
        return lf.select(step, *TABLES[table])

    def _read(self, table: str, steps, columns: list[str] | None = None,
              predicate: pl.Expr | None = None) -> pl.DataFrame:
        if columns is not None:
            unknown = [c for c in columns if c not in TABLES[table] and c != "step"]
            if unknown:
                raise StoreError(f"table {table!r}: unknown column(s) {unknown}; "
                                 f"expected some of {list(TABLES[table])}")
            columns = [c for c in columns if c != "step"]
        files = self._select(table, steps)
        if not files:
            return self._empty(table, columns)

        def query(paths: list[str]) -> pl.DataFrame:
            lf = self._scan(table, paths)
            if predicate is not None:
                lf = lf.filter(predicate)
            if columns is not None:
                lf = lf.select("step", *columns)
            return lf.collect()

        paths = [p for _, p in files]
        try:
            return query(paths)
        except _READ_ERRORS:  # a part went away or does not decode: find it, skip it, warn
            self._gone_check()
        frames = []
        for s, p in files:
            try:
                frames.append(query([p]))
            except _READ_ERRORS as e:
                if not os.path.exists(p):
                    continue  # replaced/removed by a resume since the snapshot
                self._gone_check()
                st = os.stat(p)
                _PART_OK[p] = ((st.st_ino, st.st_size, st.st_mtime_ns), False)
                self._files.clear()
                why = str(e).splitlines()[0][:200]
                self.mark_unreadable(table, s, p, why)
                warnings.warn(f"{p}: unreadable parquet part skipped ({why})", stacklevel=3)
        return pl.concat(frames) if frames else self._empty(table, columns)


# ------------------------------------------------------------------------------------ functions
def open_run(run_dir: str | Path) -> Run:
    """Open a run directory for reading. NotARun (a UserError) if it has no manifest.json,
    SchemaVersionError if a newer taorl wrote it."""
    path = Path(run_dir)
    if not path.is_dir():
        raise NotARun(f"{path}: no such run directory")
    return Run(path)


@dataclass(frozen=True)
class Unreadable:
    """A part of a published step that a read skipped: table, step, file and why."""

    table: str
    step: int
    path: str
    why: str  # "missing" | "not a complete parquet file" | the decoder's first error line

    def __str__(self) -> str:
        return f"step {self.step} {self.table} ({self.why}: {self.path})"


@dataclass(frozen=True)
class RunInfo:
    """One row of list_runs(): the manifest's summary, or `error` when it cannot be read."""

    path: Path
    run_id: str
    status: str  # running | finished | failed | error
    last_step: int
    created_at: float
    updated_at: float
    config_hash: str
    schema_version: int
    extra: dict
    error: str | None = None

    @property
    def age_s(self) -> float:
        """Seconds since the manifest was last updated (a 'running' run that stays old is stale)."""
        return time.time() - self.updated_at

    def open(self) -> Run:
        return open_run(self.path)


def _info(path: Path) -> RunInfo:
    try:
        m = read_manifest(path)
        _check_version(m, path)
    except StoreError as e:
        return RunInfo(path, path.name, "error", -1, 0.0, 0.0, "", -1, {}, error=str(e))
    return RunInfo(path, str(m.get("run_id", path.name)), str(m.get("status", "running")),
                   int(m["last_step"]), float(m.get("created_at", 0.0)), float(m.get("updated_at", 0.0)),
                   str(m.get("config_hash", "")), int(m["schema_version"]), dict(m.get("extra") or {}))


def list_runs(runs_dir: str | Path, max_depth: int = 3) -> list[RunInfo]:
    """Runs under `runs_dir` (a directory is a run if it holds manifest.json; run directories are
    not searched further), sorted by path. `runs_dir` may itself be a run. Unreadable manifests
    appear with status 'error' and the reason in `error` rather than raising."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise NotARun(f"{root}: no such directory")
    found: list[RunInfo] = []

    def walk(d: Path, depth: int) -> None:
        if (d / MANIFEST).is_file():
            found.append(_info(d))
            return
        if depth >= max_depth:
            return
        try:
            children = sorted(e.path for e in os.scandir(d)
                              if e.is_dir() and not e.name.startswith((".", "_")))
        except (FileNotFoundError, PermissionError):
            return
        for c in children:
            if STEP_DIR_RE.match(os.path.basename(c)):
                continue
            walk(Path(c), depth + 1)

    walk(root, 0)
    return sorted(found, key=lambda r: str(r.path))

