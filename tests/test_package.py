"""The package imports lightly and the CLI answers --help / --version."""

import subprocess
import sys

import taorl


def _run(*args):
    return subprocess.run([sys.executable, "-m", "taorl.cli", *args], capture_output=True, text=True)


def test_version_and_help():
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"taorl {taorl.__version__}"
    out = _run("--help")
    assert out.returncode == 0
    for cmd in ("train", "sft", "eval", "dashboard", "synth", "model"):
        assert cmd in out.stdout


def test_import_is_light():
    code = (
        "import sys, taorl, taorl.config, taorl.types, taorl.cli\n"
        "heavy = [m for m in ('torch', 'transformers', 'unsloth', 'vllm', 'streamlit') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import taorl pulled in: {out.stdout.strip()}"


def test_ok_requires_stdout_switch_counts_silent_calls():
    from taorl.types import ToolCall, Trajectory

    t = Trajectory(group=0, index=0, problem_id="p", problem="", answer="", prompt_ids=[],
                   tool_calls=[ToolCall(0, "x = 1", "no_output"), ToolCall(1, "print(1)", "ok"),
                               ToolCall(2, "1/0", "runtime_error")])
    assert (t.n_call, t.n_ok) == (3, 1)  # default: success needs stdout
    for c in t.tool_calls:
        c.no_output_ok = True
    assert t.n_ok == 2  # the silent clean run now counts; the error never does
