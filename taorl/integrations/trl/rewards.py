"""taorl's reward (spec §1: 1 if the final \\boxed{} answer equals the reference by math-verify, else 0)
as a TRL reward function: `GRPOTrainer(reward_funcs=[boxed_answer_reward], ...)` on a dataset with
an `answer` column (the reference, as taorl's problem files hold it)."""

from __future__ import annotations


def _text(completion) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion)  # conversational: every message


def boxed_answer_reward(completions: list, answer: list, **kwargs) -> list[float]:
    """One reward per completion: taorl.rewards.grade(completion text, reference answer)."""
    from taorl.rewards import grade

    return [float(grade(_text(c), str(a)).reward) for c, a in zip(completions, answer)]
