"""The report of an experiment: one folder read by people (report.md), the dashboard and notebooks.

    <out>/report/summary.parquet   arm, seed, step, metric, value, source
                                   source "heldout": metric heldout/<name> after `step` optimizer steps
                                   (0 = the initial weights); source "train": a training metric of the
                                   run's step `step` (0-based: the rollouts made before update step+1)
    <out>/report/report.json       the setup, per-arm intervals and paired differences (what report.md shows)
    <out>/report/report.md         the same, for people
    <out>/report/figures/*.json    plotly figures (plotly.io.read_json); *.png when Chromium is there

Every interval is over seeds (taorl.experiment.stats): mean and 95 % Student-t interval; paired
differences are per seed, arm minus baseline.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from taorl.experiment.spec import ExperimentSpec, run_dir
from taorl.experiment.stats import Interval, mean_interval, paired_difference

TRAIN_METRICS = ["reward", "tao/groups_kept", "train/trained_rollouts", "tools/call_rate", "tools/success_rate",
                 "completions/mean_length", "tao/post_tool_entropy", "perf/step_s"]
# what the shaping did (issue 24): entropies, the factor (1 + a·Ĥ) on gated tokens, the tool use of the
# training rollouts ("calls/*": taorl.experiment.calls from the runs' trajectories tables)
SHAPING_METRICS = ["tao/post_tool_entropy", "tao/other_entropy", "tao/shaping_factor_mean", "tao/shaping_factor_std",
                   "tools/call_frequency", "calls/error_rollouts", "calls/calls_after_error", "calls/recovered",
                   "tokens/post_tool_high_entropy_share", "tokens/other_high_entropy_share"]
# the same for the held-out rollouts (taorl.experiment.runner.heldout_metrics; absent in older experiments)
HELDOUT_CALL_METRICS = ["heldout/calls_per_rollout", "heldout/error_rollouts", "heldout/calls_after_error",
                        "heldout/recovered"]


def load_summary(out: Path, spec: ExperimentSpec) -> pl.DataFrame:
    """All held-out metrics and the runs' training metrics in one long frame."""
    from taorl.store import open_run

    frames = []
    files = sorted((Path(out) / "heldout").glob("*/seed-*/step=*.parquet"))
    if files:
        frames.append(pl.concat([pl.read_parquet(f).select("arm", "seed", "step", "metric", "value")
                                 for f in files]).with_columns(pl.lit("heldout").alias("source")))
    for arm in spec.arms:
        for seed in spec.seeds:
            d = run_dir(out, arm, seed)
            if not (d / "manifest.json").is_file():
                continue
            m = open_run(d).metrics(wide=False)
            if m.is_empty():
                continue
            frames.append(m.select(pl.lit(arm).alias("arm"), pl.lit(seed, pl.Int64).alias("seed"),
                                   pl.col("step").cast(pl.Int64), pl.col("name").alias("metric"),
                                   pl.col("value").cast(pl.Float64), pl.lit("train").alias("source")))
            calls = _train_call_metrics(d)
            if calls is not None:
                calls = pl.concat([calls, _train_token_metrics(d)])
                frames.append(calls.select(pl.lit(arm).alias("arm"), pl.lit(seed, pl.Int64).alias("seed"), "step",
                                           "metric", "value", pl.lit("train").alias("source")))
    schema = {"arm": pl.String, "seed": pl.Int64, "step": pl.Int64, "metric": pl.String, "value": pl.Float64,
              "source": pl.String}
    if not frames:
        return pl.DataFrame(schema=schema)
    df = pl.concat([f.cast(schema) for f in frames], how="vertical")  # type: ignore[arg-type]
    order = {a: i for i, a in enumerate(spec.arms)}
    return df.sort(pl.col("arm").replace_strict(order, return_dtype=pl.Int64), "seed", "source", "metric", "step")


def _train_call_metrics(d: Path) -> pl.DataFrame | None:
    """step, metric ("calls/<name>"), value: taorl.experiment.calls of each training step's rollouts."""
    from taorl.experiment.calls import call_metrics_from
    from taorl.store import open_run

    try:
        t = open_run(d).trajectories(columns=["statuses", "reward"])
    except Exception:  # noqa: BLE001 - an older or partial run: the report goes on without them
        return None
    if t.is_empty():
        return None
    rows = []
    for (step,), g in t.group_by("step", maintain_order=True):
        for k, v in call_metrics_from([list(x or []) for x in g["statuses"].to_list()], g["reward"].to_list()).items():
            rows.append((int(step), f"calls/{k}", float(v)))
    return pl.DataFrame(rows, schema={"step": pl.Int64, "metric": pl.String, "value": pl.Float64}, orient="row")


