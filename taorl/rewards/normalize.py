"""Rewrite answer strings into the LaTeX that math-verify parses faithfully.

The same ``normalize_answer`` runs on the reference (once, at load: ``normalize_reference``) and on the
model's boxed answer (at grading), so every rule is symmetric and idempotent. Each rule fixes a form
found in the benchmark sets (see tests/test_grader_benchmarks.py) or typical model output:

- Python-isms (Minerva answers and model code output): ``3.83e35`` -> ``3.83\\times10^{35}``,
  ``-1./3`` -> ``-1/3``, ``np.arcsin(x)`` -> ``\\arcsin(x)``, ``2**10`` -> ``2^{10}``;
- ``10^35`` -> ``10^{35}`` (what a model means by it);
- digit-group separators ``29,\\!322`` and ``1{,}000``;
- braceless fractions with a command argument, ``\\frac\\pi 2`` -> ``\\frac{\\pi}{2}``;
- a unit written after a plain number, ``7\\text{ hours}``, ``5\\mathrm{~cm}``, ``12 cm``, ``3 m/s`` ->
  the number. math-verify's own unit stripping is switched off in the grader because it also eats
  trailing single-letter *symbols* (``\\frac{1}{m} t`` became ``1/m``);
- symbols latex2sympy misreads: ``E_{1}`` (read as Euler's e, the sum collapsed to 2/3), ``\\gamma``
  (read as the Gamma function, giving ``zoo``), ``\\odot``, ``_{\\max}``;
- "and" / "or" between several answers -> a comma list (math-verify compares comma lists as sets).
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------------------------ small rules
_DOLLARS = re.compile(r"^\$+|\$+$")
_TRAILING_PUNCT = re.compile(r"(?:\s|[.,;:]|\\[,;:!]|\\quad)+$")
_DIGIT_GROUP = re.compile(r"(?<=\d)(?:,\\!|\{,\}|\\,)\s*(?=\d{3}(?!\d))")
_PY_FUNC = re.compile(r"\b(?:np|numpy|math|sympy|sp)\.(arcsin|arccos|arctan|sin|cos|tan|exp|log|ln|sinh|cosh|tanh)\s*\(")
_PY_PI = re.compile(r"\b(?:np|numpy|math|sympy|sp)\.pi\b")
_PY_TRAILING_DOT = re.compile(r"(?<![\d.])(\d+)\.(?![\d\w])(?=\s*[/*)+\-,]|\s*$)")  # "-1./3" -> "-1/3"
# 3.83e35, 1e-5, 2.7778E-06, 5.3e+3 (a number, not "2e^{x}" nor "3e_1" nor an identifier like "x1e5")
_SCI = re.compile(r"(?<![\w.\\{])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?)0*(\d+)(?![\w.])")
_TEN_POW = re.compile(r"(?<![\d.])10\s*\^\s*([+-]?\d{2,}|[+-]\d+)")  # 10^35, 10^-5 (no braces)
_POW_TOKEN = re.compile(r"\*\*\s*([+-]?(?:\d+(?:\.\d+)?|[A-Za-z]\w*))")
_E_SUB = re.compile(r"(?<![\\\w])E(?=_)")  # E_{1}, E_0: a symbol named E, not Euler's number
_GAMMA = re.compile(r"\\gamma(?![A-Za-z])")
_ODOT = re.compile(r"\\odot(?![A-Za-z])")
_SUB_MAXMIN = re.compile(r"_\{?\\(max|min)\s*\}?")
_WORD_SEP = re.compile(
    r"\s*,?\s*(?:\\(?:quad|qquad)\s*)?(?:\\text\s*\{\s*(?:and|or)\s*\}|\band\b|\bor\b)(?:\s*\\(?:quad|qquad))?\s*")
_SPACING = re.compile(r"^(?:\\(?:quad|qquad|[,;: ])\s*)+|(?:\s*\\(?:quad|qquad))+$")  # leading/trailing spaces

# a plain number: 12, -3.5, 1,000, .5, 3.83\times10^{35}, \frac{3}{4}
_NUMBER = (r"[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:\s*(?:\\times|\\cdot)\s*10\^\{[-+]?\d+\})?"
           r"|[-+]?\\frac\{\d+\}\{\d+\}")
_UNIT_TEXT = re.compile(
    rf"^(?P<num>{_NUMBER})\s*(?:\\[,;: !]|~)*\s*"
    r"\\(?:text|mathrm|mbox|textrm|operatorname)\s*\{\s*~?\s*[A-Za-z][A-Za-z .~/\\]*\}(?:\s*\^\s*\{?\d\}?)?$"
)
_UNIT_WORD = re.compile(
    rf"^(?P<num>{_NUMBER})\s*(?:\\[,;: !]|~)*\s*[A-Za-z]{{2,}}(?:\s*/\s*[A-Za-z]+)?(?:\s*\^\s*\{{?\d\}}?)?$"
)
_UNIT_RATE = re.compile(rf"^(?P<num>{_NUMBER})\s*(?:\\[,;: !]|~)*\s*[A-Za-z]\s*/\s*[A-Za-z]+$")  # 3 m/s


def _python_power(s: str) -> str:
    """``2**10`` -> ``2^{10}``; ``x**(1/3)`` -> ``x^{(1/3)}``."""
    s = _POW_TOKEN.sub(lambda m: "^{" + m.group(1) + "}", s)
    while "**(" in s:
        i = s.index("**(")
        depth, j = 0, i + 2
        while j < len(s):
            depth += s[j] == "("
            depth -= s[j] == ")"
            if depth == 0:
                break
            j += 1
        s = s[:i] + "^{" + s[i + 2 : j + 1] + "}" + s[j + 1 :]
    return s


def _frac_arg(s: str, i: int) -> tuple[str, int] | None:
    """One argument of ``\\frac`` starting at s[i] (after spaces): a brace group, a command or a char."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return None
    if s[i] == "{":
        depth = 0
        for j in range(i, len(s)):
            depth += s[j] == "{"
            depth -= s[j] == "}"
            if depth == 0:
                return s[i : j + 1], j + 1
        return None
    if s[i] == "\\":
        m = re.match(r"\\[A-Za-z]+", s[i:])
        return (("{" + m.group(0) + "}"), i + m.end()) if m else None
    return "{" + s[i] + "}", i + 1


