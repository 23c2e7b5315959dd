"""0 · Experiment: the arms × seeds of one `taorl experiment` folder on one page, live while it runs.

Each arm's training curves as the mean over its seeds with a 95 % band (Student t over seeds) and
the seeds as thin lines; the held-out evaluations as they land; a table of the runs (state, step,
time per step, ETA); and, once the report is written, its paired differences, read from
report.json (nothing the report holds is recomputed here).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import polars as pl
import streamlit as st
import tao_ui
from report_tables import heldout_table, paired_table

from taorl.experiment.layout import (
    eval_steps,
    experiment_runs,
    heldout_files,
    last_log_line,
    planned_steps,
    read_heldout,
    read_spec,
    report_folder,
    step_time,
)
from taorl.experiment.stats import mean_interval
from taorl.store import StoreError
from taorl.viz.figures import seed_band_figure
from taorl.viz.style import label, run_colors

sel = tao_ui.current()
CURVES = ["reward", "tao/post_tool_entropy"]
# metrics bounded to [0, 1] (rates; taorl's rewards are 0/1): their bands are clipped there, as in the report
UNIT_RANGE = {"reward", "accuracy", "tools/success_rate", "tools/call_rate", "completions/clipped_ratio",
              "tao/void_rate", "clip_ratio/high_mean", "clip_ratio/low_mean"}


def _layout(fig, xs: pl.Series):
    """The experiment page's figures: the legend (one entry per arm, often several rows) under the
    plot, not over its title; whole steps on the x axis while there are few."""
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0},
                      margin={"b": 10})
    if len(xs) and int(xs.max()) <= 12:
        fig.update_xaxes(dtick=1)
    return fig


def _dur(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


@st.cache_data(show_spinner=False, max_entries=16)
def _heldout(out: str, sig: tuple) -> tuple[pl.DataFrame, list[str]]:
    return read_heldout(out, [(a, s, k, Path(f)) for a, s, k, f, _m in sig])


@st.cache_data(show_spinner=False, max_entries=8)
def _report(folder: str, mtime: float) -> dict:
    rep = json.loads((Path(folder) / "report.json").read_text())
    rep["_mtime"] = mtime
    return rep


def _total_steps(lr) -> int | None:
    steps = ((tao_ui.config_of(lr).get("train") or {}).get("steps"))
    return int(steps) if steps else None


def runs_table(out: Path, spec: dict, runs, lrs: dict, held: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """One row per (arm, seed) and a sentence on the whole experiment's remaining time."""
    now = time.time()
    rows, remaining, paces, running = [], [], [], 0
    # one evaluation's wall time (each held-out file records it): the runs' evaluations still to come count too
    per_eval = held.filter(pl.col("step") > 0).group_by("arm", "seed", "step").agg(pl.col("seconds").first())
    eval_s = per_eval["seconds"].drop_nulls().median() if len(per_eval) else None
    totals = {}
    for r in runs:
        lr = lrs.get((r.arm, r.seed))
        if lr is not None and _total_steps(lr):
            totals.setdefault(r.arm, _total_steps(lr))
    for arm in dict.fromkeys(r.arm for r in runs):  # arms not started: what experiment.yaml sets
        if arm not in totals and planned_steps(spec, arm):
            totals[arm] = planned_steps(spec, arm)
    any_total = next(iter(totals.values()), None)
    pending_left = []  # (steps, evaluation seconds) still to do by the runs not started
    for r in runs:
        lr = lrs.get((r.arm, r.seed))
        total = (_total_steps(lr) if lr is not None else None) or totals.get(r.arm, any_total)
        n_eval = len(eval_steps(spec, total)) if total else None
        landed = held.filter((pl.col("arm") == r.arm) & (pl.col("seed") == r.seed))["step"].n_unique()
        evals_left = max(0, (n_eval or 0) - landed) * (eval_s or 0.0)
        log = last_log_line(out, r.arm, r.seed)
        row = {"arm": r.arm, "seed": r.seed, "state": "before training" if log and lr is None else "not started",
               "step": f"0 / {total or '?'}", "progress": 0.0, "s / step": "–", "ETA": "–",
               "updated": tao_ui.ago(log[1]) if log else "–",
               "held-out": f"{landed} / {n_eval}" if n_eval else str(landed), "open": "",
               "last log line": (log[0][:117] + "…" if len(log[0]) > 118 else log[0]) if log else ""}
        if lr is None and total:
            pending_left.append((total, evals_left))
        if lr is not None:
            run = lr.run
            done = run.last_step + 1
            pace = step_time(lr.metrics()["wall_s"].to_list()) if done > 0 else None
            state = run.status
            quiet = now - run.updated_at
            if state == "running":
                running += 1
                if pace and quiet > max(600.0, 5 * pace):
                    state = f"running · no write for {_dur(quiet)}"
                if pace and total:
                    remaining.append((total - done) * pace + evals_left)
            elif state == "finished" and evals_left:
                remaining.append(evals_left)
            if pace:
                paces.append(pace)
            row.update(state=state, step=f"{done} / {total or '?'}", progress=done / total if total else None,
                       **{"s / step": f"{pace:.1f}" if pace else "–"},
                       updated=tao_ui.ago(max(run.updated_at, log[1] if log else 0.0)),
                       open=f"overview?run={tao_ui.run_label(sel, str(r.dir))}")
            if run.status == "running" and pace and total:
                row["ETA"] = _dur((total - done) * pace + evals_left)
            elif run.status == "finished":
                row["ETA"] = "done" if not evals_left else f"{_dur(evals_left)} (evaluations)"
        rows.append(row)
    if paces:
        remaining += [statistics.median(paces) * steps + ev for steps, ev in pending_left]
    left = ""
    if remaining:
        at_once = max(1, running)
        left = (f"About **{_dur(sum(remaining) / at_once)}** left at the current pace "
                f"({running or 1} run{'s' if running > 1 else ''} at once; the runs not started yet counted at the "
                "median time per step of the others"
                + (f", each held-out evaluation at {_dur(eval_s)}" if eval_s else "") + ").")
    return pl.DataFrame(rows), left


