"""Shared settings of the GPU benchmarks: one model, one batch, one results file.

The model is a random-initialised Qwen2 shape (no download): hidden 1024, 24 layers, 16 heads,
2 KV heads (~0.3B parameters with the 49k SmolLM2 vocabulary), bf16. The batch is 32 prompts x 8
rollouts, turns of up to 512 tokens, LoRA r = 16 on every linear layer, temperature 1.0.

    bench_config(**overrides)  a taorl Config with these settings (dotted overrides on top)
    require_gpu()              exits with a clear message when CUDA or the GPU packages are missing
    append_result(bench, rows) appends a dated table to RESULTS.md (date, device, versions, and
                               whether torch.compile was on)
    peak_gb() / reset_peak()   CUDA peak allocated memory
    set_dry_run()              --cpu-dry-run: the same code path on a CPU with the tiny model, the hf
                               backend and engine, 2 prompts x 2 rollouts of 16 tokens; the table goes
                               to RESULTS_DRY (not RESULTS.md) marked as plumbing, not a GPU figure
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
RESULTS = HERE / "RESULTS.md"
RESULTS_DRY = Path(tempfile.gettempdir()) / "taorl-gpu-bench-dry-run.md"
DRY_RUN = False

PROMPTS, ROLLOUTS, TURN_TOKENS, LORA_R = 32, 8, 512, 16
SHAPE = {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 24, "num_attention_heads": 16,
         "num_key_value_heads": 2, "tie_word_embeddings": True, "seed": 0}


def base_overrides() -> list[str]:
    """The benchmark settings as dotted config overrides (over taorl's defaults)."""
    import json

    return [
        "model.name=tiny-qwen2", "model.dtype=bfloat16", "model.backend=unsloth",
        "model.gradient_checkpointing=true", f"model.init_overrides={json.dumps(SHAPE)}",
        f"model.lora.r={LORA_R}", f"model.lora.alpha={2 * LORA_R}", "model.max_seq_len=3072",
        "data.train=procedural", "data.n_problems=512",
        f"rollout.batch_prompts={PROMPTS}", f"rollout.group_size={ROLLOUTS}", "rollout.oversample=1.0",
        "rollout.temperature=1.0", f"rollout.max_turn_tokens={TURN_TOKENS}", "rollout.max_turns=3",
        "rollout.max_response_tokens=2048", "rollout.engine=vllm", "rollout.vllm.mode=unsloth",
        "rollout.vllm.gpu_memory_utilization=0.4", "rollout.vllm.max_num_seqs=256",
        f"train.mini_batch_prompts={PROMPTS}", "train.micro_batch_size=8", "train.lr=1e-5",
        "logging.progress=false",
    ]


# --cpu-dry-run: the tiny model on the CPU path (hf backend + hf engine), a batch of 2 x 2
DRY_OVERRIDES = ["model.name=tiny", "model.backend=hf", "model.dtype=float32", "model.init_overrides={}",
                 "model.gradient_checkpointing=false", "model.max_seq_len=512", "rollout.engine=hf",
                 "rollout.max_response_tokens=64", "rollout.obs_max_tokens=16", "tool.workers=2",
                 "algo.entropy_chunk=64"]


def set_dry_run() -> None:
    """Switch this process to the CPU dry run (see the module docstring)."""
    global DRY_RUN, PROMPTS, ROLLOUTS, TURN_TOKENS, LORA_R
    DRY_RUN = True
    PROMPTS, ROLLOUTS, TURN_TOKENS, LORA_R = 2, 2, 16, 4


def bench_config(extra: list[str] = ()):
    from taorl.config import load_config

    # base_overrides reads the sizes at call time, so a dry run's smaller batch is in it
    return load_config(None, [*base_overrides(), *(DRY_OVERRIDES if DRY_RUN else []), *extra])


def compile_note() -> str:
    """Whether torch.compile was on for this run (TORCH_COMPILE_DISABLE switches it off)."""
    off = os.environ.get("TORCH_COMPILE_DISABLE", "0") not in ("0", "", "false", "False")
    return "torch.compile: OFF (TORCH_COMPILE_DISABLE=1; plumbing speed, not tuned speed)" if off else \
        "torch.compile: on"


def require_gpu(packages: tuple[str, ...] = ("unsloth", "vllm")) -> None:
    """Exit (code 2) with one line when this machine cannot run the benchmark (no check in a dry run)."""
    if DRY_RUN:
        return
    import torch

    if not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA GPU (torch.cuda.is_available() is False); "
                 "run it on the GPU machine (docs/gpu.md)")
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        sys.exit(f"this benchmark needs {', '.join(missing)}: pip install 'taorl[gpu]' (docs/gpu.md)")


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gb() -> float:
    """CUDA peak allocated GB since reset_peak(); 0.0 on a CPU (dry run)."""
    import torch

    if not torch.cuda.is_available():
        return 0.0
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def device_line() -> str:
    from taorl.gpu import describe_device, version_report

    d = describe_device()
    v = ", ".join(f"{k} {x}" for k, x in version_report().items() if x)
    return f"{d.get('device')} ({d.get('memory_gb', '?')} GB, CUDA {d.get('cuda', '?')}); {v}"


def append_result(bench: str, header: list[str], rows: list[list], note: str = "") -> None:
    """Append one dated markdown table for `bench` to RESULTS.md (never rewrites earlier results);
    a dry run appends to RESULTS_DRY instead, marked as such."""
    model = "the tiny test model (CPU DRY RUN: plumbing only, not a GPU figure)" if DRY_RUN else \
        f"random Qwen2 shape {SHAPE}"
    lines = [f"\n### {bench} — {datetime.date.today().isoformat()} — {device_line()}\n",
             f"Settings: {PROMPTS} prompts x {ROLLOUTS} rollouts, {TURN_TOKENS}-token turns, LoRA r={LORA_R}, "
             f"{model}. {compile_note()}.\n" + (f"{note}\n" if note else ""),
             "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(f"{x:.3g}" if isinstance(x, float) else str(x) for x in r) + " |")
    target = RESULTS_DRY if DRY_RUN else RESULTS
    with target.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines[1:]))
    print(f"appended to {target}")
