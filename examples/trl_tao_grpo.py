"""TAO-RL in a TRL script: TRL's GRPOTrainer with taorl's filters, entropy-guided advantage, Python
sandbox and run directory. Runs on a CPU in minutes:

    .venv/bin/python examples/trl_tao_grpo.py --model tiny --steps 2 --out runs/trl-tiny
    .venv/bin/python examples/trl_tao_grpo.py --model smollm2 --steps 2 --out runs/trl-smollm2
    .venv/bin/python examples/trl_tao_grpo.py --model smollm2-135m-primed --steps 2 --out runs/trl-primed
    taorl dashboard runs/                                  # the TRL run beside any taorl run

Needs `pip install -e ".[trl]"` (TRL 1.15-1.16). `--tao off` trains plain GRPOTrainer (still
writing the run directory). `--unsloth` imports Unsloth first (GPU only; not yet run on a GPU).
Against a stock TRL GRPO script the changes are the lines marked  # TAO-RL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="tiny | smollm2 | smollm2-135m-primed (format-primed: "
                   "`taorl model prepare smollm2-135m-primed` once) | a model directory / hub id")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", default="runs/trl-tao-grpo", help="the taorl run directory to write")
    p.add_argument("--tao", default="paper", help="paper | code_compat | off (plain GRPOTrainer)")
    p.add_argument("--prompts", type=int, default=2, help="prompts per step")
    p.add_argument("--generations", type=int, default=4, help="rollouts per prompt (G)")
    p.add_argument("--max-completion", type=int, default=None, help="token budget of a response (all turns)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unsloth", action="store_true", help="import unsloth before TRL (GPU)")
    a = p.parse_args(argv)

    if a.unsloth:
        import unsloth  # noqa: F401  (must come before trl)
    from datasets import Dataset
    from trl import GRPOConfig

    from taorl.config import ModelConfig
    from taorl.data import load_problems
    from taorl.integrations.trl import (  # TAO-RL
        TaoGRPOTrainer,
        TaoRollout,
        boxed_answer_reward,
        tao_config,
        trl_loss_args,
    )
    from taorl.models import load_model

    tiny = a.model == "tiny"
    name = "smollm2-135m" if a.model == "smollm2" else a.model
    # taorl's settings (the paper's defaults); the tiny model gets tiny turns
    tiny_turns = ["rollout.max_turns=2", "rollout.max_turn_tokens=24", "rollout.obs_max_tokens=16",
                  "tool.workers=2", "algo.entropy_chunk=64", "algo.filter.group.min_n=2"]
    small_turns = ["rollout.max_turn_tokens=160", "tool.workers=2"]  # the notebooks' laptop profile
    cfg = tao_config("paper" if a.tao == "off" else a.tao, tiny_turns if tiny else small_turns)  # TAO-RL
    model, tok = load_model(ModelConfig(name=name, dtype="float32"))
    model.train()
    problems = load_problems("procedural", n=max(16, a.prompts * a.steps), difficulty=0 if tiny else 1, seed=a.seed)
    data = Dataset.from_list([{"prompt": q.problem, "answer": q.answer} for q in problems])

    max_completion = a.max_completion or (64 if tiny else 256)
    with tempfile.TemporaryDirectory(prefix="trl-out-") as work:
        args = GRPOConfig(
            output_dir=work, max_steps=a.steps, learning_rate=1e-3 if tiny else 1e-5, seed=a.seed,
            per_device_train_batch_size=a.prompts * a.generations, num_generations=a.generations,
            max_completion_length=max_completion, temperature=1.0, logging_steps=1, save_strategy="no",
            report_to=[], use_cpu=True, bf16=False, disable_tqdm=False,
            **trl_loss_args(cfg.algo),  # TAO-RL: clip-higher 0.28, dual-clip 3, token-mean (dapo)
        )
        rollout = TaoRollout(cfg, progress=True)  # TAO-RL: the paper's turn format and taorl's sandbox
        trainer = TaoGRPOTrainer(  # TAO-RL: was GRPOTrainer
            model=model, processing_class=tok, reward_funcs=[boxed_answer_reward], args=args,
            train_dataset=data, rollout_func=rollout,
            tao=cfg, tao_enabled=a.tao != "off", run_dir=a.out)  # TAO-RL
        try:
            trainer.train()
        finally:
            rollout.close()
    out = Path(a.out)
    print(f"run directory: {out.resolve()}\nnext: taorl dashboard {out.parent}")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
