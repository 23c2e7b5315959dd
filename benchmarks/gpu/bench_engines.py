"""Rollout throughput: the vLLM engine vs the transformers (hf) engine, same model, same prompts.

    python benchmarks/gpu/bench_engines.py [--mode unsloth|standalone] [--tokens 512] [--hf-batch 64]

32 prompts x 8 rollouts = 256 sequences of up to --tokens new tokens each (code-block stop off, so
both engines do the same amount of work up to eos), temperature 1.0, on the benchmark model
(benchmarks/gpu/common.py). Each engine runs once to warm up, then --repeats times; the best run
counts. Prints tokens/s of each, their ratio (target: vLLM >= 20x hf), and appends the table to
RESULTS.md. Without CUDA or the GPU packages it exits with one line saying so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["unsloth", "standalone"], default="unsloth")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--hf-batch", type=int, default=64, help="sequences per hf engine batch")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="run the plumbing on a CPU: tiny model, hf engine on both sides (not a figure)")
    a = ap.parse_args(argv)

    import common

    if a.cpu_dry_run:
        common.set_dry_run()
        a.tokens, a.repeats = min(a.tokens, 16), 1
    common.require_gpu()
    cfg = common.bench_config([f"rollout.vllm.mode={a.mode}", f"rollout.gen_batch_size={a.hf_batch}"])
    from taorl.gpu import preflight

    preflight(cfg)  # unsloth first
    from taorl.data import load_train_problems
    from taorl.rollout.engine import SamplingParams
    from taorl.rollout.factory import build_engine
    from taorl.rollout.hf import HFEngine
    from taorl.rollout.loop import prompt_ids
    from taorl.train.policy import build_policy

    policy = build_policy(cfg)
    problems = load_train_problems(cfg.data)[: common.PROMPTS]
    prompts = [prompt_ids(policy.tokenizer, p.problem, cfg.data) for p in problems for _ in range(common.ROLLOUTS)]
    sp = SamplingParams(temperature=1.0, max_tokens=a.tokens, stop_at_code_block=False, seed=0)
    # (a dry run builds the hf engine here too: it checks the timing loop and the table, not vLLM)
    engines = {"vllm": build_engine(cfg, policy)}
    policy.train_mode(False)
    engines["hf"] = HFEngine(policy.model, policy.tokenizer, gen_batch_size=a.hf_batch)

    rows, tps = [], {}
    for name, eng in engines.items():
        eng.generate(prompts[: min(16, len(prompts))], sp)  # warm-up (compile, cache)
        best = None
        for _ in range(a.repeats):
            common.reset_peak()
            t0 = time.perf_counter()
            out = eng.generate(prompts, sp)
            dt = time.perf_counter() - t0
            n = sum(len(c.token_ids) for c in out)
            if best is None or n / dt > best[0]:
                best = (n / dt, dt, n, common.peak_gb())
        tps[name] = best[0]
        label = "hf in vLLM's place (dry run)" if common.DRY_RUN and name == "vllm" else f"{name} engine"
        rows.append([label, best[1], best[2], best[0], best[3]])
        print(f"{name:5s} {best[2]} tokens in {best[1]:.1f} s = {best[0]:.0f} tok/s", flush=True)
        if name == "vllm" and hasattr(eng, "release"):
            eng.release()
    ratio = tps["vllm"] / tps["hf"]
    rows.append(["ratio vLLM / hf (target >= 20)", "", "", ratio, ""])
    common.append_result(f"bench_engines (vllm mode {a.mode})",
                         ["engine", "wall s", "tokens", "tokens/s", "peak GB (torch)"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
