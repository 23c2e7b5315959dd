"""One full RL step of taorl vs TRL's GRPOTrainer with vLLM colocated, on the same settings.

    python benchmarks/gpu/bench_step_vs_trl.py [--steps 3]          # both sides, then the table
    python benchmarks/gpu/bench_step_vs_trl.py --side taorl|trl     # one side (used internally)

Same model (random Qwen2 shape, bf16), same batch (32 prompts x 8 rollouts, up to 512 new tokens a
turn), LoRA r = 16, temperature 1.0, one optimizer step per batch, vLLM colocated on the same GPU.
Each side runs in its own process (Unsloth patches TRL when imported first, so TRL must run without
it): taorl = Unsloth training + vLLM inside Unsloth + the sandbox + math-verify reward + TAO-RL
update; TRL = GRPOTrainer(use_vllm=True, vllm_mode="colocate") with a peft LoRA and the same 0/1
answer reward. TRL is single-turn (no tool); taorl's turns stop at code blocks and run them, so
the table also shows tokens generated and tokens/s. The first step (compilation, warm-up) is left
out; the mean of the others is reported: step time split by phase, tokens/s, peak memory. taorl
runs with criterion 2 off, so it trains every group as TRL does (the random model is never right).
Targets: taorl step <= TRL step / 2 at equal work, peak memory <= 1.05 x TRL.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def side_taorl(steps: int) -> dict:
    import common

    # criterion 2 off: a random model's groups are all wrong and would all be dropped, leaving taorl
    # no update to do; TRL trains every group (zero advantages included), so equal work means this
    cfg = common.bench_config([f"train.steps={steps}", "rollout.max_turns=1", "algo.filter.group.enabled=false"])
    from taorl.gpu import preflight

    preflight(cfg)
    import tempfile

    from taorl.train.trainer import Trainer

    tr = Trainer(cfg, Path(tempfile.mkdtemp(prefix="taorl-bench-")) / "run")
    rows = []
    for step in range(steps):
        common.reset_peak()
        m = tr.train_step(step)
        # (the trainer releases the engine itself after the rollouts)
        rows.append({"step_s": m["perf/step_s"], "gen_s": m["perf/gen_s"], "tool_s": m["perf/tool_s"],
                     "reward_s": m["perf/reward_s"], "train_s": m["perf/train_s"], "log_s": m["perf/log_s"],
                     "tokens": m["perf/tokens_per_s"] * m["perf/gen_s"], "peak_gb": common.peak_gb()})
    return {"steps": rows}


def side_trl(steps: int) -> dict:
    import common
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from taorl.data import load_train_problems
    from taorl.gpu import model_dir
    from taorl.rewards import grade

    cfg = common.bench_config()
    path = model_dir(cfg.model)
    problems = load_train_problems(cfg.data)[: common.PROMPTS * steps]
    ds = Dataset.from_list([{"prompt": [{"role": "system", "content": cfg.data.system_prompt},
                                        {"role": "user", "content": p.problem}], "answer": p.answer}
                            for p in problems])

    def reward(completions, answer, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [float(grade(t, a).reward) for t, a in zip(texts, answer)]

    n = common.PROMPTS * common.ROLLOUTS
    args = GRPOConfig(output_dir=str(Path("/tmp") / "taorl-trl-bench"), max_steps=steps, learning_rate=1e-5,
                      per_device_train_batch_size=8, gradient_accumulation_steps=n // 8,
                      num_generations=common.ROLLOUTS, generation_batch_size=n,
                      max_completion_length=common.TURN_TOKENS, temperature=1.0, beta=0.0, num_iterations=1,
                      use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.4,
                      gradient_checkpointing=True, bf16=True, logging_steps=1, report_to="none",
                      save_strategy="no", seed=0)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.bfloat16)
    lora = LoraConfig(r=common.LORA_R, lora_alpha=2 * common.LORA_R, target_modules=cfg.model.lora.target_modules,
                      task_type="CAUSAL_LM")
    rows: list[dict] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            common.reset_peak()
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            rows.append({"step_s": time.perf_counter() - self.t0, "peak_gb": common.peak_gb()})

        def on_log(self, _args, state, control, logs=None, **k):
            if logs and rows:
                rows[-1].update({k2: v for k2, v in logs.items() if isinstance(v, (int, float))})

    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=ds, peft_config=lora,
                          callbacks=[Timer()])
    trainer.train()
    return {"steps": rows}


def mean(rows: list[dict], key: str) -> float | str:
    vals = [r[key] for r in rows[1:] if key in r] or [r[key] for r in rows if key in r]
    return sum(vals) / len(vals) if vals else "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--side", choices=["taorl", "trl"], default=None)
    ap.add_argument("--out", default=None, help="(with --side) write the side's JSON here")
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="run the plumbing on a CPU: taorl side on the tiny model and hf path, TRL side "
                         "skipped (no vLLM on a CPU); the table is marked as a dry run")
    a = ap.parse_args(argv)

    import common

    if a.cpu_dry_run:
        common.set_dry_run()
    if a.side is not None:
        common.require_gpu(("unsloth", "vllm") if a.side == "taorl" else ("trl", "vllm"))
        res = side_taorl(a.steps) if a.side == "taorl" else side_trl(a.steps)
        Path(a.out).write_text(json.dumps(res)) if a.out else print(json.dumps(res))
        return 0
    common.require_gpu(("unsloth", "vllm", "trl"))
    res = {"trl": []}
    for side in ("taorl",) if a.cpu_dry_run else ("taorl", "trl"):
        out = Path(f"/tmp/taorl-bench-{side}.json")
        dry = ["--cpu-dry-run"] if a.cpu_dry_run else []
        subprocess.run([sys.executable, __file__, "--side", side, "--steps", str(a.steps), "--out", str(out),
                        *dry], check=True)
        res[side] = json.loads(out.read_text())["steps"]
    t, r = res["taorl"], res["trl"]
    trl_gen = mean(r, "profiling/Time taken: GRPOTrainer._generate")  # TRL's own profiling key, if logged
    rows = [["step s", mean(t, "step_s"), mean(r, "step_s")],
            ["  generation s", mean(t, "gen_s"), trl_gen],
            ["  tools s", mean(t, "tool_s"), "(none)"],
            ["  reward s", mean(t, "reward_s"), "n/a"],
            ["  update s", mean(t, "train_s"), "n/a"],
            ["generated tokens / step", mean(t, "tokens"), mean(r, "num_tokens")],
            ["peak GB (torch)", mean(t, "peak_gb"), mean(r, "peak_gb")]]
    ts, rs = rows[0][1], rows[0][2]
    if isinstance(ts, float) and isinstance(rs, float):
        rows.append(["speed-up TRL step / taorl step (target >= 2)", rs / ts, ""])
    common.append_result("bench_step_vs_trl", ["", "taorl", "TRL GRPOTrainer (vLLM colocate)"], rows,
                         note=f"{a.steps} steps each, first left out; TRL single-turn without tools.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
