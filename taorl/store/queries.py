"""Queries over a run directory shared by the dashboard and notebooks: small polars functions that
turn the tables of taorl.store into the frames the figures of taorl.viz draw.

    LiveRun(path)                  incremental reader: each refresh() reads only newly published steps
    boundary_offsets(tokens)       token rows + `rel`: offset from the nearest tool return
                                   (-1 = last model token before a call, 0 = first one after its output)
    boundary_stats(tokens, ...)    per (step, rel): n, Σ H, Σ H² — additive, so cached per step
    boundary_profile(stats, ...)   mean entropy ± 95 % CI vs rel, per training-step bucket
    boundary_heatmap(stats, ...)   mean entropy per (step bin, offset)
    filter_counts(metrics)         groups kept / dropped per reason, trajectories masked per reason
    health_flags(metrics, ...)     entropy collapse, zero-variance share, tool failure, truncation, clipping
    tool_calls(trajectories)       one row per tool call (status, latency), exploded
    first_divergence(texts)        where G samples of a group stop sharing a prefix
    best_checkpoint(evals, ...)    the eval step with the best mean over benchmarks
    filter_trajectories(df, ...)   the trajectory browser's filters
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from taorl.store.reader import _READ_ERRORS, Run, open_run
from taorl.types import GROUP_REASONS


# ------------------------------------------------------------------------------------ metrics
def metrics_wide(long: pl.DataFrame) -> pl.DataFrame:
    """Long metric rows (step, name, value, wall_s) -> one row per step: step, wall_s, <metrics>."""
    if long.is_empty():
        return pl.DataFrame(schema={"step": pl.Int64, "wall_s": pl.Float64})
    names = long.get_column("name").unique(maintain_order=True).to_list()
    wall = long.group_by("step").agg(pl.col("wall_s").first())
    wide = long.pivot(on="name", index="step", values="value", aggregate_function="last")
    return wall.join(wide, on="step", how="left").sort("step").select("step", "wall_s", *names)


# --------------------------------------------------------------------------- incremental reader
TRAJ_LIGHT = ["traj", "group", "index", "problem_id", "reward", "n_turns", "n_call", "n_ok", "statuses",
              "call_ms", "void", "truncated", "finish", "length", "n_model_tokens", "advantage", "weight",
              "reason", "group_kept", "has_tokens"]  # everything but the decoded text


class _Incremental:
    """Rows of one table for steps 0..upto, grown by reading only the steps not yet read.
    `reduce` (optional) maps a chunk of rows to the frame that is kept (e.g. per-step sums)."""

    CHUNK = 100  # steps read per scan (bounds memory while reducing big token tables)

    def __init__(self, table: str, columns: list[str] | None = None,
                 reduce: Callable[[pl.DataFrame], pl.DataFrame] | None = None):
        self.table, self.columns, self.reduce = table, columns, reduce
        self.frames: list[pl.DataFrame] = []
        self.upto = -1
        self._df: pl.DataFrame | None = None

    def update(self, run: Run) -> pl.DataFrame:
        last = run.last_step
        if last < self.upto:  # a resume rewound the run: start over
            self.frames, self.upto, self._df = [], -1, None
        for lo in range(self.upto + 1, last + 1, self.CHUNK):
            chunk = self._read(run, range(lo, min(lo + self.CHUNK, last + 1)))
            self.frames.append(self.reduce(chunk) if self.reduce else chunk)
            self._df = None
        self.upto = max(self.upto, last)
        if self._df is None:
            self._df = pl.concat(self.frames, how="vertical_relaxed") if self.frames else None
        if self._df is None:  # nothing published: the empty shape
            empty = Run._empty(self.table, self.columns)
            self._df = self.reduce(empty) if self.reduce else empty
        return self._df

    def _read(self, run: Run, steps: range) -> pl.DataFrame:
        """The rows of `steps`; a part that does not decode is skipped and reported through
        run.mark_unreadable (a truncated one never gets here: the footer check drops it first)."""
        def one(lf: pl.LazyFrame) -> pl.DataFrame:
            return (lf.select("step", *self.columns) if self.columns is not None else lf).collect()

        try:
            return one(run.scan(self.table, steps))
        except _READ_ERRORS:
            pass
        frames = []
        for s in steps:
            try:
                frames.append(one(run.scan(self.table, s)))
            except _READ_ERRORS as e:
                why = str(e).splitlines()[0][:200] if str(e) else e.__class__.__name__
                path = f"{run.path}/{self.table}/step={s:06d}/part-0.parquet"
                run.mark_unreadable(self.table, s, path, why)
                warnings.warn(f"{path}: unreadable parquet part skipped ({why})", stacklevel=4)
        return pl.concat(frames, how="vertical_relaxed") if frames else Run._empty(self.table, self.columns)


class LiveRun:
    """One run directory read incrementally: every call refreshes the manifest and reads only the
    steps published since the last call (published steps never change, except after a resume,
    which rewinds last_step and makes the reader start over). Thread-safe (one lock per run).

        lr = LiveRun("runs/x"); lr.metrics(); lr.trajectories(); lr.boundary_stats(16, 64)
    Raises the store's errors (NotARun, SchemaVersionError, RunGone) from open/refresh.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.run = open_run(self.path)
        self._lock = threading.RLock()
        self._tables: dict[tuple, _Incremental] = {}
        self._created = self.run.manifest.get("created_at")
        self._evals: tuple[int, pl.DataFrame] | None = None

    def refresh(self) -> Run:
        with self._lock:
            self.run.refresh()
            if self.run.manifest.get("created_at") != self._created:  # a new run in the same dir
                self._tables.clear()
                self._evals = None
                self._created = self.run.manifest.get("created_at")
            return self.run

    @property
    def key(self) -> tuple[str, int, int]:
        """(run dir, last published step, revision): what caches of derived values key on."""
        return (str(self.path), self.run.last_step, self.run.revision)

    def _get(self, key: tuple, table: str, columns=None, reduce=None) -> pl.DataFrame:
        with self._lock:
            inc = self._tables.get(key)
            if inc is None:
                inc = self._tables[key] = _Incremental(table, columns, reduce)
            return inc.update(self.run)

    def metrics(self) -> pl.DataFrame:
        """Wide metrics (step, wall_s, one column per metric)."""
        with self._lock:
            key = ("metrics-wide", self.run.last_step)
            hit = self._tables.get(("_wide",))
            long = self._get(("metrics",), "metrics")
            if hit is not None and hit[0] == key:
                return hit[1]
            wide = metrics_wide(long)
            self._tables[("_wide",)] = (key, wide)  # type: ignore[assignment]
            return wide

    def trajectories(self, columns: Sequence[str] = tuple(TRAJ_LIGHT)) -> pl.DataFrame:
        return self._get(("trajectories", tuple(columns)), "trajectories", list(columns))

    def groups(self) -> pl.DataFrame:
        return self._get(("groups",), "groups")

    def boundary_stats(self, before: int = 16, after: int = 64) -> pl.DataFrame:
        return self._get(("boundary", before, after), "tokens",
                         ["traj", "pos", "segment", "offset", "entropy"],
                         lambda df: boundary_stats(df, before, after))

    def evals(self) -> pl.DataFrame:
        """Evals are small and late evals add rows to old steps: re-read when the revision moves."""
        with self._lock:
            rev = self.run.revision
            if self._evals is None or self._evals[0] != rev:
                self._evals = (rev, self.run.evals())
            return self._evals[1]


