"""What the model did with the tool, per rollout: calls, calls after an error, accuracy by number of calls.

From the ordered tool-call statuses of each rollout (a call is ok when its status is in
taorl.types.OK_STATUSES):

    calls_per_rollout      mean number of calls
    error_rollouts         share of rollouts with at least one failed call
    calls_after_error      over the rollouts with a failed call: mean number of calls made after the
                           first failed one (0 = it gave up or answered straight away)
    recovered              over the rollouts with a failed call: share with an ok call after the first
                           failed one
    calls=K/share          share of rollouts that made K calls (K = 0, 1, 2, 3+)
    calls=K/accuracy       accuracy of those rollouts (nan when there is none)

Used for the held-out evaluations of an experiment (taorl.experiment.runner.heldout_metrics, with
rollouts) and for the training rollouts of its runs (the run's trajectories table: `statuses`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from taorl.types import OK_STATUSES

BUCKETS = ("0", "1", "2", "3+")


def _bucket(n: int) -> str:
    return BUCKETS[min(n, 3)]


def call_metrics_from(statuses: Sequence[Sequence[str]], rewards: Sequence[float]) -> dict[str, float]:
    """The metrics of the module doc from each rollout's call statuses (in call order) and reward."""
    n = len(statuses)
    if n == 0:
        return {}
    calls = [len(s) for s in statuses]
    after: list[int] = []
    recovered: list[bool] = []
    for s in statuses:
        ok = [x in OK_STATUSES for x in s]
        if False in ok:
            first = ok.index(False)
            after.append(len(s) - first - 1)
            recovered.append(any(ok[first + 1:]))
    m = {"calls_per_rollout": sum(calls) / n, "error_rollouts": len(after) / n,
         "calls_after_error": sum(after) / len(after) if after else math.nan,
         "recovered": sum(recovered) / len(recovered) if recovered else math.nan}
    for b in BUCKETS:
        idx = [i for i, c in enumerate(calls) if _bucket(c) == b]
        m[f"calls={b}/share"] = len(idx) / n
        m[f"calls={b}/accuracy"] = sum(float(rewards[i]) >= 1.0 for i in idx) / len(idx) if idx else math.nan
    return m


def call_metrics(trajs: Sequence) -> dict[str, float]:
    """call_metrics_from for taorl.types.Trajectory objects."""
    return call_metrics_from([[c.status for c in t.tool_calls] for t in trajs], [t.reward for t in trajs])
