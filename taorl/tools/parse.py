"""Find the code block a model turn asks to run (spec §1: a turn ends after its first complete block).

Rules (markdown fences, made explicit so rollout and tests agree):

- An **opening fence** is a run of three or more backticks followed by an optional tag and then the
  end of the line. It normally starts a line (indentation allowed); a ```` ```python ```` /
  ```` ```py ```` fence may also end a line of prose ("Let me compute: ```python").
- Tags ``python``, ``py``, ``python3``, ``py3`` (any case) and no tag mean Python: such a block is
  the one to run. A block with **any other tag** (```` ```text ````, ```` ```output ````,
  ```` ```bash ````) is *not* executed and is skipped as a whole: nothing inside it can open a block,
  and the search goes on after its closing fence.
- A **closing fence** is a line holding only whitespace and at least as many backticks as the
  opening run; it may be the last line of the text (no newline after it yet). So ``s = "```"`` or
  ``print('```')`` inside code never closes a block: those lines hold more than a fence.
- An opening fence without a closing fence is *unterminated*: no block (the turn is still going,
  or it is a void turn).
- CRLF and CR line ends are accepted; the returned code uses ``\\n``. The code is dedented by the
  opening fence's indentation and then by whatever indentation all its lines share.
- Spans are indices into the original text: ``start`` is the first backtick of the opening fence,
  ``end`` the index right after the last backtick of the closing fence.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})

# one line: its content and the line break after it (empty at the end of the text)
_LINE = re.compile(r"([^\r\n]*)(\r\n|\n|\r|$)")
# an opening fence at the end of a line's content: optional prefix, backticks, optional tag
_OPEN = re.compile(r"(?P<pre>.*?)(?P<fence>`{3,})[ \t]*(?P<tag>[^\s`]*)[ \t]*$")


@dataclass(frozen=True)
class CodeBlock:
    code: str  # the code to run, "\n" line ends, dedented
    lang: str  # the tag as written, lower-cased ("" when none)
    start: int  # index of the opening fence's first backtick in the text
    end: int  # index right after the closing fence's last backtick

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)


def _lines(text: str):
    """(start, content, has_break) of each line; content excludes the line break."""
    pos = 0
    n = len(text)
    while pos <= n:
        m = _LINE.match(text, pos)
        content, brk = m.group(1), m.group(2)
        yield pos, content, bool(brk)
        if not brk:
            return
        pos = m.end()


def _dedent(lines: list[str], indent: int) -> str:
    out = []
    for line in lines:
        k = 0
        while k < indent and k < len(line) and line[k] in " \t":
            k += 1
        out.append(line[k:])
    return textwrap.dedent("\n".join(out))


def first_code_block(text: str) -> CodeBlock | None:
    """The first complete Python fenced block of `text`, or None (see the module doc for the rules)."""
    inside = None  # (fence length, is_python, fence start index, indent, tag) while inside a block
    body: list[str] = []
    for start, content, has_break in _lines(text):
        if inside is None:
            m = _OPEN.match(content)
            if not m or not has_break:  # an opening fence needs the line break after it
                continue
            pre, tag = m.group("pre"), m.group("tag").lower()
            at_line_start = pre.strip(" \t") == ""
            if not at_line_start and not (tag in PYTHON_TAGS and tag):
                continue  # prose ending in bare backticks or ```text: not an opening fence
            fence_at = start + m.start("fence")
            inside = (len(m.group("fence")), tag in PYTHON_TAGS, fence_at, len(pre) if at_line_start else 0, tag)
            body = []
            continue
        n_ticks, is_python, fence_at, indent, tag = inside
        stripped = content.strip(" \t")
        if len(stripped) >= n_ticks and set(stripped) == {"`"}:
            if is_python:
                end = start + content.index("`") + len(stripped)
                return CodeBlock(code=_dedent(body, indent), lang=tag, start=fence_at, end=end)
            inside = None  # a non-Python block ends; keep looking after it
            continue
        body.append(content)
    return None


def complete_block_end(text: str) -> int | None:
    """Index right after the closing fence of the first complete Python block (None: no such block).

    The rollout engine stops a turn's generation there: ``text[:complete_block_end(text)]``.
    """
    block = first_code_block(text)
    return None if block is None else block.end
