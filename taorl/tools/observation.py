"""The observation appended to the context after a tool call (spec §1).

    "\nCode execution result: <stdout>\n"          when the code ran (ok, no_output, output_truncated)
    "\nCode execution result: <last stderr line>\n" on any error (syntax, runtime, timeout, memory, sandbox)

The body is cut to `max_chars` characters (trailing newlines of stdout are dropped first, so
``print(2)`` gives ``"\nCode execution result: 2\n"``). The token cap (256) is applied by the
rollout engine with the tokenizer.
"""

from __future__ import annotations

RAN_STATUSES = frozenset({"ok", "no_output", "output_truncated"})
PREFIX = "\nCode execution result: "


def observation_body(result) -> str:
    """What the model gets to see of one call, before the cut."""
    if result.status in RAN_STATUSES:
        return result.stdout.rstrip("\r\n")
    return result.stderr_last or result.status


def format_observation(result, max_chars: int = 512) -> str:
    """``"\\nCode execution result: <body>\\n"`` with the body cut to max_chars characters."""
    if max_chars < 0:
        raise ValueError(f"max_chars must be >= 0, got {max_chars}")
    return PREFIX + observation_body(result)[:max_chars] + "\n"
