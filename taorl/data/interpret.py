"""Procedural problems whose tool output must be interpreted before the answer (issue 24).

The arithmetic kinds of taorl.data.procedural are solved by one call whose printed number is the
answer: after the tool returns there is nothing left to decide. The kinds here need two calls, the
second written from what the first printed, and a decision in between:

    case_split     s = a*b mod m is printed; the rule to apply next depends on s > t
    pick_divisor   the divisors of N are printed as a list; the largest one below L must be picked
                   and used in a second computation
    recover_error  the numbers come as strings; the plain int()/sum() call fails, and the error
                   line says which repair is needed (ValueError: remove the thousands separators;
                   TypeError: the list mixes int and str, convert each item)

Exact integer answers, graded like the other procedural kinds. A careless copy of the first
output never solves a problem: the first output is a number other than the answer, a list, or
an error line (tests/test_interpret_kinds.py checks both that and that the reference solves).

The reference solution is a sequence of steps, each a sentence and a code block, written from the
REAL outputs of the earlier steps (``reference_step``): the SFT priming runs them one by one in the
sandbox, so the demonstrations show exactly what the model will see (taorl.train.sft). A problem's
``meta["params"]`` holds what the steps need (JSON values only).
"""

from __future__ import annotations

import ast
import math
import random
from collections.abc import Callable

# (statement, answer, params) of a kind at difficulty d
Made = tuple[str, int, dict]


