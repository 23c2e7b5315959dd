"""taorl's grader as verl's reward function (plain Python, no verl import).

    reward.custom_reward_function.path=<site-packages>/taorl/integrations/verl/reward.py
    reward.custom_reward_function.name=compute_score

verl calls compute_score(data_source, solution_str, ground_truth, extra_info) per rollout with the
decoded response (model turns and observations, as taorl grades it): the last \\boxed{} against the
reference by taorl.rewards.grade (math-verify), reward 1 or 0 (spec §1).
"""

from __future__ import annotations


def compute_score(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, **_) -> dict:
    from taorl.rewards import grade

    res = grade(str(solution_str), "" if ground_truth is None else str(ground_truth))
    return {"score": float(res.reward), "extracted": res.extracted or "", "reason": res.reason or ""}
