"""Evaluation maths: unbiased Pass@k, Avg@n, a confidence interval over problems, tool-use rates.

For one problem with n samples of which c are correct, the unbiased estimator of pass@k (the chance
that at least one of k samples drawn without replacement is correct) is

    pass@k = 1 - C(n - c, k) / C(n, k)

computed as a product so no huge binomials appear:

    C(n - c, k) / C(n, k) = prod_{i = n - c + 1}^{n} (1 - k / i)        (= 0 when n - c < k)

Avg@n is the mean accuracy over all samples, (1/P) sum_p c_p / n. A benchmark score is the mean m of
the per-problem values x_p in [0, 1] over its P problems; its confidence interval (``mean_ci``)
treats problems as the sampling unit, and every method stays inside [0, 1]:
- "wilson" (default): the Wilson score interval of a proportion m over n = P trials,

      centre = (m + z^2 / 2n) / (1 + z^2 / n)
      half   = z / (1 + z^2 / n) * sqrt(m (1 - m) / n + z^2 / 4n^2)

  exact for 0/1 values (pass@1 with n = 1) and conservative for fractional ones, because a value
  in [0, 1] with mean m has variance at most m (1 - m). At m = 0 or 1 it keeps a width
  (0/30 -> [0, 11.4 %]) where a normal interval collapses to a point or leaves [0, 1];
- "normal": m +- z * s / sqrt(P), s the sample std (ddof 1), clipped to [0, 1];
- "bootstrap": percentile interval of the mean over ``n_boot`` resamples of the problems (seeded).

Rates over events (tool success = successful calls / calls) use ``rate_ci``, the Wilson interval
over the calls; with no calls the rate and its interval are None (null in JSON, never NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

_Z = {0.90: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: n samples, c correct, k <= n."""
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def avg_at_n(correct_counts: Sequence[int], n: int) -> float:
    """Avg@n = (1/P) sum_p c_p / n, the mean accuracy over every sample of every problem."""
    if not correct_counts:
        raise ValueError("avg_at_n: no problems")
    return sum(correct_counts) / (n * len(correct_counts))


def _z(level: float) -> float:
    if level not in _Z:
        raise ValueError(f"level must be one of {sorted(_Z)}, got {level}")
    return _Z[level]


def wilson(p: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (low, high) of a proportion p observed over n > 0 trials."""
    if n <= 0:
        raise ValueError(f"wilson: need n > 0 trials, got {n}")
    z2 = _z(level) ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _z(level) / (1 + z2 / n) * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n))
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if p <= 0 else lo), (1.0 if p >= 1 else hi)  # exact ends where rounding would miss them


def rate_ci(successes: int, trials: int, level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """(successes / trials, Wilson low, high); (None, None, None) when there were no trials."""
    if not 0 <= successes <= trials:
        raise ValueError(f"rate_ci: need 0 <= successes <= trials, got {successes}, {trials}")
    if trials == 0:
        return None, None, None
    p = successes / trials
    return (p, *wilson(p, trials, level))


def mean_ci(values: Sequence[float], level: float = 0.95, method: str = "wilson", n_boot: int = 2000,
            seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of per-problem values in [0, 1]; see the module doc for the three methods."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_ci: no values")
    if any(not 0.0 <= v <= 1.0 for v in vals):
        raise ValueError("mean_ci: values must lie in [0, 1] (per-problem scores or rates)")
    m = sum(vals) / len(vals)
    if method == "wilson":
        return (m, *wilson(m, len(vals), level))
    if len(vals) < 2:
        return m, m, m
    if method == "normal":
        s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
        half = _z(level) * s / math.sqrt(len(vals))
        return m, max(0.0, m - half), min(1.0, m + half)
    if method == "bootstrap":
        import numpy as np

        rng = np.random.default_rng(seed)
        arr = np.asarray(vals)
        means = arr[rng.integers(0, len(arr), size=(n_boot, len(arr)))].mean(axis=1)
        lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
        return m, float(lo), float(hi)
    raise ValueError(f"mean_ci: method must be 'wilson', 'normal' or 'bootstrap', got {method!r}")


def summarize(correct_counts: Sequence[int], n: int, ks: Sequence[int] = (1,), method: str = "wilson",
              level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """One benchmark: {"avg@n": (v, lo, hi), "pass@k": (v, lo, hi) for each k <= n}."""
    out = {f"avg@{n}": mean_ci([c / n for c in correct_counts], level, method)}
    for k in sorted({k for k in ks if k <= n}):
        out[f"pass@{k}"] = mean_ci([pass_at_k(n, c, k) for c in correct_counts], level, method)
    return out


def summarize_samples(correct: Mapping[str, Sequence[bool | float]], ks: Sequence[int] = (1,),
                      method: str = "wilson") -> dict[str, tuple[float, float, float]]:
    """Like ``summarize`` from {problem_id: per-sample rewards}; every problem must have the same n."""
    ns = {len(v) for v in correct.values()}
    if len(ns) != 1:
        raise ValueError(f"summarize_samples: problems have different sample counts {sorted(ns)}")
    n = ns.pop()
    return summarize([int(sum(float(x) for x in v)) for v in correct.values()], n, ks, method)


def tool_call_rate(n_calls: Sequence[int]) -> float:
    """Fraction of samples (trajectories) that made at least one tool call."""
    if not n_calls:
        raise ValueError("tool_call_rate: no samples")
    return sum(1 for c in n_calls if c > 0) / len(n_calls)


def tool_success_rate(n_calls: Sequence[int], n_ok: Sequence[int]) -> float:
    """Successful calls / all calls, pooled over samples; NaN when no call was made."""
    total = sum(n_calls)
    if any(o > c for c, o in zip(n_calls, n_ok, strict=True)):
        raise ValueError("tool_success_rate: a sample has more successful calls than calls")
    return sum(n_ok) / total if total else float("nan")


def calls_per_sample(n_calls: Sequence[int]) -> float:
    """Mean number of tool calls per sample."""
    if not n_calls:
        raise ValueError("calls_per_sample: no samples")
    return sum(n_calls) / len(n_calls)
