"""pass@k against brute-force enumeration of every k-subset; Avg@n and the CI by hand."""

import itertools
import math

import pytest

from taorl.eval.metrics import (
    avg_at_n,
    calls_per_sample,
    mean_ci,
    pass_at_k,
    summarize,
    summarize_samples,
    tool_call_rate,
    tool_success_rate,
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
    m, lo, hi = mean_ci(vals)
    assert m == 0.75
    assert lo == pytest.approx(0.75 - 1.959963984540054 * 0.25)
    assert hi == pytest.approx(0.75 + 1.959963984540054 * 0.25)
    assert mean_ci([0.3]) == (0.3, 0.3, 0.3)


def test_mean_ci_bootstrap_brackets_mean_and_is_seeded():
    vals = [0.0] * 20 + [1.0] * 10
    a = mean_ci(vals, method="bootstrap", seed=1)
    assert a == mean_ci(vals, method="bootstrap", seed=1)
    m, lo, hi = a
    assert m == pytest.approx(1 / 3) and lo < m < hi
    # percentile bootstrap of a proportion ~ normal interval at P = 30 (within 0.05)
    _, nlo, nhi = mean_ci(vals)
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