def _num(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def _int_out(out: str) -> int:
    """The integer an earlier step printed (its last line)."""
    return int(out.strip().splitlines()[-1].strip())


# ------------------------------------------------------------------------------------ case_split
def _case_split(rng: random.Random, d: int) -> Made:
    a_digits, b_digits, m_digits = [(2, 2, 2), (3, 3, 2), (4, 4, 3), (6, 5, 4), (9, 8, 5), (15, 12, 7)][d]
    a, b = _num(rng, a_digits), _num(rng, b_digits)
    m = _num(rng, m_digits)
    t = rng.randint(m // 4, 3 * m // 4)  # the threshold: both branches are common
    p, q = rng.randint(2, 9), rng.randint(10, 99)
    u, v = rng.randint(2, 9), rng.randint(1, 9)
    s = a * b % m
    answer = p * s + q if s > t else u * s + v
    statement = (f"Let $s$ be the remainder when ${a} \\times {b}$ is divided by ${m}$. "
                 f"If $s > {t}$, the answer is ${p}s + {q}$; otherwise the answer is ${u}s + {v}$. "
                 "Find the answer.")
    return statement, answer, {"a": a, "b": b, "m": m, "t": t, "p": p, "q": q, "u": u, "v": v}


def _case_split_step(pr: dict, outs: list[str]) -> tuple[str, str]:
    if not outs:
        return "First I compute s with Python.", f"print({pr['a']} * {pr['b']} % {pr['m']})"
    s = _int_out(outs[0])
    if s > pr["t"]:
        return (f"s = {s} is greater than {pr['t']}, so the answer is {pr['p']}s + {pr['q']}.",
                f"print({pr['p']} * {s} + {pr['q']})")
    return (f"s = {s} is not greater than {pr['t']}, so the answer is {pr['u']}s + {pr['v']}.",
            f"print({pr['u']} * {s} + {pr['v']})")


# ---------------------------------------------------------------------------------- pick_divisor
_SMALL_PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23]


def _divisors(n: int) -> list[int]:
    small = [k for k in range(1, math.isqrt(n) + 1) if n % k == 0]
    return sorted(set(small + [n // k for k in small]))


def _pick_divisor(rng: random.Random, d: int) -> Made:
    lo, hi = [(30, 200), (200, 2_000), (2_000, 50_000), (50_000, 500_000), (500_000, 3_000_000),
              (3_000_000, 9_000_000)][d]
    while True:  # a number with many divisors (a product of small primes), so the pick matters
        n = 1
        while n < lo:
            n *= rng.choice(_SMALL_PRIMES[: 4 + d])
        divs = _divisors(n) if n <= hi else []
        if 6 <= len(divs) <= 40:
            break
    # L strictly between two divisors above the smallest few: the largest divisor below L is not 1
    i = rng.randint(2, len(divs) - 2)
    limit = rng.randint(divs[i] + 1, divs[i + 1]) if divs[i + 1] > divs[i] + 1 else divs[i] + 1
    pick = max(k for k in divs if k < limit)
    c, e = rng.randint(3, 99), rng.randint(1, 999)
    answer = pick * c + e
    statement = (f"Let $d$ be the largest divisor of ${n}$ that is less than ${limit}$. "
                 f"Compute ${c}d + {e}$.")
    return statement, answer, {"n": n, "limit": limit, "c": c, "e": e}


def _pick_divisor_step(pr: dict, outs: list[str]) -> tuple[str, str]:
    if not outs:
        return (f"First I list the divisors of {pr['n']}.",
                f"n = {pr['n']}\nprint([k for k in range(1, n + 1) if n % k == 0])")
    divs = ast.literal_eval(outs[0].strip().splitlines()[-1])
    pick = max(k for k in divs if k < pr["limit"])
    return (f"The largest divisor less than {pr['limit']} is {pick}, so d = {pick}.",
            f"print({pr['c']} * {pick} + {pr['e']})")


# --------------------------------------------------------------------------------- recover_error
def _with_commas(x: int) -> str:
    return f"{x:,}"


def _recover_error(rng: random.Random, d: int) -> Made:
    digits = [4, 4, 5, 6, 8, 10][d]  # 4 digits at least: '1,234' has a separator
    k = rng.randint(3, 4 if d < 3 else 6)
    xs = [_num(rng, digits) for _ in range(k)]
    mult = rng.randint(2, 9)
    if rng.random() < 0.5:
        items = [_with_commas(x) for x in xs]  # "12,345": int() raises ValueError
        variant = "commas"
    else:  # some ints, some str: sum() raises TypeError (the first two differ in type)
        first_str = rng.random() < 0.5
        items = [(str(x) if (j % 2 == 0) == first_str else x) for j, x in enumerate(xs)]
        variant = "mixed"
    answer = sum(xs) * mult
    statement = f"The list `xs = {items!r}` holds numbers. Compute {mult} times the sum of the numbers in xs."
    return statement, answer, {"items": items, "mult": mult, "variant": variant}


def _recover_error_step(pr: dict, outs: list[str]) -> tuple[str, str]:
    items, mult = pr["items"], pr["mult"]
    if not outs:
        code = (f"xs = {items!r}\nprint({mult} * sum(int(x) for x in xs))" if pr["variant"] == "commas"
                else f"xs = {items!r}\nprint({mult} * sum(xs))")
        return "I compute this with Python.", code
    err = outs[0].strip().splitlines()[-1]
    if err.startswith("ValueError"):
        return ("The error says a string is not a valid integer: the numbers have commas, so I remove them.",
                f"xs = {items!r}\nprint({mult} * sum(int(x.replace(',', '')) for x in xs))")
    if err.startswith("TypeError"):
        return ("The error says the list mixes int and str, so I convert every item with int().",
                f"xs = {items!r}\nprint({mult} * sum(int(x) for x in xs))")
    raise ValueError(f"recover_error: unexpected first output {err!r}")


# ------------------------------------------------------------------------------------- registry
KINDS: dict[str, Callable[[random.Random, int], Made]] = {
    "case_split": _case_split,
    "pick_divisor": _pick_divisor,
    "recover_error": _recover_error,
}
STEPS: dict[str, Callable[[dict, list[str]], tuple[str, str]]] = {
    "case_split": _case_split_step,
    "pick_divisor": _pick_divisor_step,
    "recover_error": _recover_error_step,
}
N_CALLS = 2  # every kind's reference makes two calls


def reference_step(kind: str, params: dict, outputs: list[str]) -> tuple[str, str]:
    """Step len(outputs) of the reference solution: (a sentence, the code to run), written from the
    outputs (observation bodies) of the steps before. After N_CALLS steps the last output is the answer."""
    if len(outputs) >= N_CALLS:
        raise ValueError(f"{kind}: the reference makes {N_CALLS} calls; {len(outputs)} outputs given")
    return STEPS[kind](params, outputs)


def is_interpret_kind(kind: str | None) -> bool:
    return kind in KINDS

