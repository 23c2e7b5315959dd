"""Statistics over seeds: a mean with its 95 % interval, and paired differences between arms.

Seeds are the sampling unit (each seed is one independent training run). For n values x_1..x_n:

    mean  m = (1/n) sum_i x_i
    s     = sqrt( sum_i (x_i - m)^2 / (n - 1) )               (sample std, ddof 1)
    95 %  m -+ t_{0.975, n-1} * s / sqrt(n)                    (Student t: few seeds, so not 1.96)

With n = 1 there is no spread to estimate: the interval is (nan, nan).

Paired differences: arms trained with the same seed share the data order, the initial adapter and
the evaluation samples' random numbers, so the comparison of arm A with the baseline B is made per
seed, d_s = x_{A,s} - x_{B,s}, and the interval above is taken over the d_s (only seeds both arms
have). This removes the seed-to-seed variation both arms share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# t_{0.975, df}: the two-sided 95 % quantile of Student's t with df degrees of freedom
T975 = {1: 12.706204736174707, 2: 4.302652729749464, 3: 3.182446305284263, 4: 2.7764451051977987,
        5: 2.570581835636314, 6: 2.4469118511449692, 7: 2.3646242515927844, 8: 2.306004135204166,
        9: 2.2621571628540993, 10: 2.2281388519649385, 11: 2.200985160082949, 12: 2.1788128296634177,
        13: 2.1603686564610127, 14: 2.1447866879169273, 15: 2.131449545559323, 16: 2.1199052992210112,
        17: 2.1098155778331806, 18: 2.10092204024096, 19: 2.093024054408263, 20: 2.0859634472658364,
        25: 2.059538552753294, 30: 2.0422724563012373, 40: 2.021075382995338, 60: 2.0002978220142604,
        120: 1.9799304050824413}
Z975 = 1.959963984540054


def t975(df: int) -> float:
    """t_{0.975, df}; between tabulated df the next smaller df is used (a slightly wider interval)."""
    if df < 1:
        raise ValueError(f"t975: need df >= 1, got {df}")
    if df > 120:
        return Z975
    return T975[max(k for k in T975 if k <= df)]


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    std: float

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2

    def fmt(self, digits: int = 3, scale: float = 1.0) -> str:
        """'0.600 [0.352, 0.848]' (or '0.600 (n=1)' when there is no interval)."""
        if self.n == 0:
            return "–"
        m = f"{self.mean * scale:.{digits}f}"
        if self.n < 2:
            return f"{m} (n=1)"
        return f"{m} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean and 95 % Student-t interval over seeds (see the module doc)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    m = sum(xs) / n
    if n == 1:
        return Interval(m, math.nan, math.nan, 1, math.nan)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    half = t975(n - 1) * s / math.sqrt(n)
    return Interval(m, m - half, m + half, n, s)


def paired_difference(arm: Mapping[int, float], baseline: Mapping[int, float]) -> tuple[Interval, dict[int, float]]:
    """Interval of d_s = arm[s] - baseline[s] over the seeds s both have; also returns the d_s."""
    seeds = sorted(set(arm) & set(baseline))
    d = {s: float(arm[s]) - float(baseline[s]) for s in seeds}
    return mean_interval(list(d.values())), d
