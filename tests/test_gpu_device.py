"""GPU end-to-end checks (marked `gpu`; skipped without CUDA or without unsloth/vllm).

vLLM's sleep mode allows one engine per process ("CuMem allocator can only be used for one instance
per process"), so every training run here is its own process (`taorl train`), and this test process
only reads the run directories. scripts/gpu_check.sh makes the runs as separate time-limited stages
and points TAORL_GPU_RUNS / TAORL_GPU_PRIMED at them; without those variables the fixtures make the
runs themselves (same commands).

The smoke model is primed first (scripts/gpu_prime.py) on the problems it then trains on, so its
groups have mixed outcomes and every run really updates, syncs the weights to vLLM and logs.
What a user relies on, per engine mode (vLLM inside Unsloth + LoRA, standalone + LoRA, standalone +
full fine-tuning):

- the run directory is complete: manifest finished at step 2 on a CUDA device with the versions
  recorded, metrics/groups/trajectories for steps 0..2, a checkpoint;
- rollouts were trained (train/trained_rollouts > 0 in some step), and the vLLM-vs-trainer
  log-prob mismatch is logged every step and is small where rollouts were trained (same
  temperature, no truncation: both are log_softmax(z/T)[y] up to bf16 kernels);
- resume: the Unsloth-mode run made 2 steps, then `taorl train --resume` took it to 3 in a new
  process: finished, step 2 present once;
- vLLM's completions end exactly where the contract says (a "stop" turn's ids decode to text whose
  first complete code block ends in the last token), in a process of its own;
- `taorl eval` on a GPU evaluates with the vLLM engine.

Run on the lent machine: `bash scripts/gpu_check.sh` (docs/gpu.md), or alone
`python -m pytest -q -m gpu tests/test_gpu_device.py`.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
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
    "unsloth": ["rollout.vllm.mode=unsloth"],
    "lora": ["rollout.vllm.mode=standalone"],
    "full": ["rollout.vllm.mode=standalone", "model.lora.enabled=false", "train.lr=1e-5"],
}
TAORL = [sys.executable, "-c", "import sys; from taorl.cli import main; sys.exit(main(sys.argv[1:]))"]
LIMIT_S = 300


# scripts/gpu_check.sh made the runs in its own time-limited stages: only read them (a stage that
# failed fails its test here, instead of being tried again past the stage's limit)
FROM_CHECK = bool(os.environ.get("TAORL_GPU_RUNS"))


def _run(cmd, log: Path, *, check_makes_it: bool = True):
    """One command in its own process; its output goes to `log` and is shown when it fails."""
    if check_makes_it:
        assert not FROM_CHECK, f"not made by scripts/gpu_check.sh (see its log): {' '.join(map(str, cmd))}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, timeout=LIMIT_S, check=False).returncode
    assert rc == 0, f"{' '.join(map(str, cmd))} failed (rc {rc}):\n{log.read_text()[-4000:]}"


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    """(primed dir, runs dir): from scripts/gpu_check.sh when it set them, else made here."""
    primed = Path(os.environ.get("TAORL_GPU_PRIMED") or tmp_path_factory.mktemp("primed"))
    runs = Path(os.environ.get("TAORL_GPU_RUNS") or tmp_path_factory.mktemp("runs"))
    if not (primed / "weights" / "config.json").is_file():
        _run([sys.executable, "scripts/gpu_prime.py", "configs/gpu_smoke.yaml", str(primed)], primed / "prime.log")
    return primed, runs


def _train_overrides(primed: Path) -> list[str]:
    """What scripts/gpu_prime.py prints (the paths of this machine)."""
    return [f"train.init_from={primed / 'weights'}", f"data.train={primed / 'problems.jsonl'}",
            "logging.progress=false"]


@pytest.fixture(scope="session")
def run_dirs(work):
    """The three engine-mode runs (the Unsloth one: 2 steps, then resumed to 3), each in its own process."""
    primed, runs = work
    out = {}
    for mode, extra in MODES.items():
        run = runs / mode
        if not (run / "manifest.json").is_file():
            steps = ["train.steps=2"] if mode == "unsloth" else []
            _run([*TAORL, "train", "configs/gpu_smoke.yaml", *_train_overrides(primed), *extra, *steps,
                  "--run-dir", str(run)], runs / f"{mode}.log")
            if mode == "unsloth":
                _run([*TAORL, "train", "--resume", str(run), "train.steps=3", "logging.progress=false"],
                     runs / "resume.log")
        out[mode] = run
    return out


@pytest.mark.parametrize("mode", list(MODES))
def test_each_engine_mode_trains_three_steps(run_dirs, mode):
    from taorl.store import open_run
    from taorl.train.checkpoint import latest_checkpoint

    run_dir = run_dirs[mode]
    run = open_run(run_dir)
    assert run.status == "finished" and run.last_step == 2
    m = run.metrics()
    assert m["step"].to_list() == [0, 1, 2]  # after the resume too: step 2 once
    trained = m["train/trained_rollouts"].to_list()
    assert max(trained) > 0, "no rollout was trained: the smoke run did not exercise the update"
    for col in ("sampling/logp_diff_mean", "sampling/logp_diff_max", "sampling/seq_log_ratio_abs_mean",
                "sampling/seq_ratio_max", "perf/gen_s", "perf/train_s"):
        assert col in m.columns and m[col].null_count() == 0, col
    diffs = [d for d, n in zip(m["sampling/logp_diff_mean"].to_list(), trained) if n > 0]
    assert all(not math.isnan(d) for d in diffs)
    # same temperature, no truncation: engine and trainer log-probs agree to bf16 noise, also after
    # the weight syncs of steps 0 and 1 (a missed sync shows up here as a large difference)
    assert max(diffs) < 0.05, diffs
    for table in ("groups", "trajectories"):
        assert run.steps(table) == [0, 1, 2], table
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["last_step"] == 2
    extra = manifest["extra"]
    assert extra["device"] != "cpu" and extra["versions"].get("vllm"), extra
    assert extra["tokens"]["pad_token_id"] is not None and extra["tokens"]["eos_token_id"] is not None
    assert latest_checkpoint(run_dir) is not None, "no checkpoint written"


FENCE_SNIPPET = r"""
import json, sys
from taorl.config import load_config
from taorl.gpu import preflight
cfg = load_config("configs/gpu_smoke.yaml", sys.argv[2:] + ["rollout.vllm.mode=standalone"])
preflight(cfg)
from taorl.rollout.engine import SamplingParams
from taorl.rollout.factory import build_engine
from taorl.train.policy import build_policy
policy = build_policy(cfg, model_name=cfg.train.init_from)
engine = build_engine(cfg, policy)
tok = policy.tokenizer
prompt = tok.encode("```python\nprint(1)\n")  # the closing fence is a likely continuation
out = engine.generate([prompt] * 64, SamplingParams(temperature=1.0, max_tokens=64, seed=1))
json.dump({"type": type(engine).__name__,
           "out": [{"ids": c.token_ids, "lp": c.logprobs, "full": c.full_logprobs, "finish": c.finish} for c in out]},
          open(sys.argv[1], "w"))
