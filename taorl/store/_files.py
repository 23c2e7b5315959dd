"""File-level helpers shared by the writer and the readers: names, atomic writes, errors.

Layout (see schema.py): <run>/<table>/step=000012/part-<n>.parquet. A file becomes visible under
its final name only by an atomic rename of a fsynced temp file from the same directory, so a
final-named part is always whole; temp files are named `.part-<n>.parquet.<pid>.tmp` and never
match the final pattern (nor `*.parquet` globs).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from taorl.errors import UserError

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
STEP_DIR_RE = re.compile(r"^step=(\d{6,})$")
PART_RE = re.compile(r"^part-(\d+)\.parquet$")
PARQUET_MAGIC = b"PAR1"


class StoreError(UserError):
    """Base class of the run-store errors (bad rows, bad run directory)."""


class SchemaError(StoreError, ValueError):
    """Rows given to the writer do not match the table's schema (names the table and column)."""


class SchemaVersionError(StoreError):
    """The run was written by a newer taorl (manifest schema_version > SCHEMA_VERSION)."""


class RunGone(StoreError):
    """The run directory (or its manifest) disappeared while it was open."""


class NotARun(StoreError):
    """The path is not a run directory (no manifest.json)."""


def step_dirname(step: int) -> str:
    return f"step={step:06d}"


def part_name(n: int) -> str:
    return f"part-{n}.parquet"


def fsync_dir(path: Path) -> None:
    """Make a rename/creation inside `path` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def atomic_write_bytes(final: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write temp, fsync, rename over `final`, fsync the directory."""
    tmp = tmp_name(final)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    if sync_dir:
        fsync_dir(final.parent)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """Parse <run>/manifest.json; NotARun if the file is missing, StoreError if it is not JSON."""
    path = run_dir / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotARun(f"{run_dir}: not a taorl run directory (no {MANIFEST})") from None
    try:
        m = json.loads(text)
    except json.JSONDecodeError as e:
        raise StoreError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(m, dict) or "last_step" not in m or "schema_version" not in m:
        raise StoreError(f"{path}: expected a JSON object with schema_version and last_step")
    return m


def parquet_footer_ok(path: Path, size: int) -> bool:
    """Cheap structural check: 'PAR1' at both ends and a footer length that fits in the file."""
    if size < 12:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(size - 8)
            tail = f.read(8)
    except OSError:
        return False
    if head != PARQUET_MAGIC or tail[4:] != PARQUET_MAGIC:
        return False
    footer_len = int.from_bytes(tail[:4], "little")
    return 0 < footer_len <= size - 12
