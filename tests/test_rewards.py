"""Answer extraction, normalisation and grading (math-verify + deadline), from the main thread and others."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from taorl.rewards import extract_boxed, grade, grade_many, normalize_answer, normalize_reference


@pytest.mark.parametrize("text, expected", [
    ("so \\boxed{42}.", "42"),
    ("first \\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # the last one
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\fbox{7}", "7"),
    ("\\boxed 5 is it", "5"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces do not close the group
    ("\\boxed{3} and a cut \\boxed{\\frac{1", "3"),  # unclosed last box: the previous complete one
    ("no answer here", None),
    ("", None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize("raw, normalised", [
    ("3.83e35", "3.83\\times10^{35}"),
    ("1e-5", "1\\times10^{-5}"),
    ("2.7778E-06", "2.7778\\times10^{-6}"),
    ("-1./3", "-1/3"),
    ("np.arcsin(10/13)", "\\arcsin(10/13)"),
    ("2**10", "2^{10}"),
    ("10^35", "10^{35}"),
    ("\\dfrac{1}{29,\\!322,\\!216}", "\\frac{1}{29322216}"),
    ("2007 + \\frac\\pi 2", "2007 + \\frac{\\pi}{2}"),
    ("7\\text{ hours}.", "7"),
    ("5\\mathrm{~cm}", "5"),
    ("12 cm", "12"),
    ("2, 3, \\text{ and } 4", "2, 3, 4"),
    ("$x^2$", "x^2"),
    ("e^{-2 t}", "e^{-2 t}"),  # not scientific notation
])
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised
    assert normalize_answer(normalised) == normalised  # idempotent


def test_normalize_reference_cuts_explanations_and_applies_fixes():
    assert normalize_reference("f(x)=a x+b, where b is an arbitrary integer") == "f(x)=a x+b"
    assert normalize_reference("t(0,4]", problem_id="olympiadbench-2045") == "(0,4]"
    assert normalize_reference("t(0,4]", problem_id="other") == "t(0,4]"


@pytest.mark.parametrize("response, reference", [
    ("\\boxed{0.5}", "\\frac{1}{2}"),
    ("\\boxed{1/2}", "\\frac{1}{2}"),
    ("\\boxed{3.83 \\times 10^{35}}", "3.83e35"),
    ("\\boxed{383000000000000000000000000000000000}", "3.83e35"),
    ("\\boxed{-\\frac{1}{3}}", "-1./3"),
    ("\\boxed{\\arcsin(\\frac{10}{13})}", "np.arcsin(10/13)"),
    ("\\boxed{0.8776364192181428}", "np.arcsin(10/13)"),  # full-precision decimal of a closed form
    ("\\boxed{-7, 7, -1, 1}", "1,-1,7,-7"),  # multi-answer, any order
    ("\\boxed{(3, \\pi/2)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed{[2, 5)}", "[2,5)"),
    ("\\boxed{50\\%}", "50"),
    ("\\boxed{30}", "30^{\\circ}"),
    ("\\boxed{7 \\text{ hours}}", "7"),
    ("\\boxed{\\text{Monday}}", "\\text{Monday}"),
    ("\\boxed{x=3}", "3"),
    ("\\boxed{\\frac{t}{m}}", "\\frac{1}{m} t"),  # a trailing symbol is not a unit
    ("\\boxed{2 \\cdot 10^{5}}", "2e5"),
])
def test_grade_equivalent(response, reference):
    r = grade("The answer is " + response + ".", normalize_reference(reference))
    assert (r.reward, r.reason) == (1.0, "correct")


@pytest.mark.parametrize("response, reference", [
    ("\\boxed{3}", "\\frac{1}{2}"),
    ("\\boxed{0.876}", "np.arcsin(10/13)"),  # a rounded decimal is not the closed form
    ("\\boxed{3.84e35}", "3.83e35"),
    ("\\boxed{1, -1, 7}", "1,-1,7,-7"),
    ("\\boxed{(2,5)}", "[2,5)"),
    ("\\boxed{\\frac{1}{m}}", "\\frac{1}{m} t"),
    ("\\boxed{2}", "\\hbar \\omega(v+1 / 2)-\\frac{E_{0}^{2} e^{2}}{2 m \\omega^{2}}"),  # once parsed as 2
])
def test_grade_wrong(response, reference):
    r = grade(response, normalize_reference(reference))
    assert (r.reward, r.reason) == (0.0, "wrong")


def test_grade_failures_are_zero_with_a_reason():
    assert grade("I think it is 5", "5").reason == "no_boxed"
    assert grade("\\boxed{}", "5").reason == "empty_answer"
    assert grade("\\boxed{5}", "5").extracted == "5"
    r = grade("\\boxed{\\frac{}{}}", "5")
    assert r.reward == 0.0 and r.reason in ("unparsed_answer", "wrong")


def test_timeout_gives_zero_not_a_hang():
    # a unique, long reference (not cached) cannot be parsed and verified within 1 ms
    ref = "+".join(f"\\frac{{{i}}}{{x+{i}}}\\sin({i}x)" for i in range(1, 40)) + f"+{time.time_ns()}"
    t0 = time.perf_counter()
    r = grade("\\boxed{" + ref + "}", ref, timeout_s=0.001)
    assert (r.reward, r.reason) == (0.0, "timeout")
    assert time.perf_counter() - t0 < 1.0


def test_grade_from_threads_uses_worker_processes():
    pairs = [("\\boxed{\\frac{2}{4}}", "0.5"), ("\\boxed{3}", "4"), ("\\boxed{3.83e35}", "3.83\\times10^{35}")] * 4
    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda p: grade(*p), pairs))
    t_threads = time.perf_counter() - t0
    assert [r.reward for r in results] == [1.0, 0.0, 1.0] * 4
    # warm pool: per-call cost from a thread vs in the main thread (printed, for the record)
    t0 = time.perf_counter()
    th_res = []
    th = threading.Thread(target=lambda: th_res.extend(grade(*p) for p in pairs))
    th.start()
    th.join()
    t_warm = (time.perf_counter() - t0) / len(pairs)
    t0 = time.perf_counter()
    main_res = [grade(*p) for p in pairs]
    t_main = (time.perf_counter() - t0) / len(pairs)
    assert th_res == main_res
    print(f"\n[grade] first threaded batch (spawns the pool) {t_threads:.2f}s; per call: "
          f"thread->pool {1000 * t_warm:.1f} ms, main thread {1000 * t_main:.1f} ms")


def test_timeout_in_a_thread():
    ref = "+".join(f"\\frac{{{i}}}{{y+{i}}}\\cos({i}y)" for i in range(1, 40)) + f"+{time.time_ns()}"
    out = []
    th = threading.Thread(target=lambda: out.append(grade("\\boxed{" + ref + "}", ref, timeout_s=0.001)))
    th.start()
    th.join(timeout=30)
    assert out and (out[0].reward, out[0].reason) == (0.0, "timeout")


def test_grade_many_in_order_and_checks_lengths():
    responses = ["\\boxed{1}", "\\boxed{2}", "nothing", "\\boxed{4}"]
    refs = ["1", "3", "3", "4"]
    expected = [(1.0, "correct"), (0.0, "wrong"), (0.0, "no_boxed"), (1.0, "correct")]
    assert [(r.reward, r.reason) for r in grade_many(responses, refs)] == expected
    assert [(r.reward, r.reason) for r in grade_many(responses, refs, workers=2)] == expected
    with pytest.raises(ValueError):
        grade_many(["\\boxed{1}"], [])
