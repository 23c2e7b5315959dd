"""Problems whose answers need exact computation, with a difficulty knob 0..5.

Difficulty 0 is easy enough for a 135M model to get right sometimes without a tool (2-digit
additions, small products); from 2 on the numbers are large enough that only running code gives the
exact answer. Every problem carries the answer computed here in Python and a reference solution
(``meta["solution_code"]``): a short program that prints exactly the answer, used by the SFT priming
to build demonstrations (problem -> code -> real sandbox output -> \\boxed{answer}). The kinds of
taorl.data.interpret (case_split, pick_divisor, recover_error) are generated here too when named in
``kinds``; their reference is two calls, the second written from the first's real output
(``meta["params"]``, ``taorl.data.interpret.reference_step``), so they carry no solution_code.

Deterministic: the same (n, difficulty, seed) gives the same problems on every machine
(``random.Random`` with a string seed).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from fractions import Fraction

from taorl.data import interpret as _interpret
from taorl.data.interpret import N_CALLS
from taorl.data.problem import Problem
from taorl.errors import UserError

MAX_DIFFICULTY = 5


def _num(rng: random.Random, digits: int) -> int:
    """A uniformly random integer with exactly ``digits`` digits."""
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


# Each kind: (rng, difficulty) -> (statement, answer, solution code). The code prints the answer.
def _add(rng, d):
    k = [2, 3, 6, 10, 15, 25][d]
    terms = [_num(rng, k) for _ in range(2 if d < 3 else 3)]
    expr = " + ".join(map(str, terms))
    return f"Compute {expr}.", sum(terms), f"print({expr})"


def _multiply(rng, d):
    a_digits, b_digits = [(1, 2), (2, 2), (3, 4), (6, 6), (10, 9), (20, 18)][d]
    a, b = _num(rng, a_digits), _num(rng, b_digits)
    return f"Compute {a} \\times {b}.", a * b, f"print({a} * {b})"


def _modpow(rng, d):
    base = rng.randint(2, [9, 30, 200, 10**4, 10**6, 10**9][d])
    exp = rng.randint(2, [6, 20, 1000, 10**6, 10**12, 10**18][d])
    mod = rng.randint(5, [20, 100, 1000, 10**5, 10**9, 10**12][d])
    return (f"What is the remainder when ${base}^{{{exp}}}$ is divided by ${mod}$?", pow(base, exp, mod),
            f"print(pow({base}, {exp}, {mod}))")


def _bernoulli(m: int) -> list[Fraction]:
    """B_0..B_m with B_1 = +1/2, from  sum_{j=0}^{k} C(k+1, j) B_j = k + 1."""
    b: list[Fraction] = []
    for k in range(m + 1):
        b.append(Fraction(k + 1 - sum(math.comb(k + 1, j) * b[j] for j in range(k)), k + 1))
    return b


def _faulhaber(n: int, p: int) -> int:
    """sum_{k=1}^{n} k^p = 1/(p+1) sum_{j=0}^{p} C(p+1, j) B_j n^{p+1-j}   (B_1 = +1/2)."""
    b = _bernoulli(p)
    total = sum(math.comb(p + 1, j) * b[j] * n ** (p + 1 - j) for j in range(p + 1)) / (p + 1)
    assert total.denominator == 1
    return int(total)


def _power_sum(rng, d):
    n = rng.randint(*[(3, 9), (10, 30), (50, 200), (500, 5000), (10**4, 10**5), (10**5, 10**6)][d])
    p = rng.randint(*[(1, 1), (1, 2), (2, 3), (2, 4), (3, 6), (4, 8)][d])
    total = _faulhaber(n, p)  # the solution code sums term by term: an independent check
    return (f"Compute $\\sum_{{k=1}}^{{{n}}} k^{{{p}}}$.", total,
            f"print(sum(k**{p} for k in range(1, {n} + 1)))")


def _digit_sum(rng, d):
    # a**b stays under Python's 4300-digit str() limit (the sandbox has the same limit)
    a = rng.randint(2, [9, 9, 20, 99, 999, 999][d])
    b = rng.randint(*[(2, 3), (3, 6), (10, 40), (50, 200), (200, 1000), (1000, 1400)][d])
    value = sum(int(c) for c in str(a**b))
    return (f"What is the sum of the digits of ${a}^{{{b}}}$?", value,
            f"print(sum(int(c) for c in str({a}**{b})))")


def _gcd_lcm(rng, d):
    k = [2, 2, 3, 5, 9, 15][d]
    common = _num(rng, max(1, k - 1))
    xs = [common * _num(rng, k) for _ in range(2 if d < 3 else 3)]
    shown = ", ".join(map(str, xs))
    if rng.random() < 0.5:
        return (f"Find the greatest common divisor of {shown}.", math.gcd(*xs),
                f"import math\nprint(math.gcd({shown}))")
    return (f"Find the least common multiple of {shown}.", math.lcm(*xs),
            f"import math\nprint(math.lcm({shown}))")


def _binomial(rng, d):
    n = rng.randint(*[(4, 8), (8, 15), (20, 40), (50, 120), (150, 400), (500, 2000)][d])
    k = rng.randint(2, max(2, n // 2))
    if rng.random() < 0.5:
        return (f"In how many ways can a committee of {k} people be chosen from {n} people?", math.comb(n, k),
                f"import math\nprint(math.comb({n}, {k}))")
    return (f"Compute $\\binom{{{n}}}{{{k}}}$.", math.comb(n, k), f"import math\nprint(math.comb({n}, {k}))")


def _count_multiples(rng, d):
    n = rng.randint(*[(20, 60), (100, 500), (10**3, 10**4), (10**5, 10**6), (10**7, 10**9), (10**12, 10**15)][d])
    a, b = rng.sample([2, 3, 5, 7, 11, 13], 2)
    value = n // a + n // b - n // (a * b)
    return (f"How many integers from 1 to {n} inclusive are divisible by {a} or by {b}?", value,
            f"n = {n}\nprint(sum(1 for k in range(1, n + 1) if k % {a} == 0 or k % {b} == 0))"
            if n <= 10**7 else f"n = {n}\nprint(n // {a} + n // {b} - n // {a * b})")


KINDS: dict[str, Callable[[random.Random, int], tuple[str, int, str]]] = {
    "add": _add,
    "multiply": _multiply,
    "modpow": _modpow,
    "power_sum": _power_sum,
    "digit_sum": _digit_sum,
    "gcd_lcm": _gcd_lcm,
    "binomial": _binomial,
    "count_multiples": _count_multiples,
}
# At difficulty 0 only the kinds a small model can do in its head.
EASY_KINDS = ("add", "multiply", "gcd_lcm", "count_multiples")
# Kinds whose tool output must be interpreted (two calls, the second written from the first's
# output; taorl.data.interpret). Named explicitly only: "every kind" (kinds=None) means KINDS above.
INTERPRET_KINDS = _interpret.KINDS


def generate(n: int, difficulty: int = 1, seed: int = 0, kinds: list[str] | None = None) -> list[Problem]:
    """``n`` problems at ``difficulty`` (0..5), deterministic in (difficulty, seed); kinds cycle in order."""
    if not 0 <= difficulty <= MAX_DIFFICULTY:
        raise UserError(f"procedural difficulty={difficulty}: expected an integer from 0 to {MAX_DIFFICULTY}")
    if n < 1:
        raise UserError(f"procedural n={n}: expected at least 1 problem")
    names = list(kinds) if kinds else list(EASY_KINDS if difficulty == 0 else KINDS)
    for k in names:
        if k not in KINDS and k not in INTERPRET_KINDS:
            raise UserError(f"procedural kind '{k}': unknown (known: {', '.join([*KINDS, *INTERPRET_KINDS])})")
    rng = random.Random(f"taorl-procedural:{seed}:{difficulty}")
    out = []
    for i in range(n):
        kind = names[i % len(names)]
        meta: dict = {"kind": kind, "difficulty": difficulty}
        if kind in INTERPRET_KINDS:  # two calls; the steps are written from real outputs (interpret.reference_step)
            statement, answer, params = INTERPRET_KINDS[kind](rng, difficulty)
            meta |= {"params": params, "calls": N_CALLS}
        else:
            statement, answer, code = KINDS[kind](rng, difficulty)
            meta["solution_code"] = code
        out.append(Problem(
            id=f"proc-d{difficulty}-s{seed}-{i}",
            problem=statement,
            answer=str(answer),
            source="procedural",
            meta={**meta, "raw_answer": str(answer)},
        ))
    return out
