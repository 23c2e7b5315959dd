"""What a resumed run builds on, checked: the manifest and the step tables (write side).

    problem = manifest_problem(run_dir)          # None, or why manifest.json cannot be read
    m, line = rebuild_manifest(run_dir, problem, checkpoint_step=12)  # from the files; the old one kept
    bad = damaged_parts(run_dir, upto=12)        # parts of steps <= 12 that are missing or not whole

Nothing here deletes anything: a broken file is renamed to `<name>.corrupt` beside it (readers
look only for final part names, so they see a missing part and mark it), and the manifest records
it under "damaged", so the gap stays visible in the dashboard and in `taorl.store.open_run`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taorl.store._files import (
    CONFIG,
    MANIFEST,
    PART_RE,
    STEP_DIR_RE,
    StoreError,
    atomic_write_bytes,
    fsync_dir,
    parquet_footer_ok,
    part_name,
    read_manifest,
    step_dirname,
)
from taorl.store.schema import SCHEMA_VERSION, TABLES

EVERY_STEP = ("metrics", "groups", "trajectories")  # what RunWriter.write_step writes for every step


@dataclass
class Damage:
    table: str
    step: int
    path: Path
    why: str  # "is missing", "is truncated (863 bytes, no parquet footer)", ...

    def line(self, run_dir: Path) -> str:
        return f"{self.path.relative_to(run_dir)} {self.why}"


def manifest_problem(run_dir: Path) -> str | None:
    """Why <run>/manifest.json cannot be used (None: it can, or there is none)."""
    if not (run_dir / MANIFEST).exists():
        return None
    try:
        read_manifest(run_dir)
    except StoreError as e:
        return str(e).removeprefix(f"{run_dir / MANIFEST}: ")
    return None


def part_problem(path: Path) -> str | None:
    """Why a final-named part file is not a whole parquet file (None: its footer reads)."""
    import pyarrow.parquet as pq

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "is missing"
    if not parquet_footer_ok(path, size):
        return f"is truncated ({size} bytes, no parquet footer)"
    try:
        pq.read_metadata(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a broken file
        return f"does not read as parquet ({size} bytes: {str(e).splitlines()[0].split('. ')[0][:100]})"
    return None


def _steps(run_dir: Path, table: str) -> dict[int, list[Path]]:
    """step -> final-named part files of `table` on disk."""
    out: dict[int, list[Path]] = {}
    tdir = run_dir / table
    if not tdir.is_dir():
        return out
    for sd in tdir.iterdir():
        m = STEP_DIR_RE.match(sd.name)
        if m and sd.is_dir():
            out[int(m.group(1))] = sorted((f for f in sd.iterdir() if PART_RE.match(f.name)),
                                          key=lambda f: int(PART_RE.match(f.name).group(1)))
    return out


def damaged_parts(run_dir: Path, upto: int, eval_parts: dict[str, int] | None = None) -> list[Damage]:
    """Parts of steps 0..upto that are missing (metrics, groups, trajectories: every step has them;
    evals: the parts the manifest lists) or do not read as parquet (any table)."""
    out = []
    for table in TABLES:
        on_disk = _steps(run_dir, table)
        for step in range(upto + 1):
            files = list(on_disk.get(step, []))
            if table in EVERY_STEP and not files:
                files = [run_dir / table / step_dirname(step) / part_name(0)]
            if table == "evals" and eval_parts is not None:
                listed = range(int(eval_parts.get(str(step), 0)))
                want = {run_dir / table / step_dirname(step) / part_name(k) for k in listed}
                files = sorted(want | set(files))
            for f in files:
                why = part_problem(f)
                if why:
                    out.append(Damage(table, step, f, why))
    return out


def set_aside(path: Path) -> Path | None:
    """Rename a broken file to <name>.corrupt (…corrupt-2, … if taken); None if it is not there."""
    if not path.exists():
        return None
    dest = path.with_name(path.name + ".corrupt")
    n = 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.name}.corrupt-{n}")
    os.replace(path, dest)
    fsync_dir(path.parent)
    return dest


def rebuild_manifest(run_dir: Path, problem: str, checkpoint_step: int | None) -> tuple[dict[str, Any], str]:
    """A manifest from what is on disk, written in place of the broken one (kept as .corrupt).

    last_step: the newest step with metrics, groups and trajectories parts (a step is published
    only after all three; steps after the checkpoint are redone by the resume anyway);
    config_hash from config.yaml; started_wall from the newest metrics part (its mtime less its
    wall_s), so wall_s of the steps to come continues; eval_parts: the evals parts on disk."""
    import polars as pl
    import yaml

    from taorl.store.writer import config_hash

    steps = {t: _steps(run_dir, t) for t in EVERY_STEP}
    complete = sorted(set.intersection(*(set(s for s, f in steps[t].items() if f) for t in EVERY_STEP)))
    last = complete[-1] if complete else -1
    cfg = yaml.safe_load((run_dir / CONFIG).read_text()) if (run_dir / CONFIG).is_file() else {}
    now = time.time()
    started = created = (run_dir / CONFIG).stat().st_mtime if (run_dir / CONFIG).is_file() else now
    for step in reversed(complete):  # wall_s of the newest readable metrics part, and when it was written
        f = steps["metrics"][step][0]
        try:
            wall = pl.read_parquet(f, columns=["wall_s"])["wall_s"].max()
        except Exception:  # noqa: BLE001 - a broken part: try the step before
            continue
        if wall is not None and math.isfinite(wall):
            started = f.stat().st_mtime - float(wall)
            break
    evals = {str(s): len(f) for s, f in _steps(run_dir, "evals").items() if f and s <= last}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_dir.resolve().name,
        "config_hash": config_hash(cfg or {}),
        "status": "running",
        "last_step": last,
        # readers cache by revision: a value above any counter the lost manifest can have reached
        "revision": int(now),
        "created_at": created,
        "updated_at": now,
        "started_wall": started,
        "extra": {},
        "eval_parts": evals,
        "rebuilt": {"at": now, "why": problem},
    }
    kept = set_aside(run_dir / MANIFEST)
    atomic_write_bytes(run_dir / MANIFEST, json.dumps(manifest, indent=1).encode())
    ckpt = f", checkpoint step={checkpoint_step:06d}" if checkpoint_step is not None else ""
    what = "was missing" if problem == "missing" else f"was unreadable ({problem})"
    line = (f"{MANIFEST} {what}; rebuilt it from config.yaml{ckpt} and the step tables (steps 0-{last} on disk)"
            + (f"; the broken file is kept as {kept.name}" if kept else ""))
    return manifest, line


def record_damage(run_dir: Path, found: list[tuple[Damage, Path | None]]) -> None:
    """Add what was set aside to the manifest's "damaged" list (the manifest is readable here)."""
    if not found:
        return
    m = read_manifest(run_dir)
    damaged = list(m.get("damaged") or [])
    known = {e.get("file") for e in damaged}
    for d, kept in found:
        if str(d.path.relative_to(run_dir)) in known:  # set aside by an earlier resume: still missing
            continue
        damaged.append({"table": d.table, "step": d.step, "file": str(d.path.relative_to(run_dir)), "why": d.why,
                        "kept_as": str(kept.relative_to(run_dir)) if kept else None, "at": time.time()})
    m["damaged"] = damaged
    m["revision"] = int(m.get("revision", 0)) + 1
    m["updated_at"] = time.time()
    atomic_write_bytes(run_dir / MANIFEST, json.dumps(m, indent=1).encode())
