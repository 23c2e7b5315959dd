"""`taorl train CONFIG --dry-run`: a plan for every shipped config on a CPU machine without a hub, the
parameter counts and memory terms checked by hand, nothing loaded, the checks that would stop a GPU run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taorl.config import load_config
from taorl.data import resolve_source
from taorl.train.plan import KNOWN_CONFIGS, GiB, _build_config, count_params, make_plan, memory_estimate

ROOT = Path(__file__).parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
GPU_CONFIGS = {"gpu_smoke.yaml", "qwen2.5-1.5b.yaml", "qwen2.5-7b.yaml", "qwen3-4b-base.yaml"}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_dry_run_of_every_shipped_config(path, monkeypatch):
    import transformers

    def no_weights(*a, **k):
        raise AssertionError("a dry run loaded weights")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    plan = make_plan(load_config(path), path.name)
    text = plan.text()
    for part in ("steps ", "per step ", "tokens ", "memory ", "peak = W + S + C", "checks that would stop the run"):
        assert part in text, (path.name, part)
    by_topic = {c.what.split(":")[0]: c for c in plan.checks}
    assert by_topic["model"].ok, text  # every shipped model resolves without a download of weights
    assert by_topic["data"].ok, text  # and every shipped config names a training set that exists
    assert plan.peak_bytes and plan.peak_bytes > 0
    if path.name in GPU_CONFIGS:
        assert "peak GPU memory (ESTIMATE" in text and "CUDA" in by_topic and "package vllm" in text
        header = path.read_text().split("\nmodel:")[0]
        assert "Sized for one" in header and "--dry-run" in header
        # the estimate pasted into the header is the one the dry run prints for the GPU it names (the
        # prompt lengths come from the data: only comparable where the set is read locally)
        cfg = load_config(path)
        if resolve_source(cfg.data.train).kind != "hub":
            plan = make_plan(cfg, path.name, gpu_gib=140 if "--gpu-gib 140" in header else 80)
            assert f"~{plan.peak_bytes / GiB:.1f} GiB" in header, (path.name, plan.peak_bytes / GiB)
    else:
        assert plan.ok, text


def test_parameter_counts_by_hand():
    # Qwen2.5-1.5B: embeddings 151936 x 1536 (tied) + 28 layers of q/k/v (with bias), o, gate/up/down, 2 norms
    h, inter, kv = 1536, 8960, 2 * 128
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * inter + 2 * h
    expected = 151936 * h + 28 * layer + h
    total, _ = count_params(_build_config(KNOWN_CONFIGS["Qwen/Qwen2.5-1.5B"]), load_config(None).model.lora)
    assert total == expected == 1_543_714_304
    # LoRA r=4 on the tiny model (h 64, I 128, 4 heads, 2 KV heads of 16): per layer
    # r x [(64+64) q + (64+32) k + (64+32) v + (64+64) o + (64+128) gate + (64+128) up + (128+64) down] = 4 x 1024
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    from taorl.train.plan import _tiny_config

    _, lora_n = count_params(_tiny_config(cfg.model), cfg.model.lora)
    assert lora_n == 2 * 4 * 1024


def test_memory_terms_by_hand():
    cfg = load_config(ROOT / "configs" / "qwen2.5-1.5b.yaml")
    config = _build_config(KNOWN_CONFIGS["Qwen/Qwen2.5-1.5B"])
    P = 1_543_714_304
    peak, lines = memory_estimate(cfg, config, P, 0, 5120, 80 * GiB)
    static = P * 4 + 2 * P * 4 + 1 * GiB  # fp32 weights, two fp32 AdamW moments, CUDA slack
    acts = 28 * 8 * 5120 * 1536 * 4 + 8 * 5120 * (8 * 1536 + 3 * 8960) * 4  # checkpointed + one layer
    train = P * 4 + acts + 256 * 151936 * 4 * 3  # grads + activations + one logits chunk
    rollout = 0.30 * 80 * GiB  # vLLM's share; asleep while training
    assert peak == pytest.approx(static + max(train, rollout))
    assert any("gpu_memory_utilization 0.3 x 80.0 GiB = 24.0 GiB" in x for x in lines)


def test_dry_run_cli_exit_status_and_nothing_written(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def run(*a):
        return subprocess.run([sys.executable, "-m", "taorl.cli", "train", *a], capture_output=True, text=True,
                              timeout=180, cwd=tmp_path, env=env, check=False)

    out = run(str(ROOT / "configs" / "qwen2.5-1.5b.yaml"), "--dry-run", "train.steps=7")
    assert out.returncode == 1, out.stderr[-2000:]
    assert "steps     7 steps" in out.stdout and "[STOP] hub: Qwen/Qwen2.5-1.5B to download" in out.stdout
    assert "simplelr_math_35" in out.stdout and "dry run: the run would stop" in out.stdout
    out = run(str(ROOT / "configs" / "tiny.yaml"), "--dry-run")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "the run would start" in out.stdout and not (tmp_path / "runs").exists()
