"""Find the final answer in a model response: the content of the LAST ``\\boxed{...}`` (or ``\\fbox{...}``).

Braces are matched, so ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``. The loose form ``\\boxed 5`` (no
braces, one token) is accepted too. An unclosed last box (the response was cut) is ignored and the
previous complete one is used, if any.
"""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\s*(\{)|\\boxed[ \t]+([^\s$\\{}]+)")


def _balanced(text: str, open_at: int) -> str | None:
    """The text inside the brace group opening at ``text[open_at] == '{'``, or None if unclosed."""
    depth = 0
    i = open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):  # \{ and \} are literal braces, not groups
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
        i += 1
    return None


def extract_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, stripped; None if none."""
    found: str | None = None
    for m in _BOX.finditer(text or ""):
        if m.group(1) is not None:
            inner = _balanced(text, m.start(1))
            if inner is not None:
                found = inner.strip()
        else:
            found = m.group(2).strip()
    return found
