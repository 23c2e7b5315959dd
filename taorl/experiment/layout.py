"""An experiment's output folder as the dashboard and notebooks read it, while it runs and after.

`taorl experiment` (taorl.experiment.runner) writes:

    <out>/experiment.yaml                         the experiment as run (arms, seeds, eval schedule)
    <out>/runs/<arm>/seed-<s>/                    ordinary run directories (taorl.store)
    <out>/heldout/<arm>/seed-<s>/step=NNNNNN.parquet   held-out metrics after NNNNNN optimizer steps
    <out>/logs/                                   one log per run and action under --jobs
    <out>/report/                                 summary.parquet, report.json, report.md, figures/

Nothing here trains, evaluates or recomputes the report: it lists what is on disk.

    is_experiment(path)          the folder holds an experiment (experiment.yaml, or runs/<arm>/seed-<s>/)
    find_experiments(root)       experiment folders at or under root (or root's parent, for <out>/runs)
    read_spec(out)               experiment.yaml as a dict ({} when missing or unreadable)
    experiment_runs(out)         [ExperimentRun(arm, seed, dir)]: the spec's arms x seeds, then any
                                 other run directory found under runs/
    planned_steps(spec, arm)     train.steps of the arm's runs, from the written experiment.yaml
    eval_steps(spec, steps)      the optimizer steps a run of `steps` steps is evaluated after
    read_heldout(out)            every held-out file landed so far, one long frame (+ unreadable ones)
    report_folder(out)           <out>/report when report.json and summary.parquet are there
    last_log_line(out, arm, s)   the last line of the run's newest log (under --jobs)
    step_time(wall_s)            seconds per optimizer step of a run, from its published steps
"""

from __future__ import annotations

import itertools
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

SPEC = "experiment.yaml"
_SEED_DIR = re.compile(r"^seed-(-?\d+)$")
_STEP_FILE = re.compile(r"^step=(\d+)\.parquet$")
_NOT_EXPERIMENTS = {"runs", "heldout", "logs", "report", "checkpoints", "metrics", "groups", "trajectories",
                    "tokens", "evals"}
HELDOUT_SCHEMA = {"arm": pl.String, "seed": pl.Int64, "step": pl.Int64, "metric": pl.String, "value": pl.Float64,
                  "seconds": pl.Float64}


@dataclass(frozen=True)
class ExperimentRun:
    arm: str
    seed: int
    dir: Path

    @property
    def started(self) -> bool:
        return (self.dir / "manifest.json").is_file()


