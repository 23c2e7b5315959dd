"""The GPU path on a CPU machine: lazy imports, interfaces, configs, clear errors, and the pure parts
of the vLLM engine (LoRA merge for weight sync, streaming adapter) on real models.

What needs a GPU is in tests/test_gpu_device.py (marked `gpu`, skipped without CUDA).
"""

import inspect
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from taorl.errors import UserError

ROOT = Path(__file__).parents[1]
GPU_CONFIGS = ["gpu_smoke", "qwen2.5-1.5b", "qwen3-4b-base", "qwen2.5-7b"]
PAPER_CONFIGS = GPU_CONFIGS[1:]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error path")


# ------------------------------------------------------------------------------------ lazy imports
def test_cpu_imports_never_load_the_gpu_stack():
    code = (
        "import sys, taorl\n"
        "assert 'torch' not in sys.modules, 'import taorl pulled in torch'\n"
        "import taorl.gpu, taorl.rollout.vllm, taorl.rollout.factory, taorl.rollout.loop, taorl.rollout.hf\n"
        "import taorl.train.trainer, taorl.train.policy, taorl.train.policy_unsloth, taorl.config\n"
        "bad = [m for m in ('vllm', 'unsloth', 'unsloth_zoo', 'trl') if m in sys.modules]\n"
        "print('LOADED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout


# -------------------------------------------------------------------------------------- interfaces
def _params(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


def test_vllm_engine_has_the_engine_interface():
    from taorl.rollout.engine import Engine
    from taorl.rollout.vllm import BatchStream, StreamingEngine, VLLMEngine

    for name in ("generate", "sync"):
        assert _params(getattr(VLLMEngine, name)) == _params(getattr(Engine, name)), name
    for name in ("submit", "poll", "pending"):
        assert _params(getattr(VLLMEngine, name)) == _params(getattr(StreamingEngine, name)), name
        assert _params(getattr(BatchStream, name)) == _params(getattr(StreamingEngine, name)), name
    # the policy backend implements every method of the Policy interface
    from taorl.train.policy import Policy
    from taorl.train.policy_unsloth import UnslothPolicy

    for name, fn in inspect.getmembers(Policy, inspect.isfunction):
        assert _params(getattr(UnslothPolicy, name)) == _params(fn), name


# ----------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_configs_load_and_say_how_to_run(name):
    from taorl.config import load_config

    path = ROOT / "configs" / f"{name}.yaml"
    cfg = load_config(path)
    head = path.read_text().splitlines()
    assert head[0] == f"# taorl train configs/{name}.yaml"
    assert any("ESTIMATE" in line for line in head[:20]), "expected memory must be marked as an estimate"
    assert cfg.model.backend == "unsloth" and cfg.rollout.engine == "vllm"


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_carry_the_spec_hyper_parameters(name):
    from taorl.config import load_config

    c = load_config(ROOT / "configs" / f"{name}.yaml")
    got = (c.train.lr, c.train.grad_clip, c.train.ppo_epochs, c.rollout.batch_prompts, c.rollout.group_size,
           c.train.mini_batch_prompts, c.rollout.temperature, c.rollout.max_response_tokens, c.rollout.max_turns,
           c.eval.n, c.eval.temperature, c.eval.top_p, c.eval.max_turns)
    assert got == (1e-6, 1.0, 1, 256, 16, 128, 1.0, 4000, 5, 16, 1.0, 0.7, 10)
    # the sampling log-probs equal log_softmax(z/T) only without truncation during training
    assert c.rollout.top_p == 1.0 and c.rollout.top_k == 0


def test_smoke_config_is_a_random_qwen2_without_download():
    from taorl.config import load_config

    c = load_config(ROOT / "configs" / "gpu_smoke.yaml")
    assert c.model.name == "tiny-qwen2" and c.model.init_overrides and c.train.steps == 3


# ------------------------------------------------------------------------------- clear user errors
@no_cuda
@pytest.mark.parametrize("override,key", [("model.backend=unsloth", "model.backend=unsloth"),
                                          ("rollout.engine=vllm", "rollout.engine=vllm")])
def test_gpu_choices_without_cuda_are_user_errors(override, key):
    from taorl.config import load_config
    from taorl.gpu import preflight

    cfg = load_config(ROOT / "configs" / "tiny.yaml", [override])
    with pytest.raises(UserError, match=f"{key}: needs a CUDA GPU"):
        preflight(cfg)


@no_cuda
def test_build_policy_and_engine_without_cuda_are_user_errors():
    from taorl.config import load_config
    from taorl.rollout.factory import build_engine
    from taorl.train.policy import build_policy

    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["model.backend=unsloth"])
    with pytest.raises(UserError, match="model.backend=unsloth: needs a CUDA GPU"):
        build_policy(cfg)
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["rollout.engine=vllm"])
    with pytest.raises(UserError, match="rollout.engine=vllm: needs a CUDA GPU"):
        build_engine(cfg, policy=None)