def curves(out: Path, arms: list[str], lrs: dict, colors: dict) -> None:
    frames = {k: lr.metrics() for k, lr in lrs.items()}
    names: list[str] = []
    for df in frames.values():
        names += [c for c in df.columns if c not in ("step", "wall_s") and c not in names]
    c1, c2 = st.columns([4, 2])
    chosen = c1.multiselect("training curves", names, default=[c for c in CURVES if c in names], key="exp_metrics",
                            format_func=label)
    smoothing = c2.slider("smoothing (EMA weight, per seed)", 0.0, 0.99, 0.6, 0.01, key="exp_smooth")
    if not chosen:
        return
    key = tuple(sorted((k, lr.key) for k, lr in lrs.items()))
    cols = st.columns(2)
    for i, metric in enumerate(chosen):
        def build(metric=metric):
            parts = [df.select(pl.lit(arm).alias("arm"), pl.lit(seed, pl.Int64).alias("seed"), "step",
                               pl.col(metric).cast(pl.Float64).alias("value")).drop_nulls()
                     for (arm, seed), df in frames.items() if metric in df.columns]
            frame = pl.concat(parts) if parts else pl.DataFrame(schema={"arm": pl.String, "seed": pl.Int64,
                                                                       "step": pl.Int64, "value": pl.Float64})
            return _layout(seed_band_figure(frame, arms, title=label(metric), smoothing=smoothing, colors=colors,
                                            x_title="training step", seed_lines=True, max_points=300, height=380,
                                            bounds=(0.0, 1.0) if metric in UNIT_RANGE else None), frame["step"])
        with cols[i % 2]:
            tao_ui.plot(tao_ui.cached_figure(("exp-curve", str(out), key, metric, smoothing), build),
                        key=f"exp-curve-{metric}")
    st.caption("Thick line: the mean over the arm's seeds at each step (over the seeds that have reached it), "
               "band: its 95 % interval (Student t over seeds), thin lines: the seeds. Each seed is smoothed "
               "before averaging.")


