"""What the terminal shows during and after `taorl train`: one line per step and a closing summary.

Per step, what a TAO-RL user watches (the names in brackets are the run directory's metrics):

    step   3/5  reward 0.438  groups 4 kept 2 dropped  masked 3/24  H post-tool 0.91 other 0.62  tool ok 83%  41.2 s

    reward            mean reward of the step's rollouts                        [reward]
    groups            groups trained / dropped by criterion 2 (+ not selected)  [tao/groups_kept, tao/groups_dropped/*]
    masked            rollouts masked (criterion 1, void turn, overlong) / all  [tao/traj_masked/*]
    H post-tool/other mean entropy of model tokens after a tool return / elsewhere
                                                                                [tao/post_tool_entropy, tao/other_entropy]
    tool ok           successful calls / calls                                  [tools/success_rate]
    last field        wall seconds of the step                                  [perf/step_s]

A value the step did not produce (no tool call, no token after a tool return) shows as "-".
The summary at the end is read back from the run directory (Parquet is the record), so it covers
every step of a resumed run too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path


def _num(m: Mapping[str, float], key: str) -> float | None:
    v = m.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _sum_prefix(m: Mapping[str, float], prefix: str) -> float:
    return sum(float(v) for k, v in m.items() if k.startswith(prefix) and v is not None and not math.isnan(v))


def step_line(step: int, total: int, m: Mapping[str, float], group_size: int | None = None) -> str:
    """The one console line of a finished step (0-based `step` of `total`) from its metrics dict."""
    kept = _num(m, "tao/groups_kept") or 0.0
    dropped = _sum_prefix(m, "tao/groups_dropped/")
    masked = _sum_prefix(m, "tao/traj_masked/")
    n_traj = (kept + dropped) * group_size if group_size else None
    # tools/success_rate is 0.0 when no call was made: show "-" then (nothing to rate)
    calls = _num(m, "tools/call_frequency")
    tool_ok = _num(m, "tools/success_rate") if calls else None
    width = len(str(max(total, 1)))
    parts = [
        f"step {step + 1:>{width}}/{total}",
        f"reward {_fmt(_num(m, 'reward'), '.3f')}",
        f"groups {kept:.0f} kept {dropped:.0f} dropped",
        f"masked {masked:.0f}" + (f"/{n_traj:.0f}" if n_traj else ""),
        f"H post-tool {_fmt(_num(m, 'tao/post_tool_entropy'), '.2f')} other {_fmt(_num(m, 'tao/other_entropy'), '.2f')}",
        f"tool ok {_fmt(None if tool_ok is None else 100 * tool_ok, '.0f')}{'' if tool_ok is None else '%'}",
        f"{_fmt(_num(m, 'perf/step_s'), '.1f')} s",
    ]
    return "  ".join(parts)


def run_summary(run_dir: str | Path) -> str:
    """A few lines closing `taorl train`: steps, reward first -> last, groups kept, where, what next."""
    from taorl.store import open_run

    run_dir = Path(run_dir)
    run = open_run(run_dir)
    m = run.metrics()
    lines = [f"run {run.status}: {run_dir}"]
    if m.height:
        steps = m["step"].to_list()
        reward = m["reward"].to_list() if "reward" in m.columns else []
        lines.append(f"  steps       {len(steps)} (steps {steps[0]}-{steps[-1]})")
        if reward:
            lines.append(f"  reward      {reward[0]:.3f} -> {reward[-1]:.3f} (first -> last step)")
        if "tao/groups_kept" in m.columns:
            kept = float(m["tao/groups_kept"].fill_null(0).sum())
            dropped = sum(float(m[c].fill_null(0).sum()) for c in m.columns if c.startswith("tao/groups_dropped/"))
            lines.append(f"  groups kept {kept:.0f} of {kept + dropped:.0f}")
    else:
        lines.append("  no step was completed")
    lines.append(f"  dashboard   taorl dashboard {run_dir.parent}   (or: make dashboard RUNS={run_dir.parent})")
    lines.append(f"  evaluate    taorl eval {run_dir} --benchmarks math500 --k 4 --limit 20")
    return "\n".join(lines)


class StepPrinter:
    """Prints step_line after every step, through the progress bar when there is one."""

    def __init__(self, total: int, group_size: int | None = None, bar=None) -> None:
        self.total, self.group_size, self.bar = total, group_size, bar

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        line = step_line(step, self.total, metrics, self.group_size)
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)


class StepReport:
    """What the trainer calls after every step: the console line, then the trackers of
    logging.report_to (taorl.train.trackers); close() once at the end of the run."""

    def __init__(self, cfg, run_dir: str | Path, bar=None) -> None:
        from taorl.train.trackers import Trackers

        self.printer = StepPrinter(cfg.train.steps, cfg.rollout.group_size, bar)
        self.trackers = Trackers(cfg, run_dir)

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        self.printer(step, metrics)
        self.trackers.log(step, metrics)

    def close(self) -> None:
        self.trackers.close()