def _run_dirs(out: Path) -> list[tuple[str, int, Path]]:
    """(arm, seed, dir) of runs/<arm>/seed-<s> folders, in name order."""
    found = []
    runs = out / "runs"
    try:
        arms = [e for e in os.scandir(runs) if e.is_dir() and not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    for a in sorted(arms, key=lambda e: e.name):
        try:
            seeds = [e for e in os.scandir(a.path) if e.is_dir() and _SEED_DIR.match(e.name)]
        except (FileNotFoundError, PermissionError):
            continue
        for e in sorted(seeds, key=lambda e: int(_SEED_DIR.match(e.name).group(1))):
            found.append((a.name, int(_SEED_DIR.match(e.name).group(1)), Path(e.path)))
    return found


def is_experiment(path: str | Path) -> bool:
    p = Path(path)
    return (p / SPEC).is_file() or bool(_run_dirs(p))


def find_experiments(root: str | Path, max_depth: int = 3) -> list[Path]:
    """Experiment folders: root itself, or folders under it (not inside run directories), or root's
    parent when root is an experiment's runs/ folder (what the runner tells users to open)."""
    root = Path(root)
    if not root.is_dir():
        return []
    if root.name == "runs" and (root.parent / SPEC).is_file():
        return [root.parent]
    found: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        if is_experiment(d):
            found.append(d)
            return
        if depth >= max_depth or (d / "manifest.json").is_file():
            return
        try:
            subs = sorted(Path(e.path) for e in os.scandir(d)
                          if e.is_dir() and not e.name.startswith((".", "_")) and e.name not in _NOT_EXPERIMENTS)
        except (FileNotFoundError, PermissionError):
            return
        for s in subs:
            walk(s, depth + 1)

    walk(root, 0)
    return found


def read_spec(out: str | Path) -> dict:
    """<out>/experiment.yaml as written by the runner ({} when missing or not a YAML mapping)."""
    import yaml

    try:
        raw = yaml.safe_load((Path(out) / SPEC).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def experiment_runs(out: str | Path, spec: dict | None = None) -> list[ExperimentRun]:
    """The spec's runs, arm by arm (file order) and seed by seed, started or not; then any run
    directory under runs/ the spec does not name (an arm or seed since removed from the file)."""
    out = Path(out)
    spec = read_spec(out) if spec is None else spec
    arms = list((spec.get("arms") or {}).keys())
    seeds = [int(s) for s in (spec.get("seeds") or [])]
    runs = [ExperimentRun(a, s, out / "runs" / a / f"seed-{s}") for a in arms for s in seeds]
    named = {(r.arm, r.seed) for r in runs}
    extra = [ExperimentRun(a, s, d) for a, s, d in _run_dirs(out) if (a, s) not in named
             and (d / "manifest.json").is_file()]
    return runs + extra


def planned_steps(spec: dict, arm: str) -> int | None:
    """train.steps a run of `arm` is set to, read without resolving the config: the last
    `train.steps=N` of the arm's overrides, else of the experiment's, else the base config file's
    train.steps (None when none says)."""
    import yaml

    for overrides in ((spec.get("arms") or {}).get(arm) or [], spec.get("overrides") or []):
        for o in reversed(overrides):
            k, _, v = str(o).partition("=")
            if k.strip() == "train.steps" and v.strip().isdigit():
                return int(v)
    try:
        base = yaml.safe_load(Path(spec.get("config") or "").read_text()) or {}
        steps = (base.get("train") or {}).get("steps")
        return int(steps) if steps is not None else None
    except (OSError, yaml.YAMLError, TypeError, ValueError, AttributeError):
        return None


def eval_steps(spec: dict, steps: int) -> list[int]:
    """The optimizer steps after which a run of `steps` steps is evaluated on the held-out set (the
    runner's schedule: ExperimentSpec.eval_steps, read from the written experiment.yaml)."""
    from taorl.experiment.spec import HeldOut

    e = HeldOut(**(spec.get("eval") or {}))
    out = [0] if e.at_start else []
    if e.every:
        out += list(range(e.every, steps + 1, e.every))
    if steps and steps not in out:
        out.append(steps)
    return out


def heldout_files(out: str | Path) -> list[tuple[str, int, int, Path]]:
    """(arm, seed, step, file) of every complete held-out file (the runner renames a file into place
    only once written)."""
    root = Path(out) / "heldout"
    found = []
    for arm, seed, d in _seed_dirs(root):
        try:
            names = os.listdir(d)
        except (FileNotFoundError, PermissionError):
            continue
        for n in names:
            m = _STEP_FILE.match(n)
            if m:
                found.append((arm, seed, int(m.group(1)), d / n))
    return sorted(found, key=lambda f: (f[0], f[1], f[2]))


def _seed_dirs(root: Path) -> list[tuple[str, int, Path]]:
    try:
        arms = [e for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    out = []
    for a in arms:
        try:
            out += [(a.name, int(_SEED_DIR.match(e.name).group(1)), Path(e.path)) for e in os.scandir(a.path)
                    if e.is_dir() and _SEED_DIR.match(e.name)]
        except (FileNotFoundError, PermissionError):
            continue
    return out


def read_heldout(out: str | Path, files: Sequence[tuple[str, int, int, Path]] | None = None
                 ) -> tuple[pl.DataFrame, list[str]]:
    """(arm, seed, step, metric, value, seconds (the evaluation's wall time, null in older files) of the
    held-out files landed so far, ["file: why" of each file that could not be read]): a bad file is
    left out and named, never fatal."""
    files = heldout_files(out) if files is None else files
    frames, bad = [], []
    for arm, seed, step, f in files:
        try:
            df = pl.read_parquet(f)
            seconds = pl.col("seconds").cast(pl.Float64) if "seconds" in df.columns else pl.lit(None, pl.Float64)
            frames.append(df.select(pl.lit(arm).alias("arm"), pl.lit(seed, pl.Int64).alias("seed"),
                                    pl.lit(step, pl.Int64).alias("step"), pl.col("metric").cast(pl.String),
                                    pl.col("value").cast(pl.Float64), seconds.alias("seconds")))
        except (pl.exceptions.PolarsError, OSError) as e:
            bad.append(f"{f}: {str(e).splitlines()[0][:160] if str(e) else e.__class__.__name__}")
    if not frames:
        return pl.DataFrame(schema=HELDOUT_SCHEMA), bad
    return pl.concat(frames), bad


def last_log_line(out: str | Path, arm: str, seed: int, max_bytes: int = 4096) -> tuple[str, float] | None:
    """(the last line written, its file's mtime) of the run's newest log in <out>/logs/ (the runner
    writes <arm>-seed-<s>-<start|train|eval>.log under --jobs); progress-bar redraws (\\r) keep
    their last state. None without a log."""
    logs = Path(out) / "logs"
    cands = [logs / f"{arm}-seed-{seed}-{what}.log" for what in ("start", "train", "eval")]
    found = []
    for f in cands:
        try:
            found.append((f.stat().st_mtime, f))
        except OSError:
            continue
    if not found:
        return None
    mtime, f = max(found)
    try:
        with open(f, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - max_bytes))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return None
    lines = [x.split("\r")[-1].strip() for x in tail.replace("\r\n", "\n").split("\n")]
    lines = [x for x in lines if x]
    return (lines[-1], mtime) if lines else None


def report_folder(out: str | Path) -> Path | None:
    rep = Path(out) / "report"
    return rep if (rep / "report.json").is_file() and (rep / "summary.parquet").is_file() else None


def step_time(wall_s: Sequence[float | None], last: int = 10) -> float | None:
    """Seconds per optimizer step: the median gap between the last `last` published steps' wall
    times (one step: its own wall time, which includes the start-up). None without steps."""
    w = [float(x) for x in wall_s if x is not None]
    if not w:
        return None
    if len(w) == 1:
        return w[0] if w[0] > 0 else None
    tail = w[-(last + 1):]
    gaps = [b - a for a, b in itertools.pairwise(tail) if b >= a]
    return statistics.median(gaps) if gaps else None