HIGH_ENTROPY = 0.5  # nats: a token "at a fork" (the primed model's typical token is below 0.05)


def _train_token_metrics(d: Path) -> pl.DataFrame:
    """step, metric, value: the share of model tokens with entropy above HIGH_ENTROPY among those after
    a tool output (offset >= 0) and the others ("tokens/*"), from the run's tokens table (the
    trajectories it kept token rows for). Empty when the table is missing."""
    from taorl.store import open_run

    schema = {"step": pl.Int64, "metric": pl.String, "value": pl.Float64}
    try:
        t = open_run(d).tokens(columns=["offset", "entropy"]).filter(pl.col("entropy").is_not_null())
    except Exception:  # noqa: BLE001 - an older or partial run: the report goes on without them
        return pl.DataFrame(schema=schema)
    if t.is_empty():
        return pl.DataFrame(schema=schema)
    after = pl.col("offset").is_not_null() & (pl.col("offset") >= 0)
    high = (pl.col("entropy") > HIGH_ENTROPY).cast(pl.Float64)
    out = t.group_by("step").agg(high.filter(after).mean().alias("tokens/post_tool_high_entropy_share"),
                                 high.filter(~after).mean().alias("tokens/other_high_entropy_share"))
    return (out.unpivot(index="step", variable_name="metric", value_name="value").drop_nulls("value")
            .select(pl.col("step").cast(pl.Int64), "metric", pl.col("value").cast(pl.Float64)))


def _per_seed(df: pl.DataFrame, arm: str, metric: str, step: int) -> dict[int, float]:
    p = df.filter((pl.col("arm") == arm) & (pl.col("metric") == metric) & (pl.col("step") == step))
    return {int(s): float(v) for s, v in zip(p["seed"], p["value"])}


