"""The problem record every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Problem:
    id: str
    problem: str  # the statement shown to the model
    answer: str  # the reference answer, normalised once at load (taorl.rewards.normalize_reference)
    source: str  # benchmark name, "procedural", or the file stem
    meta: dict[str, Any] = field(default_factory=dict)  # raw_answer, is_multiple_answer, solution_code, ...
