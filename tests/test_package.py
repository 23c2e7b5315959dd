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


# The integrations' plain-torch modules: every module of taorl.integrations.common, the TRL and verl
# packages (their trainers load their stack lazily) and the pieces of each that do not need it.
STACK_FREE = ["taorl.integrations.trl", "taorl.integrations.trl.settings", "taorl.integrations.trl.step",
              "taorl.integrations.trl.record", "taorl.integrations.trl.rollout", "taorl.integrations.trl.tool",
              "taorl.integrations.verl", "taorl.integrations.verl.advantage", "taorl.integrations.verl.dump",
              "taorl.integrations.verl.fields", "taorl.integrations.verl.settings",
              "taorl.integrations.verl.loss_settings", "taorl.integrations.verl.registry",
              "taorl.integrations.verl.turns"]


def test_integrations_common_and_trl_import_neither_verl_nor_trl():
    """Importing the shared steps (taorl.integrations.common), the TRL package and the verl-free
    pieces never imports verl or TRL, nor tries to: a finder records every attempt, so the check means
    something in .venv, where verl is absent and an attempt caught by an `except ImportError` would
    leave sys.modules clean."""
    code = (
        "import importlib, pkgutil, sys\n"
        "tried = []\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('verl', 'trl'):\n"
        "            tried.append(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Spy())\n"
        "import taorl.integrations.common as common\n"
        "mods = ['taorl.integrations.common'] + [f'taorl.integrations.common.{m.name}' for m in pkgutil.iter_modules(common.__path__)]\n"
        f"mods += {STACK_FREE!r}\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('verl', 'trl'))\n"
        "print('COMMON', sorted(m for m in mods if m.startswith('taorl.integrations.common.')))\n"
        "print('TRIED', sorted(set(tried)), 'LOADED', loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "TRIED [] LOADED []" in out.stdout, out.stdout
    # the three shared modules are really there (a renamed or emptied package fails here, not silently)
    assert ("COMMON ['taorl.integrations.common.advantage', 'taorl.integrations.common.layout', "
            "'taorl.integrations.common.step_tables']") in out.stdout, out.stdout


def test_ok_requires_stdout_switch_counts_silent_calls():
    from taorl.types import ToolCall, Trajectory

    t = Trajectory(group=0, index=0, problem_id="p", problem="", answer="", prompt_ids=[],
                   tool_calls=[ToolCall(0, "x = 1", "no_output"), ToolCall(1, "print(1)", "ok"),
                               ToolCall(2, "1/0", "runtime_error")])
    assert (t.n_call, t.n_ok) == (3, 1)  # default: success needs stdout
    for c in t.tool_calls:
        c.no_output_ok = True
    assert t.n_ok == 2  # the silent clean run now counts; the error never does
