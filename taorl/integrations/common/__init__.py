"""The verl-free steps shared by the verl and TRL integrations (plain torch: importing any of them
imports neither verl nor TRL). Both stacks hand over one rollout per row, response-aligned, with a
mask of the model's tokens, so both go through the same code, written once on taorl.algo:

    layout       response mask -> segment / turn / post-tool facts; group ids -> [N, G] groups
    advantage    tao_advantage: the TAO-RL advantage of a batch of rows (criterion 1 / void /
                 overlong weights, criterion 2, Â by algo.adv, entropy-guided shaping) -> StepAdvantage
    step_tables  StepRows + StepAdvantage -> one step's run-directory tables (taorl.store schema)
"""