# ---------------------------------------------------------------------- entropy at tool boundaries
def boundary_offsets(tokens: pl.DataFrame) -> pl.DataFrame:
    """Model-token rows of `tokens` with `after` (= offset: model tokens since the last tool return,
    null before any) and `before` (negative: -1 for the last model token before a tool output, -2
    the one before, ...; null when no tool output follows in the trajectory).

    `tokens` needs step, traj, pos, segment, offset, entropy and may hold several trajectories.
    """
    keys = ["step", "traj"]
    df = tokens.sort(*keys, "pos")
    is_tool = pl.col("segment") == "tool"
    start = is_tool & ~is_tool.shift(1, fill_value=False).over(keys)  # first token of a tool output
    df = df.with_columns(
        pl.when(start).then(pl.col("pos")).otherwise(None).backward_fill().over(keys).alias("_next_tool"))
    return (df.filter(pl.col("segment") == "model")
            .with_columns(after=pl.col("offset"), before=(pl.col("pos") - pl.col("_next_tool")).cast(pl.Int32))
            .drop("_next_tool"))


def boundary_stats(tokens: pl.DataFrame, before: int = 16, after: int = 64) -> pl.DataFrame:
    """Per (step, rel) over model tokens with an entropy: n, Σ H, Σ H², for rel in [-before, after).

    rel >= 0 comes from the `after` offset, rel < 0 from `before`; a token can count on both sides
    (after one tool return and before the next call). Sums are additive over steps, so a cache
    can keep them per step and combine buckets later.
    """
    schema = {"step": pl.Int64, "rel": pl.Int32, "n": pl.UInt32, "s": pl.Float64, "ss": pl.Float64}
    if tokens.is_empty():
        return pl.DataFrame(schema=schema)
    df = boundary_offsets(tokens).filter(pl.col("entropy").is_not_null())
    H = pl.col("entropy").cast(pl.Float64)
    a = df.filter(pl.col("after") < after).select("step", pl.col("after").cast(pl.Int32).alias("rel"), H)
    b = df.filter(pl.col("before") >= -before).select("step", pl.col("before").alias("rel"), H)
    both = pl.concat([a, b])
    return (both.group_by("step", "rel").agg(n=pl.len(), s=H.sum(), ss=(H * H).sum())
            .sort("step", "rel").cast(schema))