"""


def test_vllm_turns_end_at_the_closing_fence(work, tmp_path):
    from transformers import AutoTokenizer

    from taorl.tools.parse import complete_block_end

    primed, _ = work
    res = tmp_path / "fence.json"
    _run([sys.executable, "-c", FENCE_SNIPPET, str(res), *_train_overrides(primed)], tmp_path / "fence.log",
         check_makes_it=False)
    data = json.loads(res.read_text())
    assert data["type"] == "VLLMEngine"
    tok = AutoTokenizer.from_pretrained(str(primed / "weights"))
    for c in data["out"]:
        assert len(c["ids"]) == len(c["lp"]) == len(c["full"])
        text = tok.decode(c["ids"])
        if c["finish"] == "stop":
            assert complete_block_end(text) is not None
            assert complete_block_end(tok.decode(c["ids"][:-1])) is None
        else:
            assert complete_block_end(text) is None
    assert all(lp <= 0 for c in data["out"] for lp in c["lp"])


def test_eval_on_a_gpu_uses_vllm(work):
    primed, runs = work
    out = runs / "eval"
    if not (out / "results.json").is_file():
        _run([*TAORL, "eval", str(primed / "weights"), "--benchmarks", "gsm8k", "--limit", "4", "--k", "2",
              "--out", str(out), "model.max_seq_len=1024", "rollout.vllm.gpu_memory_utilization=0.10",
              "eval.max_response_tokens=256", "logging.progress=false"], runs / "eval.log")
    results = json.loads((out / "results.json").read_text())
    assert "gsm8k" in results["results"]
    # build_eval_engine says which engine it built (scripts/gpu_check.sh copies its eval log here)
    assert "evaluating with the vllm engine on cuda" in (runs / "eval.log").read_text()