def _nan(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _shaping(tr: pl.DataFrame) -> dict:
    """Per arm (tr: its training metrics): for each of SHAPING_METRICS the interval over seeds of each
    run's mean over its steps; the factor's extremes (each run's min and max over its steps); and the
    post-tool entropy over the first and the last quarter of the steps (each run's mean, then seeds)."""
    out: dict = {}
    for m in SHAPING_METRICS:
        per_run = tr.filter(pl.col("metric") == m).drop_nulls("value").filter(pl.col("value").is_not_nan())
        per_run = per_run.group_by("seed").agg(pl.col("value").mean())
        if not per_run.is_empty():
            out[m] = _iv(mean_interval(per_run["value"].to_list()))
    for m, agg in (("tao/shaping_factor_min", pl.col("value").min()), ("tao/shaping_factor_max", pl.col("value").max())):
        per_run = tr.filter(pl.col("metric") == m).group_by("seed").agg(agg)
        if not per_run.is_empty():
            out[m] = _iv(mean_interval(per_run["value"].to_list()))
    ent = tr.filter(pl.col("metric") == "tao/post_tool_entropy")
    if not ent.is_empty():
        last = int(ent["step"].max())
        q = max(1, (last + 1) // 4)
        for name, sel in (("first", pl.col("step") < q), ("last", pl.col("step") > last - q)):
            per_run = ent.filter(sel).group_by("seed").agg(pl.col("value").mean())
            out[f"post_tool_entropy_{name}_quarter"] = _iv(mean_interval(per_run["value"].to_list()))
    return out


def _iv(iv: Interval) -> dict:
    nan = lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else x
    return {"mean": nan(iv.mean), "low": nan(iv.low), "high": nan(iv.high), "n": iv.n, "std": nan(iv.std)}


def analyse(spec: ExperimentSpec, summary: pl.DataFrame) -> dict:
    """The numbers of the report: per arm and held-out metric, the interval over seeds at the final
    evaluated step (and at every step); per arm, the paired difference with the baseline; and for
    each pair of the other arms (later − earlier in the file), their paired difference on the
    primary metric (with three arms: does the last switch help on top of the middle one?)."""
    cfg = spec.run_config(spec.baseline_arm, spec.seeds[0])
    n = spec.eval.n or cfg.eval.n
    ks = [k for k in (spec.eval.k or cfg.eval.k) if k <= n]
    primary = f"heldout/avg@{n}"
    held = summary.filter(pl.col("source") == "heldout")
    heldout_metrics = [primary, *[f"heldout/pass@{k}" for k in ks if k > 1], "heldout/tool_call_rate",
                       "heldout/tool_success_rate", "heldout/response_tokens"]
    steps = sorted(held["step"].unique().to_list()) if not held.is_empty() else []
    final = max(steps) if steps else None
    base = spec.baseline_arm
    res: dict = {"primary": primary, "final_step": final, "steps": steps, "baseline": base,
                 "heldout_metrics": heldout_metrics, "arms": {}, "paired": {}, "curve": {}}
    for arm in spec.arms:
        a: dict = {"final": {}, "per_seed": {}}
        if final is not None:
            for m in heldout_metrics:
                vals = _per_seed(held, arm, m, final)
                a["final"][m] = _iv(mean_interval(list(vals.values())))
                a["per_seed"][m] = vals
        tr = summary.filter((pl.col("source") == "train") & (pl.col("arm") == arm))
        a["train"] = {}
        for m in TRAIN_METRICS:
            per_run = tr.filter(pl.col("metric") == m).group_by("seed").agg(pl.col("value").mean())
            if not per_run.is_empty():
                a["train"][m] = _iv(mean_interval(per_run["value"].to_list()))
        a["shaping"] = _shaping(tr)
        a["calls"] = {m: _iv(mean_interval(list(_per_seed(held, arm, m, final).values())))
                      for m in HELDOUT_CALL_METRICS} if final is not None else {}
        a["runs_done"] = sorted(int(s) for s in held.filter((pl.col("arm") == arm) & (pl.col("step") == final))
                                ["seed"].unique()) if final is not None else []
        res["arms"][arm] = a
        res["curve"][arm] = {int(s): _iv(mean_interval(list(_per_seed(held, arm, primary, s).values())))
                             for s in steps}
        if arm != base and final is not None:
            res["paired"][arm] = {}
            for m in heldout_metrics:
                iv, d = paired_difference(_per_seed(held, arm, m, final), _per_seed(held, base, m, final))
                res["paired"][arm][m] = {**_iv(iv), "per_seed": d}
    if final is not None:
        from taorl.experiment.dose import calls_rows, dose_rows, is_dose_response

        res["calls_by_n"] = [{"arm": r["arm"], "calls": r["calls"], "share": _iv(r["share"]),
                              "accuracy": _iv(r["accuracy"])} for r in calls_rows(spec, held, final)]
        if is_dose_response(spec):
            res["dose"] = [{**r, "mean": _nan(r["mean"]), "low": _nan(r["low"]), "high": _nan(r["high"]),
                            "delta": None if r["delta"] is None else {k: _nan(v) if isinstance(v, float) else v
                                                                      for k, v in r["delta"].items()}}
                           for r in dose_rows(spec, held, primary, final)]
    res["pairs"] = {}
    others = [a for a in spec.arms if a != base]
    if final is not None:
        for i, a in enumerate(others):
            for b in others[:i]:
                iv, d = paired_difference(_per_seed(held, a, primary, final), _per_seed(held, b, primary, final))
                res["pairs"][f"{a} − {b}"] = {**_iv(iv), "per_seed": d, "arm": a, "vs": b}
    return res


def verdict(p: dict, than: str = "the baseline") -> str:
    """One plain sentence on a paired difference's interval."""
    if p["n"] == 0:
        return "no paired seeds yet"
    if p["n"] < 2 or p["low"] is None:
        return "one seed only: no interval"
    if p["low"] > 0:
        return f"higher than {than} (interval above 0)"
    if p["high"] < 0:
        return f"lower than {than} (interval below 0)"
    return "no difference detected (interval contains 0)"


def _pct(d: dict | None, digits: int = 1, *, rate: bool = False) -> str:
    """A mean and its interval in %. rate=True: a rate's interval is shown clipped to [0, 100] % (the
    t interval of a bounded quantity can pass its bound; report.json keeps the unclipped one)."""
    if not d or d.get("mean") is None:
        return "–"
    if d["n"] < 2 or d.get("low") is None:
        return f"{100 * d['mean']:.{digits}f} % (n={d['n']})"
    lo, hi = (max(d["low"], 0.0), min(d["high"], 1.0)) if rate else (d["low"], d["high"])
    return f"{100 * d['mean']:.{digits}f} % [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def _num(d: dict | None, digits: int = 3) -> str:
    if not d or d.get("mean") is None:
        return "–"
    if d["n"] < 2 or d.get("low") is None:
        return f"{d['mean']:.{digits}g} (n={d['n']})"
    return f"{d['mean']:.{digits}g} [{d['low']:.{digits}g}, {d['high']:.{digits}g}]"


def markdown(spec: ExperimentSpec, res: dict, meta: dict) -> str:
    """report.md: setup, held-out table, paired differences, curves table, training table, figures."""
    from taorl.config import config_diff

    base_cfg = spec.base_config()
    cfg = spec.run_config(spec.baseline_arm, spec.seeds[0])
    n = spec.eval.n or cfg.eval.n
    primary = res["primary"]
    L: list[str] = [f"# Experiment `{spec.name}`", ""]
    if spec.label:
        L += [f"> **{spec.label}**", ""]
    trained = f", from runs trained {meta['trained']}" if meta.get("trained") else ""
    L += [f"Made by `{meta['command']}` on {meta['date']} ({meta['machine']}){trained}. "
          f"Intervals are 95 % Student-t intervals over seeds (each seed is one training run; a rate's "
          f"interval is shown clipped to [0, 100] %); "
          f"paired differences compare arms run with the same seed. Each interval stands alone: none "
          f"is corrected for the number of comparisons in the report.", ""]
    L += ["## Setup", "",
          f"- base config: `{meta['config']}` + {spec.overrides or 'no overrides'}",
          f"- model: `{base_cfg.model.name}` (train.init_from: `{base_cfg.train.init_from}`), "
          f"{cfg.train.steps} optimizer steps, {cfg.rollout.batch_prompts} prompts x G={cfg.rollout.group_size} "
          f"rollouts per step, training data: `{cfg.data.train}` difficulty {cfg.data.difficulty}"
          + (f", kinds {', '.join(cfg.data.kinds)}" if cfg.data.kinds else ""),
          f"- seeds: {spec.seeds}; baseline for paired differences: `{res['baseline']}`",
          f"- held-out: {meta['held_out'][0]} procedural problems, difficulty {spec.eval.difficulty}"
          + (f" (kinds {', '.join(spec.eval.kinds)})" if spec.eval.kinds else "") + ", seed "
          f"{spec.eval.seed} ({meta['held_out'][1]} dropped as also in the training pool); {n} samples each, "
          f"temperature {cfg.eval.temperature}, top_p {cfg.eval.top_p}, up to {cfg.eval.max_turns} turns and "
          f"{cfg.eval.max_response_tokens} response tokens, tool {'on' if cfg.eval.tool else 'off'}",
          f"- evaluated after {res['steps']} optimizer steps", "", "| arm | overrides of the base config |",
          "|---|---|"]
    for arm in spec.arms:
        d = config_diff(base_cfg.to_dict(), spec.run_config(arm, spec.seeds[0]).to_dict())
        keys = [f"`{k}={v[1]}`" for k, v in d.items() if k not in ("train.seed", "train.checkpoint_every",
                                                                      "train.keep_checkpoints")]
        L.append(f"| {arm} | {', '.join(keys) or '(none: the base config)'} |")
    final = res["final_step"]
    if final is None:
        L += ["", "No held-out evaluation yet.", ""]
        return "\n".join(L) + "\n"
    hm = res["heldout_metrics"]
    L += ["", f"## Held-out after {final} steps: mean [95 % interval] over seeds", "",
          "| arm | seeds | " + " | ".join(m.removeprefix("heldout/") for m in hm) + f" | {primary.removeprefix('heldout/')} per seed |",
          "|---|---|" + "---|" * (len(hm) + 1)]
    for arm, a in res["arms"].items():
        cells = [(_pct(a["final"].get(m), rate=True) if "tokens" not in m else _num(a["final"].get(m))) for m in hm]
        per = ", ".join(f"{s}: {100 * v:.1f}" for s, v in sorted(a["per_seed"].get(primary, {}).items()))
        L.append(f"| {arm} | {len(a['runs_done'])} | " + " | ".join(cells) + f" | {per} |")
    if res["paired"]:
        L += ["", f"## Paired differences with `{res['baseline']}` after {final} steps (arm − baseline, same seed)",
              "", f"| arm | Δ {primary.removeprefix('heldout/')} | Δ per seed | reading | Δ tool-call rate |",
              "|---|---|---|---|---|"]
        for arm, p in res["paired"].items():
            d = p[primary]
            per = ", ".join(f"{s}: {100 * v:+.1f}" for s, v in sorted(d["per_seed"].items()))
            L.append(f"| {arm} | {_pct(d)} | {per} | {verdict(d)} | {_pct(p.get('heldout/tool_call_rate'))} |")
    if res.get("pairs"):
        L += ["", f"## The other arms, pairwise, after {final} steps (same seed)", "",
              f"| arms | Δ {primary.removeprefix('heldout/')} | Δ per seed | reading |", "|---|---|---|---|"]
        for name, d in res["pairs"].items():
            per = ", ".join(f"{s}: {100 * v:+.1f}" for s, v in sorted(d["per_seed"].items()))
            than = f"`{d['vs']}`"
            L.append(f"| {name} | {_pct(d)} | {per} | {verdict(d, than)} |")
    L += ["", f"## {primary.removeprefix('heldout/')} at every evaluated step (mean over seeds, %)", "",
          "| step | " + " | ".join(spec.arms) + " |", "|---|" + "---|" * len(spec.arms)]
    for s in res["steps"]:
        L.append(f"| {s} | " + " | ".join(_pct(res["curve"][a].get(s), rate=True) for a in spec.arms) + " |")
    L += ["", "## During training (mean over each run's steps, then interval over seeds)", "",
          "| arm | " + " | ".join(TRAIN_METRICS) + " |", "|---|" + "---|" * len(TRAIN_METRICS)]
    for arm, a in res["arms"].items():
        L.append(f"| {arm} | " + " | ".join(_num(a["train"].get(m)) for m in TRAIN_METRICS) + " |")
    L += _mechanism_markdown(spec, res)
    L += ["", "## Figures", ""]
    for name, caption in meta["figures"]:
        png = Path("figures") / f"{name}.png"
        if (Path(meta["report_dir"]) / png).is_file():
            L.append(f"![{caption}]({png.as_posix()})")
        else:
            L.append(f"- {caption}: `figures/{name}.json` (plotly JSON; PNG not drawn: no Chromium)")
        L.append("")
    L += ["## Runs", "", "Time in steps: the sum of the run's step times (perf/step_s: rollouts, update, logging; not "
          "model loading or the held-out evaluations). First start → last write spans every launch of a resumed "
          "run, the time between them included.", "",
          "| arm | seed | run directory | status | steps | time in steps | first start → last write |",
          "|---|---|---|---|---|---|---|"]
    for r in meta["runs"]:
        L.append(f"| {r['arm']} | {r['seed']} | `{r['dir']}` | {r['status']} | {r['steps']} | "
                 f"{r.get('in_steps', '–')} | {r['wall']} |")
    return "\n".join(L) + "\n"


def _mechanism_markdown(spec: ExperimentSpec, res: dict) -> list[str]:
    """The dose-response table (when the arms vary a), what the shaping did in training, the
    held-out tool use and the held-out accuracy by number of calls (issue 24)."""
    from taorl.experiment.dose import arm_doses

    doses = arm_doses(spec)
    primary = res["primary"].removeprefix("heldout/")
    final = res["final_step"]
    L: list[str] = []
    if res.get("dose"):
        L += ["", f"## Dose-response after {final} steps: the shaping coefficient a, filters on in every arm", "",
              "a = 0 is filters only, a = 0.01 the paper's TAO-RL; Δ is the paired difference with the a = 0 arm "
              "(same seed).", "", f"| a | arm | {primary} | Δ {primary} vs a = 0 | Δ per seed | reading |",
              "|---|---|---|---|---|---|"]
        for r in res["dose"]:
            d = r["delta"]
            per = ", ".join(f"{s}: {100 * v:+.1f}" for s, v in sorted(d["per_seed"].items())) if d else ""
            reading = verdict(d, f"`{d['vs']}`") if d else "(the reference)"
            L.append(f"| {r['a']:g} | {r['arm']} | {_pct(r, rate=True)} | {_pct(d) if d else '–'} | {per} | {reading} |")
    sh = {arm: a.get("shaping") or {} for arm, a in res["arms"].items()}
    if any(sh.values()):
        L += ["", "## What the shaping did during training (each run's mean over its steps, then mean "
                  "[95 % interval] over seeds)", "",
              "Entropies in nats on loss tokens (post-tool: the tokens the shaping gates); the share of model "
              f"tokens above {HIGH_ENTROPY} nats after a tool output and elsewhere (where the forks are); the factor "
              "(1 + a·Ĥ) on the gated tokens, 1 where nothing is gated or the shaping is off (min and max: each "
              "run's extremes over its steps).", "",
              "| arm | a | post-tool entropy | … first ¼ of steps | … last ¼ | other tokens' entropy | "
              f"tokens > {HIGH_ENTROPY} nats after a tool output | … elsewhere | factor mean | factor std | factor min | "
              "factor max |", "|---|" + "---|" * 11]
        for arm, m in sh.items():
            a = f"{doses[arm]['a']:g}" if doses[arm]["shaping"] else "off"
            cells = [_num(m.get(k)) for k in ("tao/post_tool_entropy", "post_tool_entropy_first_quarter",
                                               "post_tool_entropy_last_quarter", "tao/other_entropy")]
            cells += [_pct(m.get(k), rate=True) for k in ("tokens/post_tool_high_entropy_share",
                                                          "tokens/other_high_entropy_share")]
            cells += [_num(m.get(k)) for k in ("tao/shaping_factor_mean", "tao/shaping_factor_std",
                                               "tao/shaping_factor_min", "tao/shaping_factor_max")]
            L.append(f"| {arm} | {a} | " + " | ".join(cells) + " |")
        L += ["", "## Tool use of the training rollouts (each run's mean over its steps, then mean [95 % interval] "
                  "over seeds)", "",
              "Calls after an error: over the rollouts with a failed call, the calls made after the first failure; "
              "recovered: the share of those with an ok call after it.", "",
              "| arm | calls per rollout | rollouts with a failed call | calls after an error | recovered |",
              "|---|---|---|---|---|"]
        for arm, m in sh.items():
            L.append(f"| {arm} | {_num(m.get('tools/call_frequency'))} | {_pct(m.get('calls/error_rollouts'), rate=True)} | "
                     f"{_num(m.get('calls/calls_after_error'))} | {_pct(m.get('calls/recovered'), rate=True)} |")
    if final is not None and any(a.get("calls", {}).get("heldout/calls_per_rollout", {}).get("n") for a in res["arms"].values()):
        L += ["", f"## Tool use on the held-out set after {final} steps (mean [95 % interval] over seeds)", "",
              "| arm | calls per rollout | rollouts with a failed call | calls after an error | recovered |",
              "|---|---|---|---|---|"]
        for arm, a in res["arms"].items():
            c = a["calls"]
            L.append(f"| {arm} | {_num(c.get('heldout/calls_per_rollout'))} | "
                     f"{_pct(c.get('heldout/error_rollouts'), rate=True)} | {_num(c.get('heldout/calls_after_error'))} | "
                     f"{_pct(c.get('heldout/recovered'), rate=True)} |")
    if res.get("calls_by_n"):
        from taorl.experiment.calls import BUCKETS

        L += ["", f"## Held-out accuracy by number of tool calls after {final} steps", "",
              "Each cell: the accuracy of the rollouts that made that many calls, and (in brackets) their share of "
              "all rollouts, both as means over seeds (a seed without such rollouts does not count in the "
              "accuracy).", "", "| arm | " + " | ".join(f"{b} call{'' if b == '1' else 's'}" for b in BUCKETS) + " |",
              "|---|" + "---|" * len(BUCKETS)]
        for arm in spec.arms:
            cells = []
            for b in BUCKETS:
                r = next((x for x in res["calls_by_n"] if x["arm"] == arm and x["calls"] == b), None)
                if r is None or r["share"]["mean"] is None:
                    cells.append("–")
                    continue
                acc = r["accuracy"]
                acc_s = f"{100 * acc['mean']:.1f} %" if acc["mean"] is not None else "–"
                cells.append(f"{acc_s} ({100 * r['share']['mean']:.0f} %)")
            L.append(f"| {arm} | " + " | ".join(cells) + " |")
    return L


def _runs_meta(spec: ExperimentSpec, out: Path, summary: pl.DataFrame) -> list[dict]:
    """Per run: status, steps, the time its steps took (the sum of its perf/step_s, from the summary
    already read) and first start → last write (which counts the time between a resumed run's launches)."""
    step_s = (summary.filter((pl.col("source") == "train") & (pl.col("metric") == "perf/step_s"))
              .group_by("arm", "seed").agg(pl.col("value").sum()))
    in_steps_of = {(a, int(sd)): float(v) for a, sd, v in step_s.iter_rows()}
    rows = []
    for seed in spec.seeds:
        for arm in spec.arms:
            d = run_dir(out, arm, seed)
            mf = d / "manifest.json"
            if not mf.is_file():
                rows.append({"arm": arm, "seed": seed, "dir": str(d), "status": "not started", "steps": 0, "wall": "–"})
                continue
            m = json.loads(mf.read_text())
            wall = float(m.get("updated_at", 0)) - float(m.get("created_at", 0))
            in_steps = in_steps_of.get((arm, int(seed)))
            rows.append({"arm": arm, "seed": seed, "dir": str(d.relative_to(out)), "status": m.get("status"),
                         "created_at": float(m.get("created_at", 0)), "updated_at": float(m.get("updated_at", 0)),
                         "steps": int(m.get("last_step", -1)) + 1,
                         "in_steps": f"{in_steps / 60:.1f} min" if in_steps else "–",
                         "wall": f"{wall / 60:.1f} min" if wall > 0 else "–"})
    return rows


def _trained_span(runs: list[dict]) -> str | None:
    """When the runs were trained: first start to last write, UTC (runs not started are left out)."""
    starts = [r["created_at"] for r in runs if r.get("created_at")]
    ends = [r["updated_at"] for r in runs if r.get("updated_at")]
    if not starts or not ends:
        return None

    def fmt(t: float, f: str) -> str:
        return time.strftime(f, time.gmtime(t))

    a, b = min(starts), max(ends)
    same_day = fmt(a, "%Y-%m-%d") == fmt(b, "%Y-%m-%d")
    return f"{fmt(a, '%Y-%m-%d %H:%M')}–{fmt(b, '%H:%M' if same_day else '%Y-%m-%d %H:%M')} UTC"


def figures(spec: ExperimentSpec, summary: pl.DataFrame, res: dict) -> dict:
    """name -> (caption, plotly figure)."""
    from taorl.viz.figures import paired_difference_figure, seed_band_figure

    arms = list(spec.arms)
    primary = res["primary"]
    held = summary.filter((pl.col("source") == "heldout") & (pl.col("metric") == primary))
    train = summary.filter((pl.col("source") == "train") & (pl.col("metric") == "reward"))
    out = {
        "heldout": (f"held-out {primary.removeprefix('heldout/')} vs optimizer steps (mean, 95 % interval over seeds "
                    "clipped to [0, 100] %)",
                    seed_band_figure(held, arms, title=f"Held-out {primary.removeprefix('heldout/')}",
                                     y_title="accuracy", percent=True)),
        "reward": ("training reward per step (each seed smoothed, EMA 0.6; mean, 95 % interval over seeds "
                   "clipped to the reward's range [0, 1])",
                   seed_band_figure(train, arms, title="Training reward", y_title="reward", smoothing=0.6,
                                    x_title="training step", bounds=(0.0, 1.0))),
    }
    from taorl.experiment.dose import calls_figure, dose_figure

    if res.get("dose"):
        out["dose"] = (f"held-out {primary.removeprefix('heldout/')} after {res['final_step']} steps against the shaping "
                       "coefficient a, filters on (mean, 95 % interval over seeds, seeds as dots; dashed: the arm "
                       "without filters)", dose_figure(spec, summary.filter(pl.col("source") == "heldout"), primary,
                                                       res["final_step"]))
    ent = summary.filter((pl.col("source") == "train") & (pl.col("metric") == "tao/post_tool_entropy"))
    if not ent.is_empty():
        out["post_tool_entropy"] = ("post-tool entropy of the training rollouts per step, nats (each seed smoothed, "
                                    "EMA 0.6; mean, 95 % interval over seeds)",
                                    seed_band_figure(ent, arms, title="Post-tool entropy during training",
                                                     y_title="entropy (nats)", smoothing=0.6, x_title="training step"))
    if res.get("calls_by_n"):
        out["calls"] = (f"held-out accuracy by number of tool calls per rollout after {res['final_step']} steps "
                        "(mean, 95 % interval over seeds)",
                        calls_figure(spec, summary.filter(pl.col("source") == "heldout"), res["final_step"]))
    if res["paired"]:
        rows = [{"arm": a, **p[primary]} for a, p in res["paired"].items()]
        rows = [{**r, "low": r["low"] if r["low"] is not None else math.nan,
                 "high": r["high"] if r["high"] is not None else math.nan} for r in rows]
        out["paired"] = (f"{primary.removeprefix('heldout/')} after {res['final_step']} steps: arm − "
                         f"{res['baseline']} per seed (dots), mean and 95 % interval",
                         paired_difference_figure(rows, title=f"Paired difference with {res['baseline']}"))
    return out


def figure_pngs(figs: dict, folder: Path, log: Callable[[str], None] = print) -> bool:
    """Draw each plotly figure to PNG in headless Chromium (plotly.js from the installed package, no
    network). False when Chromium or Playwright is missing."""
    chromium = Path(os.environ.get("TAORL_CHROMIUM", "/usr/bin/chromium"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        log("figures: playwright not installed, PNGs skipped (the plotly JSON is written)")
        return False
    if not chromium.exists():
        log(f"figures: no Chromium at {chromium} (set TAORL_CHROMIUM), PNGs skipped")
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 900, "height": 600}, device_scale_factor=2)
        for name, (_caption, fig) in figs.items():
            html = Path(tmp) / f"{name}.html"
            fig.update_layout(width=880)
            fig.write_html(html, include_plotlyjs=True, full_html=True, config={"staticPlot": True})
            page.goto(html.as_uri())
            page.wait_for_selector(".main-svg", timeout=30_000)
            page.locator(".js-plotly-plot").first.screenshot(path=str(folder / f"{name}.png"))
        browser.close()
    return True


def write_report(spec: ExperimentSpec, out: str | Path, *, held_out: tuple[int, int],
                 figures_png: bool = True, log: Callable[[str], None] = print, report_only: bool = False) -> Path:
    """(Re)write <out>/report from what is on disk; returns the report folder. report_only: the
    report is rewritten from runs trained earlier (`--report-only`), and says so."""
    out = Path(out)
    rep = out / "report"
    (rep / "figures").mkdir(parents=True, exist_ok=True)
    summary = load_summary(out, spec)
    summary.write_parquet(rep / "summary.parquet")
    res = analyse(spec, summary)
    figs = figures(spec, summary, res)
    for name, (_c, fig) in figs.items():
        (rep / "figures" / f"{name}.json").write_text(fig.to_json())
    for old in (rep / "figures").glob("*.png"):
        old.unlink()
    if figures_png:
        figure_pngs(figs, rep / "figures", log=log)
    path = spec.path.as_posix() if spec.path else "EXPERIMENT.yaml"
    runs = _runs_meta(spec, out, summary)
    meta = {"command": f"taorl experiment {path}" + (" --report-only" if report_only else ""),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "config": str(spec.base_config_path()),
            "trained": _trained_span(runs), "held_out": list(held_out), "runs": runs, "report_dir": str(rep),
            "figures": [(k, c) for k, (c, _f) in figs.items()]}
    (rep / "report.md").write_text(markdown(spec, res, meta))
    (rep / "report.json").write_text(json.dumps({"name": spec.name, "label": spec.label, "arms": list(spec.arms),
                                                 "seeds": spec.seeds, **res, "meta": meta}, indent=1, default=str))
    return rep


def load_report(folder: str | Path) -> dict:
    """A written report: report.json's content plus `summary` (the Parquet frame) and `figures`
    (name -> plotly figure). `folder` is the experiment's output folder or its report/ folder."""
    import plotly.io as pio

    from taorl.errors import UserError

    f = Path(folder)
    if not (f / "report.json").is_file() and (f / "report" / "report.json").is_file():
        f = f / "report"
    if not (f / "report.json").is_file():
        raise UserError(f"{folder}: no experiment report (report.json) here; write one with `taorl experiment`")
    rep = json.loads((f / "report.json").read_text())
    rep["summary"] = pl.read_parquet(f / "summary.parquet")
    rep["figures"] = {p.stem: pio.read_json(p) for p in sorted((f / "figures").glob("*.json"))}
    rep["folder"] = str(f)
    return rep


def find_reports(root: str | Path, max_depth: int = 4) -> list[Path]:
    """Report folders (holding report.json and summary.parquet) under root, sorted."""
    root = Path(root)
    found: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        if (d / "report.json").is_file() and (d / "summary.parquet").is_file():
            found.append(d)
            return
        if depth == 0:
            return
        try:
            subs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for s in subs:
            if (s / "manifest.json").is_file() or s.name in ("heldout", "checkpoints"):
                continue
            walk(s, depth - 1)

    if root.is_dir():
        walk(root, max_depth)
    return found
