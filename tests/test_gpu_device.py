"""GPU end-to-end checks (marked `gpu`; skipped without CUDA or without unsloth/vllm).

Each runs configs/gpu_smoke.yaml (random-init Qwen2 shape, no download) for 3 TAO-RL steps with one
engine mode and checks what a user relies on:

- the run directory is complete: manifest finished at step 2, metrics/groups/trajectories/tokens
  for steps 0..2, a checkpoint;
- the vLLM-vs-trainer log-prob mismatch is reported every step (sampling/logp_diff_mean/max) and is
  small (same temperature, no truncation: both are log_softmax(z/T)[y] up to bf16 kernels);
- vLLM's completions end exactly where the contract says (a "stop" turn's ids decode to text whose
  first complete code block ends in the last token);
- resume: 2 steps, then --resume to 3, gives a finished run whose step 2 exists once.

Run on the lent machine (docs/gpu.md): `python -m pytest -q -m gpu tests/test_gpu_device.py`.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif(importlib.util.find_spec("unsloth") is None or importlib.util.find_spec("vllm") is None,
                       reason="needs the GPU extra (unsloth, vllm)"),
]
MODES = {
    "unsloth-shared": ["rollout.vllm.mode=unsloth"],
    "standalone-lora": ["rollout.vllm.mode=standalone"],
    "standalone-full": ["rollout.vllm.mode=standalone", "model.lora.enabled=false", "train.lr=1e-5"],
}


def _cfg(overrides, steps=3):
    from taorl.config import load_config
    from taorl.gpu import preflight

    cfg = load_config(ROOT / "configs" / "gpu_smoke.yaml", [*overrides, f"train.steps={steps}",
                                                              "logging.progress=false"])
    preflight(cfg)
    return cfg


def _run(cfg, run_dir, resume=False):
    from taorl.train.trainer import Trainer

    t = Trainer(cfg, run_dir, resume=resume)
    t.run()
    return t


@pytest.mark.parametrize("mode", list(MODES))
def test_three_steps_complete_run_dir_and_logprob_mismatch(tmp_path, mode):
    from taorl.store import open_run

    cfg = _cfg(MODES[mode])
    trainer = _run(cfg, tmp_path / "run")
    assert type(trainer.engine).__name__ == "VLLMEngine"
    run = open_run(tmp_path / "run")
    assert run.status == "finished" and run.last_step == 2
    m = run.metrics()
    assert m["step"].to_list() == [0, 1, 2]
    for col in ("sampling/logp_diff_mean", "sampling/logp_diff_max", "perf/gen_s", "perf/train_s"):
        assert m[col].null_count() == 0, col
    # same temperature, no truncation: the engine's and the trainer's log-probs agree to bf16 noise
    assert float(m["sampling/logp_diff_mean"].max()) < 0.05
    for table in ("groups", "trajectories"):
        assert run.steps(table) == [0, 1, 2], table
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["last_step"] == 2
    from taorl.train.checkpoint import latest_checkpoint

    assert latest_checkpoint(tmp_path / "run") is not None, "no checkpoint written"
    trainer.engine.release()


def test_vllm_turns_end_at_the_closing_fence():
    from taorl.rollout.engine import SamplingParams
    from taorl.rollout.factory import build_engine
    from taorl.tools.parse import complete_block_end
    from taorl.train.policy import build_policy

    cfg = _cfg(MODES["standalone-lora"])
    policy = build_policy(cfg)
    engine = build_engine(cfg, policy)
    tok = policy.tokenizer
    prompt = tok.encode("```python\nprint(1)\n")  # the closing fence is a likely continuation
    out = engine.generate([prompt] * 64, SamplingParams(temperature=1.0, max_tokens=64, seed=1))
    for c in out:
        assert len(c.token_ids) == len(c.logprobs) == len(c.full_logprobs)
        text = tok.decode(c.token_ids)
        if c.finish == "stop":
            assert complete_block_end(text) is not None
            assert complete_block_end(tok.decode(c.token_ids[:-1])) is None
        else:
            assert complete_block_end(text) is None
    assert all(lp <= 0 for c in out for lp in c.logprobs)


def test_resume_after_two_steps(tmp_path):
    from taorl.store import open_run

    _run(_cfg(MODES["unsloth-shared"], steps=2), tmp_path / "run")
    assert open_run(tmp_path / "run").last_step == 1
    _run(_cfg(MODES["unsloth-shared"], steps=3), tmp_path / "run", resume=True)
    run = open_run(tmp_path / "run")
    assert run.status == "finished" and run.last_step == 2
    assert run.metrics()["step"].to_list() == [0, 1, 2]
