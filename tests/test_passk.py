"""pass@k against brute-force enumeration of every k-subset; Avg@n and the CI by hand."""

import itertools
import math

import pytest

from taorl.eval.metrics import (
    avg_at_n,
    calls_per_sample,
    mean_ci,
    pass_at_k,
    rate_ci,
    summarize,
    summarize_samples,
    tool_call_rate,
    tool_success_rate,
    wilson,
)


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_known_values_and_stability():
    assert pass_at_k(16, 0, 16) == 0.0
    assert pass_at_k(16, 1, 16) == 1.0
    assert pass_at_k(16, 4, 1) == pytest.approx(4 / 16)  # pass@1 = c/n
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 3 of the 6 pairs contain the correct one
    # huge n: the product form stays finite where C(n, k) would overflow a float
    n, c, k = 5000, 3, 1000
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)  # Python ints: exact
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12)


def test_pass_at_k_rejects_bad_input():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_avg_at_n_by_hand():
    # 3 problems, n = 4: 4/4, 1/4, 0/4 -> (1 + 0.25 + 0) / 3
    assert avg_at_n([4, 1, 0], 4) == pytest.approx(1.25 / 3)


def test_mean_ci_normal_by_hand():
    vals = [1.0, 0.0, 1.0, 1.0]  # mean 0.75, s = 0.5 (ddof 1), se = 0.25
    m, lo, hi = mean_ci(vals, method="normal")
    assert m == 0.75
    assert lo == pytest.approx(0.75 - 1.959963984540054 * 0.25)
    assert hi == 1.0  # 0.75 + 0.49 = 1.24, clipped to [0, 1]
    assert mean_ci([0.3], method="normal") == (0.3, 0.3, 0.3)
    assert mean_ci([0.0, 0.0, 1.0] + [0.0] * 27, method="normal")[1] == 0.0  # would be -0.03


def test_wilson_by_hand_and_at_the_edges():
    z2 = 1.959963984540054 ** 2
    # 3 of 4: centre (0.75 + z^2/8) / (1 + z^2/4), half z/(1 + z^2/4) sqrt(0.75*0.25/4 + z^2/64)
    centre = (0.75 + z2 / 8) / (1 + z2 / 4)
    half = z2 ** 0.5 / (1 + z2 / 4) * math.sqrt(0.75 * 0.25 / 4 + z2 / 64)
    assert mean_ci([1.0, 0.0, 1.0, 1.0]) == pytest.approx((0.75, centre - half, centre + half))
    assert centre - half == pytest.approx(0.3006, abs=1e-4) and centre + half == pytest.approx(0.9544, abs=1e-4)
    # 0 of 30 and 30 of 30: [0, z^2/(n+z^2)] and [n/(n+z^2), 1]; never outside [0, 1], never zero width
    assert mean_ci([0.0] * 30) == pytest.approx((0.0, 0.0, z2 / (30 + z2)))
    assert mean_ci([1.0] * 30) == pytest.approx((1.0, 30 / (30 + z2), 1.0))
    assert mean_ci([1.0] * 30)[2] == 1.0 and mean_ci([0.0] * 30)[1] == 0.0
    assert wilson(0.5, 1) == pytest.approx((0.5 - 0.5 * z2 ** 0.5 / (1 + z2) * math.sqrt(1 + z2),
                                            0.5 + 0.5 * z2 ** 0.5 / (1 + z2) * math.sqrt(1 + z2)))
    for vals in ([0.0], [1.0], [0.5, 0.25], [0.1] * 7):
        for method in ("wilson", "normal", "bootstrap"):
            m, lo, hi = mean_ci(vals, method=method)
            assert 0.0 <= lo <= m <= hi <= 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mean_ci([1.5])


def test_rate_ci_counts_calls_and_is_null_without_any():
    assert rate_ci(0, 0) == (None, None, None)
    z2 = 1.959963984540054 ** 2
    p, lo, hi = rate_ci(2, 2)
    assert p == 1.0 and hi == 1.0 and lo == pytest.approx(2 / (2 + z2))  # not a zero-width interval
    assert rate_ci(1, 4)[1:] == pytest.approx(wilson(0.25, 4))
    with pytest.raises(ValueError):
        rate_ci(3, 2)


def test_mean_ci_bootstrap_brackets_mean_and_is_seeded():
    vals = [0.0] * 20 + [1.0] * 10
    a = mean_ci(vals, method="bootstrap", seed=1)
    assert a == mean_ci(vals, method="bootstrap", seed=1)
    m, lo, hi = a
    assert m == pytest.approx(1 / 3) and lo < m < hi
    # percentile bootstrap of a proportion ~ normal interval at P = 30 (within 0.05)
    _, nlo, nhi = mean_ci(vals, method="normal")
    assert abs(lo - nlo) < 0.05 and abs(hi - nhi) < 0.05


def test_summarize_and_tool_rates():
    s = summarize([4, 1, 0], 4, ks=[1, 2, 8])
    assert set(s) == {"avg@4", "pass@1", "pass@2"}  # k > n is skipped
    assert s["pass@1"][0] == pytest.approx(avg_at_n([4, 1, 0], 4))
    # pass@2: 1, 1 - C(3,2)/C(4,2) = 0.5, 0  -> 0.5
    assert s["pass@2"][0] == pytest.approx(0.5)
    assert summarize_samples({"a": [1, 1, 1, 1], "b": [0, 1, 0, 0], "c": [0, 0, 0, 0]}, ks=[2])["pass@2"][0] == pytest.approx(0.5)
    assert tool_call_rate([0, 2, 1, 0]) == 0.5
    assert tool_success_rate([0, 2, 1, 0], [0, 1, 1, 0]) == pytest.approx(2 / 3)
    assert math.isnan(tool_success_rate([0, 0], [0, 0]))
    assert calls_per_sample([0, 2, 1, 0]) == 0.75
