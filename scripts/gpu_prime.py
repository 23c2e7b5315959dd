"""Prime the GPU smoke model so that its RL steps train on something (mixed-outcome groups).

A random-init model is never right, so GRPO's criterion 2 drops every group and a smoke run would
never update, sync or log the training metrics. This primes the smoke config's model the way
tests/test_train_e2e.py primes the tiny one: a short supervised warm-up (taorl sft, full
fine-tuning, hf backend on the CPU: no vLLM, so it can run in its own process before the GPU runs)
on N procedural problems, which are then written out as the RL problem set. Sampling at T = 1 then
gives groups with some right and some wrong answers.

    python scripts/gpu_prime.py configs/gpu_smoke.yaml OUT_DIR [--problems 2] [--steps 150] [--bf16]

prints the overrides for the runs:  train.init_from=OUT_DIR/weights data.train=OUT_DIR/problems.jsonl
--bf16 stores the weights in bfloat16 (half the size: 31 MB for the smoke model, small enough to be
carried to the GPU machine in one call instead of priming there; docs/gpu.md).
The defaults (2 problems, 150 steps at lr 3e-3: the demonstrations are learned to a loss of 0.003,
so T = 1 sampling copies them most of the time but not always) were measured on the 2-core CPU
machine, shared with other jobs (1149 s wall, 5 min CPU); then 2 CPU steps of
`taorl train configs/gpu_smoke.yaml $(cat OUT/overrides.txt) model.backend=hf rollout.engine=hf
model.dtype=float32 model.gradient_checkpointing=false train.steps=2` had reward 0.81 / 0.88, 3 and
1 mixed groups kept, 12 and 4 rollouts trained. Fewer steps (55: loss 0.16) or lr 1e-2 with 4
problems (loss 1.5) left every group all wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def to_bf16(weights: Path) -> None:
    """Rewrite every safetensors file of `weights` in bfloat16 (and say so in its config.json)."""
    import torch
    from safetensors.torch import load_file, save_file

    for f in sorted(weights.glob("*.safetensors")):
        save_file({k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(f)).items()}, str(f),
                  metadata={"format": "pt"})
    conf = weights / "config.json"
    data = json.loads(conf.read_text())
    data["torch_dtype"] = data["dtype"] = "bfloat16"
    conf.write_text(json.dumps(data, indent=2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="the smoke config whose model is primed, e.g. configs/gpu_smoke.yaml")
    ap.add_argument("out", help="output directory (weights/, problems.jsonl, overrides.txt)")
    ap.add_argument("--problems", type=int, default=2, help="demonstrations = RL problems")
    ap.add_argument("--steps", type=int, default=150, help="supervised steps")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--bf16", action="store_true", help="store the primed weights in bfloat16")
    args = ap.parse_args(argv)

    from taorl.config import load_config
    from taorl.data import write_problems
    from taorl.data.procedural import generate
    from taorl.train.sft import DEMO_SEED_OFFSET, run_sft

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = args.problems
    # CPU priming: hf backend and engine, fp32, full fine-tuning (a LoRA on a random model learns slowly)
    cfg = load_config(args.config, [
        "model.backend=hf", "rollout.engine=hf", "model.dtype=float32", "model.lora.enabled=false",
        "model.gradient_checkpointing=false", f"sft.n_examples={n}", f"sft.steps={args.steps}",
        f"sft.lr={args.lr}", "sft.batch_size=4", "sft.probe_problems=2", "rollout.group_size=2",
        "rollout.max_turn_tokens=40", "rollout.max_response_tokens=96", "logging.progress=false",
        f"logging.runs_dir={out}"])
    t0 = time.perf_counter()
    report = run_sft(cfg, out / "weights")
    if args.bf16:
        to_bf16(out / "weights")
    problems = generate(n, cfg.sft.difficulty, cfg.data.seed + DEMO_SEED_OFFSET)
    write_problems(problems, out / "problems.jsonl")
    overrides = f"train.init_from={out / 'weights'} data.train={out / 'problems.jsonl'}"
    (out / "overrides.txt").write_text(overrides + "\n")
    print(json.dumps({"before": report["before"], "after": report["after"]}))
    print(f"primed in {time.perf_counter() - t0:.0f} s: {out / 'weights'}")
    print(f"train on it with: taorl train {args.config} {overrides}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
