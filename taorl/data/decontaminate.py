"""Decontamination: training problems that are also held-out benchmark problems are dropped and counted.

The match is exact equality of the NORMALISED problem text (``problem_key``): lower case; ``$`` signs,
``\\left`` / ``\\right``, LaTeX spacing commands (``\\,`` ``\\;`` ``\\!`` ``\\quad`` ``\\qquad``,
``\\ ``) and all whitespace removed; ``\\dfrac`` / ``\\tfrac`` read as ``\\frac``; trailing
punctuation ignored. So "Find $x$ if $2x = 4$." and "find x if 2x=4" match; a paraphrase or a
problem with other numbers does not (this is a duplicate check, not a similarity search).

The benchmarks checked are the held-out sets of taorl.data.benchmarks, read from the local data
folder (``$TAORL_DATA_DIR`` or ``shared/benchmarks`` beside the checkout); with no such folder they
come from the hub (cached by it) when it can be reached, as for `taorl eval`. One that cannot be
read is reported as not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from taorl.data.problem import Problem

_SPACING = re.compile(r"\\(?:quad|qquad|[,;:! ])|\\left(?![A-Za-z])|\\right(?![A-Za-z])|\$")
_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")
_WS = re.compile(r"\s+")

MATCH_RULE = ("exact match of the normalised problem text (lower case; $, \\left/\\right, LaTeX spacing "
              "and all whitespace removed; \\dfrac/\\tfrac as \\frac; trailing punctuation ignored)")


def problem_key(text: str) -> str:
    """The normalised text two problems are compared by (see the module doc)."""
    s = _FRAC.sub(r"\\frac", text)
    s = _SPACING.sub("", s)
    s = _WS.sub("", s).lower()
    return s.rstrip(".?!:;,")


@dataclass
class Decontamination:
    dropped: dict[str, int] = field(default_factory=dict)  # benchmark -> training problems dropped
    not_checked: list[str] = field(default_factory=list)  # benchmarks with no local file
    dropped_ids: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.dropped_ids)

    def report(self) -> dict:
        return {"match": MATCH_RULE, "dropped": self.total, "by_benchmark": dict(self.dropped),
                "not_checked": list(self.not_checked), "dropped_ids": self.dropped_ids[:50]}

    def summary(self) -> str:
        checked = len(self.dropped)
        parts = ", ".join(f"{b} {n}" for b, n in self.dropped.items() if n)
        line = f"decontamination: dropped {self.total} training problem(s) also in a benchmark"
        line += f" ({parts})" if parts else ""
        line += f"; {checked} benchmark(s) checked"
        if self.not_checked:
            line += f", not checked (no local file): {', '.join(self.not_checked)}"
        return line


def held_out_names() -> list[str]:
    """The benchmarks a training set must not contain (every benchmark but the MATH train copy)."""
    from taorl.data.benchmarks import BENCHMARKS

    return [n for n in BENCHMARKS if n != "math_train"]


def decontaminate(problems: list[Problem],
                  benchmarks: list[str] | None = None) -> tuple[list[Problem], Decontamination]:
    """(problems minus those whose problem_key is a benchmark problem's, what was dropped)."""
    from taorl.data.benchmarks import BENCHMARKS, load_benchmark, local_data_dir
    from taorl.data.files import read_jsonl
    from taorl.data.hub import hub_reachable
    from taorl.errors import UserError

    folder = local_data_dir()
    result = Decontamination()
    owner: dict[str, str] = {}  # problem key -> the first benchmark holding it
    for name in benchmarks if benchmarks is not None else held_out_names():
        path = folder / BENCHMARKS[name].file if folder is not None else None
        if path is not None and path.is_file():
            held = read_jsonl(path, source=name)
        elif folder is None and BENCHMARKS[name].hub_repo and hub_reachable():
            try:
                held = load_benchmark(name)  # from the hub (cached there for taorl eval too)
            except UserError:
                held = None
        else:
            held = None
        if held is None:
            result.not_checked.append(name)
            continue
        result.dropped[name] = 0
        for p in held:
            owner.setdefault(problem_key(p.problem), name)
    kept = []
    for p in problems:
        hit = owner.get(problem_key(p.problem))
        if hit is None:
            kept.append(p)
        else:
            result.dropped[hit] += 1
            result.dropped_ids.append(p.id)
    return kept, result
