"""Shared settings of the GPU benchmarks: one model, one batch, one results file.

The model is a random-initialised Qwen2 shape (no download): hidden 1024, 24 layers, 16 heads,
2 KV heads (~0.3B parameters with the 49k SmolLM2 vocabulary), bf16. The batch is 32 prompts x 8
rollouts, turns of up to 512 tokens, LoRA r = 16 on every linear layer, temperature 1.0.

    bench_config(**overrides)  a taorl Config with these settings (dotted overrides on top)
    require_gpu()              exits with a clear message when CUDA or the GPU packages are missing
    append_result(bench, rows) appends a dated table to RESULTS.md (date, device, versions)
    peak_gb() / reset_peak()   CUDA peak allocated memory
"""

from __future__ import annotations

import datetime
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
RESULTS = HERE / "RESULTS.md"

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


def bench_config(extra: list[str] = ()):
    from taorl.config import load_config

    return load_config(None, [*base_overrides(), *extra])


def require_gpu(packages: tuple[str, ...] = ("unsloth", "vllm")) -> None:
    """Exit (code 2) with one line when this machine cannot run the benchmark."""
    import torch

    if not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA GPU (torch.cuda.is_available() is False); "
                 "run it on the GPU machine (docs/gpu.md)")
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        sys.exit(f"this benchmark needs {', '.join(missing)}: pip install 'taorl[gpu]' (docs/gpu.md)")


def reset_peak() -> None:
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()


def peak_gb() -> float:
    import torch

    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def device_line() -> str:
    from taorl.gpu import describe_device, version_report

    d = describe_device()
    v = ", ".join(f"{k} {x}" for k, x in version_report().items() if x)
    return f"{d.get('device')} ({d.get('memory_gb', '?')} GB, CUDA {d.get('cuda', '?')}); {v}"


def append_result(bench: str, header: list[str], rows: list[list], note: str = "") -> None:
    """Append one dated markdown table for `bench` to RESULTS.md (never rewrites earlier results)."""
    lines = [f"\n### {bench} — {datetime.date.today().isoformat()} — {device_line()}\n",
             f"Settings: {PROMPTS} prompts x {ROLLOUTS} rollouts, {TURN_TOKENS}-token turns, LoRA r={LORA_R}, "
             f"random Qwen2 shape {SHAPE}.\n" + (f"{note}\n" if note else ""),
             "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(f"{x:.3g}" if isinstance(x, float) else str(x) for x in r) + " |")
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    print(f"appended to {RESULTS}")
