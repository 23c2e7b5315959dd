"""Problems from a user's JSONL or Parquet file: fields ``problem`` and ``answer`` (``id`` optional).

Every other field goes to ``Problem.meta``. Errors name the file, the line (JSONL) or row (Parquet)
and what was expected. ``write_problems`` writes either format atomically (temp file + rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from taorl.data.problem import Problem
from taorl.errors import UserError
from taorl.rewards.normalize import normalize_reference

REQUIRED = ("problem", "answer")
_EXPECTED = "expected one JSON object per line with string fields 'problem' and 'answer' ('id' optional)"


def _as_text(value: Any) -> str | None:
    """Answers may be numbers in user files (42, 0.5); statements must be strings."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _record_to_problem(rec: dict, where: str, default_id: str, source: str) -> Problem:
    for key in REQUIRED:
        if key not in rec or rec[key] is None:
            raise UserError(f"{where}: missing field '{key}' ({_EXPECTED}; or name yours with "
                            f"data.{key}_field=NAME)")
    problem = rec["problem"]
    if not isinstance(problem, str) or not problem.strip():
        raise UserError(f"{where}: field 'problem' must be a non-empty string, got {problem!r:.60}")
    answer = _as_text(rec["answer"])
    if answer is None:
        raise UserError(f"{where}: field 'answer' must be a non-empty string or a number, got {rec['answer']!r:.60}")
    pid = str(rec["id"]) if rec.get("id") is not None else default_id
    meta = {k: v for k, v in rec.items() if k not in ("id", "problem", "answer")}
    meta["raw_answer"] = answer
    src = str(rec["source"]) if isinstance(rec.get("source"), str) else source
    return Problem(pid, problem, normalize_reference(answer, problem_id=pid), src, meta)


def _decode(raw: bytes, path: Path, lineno: int, offset: int) -> str:
    """One line of a text file as str; bytes that are not UTF-8 give one line naming file, line and byte."""
    try:
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as e:
        line = lineno + raw.count(b"\n", 0, e.start)  # raw may hold several lines (a whole .json file)
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        bad = raw[e.start:e.start + 4]
        raise UserError(f"{path}:{line}: not UTF-8 text at byte offset {offset + e.start} of the file "
                        f"(column {column} of line {line}: {bad!r}); save the file as UTF-8, e.g. "
                        f"iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}") from None


def iter_jsonl_records(path: str | Path):
    """(where, record) for every non-blank line of a JSONL file, where = "path:line". A ``.json`` file
    holding one JSON array (e.g. DeepScaleR's deepscaler.json) gives its items, where = "path: item i"."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected a JSONL or Parquet file of problems)")
    with path.open("rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if path.suffix.lower() == ".json" and head.startswith(b"["):
        text = _decode(path.read_bytes(), path, 1, 0)  # one document: a decode error names its byte
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}); "
                            "expected a JSON array of objects or one JSON object per line") from None
        for i, rec in enumerate(items):
            yield f"{path}: item {i}", rec
        return
    offset = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = _decode(raw, path, lineno, offset)
            offset += len(raw)
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); {_EXPECTED}") from None
            yield where, rec


def read_jsonl(path: str | Path, source: str | None = None) -> list[Problem]:
    path = Path(path)
    source = source or path.stem
    out: list[Problem] = []
    for where, rec in iter_jsonl_records(path):
        if not isinstance(rec, dict):
            raise UserError(f"{where}: got a JSON {type(rec).__name__}; {_EXPECTED}")
        n = where.rsplit(":", 1)[-1].strip().removeprefix("item ")
        out.append(_record_to_problem(rec, where, f"{path.stem}-{n}", source))
    if not out:
        raise UserError(f"{path}: no problems in the file (it is empty); {_EXPECTED}")
    return out


def read_parquet(path: str | Path, source: str | None = None) -> list[Problem]:
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected a JSONL or Parquet file of problems)")
    try:
        df = pl.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise UserError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    for key in REQUIRED:
        if key not in df.columns:
            raise UserError(f"{path}: missing column '{key}' (has: {', '.join(df.columns)}); "
                            f"expected columns 'problem' and 'answer' ('id' optional), or name yours with "
                            f"data.{key}_field=NAME")
    if df.height == 0:
        raise UserError(f"{path}: no problems in the file (0 rows)")
    source = source or path.stem
    return [_record_to_problem(rec, f"{path}: row {i}", f"{path.stem}-{i}", source)
            for i, rec in enumerate(df.iter_rows(named=True))]


def read_problem_file(path: str | Path) -> list[Problem]:
    p = Path(path)
    suffix = "".join(p.suffixes[-1:]).lower()
    if suffix in (".jsonl", ".json"):
        return read_jsonl(p)
    if suffix == ".parquet":
        return read_parquet(p)
    raise UserError(f"{p}: unknown file type '{suffix}' (expected .jsonl or .parquet)")


def write_problems(problems: list[Problem], path: str | Path) -> Path:
    """Write problems as JSONL or Parquet (by suffix); the raw answer is written when known."""
    path = Path(path)
    rows = [{"id": p.id, "problem": p.problem, "answer": p.meta.get("raw_answer", p.answer), "source": p.source,
             **{k: v for k, v in p.meta.items() if k != "raw_answer" and isinstance(v, (str, int, float, bool))}}
            for p in problems]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix == ".parquet":
            import polars as pl

            pl.DataFrame(rows, infer_schema_length=None).write_parquet(tmp, compression="zstd")
        elif path.suffix in (".jsonl", ".json"):
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            raise UserError(f"{path}: unknown file type '{path.suffix}' (expected .jsonl or .parquet)")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
