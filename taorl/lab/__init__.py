"""Helpers for notebooks, demos and self-checks; the core (taorl.algo, taorl.train, taorl.rollout,
taorl.store, ...) never imports this package.

    ablation     run arms of an ablation, decide a replayed batch, compare and plot
    walkthrough  scripted rollouts replayed through the real rollout loop, frames for notebooks
    synthetic    synthetic run directories (dashboard demos and tests); `taorl synth`
    selfcheck    the grader's self-check against the benchmark references
"""
