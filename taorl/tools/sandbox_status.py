"""What happened in one tool call: the ToolResult and the classification of the raw answer.

Pure functions of the answer the sandbox collects (see sandbox._Zygote.call), unit-tested with
hand-made answers; the exit codes are the ones the zygote's child uses (_zygote.py).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from taorl.types import OK_STATUSES

EXIT_SYNTAX, EXIT_RUNTIME, EXIT_MEMORY, EXIT_SETUP = 101, 102, 103, 104


@dataclass
class ToolResult:
    status: str  # one of taorl.types.TOOL_STATUSES
    stdout: str = ""  # captured stdout, at most tool.max_output_chars characters
    stderr_last: str = ""  # last non-empty stderr line (or why the sandbox stopped the code)
    wall_ms: float = 0.0  # from fork to the end of the child

    def succeeded(self, requires_stdout: bool = True) -> bool:
        """n_ok's test: ran without exception and (when requires_stdout) printed something."""
        return self.status in OK_STATUSES or (not requires_stdout and self.status == "no_output")


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def classify(raw: dict, cfg, timeout_s: float) -> ToolResult:
    """Turn one call's answer into a ToolResult (pure: unit-tested with hand-made answers).

    `raw`: exit (exit code, or -signal), timed_out (we killed it at the wall-clock deadline),
    flood (we killed it for too much stdout), stdout (the kept part), stdout_bytes (all it
    wrote), stderr_tail, wall_ms, cpu_s (CPU seconds the child used)."""
    if "error" in raw:
        return ToolResult("sandbox_error", "", f"SandboxError: {raw['error']}", 0.0)
    code = int(raw["exit"])
    stdout_full = raw["stdout"]
    stdout = stdout_full[: cfg.max_output_chars]
    over = raw["stdout_bytes"] > len(stdout_full.encode("utf-8", "replace")) or len(stdout_full) > cfg.max_output_chars
    err = _last_line(raw["stderr_tail"])
    wall = float(raw["wall_ms"])
    sig = -code if code < 0 else 0
    # RLIMIT_CPU (soft = hard) ends the child with SIGKILL; rusage rounds, so within 10 % counts
    cpu_out = float(raw.get("cpu_s", 0.0)) >= 0.9 * cfg.cpu_s

    def res(status, line=err):
        return ToolResult(status, stdout, line, wall)

    if raw["timed_out"]:
        return res("timeout", f"TimeoutError: execution exceeded the {timeout_s:g} s time limit")
    if sig in (signal.SIGKILL, signal.SIGXCPU) and cpu_out:
        return res("timeout", f"TimeoutError: execution exceeded the {cfg.cpu_s} s CPU time limit")
    if raw["flood"]:  # only stdout stops a run; stderr is drained and its tail kept
        return res("output_truncated", f"output limit exceeded: stopped after {raw['stdout_bytes']} bytes")
    if code == EXIT_SETUP:
        return res("sandbox_error")
    if code == EXIT_SYNTAX:
        return res("syntax_error")
    if code == EXIT_MEMORY or err.startswith("MemoryError"):
        return res("memory", err or "MemoryError")
    if sig:
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        if sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT) and "memory" in raw["stderr_tail"].lower():
            return res("memory", f"MemoryError: killed by {name}")
        return res("runtime_error", f"killed by signal {name}" + (f" ({err})" if err else ""))
    if code >= 1000:  # the code itself exited with one of the numbers above (see _Zygote.call)
        code -= 1000
    if code != 0:
        return res("runtime_error", err or f"exit status {code}")
    if over:
        return res("output_truncated")
    if not stdout.strip():
        return res("no_output")
    return res("ok")