def test_cpu_path_preflight_is_silent():
    from taorl.config import load_config
    from taorl.gpu import preflight

    assert preflight(load_config(ROOT / "configs" / "tiny.yaml")) is None


def test_missing_package_and_versions():
    from taorl import gpu

    with pytest.raises(UserError, match="'surely_not_installed_pkg' is not installed; install the GPU extra"):
        gpu.require_package("surely_not_installed_pkg", "rollout.engine=vllm")
    with pytest.raises(UserError, match=r"vllm 0\.8\.5 is too old for taorl \(need >= 0\.10\.2"):
        gpu.check_version("vllm", "0.8.5")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert gpu.check_version("vllm", "0.26.0+cu130") is None  # the tested release: silent
        assert "tested with vllm 0.26.0" in gpu.check_version("vllm", "0.27.1")
    assert len(w) == 1
    assert gpu._vtuple("2026.10.9") > gpu._vtuple("2025.3.0")


def test_unsloth_mode_needs_the_unsloth_backend():
    from taorl.config import load_config
    from taorl.gpu import preflight

    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["rollout.engine=vllm", "rollout.vllm.mode=unsloth"])
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="needs a CUDA GPU"):
            preflight(cfg)
    else:  # pragma: no cover - GPU machines
        with pytest.raises(UserError, match="needs model.backend=unsloth"):
            preflight(cfg)


def test_small_helpers():
    from dataclasses import dataclass

    from taorl.rollout.vllm import finish_of, request_cap, request_seed, token_logprob

    @dataclass
    class Logprob:  # the shape of vllm.logprobs.Logprob
        logprob: float

    assert token_logprob({5: Logprob(-0.25), 7: Logprob(-3.0)}, 5) == -0.25
    assert token_logprob({5: -1.5}, 5) == -1.5
    assert finish_of("length") == "length" and finish_of("stop") == "eos"
    with pytest.raises(RuntimeError, match="abort"):
        finish_of("abort")
    assert request_cap(100, 50, 4096) == 50 and request_cap(4090, 50, 4096) == 6
    assert request_cap(5000, 50, 4096) == 0 and request_cap(10, 7, None) == 7
    seeds = {request_seed(s, i) for s in range(3) for i in range(256)}
    assert len(seeds) == 3 * 256 and all(0 <= x < 2**31 - 1 for x in seeds)


# ------------------------------------------------------------------------------- weight transfer
def test_merged_lora_weights_equal_peft_merge(tiny_model):
    import copy

    from peft import LoraConfig, get_peft_model

    from taorl.rollout.vllm import full_weights, merged_lora_weights

    base = copy.deepcopy(tiny_model)
    plain_keys = set(base.state_dict())
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # B starts at zero: make the adapter non-trivial
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged = dict(merged_lora_weights(model))
    # names are plain transformers names, one per adapted layer (2 layers x 3 modules)
    assert len(merged) == 6 and set(merged) <= plain_keys
    ref = copy.deepcopy(model).merge_and_unload().state_dict()
    for k, v in merged.items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=1e-6)
        assert not torch.equal(v, before["base_model.model." + k.replace(".weight", ".base_layer.weight")])
    # the training weights were not touched
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # full fine-tuning sends every tensor once: the tiny model ties lm_head to the embeddings
    assert tiny_model.config.tie_word_embeddings
    names = {k for k, _ in full_weights(tiny_model)}
    assert names == {k for k in plain_keys if "rotary_emb" not in k} - {"lm_head.weight"}


