"""Does the grader agree with itself on a problem set? A diagnostic for the reference answers.

For every problem: the raw reference, boxed inside a sentence, must grade correct; a few equivalent
rewritings (``1/2`` for ``\\frac{1}{2}``, a terminating decimal, ``3.83\\times10^{35}`` for ``3.83e35``,
a multi-answer list in reverse order, without ``^{\\circ}`` ...) must grade correct; plainly wrong
answers (the reference + 1, a different number, a multi-answer list missing one item, the
expression + 1) must grade wrong. A problem "agrees" when every check holds.

    python -m taorl.lab.selfcheck [DATA_DIR] [--workers N]     # agreement rate per set
"""

from __future__ import annotations

import multiprocessing as mp
import re
import time
from dataclasses import dataclass
from fractions import Fraction

from taorl.rewards.grader import _config, _grade_here, _parse_reference

SENTENCE = "Putting everything together, the final answer is $\\boxed{{{}}}$."
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$")
_DECIMAL = re.compile(r"^-?\d+\.\d+$")
_INT = re.compile(r"^-?\d+$")
_SCI = re.compile(r"^(-?\d+(?:\.\d+)?)[eE]([+-]?\d+)$")
_DEGREE = re.compile(r"\^\{?\\circ\}?")


@dataclass
class Check:
    kind: str  # self | equivalent | wrong
    answer: str  # what was boxed
    expect: bool


def split_top_level(s: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside (), [], {} (so tuples and \\frac{..}{..} stay whole)."""
    parts, depth, cur = [], 0, []
    for ch in s:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def _plain_number(x) -> str | None:
    """sympy number -> LaTeX; None for anything else."""
    import sympy

    if isinstance(x, sympy.Integer):
        return str(int(x))
    if isinstance(x, sympy.Rational):
        return f"\\frac{{{x.p}}}{{{x.q}}}" if x.p >= 0 else f"-\\frac{{{-x.p}}}{{{x.q}}}"
    if isinstance(x, sympy.Float):
        return repr(float(x))
    return None


def checks_for(raw: str, reference: str, multiple: bool | None = None) -> list[Check]:
    """The checks of one problem (raw answer as written in the file, reference as normalised)."""
    import sympy

    from taorl.rewards.normalize import normalize_answer

    raw = raw.strip()
    out = [Check("self", reference, True)]
    if raw != reference and normalize_answer(raw) == reference:  # only the symmetric rules changed it
        out.append(Check("equivalent", raw, True))
    gold = _parse_reference(reference)
    g = gold[0] if gold else None
    # ---- equivalent rewritings
    if m := _FRAC.match(raw):
        sign, p, q = m.groups()
        out.append(Check("equivalent", f"{sign}{p}/{q}", True))
        f = Fraction(int(p), int(q))
        q_ = f.denominator
        while q_ % 2 == 0:
            q_ //= 2
        while q_ % 5 == 0:
            q_ //= 5
        if q_ == 1:  # terminating decimal
            out.append(Check("equivalent", sign + str(float(f)) if len(str(float(f))) < 15 else raw, True))
    elif _DECIMAL.match(raw) and len(raw) < 12:
        f = Fraction(raw)
        out.append(Check("equivalent", _plain_number(sympy.Rational(f.numerator, f.denominator)), True))
    elif _INT.match(raw):
        out.append(Check("equivalent", f"{raw}.0", True))
    if m := _SCI.match(raw):
        mant, exp = m.groups()
        out.append(Check("equivalent", f"{mant}\\times10^{{{int(exp)}}}", True))
        out.append(Check("equivalent", f"{mant} \\cdot 10^{{{int(exp)}}}", True))
    if _DEGREE.search(raw):
        out.append(Check("equivalent", _DEGREE.sub("", raw), True))
    items = split_top_level(reference)
    if isinstance(g, sympy.FiniteSet) and len(items) > 1:  # a list of answers, compared as a set
        out.append(Check("equivalent", ", ".join(reversed(items)), True))
        if len(set(items)) == len(items):
            out.append(Check("wrong", ", ".join(items[:-1]), False))
    # ---- wrong answers
    if isinstance(g, sympy.Number) and g.is_finite:
        bumped = g + 1 if (not isinstance(g, sympy.Float) or abs(g) < 1e6) else g * 2
        out.append(Check("wrong", _plain_number(bumped), False))
    elif isinstance(g, sympy.Expr) and not isinstance(g, sympy.Number) and g.free_symbols:
        out.append(Check("wrong", f"\\left({reference}\\right)+1", False))
        # a symbolic answer that a bare small number matches was mis-parsed (minerva-261 once read as 2)
        out.extend(Check("wrong", w, False) for w in ("0", "1", "2"))
    other = "7919" if reference.strip() != "7919" else "7907"
    out.append(Check("wrong", other, False))
    return out


def check_problem(item: tuple[str, str, str, bool | None]) -> tuple[str, list[str]]:
    """(id, raw, reference, multiple) -> (id, failures as 'kind: boxed -> got reason')."""
    pid, raw, reference, multiple = item
    fails = []
    for c in checks_for(raw, reference, multiple):
        r = _grade_here(SENTENCE.format(c.answer), reference, timeout_s=10.0)
        if r.correct != c.expect:
            fails.append(f"{c.kind}: {c.answer!r} -> {r.reason}")
    return pid, fails


def _init() -> None:
    _config()


def check_problems(problems, workers: int = 1) -> dict[str, list[str]]:
    """Failures per problem id (empty list = agrees), for ``taorl.data.Problem`` objects."""
    items = [(p.id, str(p.meta.get("raw_answer", p.answer)), p.answer, p.meta.get("is_multiple_answer"))
             for p in problems]
    if workers <= 1:
        return dict(map(check_problem, items))
    with mp.get_context("spawn").Pool(workers, initializer=_init) as pool:
        return dict(pool.imap_unordered(check_problem, items, chunksize=16))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os

    from taorl.data import benchmark_names, load_benchmark

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", nargs="?", help="benchmark folder (default: TAORL_DATA_DIR or ../shared/benchmarks)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    if args.data_dir:
        os.environ["TAORL_DATA_DIR"] = args.data_dir
    for name in benchmark_names():
        t0 = time.perf_counter()
        problems = load_benchmark(name)
        fails = check_problems(problems, workers=args.workers)
        bad = {k: v for k, v in fails.items() if v}
        print(f"{name:14s} {len(problems) - len(bad):5d}/{len(problems):<5d} agree "
              f"({100 * (1 - len(bad) / len(problems)):.2f}%)  {time.perf_counter() - t0:.1f}s")
        for k, v in bad.items():
            print(f"    {k}: {'; '.join(v)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