def _brace_fracs(s: str) -> str:
    """``\\frac\\pi 2`` / ``\\dfrac12`` -> ``\\frac{\\pi}{2}`` (arguments without braces)."""
    out, i = [], 0
    for m in re.finditer(r"\\[dtc]?frac(?![A-Za-z])", s):
        if m.start() < i:
            continue
        a = _frac_arg(s, m.end())
        b = _frac_arg(s, a[1]) if a else None
        if a is None or b is None:
            continue
        out.append(s[i : m.start()] + "\\frac" + a[0] + b[0])
        i = b[1]
    return "".join(out) + s[i:]


def _strip_unit(s: str) -> str:
    for pat in (_UNIT_TEXT, _UNIT_WORD, _UNIT_RATE):
        m = pat.match(s)
        if m:
            return m.group("num").strip()
    return s


def normalize_answer(text: str) -> str:
    """Symmetric, idempotent clean-up of one answer string (reference or prediction); see module doc."""
    s = (text or "").strip()
    s = _DOLLARS.sub("", s).strip()
    s = s.replace("\\displaystyle", "")
    s = _DIGIT_GROUP.sub("", s)
    s = _TRAILING_PUNCT.sub("", s)
    # Python-isms
    s = _PY_FUNC.sub(lambda m: "\\" + m.group(1).replace("ln", "log") + "(", s)
    s = _PY_PI.sub(r"\\pi", s)
    s = _python_power(s)
    s = _PY_TRAILING_DOT.sub(r"\1", s)
    s = _SCI.sub(lambda m: f"{m.group(1)}\\times10^{{{m.group(2).replace('+', '')}{m.group(3)}}}", s)
    s = _TEN_POW.sub(lambda m: "10^{" + m.group(1).replace("+", "") + "}", s)
    s = _brace_fracs(s)
    # symbols latex2sympy misreads
    s = _E_SUB.sub(r"\\text{E}", s)
    s = _GAMMA.sub(r"\\text{gam}", s)
    s = _ODOT.sub(r"\\text{sun}", s)
    s = _SUB_MAXMIN.sub(lambda m: "_{" + m.group(1) + "}", s)
    # several answers joined by words
    s = _SPACING.sub("", s)
    if s.count("{") == s.count("}"):  # not inside a \text{...} sentence we would break
        s = _WORD_SEP.sub(", ", s).strip(" ,")
    s = _strip_unit(s)
    return s.strip()


# ------------------------------------------------------------------------------ reference-only rules
# An explanation after the answer ("f(x)=ax+b, where b is an arbitrary integer, ..."): keep the maths.
_WHERE_TAIL = re.compile(r",?\s*(?:\\text\{\s*)?\b(?:where|for all|for any|for some)\b.*$", re.DOTALL)

# Reference typos in the benchmark files that no general rule should guess; id -> (as found, meant).
REFERENCE_FIXES: dict[str, tuple[str, str]] = {
    # OlympiadBench 2045 (answer_type Interval): "t(0,4]" is "t \in (0,4]" with the \in lost.
    "olympiadbench-2045": ("t(0,4]", "(0,4]"),
}


def normalize_reference(answer: str, *, problem_id: str | None = None) -> str:
    """The reference as stored in ``Problem.answer``: fixes, explanation tails cut, then normalize_answer."""
    s = str(answer).strip()
    if problem_id in REFERENCE_FIXES and s == REFERENCE_FIXES[problem_id][0]:
        s = REFERENCE_FIXES[problem_id][1]
    if re.search(r"[A-Za-z]{3,}\s+[A-Za-z]{3,}", _strip_latex_cmds(s)):  # has English words
        s = _WHERE_TAIL.sub("", s)
    return normalize_answer(s)


def _strip_latex_cmds(s: str) -> str:
    return re.sub(r"\\[A-Za-z]+", " ", s)