# ------------------------------------------------------------------------- streaming on the hf engine
def test_batch_stream_equals_one_generate_call(tiny_model, tiny_tokenizer):
    from taorl.rollout.engine import SamplingParams
    from taorl.rollout.hf import HFEngine
    from taorl.rollout.vllm import BatchStream, StreamingEngine

    tok = tiny_tokenizer
    prompts = [tok.encode(t) for t in ("Compute 2+2.", "What is 7*6? Use Python.", "Hello")]
    sp = SamplingParams(temperature=1.0, max_tokens=12, stop_at_code_block=True, seed=5)
    want = HFEngine(tiny_model, tok, gen_batch_size=8).generate(prompts, sp, max_tokens=[12, 4, 9])
    stream = BatchStream(HFEngine(tiny_model, tok, gen_batch_size=8))
    assert isinstance(stream, StreamingEngine)
    for key, (p, cap) in zip("abc", zip(prompts, [12, 4, 9])):
        stream.submit(key, p, sp, max_tokens=cap)
    assert stream.pending() == 3
    got = dict(stream.poll())
    assert stream.pending() == 0 and stream.poll() == []
    for key, w in zip("abc", want):
        assert got[key].token_ids == w.token_ids and got[key].logprobs == w.logprobs
    assert len(got["b"].token_ids) <= 4


# ------------------------------------------------------------------------------------ benchmarks
BENCHES = ["bench_step_vs_trl", "bench_engines", "bench_overhead"]


@pytest.mark.parametrize("name", BENCHES)
def test_gpu_benchmarks_parse_and_refuse_without_cuda(name):
    script = ROOT / "benchmarks" / "gpu" / f"{name}.py"
    out = subprocess.run([sys.executable, str(script), "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr
    if torch.cuda.is_available():  # pragma: no cover - GPU machines run the real thing
        return
    out = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "this benchmark needs a CUDA GPU" in out.stderr
    assert "Traceback" not in out.stderr


def test_results_file_says_not_run_rather_than_inventing_numbers():
    text = (ROOT / "benchmarks" / "gpu" / "RESULTS.md").read_text()
    for name in BENCHES:
        row = next(line for line in text.splitlines() if line.startswith(f"| {name}.py"))
        # either it says so, or a table the script appended backs the row (with the compile state)
        if "not run yet: no device in this session" not in row:
            section = text[text.index(f"### {name}"):]
            assert "torch.compile:" in section.splitlines()[2], f"{name}: a result without its run's table"


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHES)
def test_gpu_benchmarks_cpu_dry_run(name, tmp_path):
    """--cpu-dry-run: the benchmark's whole path on the tiny model (hf backend and engine), its table
    written to the dry-run file, marked as such, RESULTS.md untouched."""
    results = ROOT / "benchmarks" / "gpu" / "RESULTS.md"
    before = results.read_text()
    script = ROOT / "benchmarks" / "gpu" / f"{name}.py"
    args = ["--steps", "2"] if name == "bench_step_vs_trl" else []
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(script), "--cpu-dry-run", *args], check=False, capture_output=True,
                         text=True, timeout=600, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    dry = (tmp_path / "taorl-gpu-bench-dry-run.md").read_text()
    assert f"### {name}" in dry and "CPU DRY RUN" in dry and "torch.compile:" in dry
    assert results.read_text() == before


def test_gpu_check_script_is_valid_and_lists_every_stage(tmp_path):
    script = ROOT / "scripts" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    out = subprocess.run(["bash", str(script)], check=False, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DRY_RUN": "1", "OUT": str(tmp_path / "out"),
                              "WORK": str(tmp_path / "work"), "TAORL_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr
    stages = [line.split(" ")[0] for line in out.stdout.splitlines() if "(limit " in line]
    assert stages == ["prime", "unsloth", "resume", "lora", "full", "eval", "fence", "engines", "overhead",
                      "steptrl"]
    limits = [int(line.split("(limit ")[1].split("s)")[0]) for line in out.stdout.splitlines() if "(limit " in line]
    assert all(limit <= 150 for limit in limits)
    # each engine mode is its own `taorl train` process, on the primed model
    train = [line for line in out.stdout.splitlines() if ": taorl train" in line]
    assert len(train) == 4 and sum("train.init_from=" in line for line in train) == 3