def heldout(out: Path, spec: dict, arms: list[str], held: pl.DataFrame, colors: dict, rep: dict | None,
            report_current: bool) -> None:
    st.subheader("Held-out evaluations")
    if held.is_empty():
        st.info("No held-out evaluation has landed yet: the runner evaluates each run after "
                f"{(spec.get('eval') or {}).get('every') or 'the last'} steps"
                + (" and the initial weights first." if (spec.get("eval") or {}).get("at_start", True) else "."))
        return
    metrics = held["metric"].unique(maintain_order=True).to_list()
    n = (spec.get("eval") or {}).get("n")
    primary = f"heldout/avg@{n}" if n and f"heldout/avg@{n}" in metrics else \
        next((m for m in metrics if m.startswith("heldout/avg@")), metrics[0])
    metric = st.selectbox("held-out metric", metrics, index=metrics.index(primary), key="exp_heldout_metric",
                          format_func=lambda m: m.removeprefix("heldout/"))
    part = held.filter(pl.col("metric") == metric)
    # a rate (avg@n, pass@k, tool rates) is shown in %; counts such as response tokens or calls per rollout are not
    rate = ("tokens" not in metric and "per_rollout" not in metric
            and float(part["value"].min()) >= 0.0 and float(part["value"].max()) <= 1.0)
    key = ("exp-heldout", str(out), len(held), float(held["value"].sum()), metric)
    def build():
        fig = _layout(seed_band_figure(part, arms, title=f"Held-out {metric.removeprefix('heldout/')}",
                                       percent=rate, colors=colors, seed_lines=True, height=380), part["step"])
        return fig.update_yaxes(range=[-0.02, 1.02]) if rate else fig

    tao_ui.plot(tao_ui.cached_figure(key, build), key="exp-heldout")
    steps = sorted(part["step"].unique().to_list())
    from_report = report_current and rep is not None and metric == rep.get("primary")
    rows = []
    for s in steps:
        row = {"after step": s}
        for arm in arms:
            if from_report:
                d = (rep["curve"].get(arm) or {}).get(str(s))
            else:
                vals = part.filter((pl.col("arm") == arm) & (pl.col("step") == s))["value"].to_list()
                i = mean_interval(vals)
                d = None if i.n == 0 else {"mean": i.mean, "low": None if i.n < 2 else i.low,
                                           "high": None if i.n < 2 else i.high, "n": i.n}
            row[arm] = _cell(d, rate)
        rows.append(row)
    st.dataframe(pl.DataFrame(rows), hide_index=True)
    st.caption("Mean over the seeds evaluated so far [95 % interval over seeds; a rate's clipped to [0, 100] %] "
               "(n seeds). "
               + ("Read from the report." if from_report else
                  "Computed from the held-out files landed so far; the report, written when the experiment "
                  "ends, holds the same numbers with the paired differences."))


def _cell(d: dict | None, rate: bool) -> str:
    """'60.0 % [35.2, 84.8] (n=3)' for a rate, '412 [380, 444] (n=3)' otherwise."""
    if not d or d.get("mean") is None:
        return "–"
    v = (lambda x: f"{100 * x:.1f}") if rate else (lambda x: f"{x:.3g}")
    unit = " %" if rate else ""
    if d.get("low") is None or d.get("n", 0) < 2:
        return f"{v(d['mean'])}{unit} (n={d.get('n', 1)})"
    lo, hi = (max(d["low"], 0.0), min(d["high"], 1.0)) if rate else (d["low"], d["high"])
    return f"{v(d['mean'])}{unit} [{v(lo)}, {v(hi)}] (n={d['n']})"


def report(out: Path, rep: dict | None, newest_heldout: float) -> None:
    st.subheader("Report")
    if rep is None:
        st.caption("No report yet: `taorl experiment` writes it (report/report.md, report.json, summary.parquet) "
                   "when every run is trained and evaluated; the paired differences appear here then.")
        return
    meta = rep.get("meta") or {}
    st.caption(f"`{tao_ui.shown_path(Path(rep.get('folder') or out / 'report'))}` · written {meta.get('date', '?')} "
               f"by `{meta.get('command', 'taorl experiment')}`")
    if newest_heldout > rep["_mtime"] + 1:
        st.warning("Held-out evaluations landed after this report was written: its tables are older than the "
                   "curves above (the runner rewrites it at the end; `taorl experiment FILE --report-only` now).")
    if rep.get("final_step") is None:
        st.info("The report holds no held-out evaluation yet.")
        return
    st.markdown(f"**Held-out after {rep['final_step']} steps**: mean [95 % interval over seeds]")
    st.dataframe(heldout_table(rep), hide_index=True)
    paired = paired_table(rep, reading=True)
    if paired is not None:
        st.markdown(f"**Paired differences** (same seed; each arm against `{rep['baseline']}`, then the other arms "
                    "pairwise; intervals not corrected for the number of comparisons)")
        st.dataframe(paired, hide_index=True)
    md = st.expander("report.md", key="exp_report_md", on_change="rerun")
    if md.open:
        text = (out / "report" / "report.md").read_text() if (out / "report" / "report.md").is_file() else ""
        md.markdown(text.split("## Figures")[0])


