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
