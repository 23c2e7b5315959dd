"""Answer extraction and 0/1 reward by math-verify with a timeout (see grader.py for the rules)."""

from taorl.rewards.extract import extract_boxed
from taorl.rewards.grader import GradeResult, grade, grade_many, shutdown_pools
from taorl.rewards.normalize import normalize_answer, normalize_reference

__all__ = ["GradeResult", "extract_boxed", "grade", "grade_many", "normalize_answer",
           "normalize_reference", "shutdown_pools"]