def body(out: Path) -> None:
    spec = read_spec(out)
    name = spec.get("name") or out.name
    st.title(f"Experiment · {name}")
    runs = experiment_runs(out, spec)
    if not runs:
        st.info(f"`{tao_ui.shown_path(out)}` holds no runs yet: `taorl experiment EXPERIMENT.yaml` writes them "
                "under runs/<arm>/seed-<s>/.")
        return
    arms = list(dict.fromkeys(r.arm for r in runs))
    colors = run_colors(arms)
    lrs, problems = {}, []
    for r in runs:
        if not r.started:
            continue
        try:
            lrs[(r.arm, r.seed)] = tao_ui.live_run(str(r.dir))
        except StoreError as e:
            problems.append(f"{r.arm} seed {r.seed}: {e}")
    states = [lr.run.status for lr in lrs.values()]
    seeds = sorted({r.seed for r in runs})
    st.caption(f"`{tao_ui.shown_path(out)}` · {len(arms)} arms × {len(seeds)} seeds · "
               f"{states.count('finished')} finished, {states.count('running')} running, "
               f"{states.count('failed')} failed, {len(runs) - len(lrs)} not started")
    if spec.get("label"):
        st.warning(f"**{spec['label']}**", icon=":material/info:")
    fake = [f"{a}/seed-{s}" for (a, s), lr in lrs.items() if tao_ui.is_synthetic(lr)]
    if fake:
        st.warning(f"**Synthetic data**: {len(fake)} of these runs ({', '.join(f'`{f}`' for f in fake[:4])}"
                   f"{', …' if len(fake) > 4 else ''}) were written by `taorl synth`, not by training; their "
                   "curves are generated to exercise the dashboard, not results.", icon=":material/science:")
    for p in problems:
        st.warning(p)
    slot = st.empty()
    files = heldout_files(out)
    sig = tuple((a, s, k, str(f), f.stat().st_mtime) for a, s, k, f in files if f.exists())
    held, bad = _heldout(str(out), sig)
    folder = report_folder(out)
    try:
        rep = _report(str(folder), (folder / "report.json").stat().st_mtime) if folder else None
    except (OSError, ValueError) as e:  # being rewritten this moment: the next refresh reads it
        rep = None
        st.caption(f"The report is being written ({e.__class__.__name__}); it appears on the next refresh.")
    newest = max((m for *_x, m in sig), default=0.0)
    if lrs:
        curves(out, arms, lrs, colors)
    table, left = runs_table(out, spec, runs, lrs, held)
    st.subheader("Runs")
    st.dataframe(table, hide_index=True, height=35 * (len(table) + 1) + 3, column_config={  # every run, no scroll
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "open": st.column_config.LinkColumn("open", display_text="overview", help="the run's own pages"),
        "last log line": st.column_config.TextColumn(
            "last log line", width="large", help="the last line of the run's newest log in logs/ (written under --jobs)")})
    if left:
        st.caption(left)
    heldout(out, spec, arms, held, colors, rep, rep is not None and newest <= rep["_mtime"] + 1)
    if bad:
        st.warning("Unreadable held-out files (left out): " + "; ".join(f"`{b}`" for b in bad[:5]))
    report(out, rep, newest)
    tao_ui.unreadable_note(sel, list(lrs.values()), slot)


def main() -> None:
    found = tao_ui.experiments(str(sel.root))
    if not found:
        st.title("Experiment")
        st.info(f"No experiment folder in `{tao_ui.shown_path(sel.root)}`. `taorl experiment EXPERIMENT.yaml` "
                "writes one (runs/experiments/NAME by default); open it with "
                "`taorl dashboard runs/experiments/NAME`.")
        return
    labels = {f: tao_ui.folder_label(sel.root, f) for f in found}
    by_label = {v: k for k, v in labels.items()}
    want = st.query_params.get("exp")
    if "tao_exp" not in st.session_state or st.session_state["tao_exp"] not in found:
        st.session_state["tao_exp"] = by_label.get(want, found[0])
    out = st.sidebar.selectbox("Experiment", found, key="tao_exp", format_func=lambda f: labels[f],
                               help="an experiment folder written by `taorl experiment`")
    if st.query_params.get("exp") != labels[out]:
        st.query_params["exp"] = labels[out]
    st.fragment(lambda: tao_ui.guard(body, Path(out)), run_every=sel.every_s if sel.live else None)()


main()
