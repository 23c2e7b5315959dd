"""Field mapping: a problem and its answer out of a record of any layout (a hub dataset, a user's file).

A field is named by a column (``question``), a dotted path into nested columns
(``extra_info.question``, ``reward_model.ground_truth``) or a chat list (``prompt`` holding
``[{"role": "user", "content": ...}]``: its last user turn). Without an explicit name the first
candidate present is used (PROBLEM_FIELDS / ANSWER_FIELDS, in that order).

Answers are read the way the grader reads a reference: a full solution gives the content of its
last ``\\boxed{}``, a GSM8K rationale the text after ``####``, a list its first item; then
taorl.rewards.normalize_reference (the raw text stays in ``meta["raw_answer"]``).
"""

from __future__ import annotations

import re
from typing import Any

from taorl.errors import UserError

PROBLEM_FIELDS = ("problem", "question", "extra_info.question", "prompt", "query", "input")
ANSWER_FIELDS = ("answer", "extra_info.answer", "reward_model.ground_truth", "final_answer", "ground_truth",
                 "solution", "output")
ID_FIELDS = ("id", "unique_id", "extra_info.index", "idx")
_MISSING = object()
# a prompt rendered with Qwen's chat template inside the data (SimpleRL-Zoo's parquet): its user turn
_CHATML_USER = re.compile(r"<\|im_start\|>user\n(.*?)(?:<\|im_end\|>|$)", re.DOTALL)
# instructions datasets append to the problem; taorl's system prompt asks for \boxed{} itself
_STEP_BY_STEP = re.compile(r"\s*(?:Let's think step by step|Please reason step by step)[^\n]*\Z", re.IGNORECASE)


def lookup(rec: Any, path: str) -> Any:
    """rec["a"]["b"] for "a.b" (an integer part indexes a list); _MISSING when any part is absent."""
    node = rec
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def chat_text(value: list) -> str | None:
    """The content of the last user message of a chat list (the verl / TRL prompt layout)."""
    users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else None


def problem_text(value: Any) -> str | None:
    """The problem statement: a string, or a chat list's last user turn; a ChatML-rendered turn and a
    trailing "Please reason step by step ..." instruction are removed."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
        value = chat_text(list(value))
    if not isinstance(value, str) or not value.strip():
        return None
    turns = _CHATML_USER.findall(value)
    text = turns[-1] if turns else value
    text = _STEP_BY_STEP.sub("", text.strip())
    return text.strip() or None


def answer_text(value: Any) -> str | None:
    """The reference answer as text, before normalisation; None when there is none."""
    from taorl.rewards.extract import extract_boxed

    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (list, tuple)):
        return answer_text(value[0]) if len(value) else None
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    boxed = extract_boxed(value)
    if boxed:
        return boxed
    if "####" in value:  # GSM8K: "... #### 1,234"
        return value.split("####")[-1].strip().replace(",", "")
    return value.strip()


def pick_field(rec: dict, explicit: str | None, candidates: tuple[str, ...], role: str, where: str,
               key: str) -> str:
    """The field path to read `role` from: the explicit one (it must exist), else the first candidate
    present in this record. `key` names the config key that sets it (data.problem_field)."""
    if explicit:
        if lookup(rec, explicit) is _MISSING:
            raise UserError(f"{where}: {key}={explicit!r}: no such field (has: {', '.join(map(str, rec))})")
        return explicit
    for c in candidates:
        if lookup(rec, c) is not _MISSING:
            return c
    raise UserError(f"{where}: no {role} field (looked for {', '.join(candidates)}; has: "
                    f"{', '.join(map(str, rec))}); name it with {key}=FIELD")


def strip_wrapper(text: str, prefix: str = "", suffix: str = "") -> str:
    """A problem without the instruction text a dataset wrapped it in (e.g. DAPO's "Answer:" lines)."""
    if prefix and text.startswith(prefix):
        text = text[len(prefix):]
    if suffix and text.endswith(suffix):
        text = text[: -len(suffix)]
    return text.strip()