def step_buckets(first: int, last: int, k: int) -> list[tuple[int, int]]:
    """k contiguous, nearly equal step ranges [lo, hi] covering first..last (fewer if few steps)."""
    n = last - first + 1
    if n <= 0:
        return []
    k = max(1, min(k, n))
    edges = [first + (n * i) // k for i in range(k + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(k)]


def _mean_ci(df: pl.DataFrame) -> pl.DataFrame:
    """From n, s, ss: mean, population std, 95 % CI of the mean (normal approximation)."""
    mean = pl.col("s") / pl.col("n")
    var = (pl.col("ss") / pl.col("n") - mean ** 2).clip(lower_bound=0.0)
    half = 1.96 * var.sqrt() / pl.col("n").cast(pl.Float64).sqrt()
    return df.with_columns(mean=mean, std=var.sqrt()).with_columns(
        lo=pl.col("mean") - half, hi=pl.col("mean") + half)


def boundary_profile(stats: pl.DataFrame, buckets: int = 4, min_n: int = 1) -> pl.DataFrame:
    """Mean entropy vs rel per training-step bucket: bucket (label), lo_step, rel, n, mean, std, lo, hi."""
    out_schema = {"bucket": pl.String, "lo_step": pl.Int64, "rel": pl.Int32, "n": pl.UInt32, "s": pl.Float64,
                  "ss": pl.Float64, "mean": pl.Float64, "std": pl.Float64, "lo": pl.Float64, "hi": pl.Float64}
    if stats.is_empty():
        return pl.DataFrame(schema=out_schema)
    first, last = int(stats["step"].min()), int(stats["step"].max())
    parts = []
    for lo, hi in step_buckets(first, last, buckets):
        label = f"steps {lo}–{hi}" if hi > lo else f"step {lo}"
        part = (stats.filter(pl.col("step").is_between(lo, hi)).group_by("rel")
                .agg(pl.col("n").sum(), pl.col("s").sum(), pl.col("ss").sum())
                .with_columns(bucket=pl.lit(label), lo_step=pl.lit(lo, pl.Int64)))
        parts.append(part)
    df = pl.concat(parts).filter(pl.col("n") >= min_n)
    return _mean_ci(df).select(list(out_schema)).cast(out_schema).sort("lo_step", "rel")


def boundary_heatmap(stats: pl.DataFrame, max_bins: int = 120, side: str = "after") -> pl.DataFrame:
    """Mean entropy per (step bin, rel) on one side of the boundary: step (first step of the bin),
    rel, mean. Steps are binned so that there are at most `max_bins` rows."""
    df = stats.filter(pl.col("rel") >= 0) if side == "after" else stats
    if df.is_empty():
        return pl.DataFrame(schema={"step": pl.Int64, "rel": pl.Int32, "mean": pl.Float64})
    first, last = int(df["step"].min()), int(df["step"].max())
    width = max(1, math.ceil((last - first + 1) / max_bins))
    return (df.with_columns(step=first + (pl.col("step") - first) // width * width)
            .group_by("step", "rel").agg(pl.col("n").sum(), pl.col("s").sum())
            .with_columns(mean=pl.col("s") / pl.col("n")).select("step", "rel", "mean").sort("step", "rel"))


# ------------------------------------------------------------------------- groups and filters
def filter_counts(metrics: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(groups, trajectories) in long form: step, outcome, count. Group outcomes: "kept" and one
    per drop reason (tao/groups_dropped/<reason>); trajectory outcomes: tao/traj_masked/<reason>."""
    def long(prefix: str, extra: dict[str, str]) -> pl.DataFrame:
        cols = {c: c.removeprefix(prefix) for c in metrics.columns if c.startswith(prefix)}
        cols.update({k: v for k, v in extra.items() if k in metrics.columns})
        if not cols:
            return pl.DataFrame(schema={"step": pl.Int64, "outcome": pl.String, "count": pl.Float64})
        return (metrics.select("step", *cols).rename(cols)
                .unpivot(index="step", variable_name="outcome", value_name="count")
                .with_columns(pl.col("count").fill_null(0.0)))
    return (long("tao/groups_dropped/", {"tao/groups_kept": "kept"}), long("tao/traj_masked/", {}))


def group_table(groups: pl.DataFrame) -> pl.DataFrame:
    """The groups of the given rows as a display table: step, group, problem, rewards as a string
    of 0/1 marks, pass rate, kept, why not."""
    return groups.select(
        "step", "group", "problem_id", "problem", "answer",
        pl.col("rewards").list.eval(pl.element().round(2).cast(pl.String).str.strip_suffix(".0"))
        .list.join(" ").alias("rewards"),
        "pass_rate", "reward_std", "n_untruncated", "kept",
        pl.col("reason").fill_null("kept").alias("outcome"))


# ---------------------------------------------------------------------------------- health
@dataclass(frozen=True)
class Flag:
    name: str
    ok: bool
    value: float | None
    threshold: str
    message: str


@dataclass(frozen=True)
class HealthThresholds:
    window: int = 10  # mean over the last `window` steps
    entropy_collapse: float = 0.15  # entropy below this fraction of its first-window mean
    zero_variance: float = 0.8  # share of groups dropped for all-correct / all-wrong
    tool_failure: float = 0.5  # 1 - tools/success_rate
    truncation: float = 0.2  # completions/clipped_ratio
    clip: float = 0.2  # clip_ratio/high_mean + clip_ratio/low_mean


def _tail_mean(metrics: pl.DataFrame, col: str, n: int, head: bool = False) -> float | None:
    if col not in metrics.columns or metrics.is_empty():
        return None
    s = metrics.get_column(col).drop_nulls()
    s = s.head(n) if head else s.tail(n)
    return float(s.mean()) if len(s) else None


def zero_variance_share(metrics: pl.DataFrame) -> pl.Series:
    """Per step: groups *dropped as* all-correct or all-wrong / groups sampled (from the filter
    metrics; a group dropped first for another reason, e.g. too_few_untruncated, is not counted
    here even when its rewards are all equal: use same_reward_groups for what the rewards say)."""
    def col(c: str) -> pl.Expr:
        return pl.col(c).fill_null(0.0) if c in metrics.columns else pl.lit(0.0)
    zero = col("tao/groups_dropped/group_all_correct") + col("tao/groups_dropped/group_all_wrong")
    total = col("tao/groups_kept") + sum((col(f"tao/groups_dropped/{r}") for r in GROUP_REASONS), pl.lit(0.0))
    return metrics.select((zero / pl.when(total > 0).then(total).otherwise(None)).alias("zv")).to_series()


def same_reward_groups(groups: pl.DataFrame) -> pl.DataFrame:
    """Per step, from the groups' own rewards (whatever the filter did with them): groups, all_equal
    (every rollout got the same reward: no learning signal), all_correct (every reward ≥ 1) and
    all_wrong (every reward ≤ 0). groups needs step and rewards."""
    r = pl.col("rewards")
    return (groups.filter(r.list.len() > 0)
            .group_by("step").agg(groups=pl.len(), all_equal=(r.list.max() == r.list.min()).sum(),
                                  all_correct=(r.list.min() >= 1.0).sum(), all_wrong=(r.list.max() <= 0.0).sum())
            .sort("step"))


def dropped_by_reason(metrics: pl.DataFrame, step: int | None = None) -> dict[str, float]:
    """The groups dropped at `step` (default: the last) by reason, from tao/groups_dropped/<reason>;
    each group counts under the first reason that applies (taorl.algo.filters)."""
    if metrics.is_empty():
        return {}
    row = metrics.filter(pl.col("step") == (int(metrics["step"].max()) if step is None else step))
    return {c.removeprefix("tao/groups_dropped/"): float(row[c][0] or 0.0) for c in row.columns
            if c.startswith("tao/groups_dropped/") and len(row) and (row[c][0] or 0.0) > 0}


def _tool_failure(metrics: pl.DataFrame, n: int) -> tuple[float | None, bool]:
    """(share of tool calls that failed over the last n steps, any call made). Steps are weighted by
    their calls (tools/call_frequency, rollouts per step being fixed): a step without calls has
    tools/success_rate 0 by convention and must not count as all-failed."""
    if "tools/success_rate" not in metrics.columns or metrics.is_empty():
        return None, False
    tail = metrics.tail(n)
    if "tools/call_frequency" not in tail.columns:
        sr = tail["tools/success_rate"].drop_nulls()
        return (1.0 - float(sr.mean()), True) if len(sr) else (None, False)
    df = tail.select(sr=pl.col("tools/success_rate"), w=pl.col("tools/call_frequency")).drop_nulls()
    w = float(df["w"].sum()) if len(df) else 0.0
    if w <= 0:
        return None, len(df) > 0
    return 1.0 - float((df["sr"] * df["w"]).sum()) / w, True


def health_flags(metrics: pl.DataFrame, t: HealthThresholds = HealthThresholds(),
                 groups: pl.DataFrame | None = None) -> list[Flag]:
    """Warning signs over the last `t.window` steps (a flag with value None: metric missing).

    Each number is what its sentence says. Zero-variance groups: with `groups` (step, rewards of
    the last steps), the share of groups whose rollouts all got the same reward, read from the
    rewards, whatever the filter dropped them for; without it, the share dropped *as* all-correct or
    all-wrong (the filter metrics, which count a group under its first drop reason only)."""
    w = t.window
    flags = []
    h_now = _tail_mean(metrics, "entropy", w)
    h0 = _tail_mean(metrics, "entropy", w, head=True)
    ratio = h_now / h0 if (h_now is not None and h0) else None
    flags.append(Flag("entropy collapse", ratio is None or ratio >= t.entropy_collapse, ratio,
                      f"entropy ≥ {t.entropy_collapse:.0%} of its start",
                      f"entropy at {{:.0%}} of its start (last {w} vs first {w} steps)"))
    if groups is not None and not groups.is_empty():
        last = int(groups["step"].max())
        per = same_reward_groups(groups.filter(pl.col("step") > last - w))
        n, eq = int(per["groups"].sum()), int(per["all_equal"].sum())
        zvm = eq / n if n else None
        msg = (f"{{:.0%}} of groups ({eq} of {n}) got the same reward in every rollout "
               f"({int(per['all_correct'].sum())} all-correct, {int(per['all_wrong'].sum())} all-wrong)")
    else:
        zv = zero_variance_share(metrics).tail(w).drop_nulls() if not metrics.is_empty() else pl.Series([])
        zvm = float(zv.mean()) if len(zv) else None
        msg = "{:.0%} of groups were dropped as all-correct or all-wrong"
    flags.append(Flag("zero-variance groups", zvm is None or zvm <= t.zero_variance, zvm,
                      f"≤ {t.zero_variance:.0%} of groups", msg))
    fail, called = _tool_failure(metrics, w)
    flags.append(Flag("tool failures", fail is None or fail <= t.tool_failure, fail,
                      f"≤ {t.tool_failure:.0%} of calls",
                      "{:.0%} of tool calls failed" if fail is not None else
                      ("no tool calls" if called else "no data")))
    tr = _tail_mean(metrics, "completions/clipped_ratio", w)
    flags.append(Flag("truncation", tr is None or tr <= t.truncation, tr,
                      f"≤ {t.truncation:.0%} of rollouts", "{:.0%} of rollouts hit the length limit"))
    hi = _tail_mean(metrics, "clip_ratio/high_mean", w)
    lo = _tail_mean(metrics, "clip_ratio/low_mean", w)
    clip = None if hi is None and lo is None else (hi or 0.0) + (lo or 0.0)
    flags.append(Flag("clip fraction", clip is None or clip <= t.clip, clip,
                      f"≤ {t.clip:.0%} of tokens", "{:.1%} of tokens are clipped"))
    return [Flag(f.name, f.ok, f.value, f.threshold,
                 f.message.format(f.value) if f.value is not None and "{" in f.message else
                 ("no data" if f.value is None and "{" in f.message else f.message)) for f in flags]


# ------------------------------------------------------------------------------------ tools
def tool_calls(trajectories: pl.DataFrame) -> pl.DataFrame:
    """One row per tool call: step, traj, reward, call (index), status, ms."""
    if trajectories.is_empty():
        return pl.DataFrame(schema={"step": pl.Int64, "traj": pl.Int32, "reward": pl.Float64,
                                    "call": pl.UInt32, "status": pl.String, "ms": pl.Float64})
    return (trajectories.filter(pl.col("n_call") > 0)
            .select("step", "traj", "reward", pl.col("statuses").alias("status"), pl.col("call_ms").alias("ms"))
            .with_columns(call=pl.int_ranges(0, pl.col("status").list.len()))
            .explode("status", "ms", "call")
            .select("step", "traj", "reward", pl.col("call").cast(pl.UInt32), "status", "ms"))


def success_vs_reward(trajectories: pl.DataFrame) -> pl.DataFrame:
    """Per number of tool calls: rollouts, mean reward, mean per-rollout success rate (n_ok/n_call)."""
    return (trajectories.group_by("n_call")
            .agg(rollouts=pl.len(), reward=pl.col("reward").mean(),
                 success=(pl.col("n_ok") / pl.col("n_call")).filter(pl.col("n_call") > 0).mean())
            .sort("n_call"))


# -------------------------------------------------------------------------------- one group
def first_divergence(texts: Sequence[str]) -> int:
    """Length of the longest prefix shared by all texts (where the samples first diverge)."""
    if not texts:
        return 0
    return len(os.path.commonprefix(list(texts)))


def first_token_divergence(tokens: pl.DataFrame) -> int | None:
    """Over the token rows of several trajectories (traj, pos, token_id): the first response
    position where their token ids are not all equal (None if they agree on their common length)."""
    resp = tokens.filter(pl.col("segment") != "prompt")
    if resp.is_empty():
        return None
    per = (resp.group_by("pos").agg(pl.col("token_id").n_unique().alias("k"), pl.len().alias("n"))
           .sort("pos"))
    n_traj = resp["traj"].n_unique()
    diff = per.filter((pl.col("k") > 1) | (pl.col("n") < n_traj))
    return int(diff["pos"][0]) if len(diff) else None


# -------------------------------------------------------------------------------------- evals
def best_checkpoint(evals: pl.DataFrame, metric: str = "avg@16",
                    benchmarks: Iterable[str] | None = None) -> tuple[int, float] | None:
    """(step, value) with the highest mean `metric` over the benchmarks evaluated at that step
    (only steps that have every benchmark of the run count). None without evals."""
    df = evals.filter(pl.col("metric") == metric)
    if benchmarks is not None:
        df = df.filter(pl.col("benchmark").is_in(list(benchmarks)))
    if df.is_empty():
        return None
    nb = df["benchmark"].n_unique()
    per = (df.group_by("step").agg(pl.col("value").mean(), pl.col("benchmark").n_unique().alias("nb"))
           .filter(pl.col("nb") == nb).sort("value", "step", descending=[True, False]))
    if per.is_empty():
        return None
    return int(per["step"][0]), float(per["value"][0])


def final_evals(evals: pl.DataFrame, metric: str = "avg@16") -> pl.DataFrame:
    """The last evaluated step's `metric` per benchmark: benchmark, value, ci_low, ci_high."""
    df = evals.filter(pl.col("metric") == metric)
    if df.is_empty():
        return df.select("benchmark", "value", "ci_low", "ci_high")
    last = int(df["step"].max())
    return df.filter(pl.col("step") == last).select("benchmark", "value", "ci_low", "ci_high")


# ---------------------------------------------------------------------------- the browser
def filter_trajectories(df: pl.DataFrame, *, steps: tuple[int, int] | None = None,
                        reward: tuple[float, float] | None = None, kept: str = "all",
                        reasons: Sequence[str] | None = None, calls: tuple[int, int] | None = None,
                        statuses: Sequence[str] | None = None, length: tuple[int, int] | None = None,
                        text: str = "") -> pl.DataFrame:
    """The trajectory browser's filters. kept: all | trained (weight > 0) | masked (weight 0);
    reasons: keep rows whose reason is one of these ("none" matches no reason); statuses: rows
    with at least one call of one of these statuses; text: case-insensitive literal search."""
    c = pl.col
    if steps is not None:
        df = df.filter(c("step").is_between(*steps))
    if reward is not None:
        df = df.filter(c("reward").is_between(*reward))
    if kept == "trained":
        df = df.filter(c("weight") > 0)
    elif kept == "masked":
        df = df.filter(c("weight") == 0)
    if reasons:
        want = [r for r in reasons if r != "none"]
        cond = c("reason").is_in(want)
        if "none" in reasons:
            cond = cond | c("reason").is_null()
        df = df.filter(cond.fill_null(False))
    if calls is not None:
        df = df.filter(c("n_call").is_between(*calls))
    if statuses:
        df = df.filter(c("statuses").list.eval(pl.element().is_in(list(statuses))).list.any())
    if length is not None:
        df = df.filter(c("length").is_between(*length))
    if text and "text" in df.columns:
        df = df.filter(c("text").str.to_lowercase().str.contains(text.lower(), literal=True))
    return df


__all__ = [
    "TRAJ_LIGHT",
    "Flag",
    "HealthThresholds",
    "LiveRun",
    "best_checkpoint",
    "boundary_heatmap",
    "boundary_offsets",
    "boundary_profile",
    "boundary_stats",
    "dropped_by_reason",
    "filter_counts",
    "filter_trajectories",
    "final_evals",
    "first_divergence",
    "first_token_divergence",
    "group_table",
    "health_flags",
    "metrics_wide",
    "same_reward_groups",
    "step_buckets",
    "success_vs_reward",
    "tool_calls",
    "zero_variance_share"
]
