"""What every notebook needs around the lab helpers: where this execution writes, which profile
produced what it shows, and the profile's policy.

    print(profile_banner(PROFILE))            # "these outputs come from the laptop profile: ..."
    cfg = profile_config(PROFILE, [...])
    policy = profile_policy(cfg)              # the format-primed weights on the laptop profile
    run_dir = execution_dir("00") / "quickstart"

Each execution writes to a directory of its own, so "restart kernel and run all" works any number of
times and never meets the previous execution's run (the same seed gives the same numbers in each):

    execution_dir("03")  ->  <runs root>/03/<YYYYmmdd-HHMMSS>[-k]   (created, empty)

The runs root is $TAORL_NOTEBOOK_RUNS when set (tests), else `runs/` in the working directory, which
Jupyter, nbclient and papermill set to the notebook's own folder: runs land beside the notebook, never
inside the installed package.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_RUNS = "TAORL_NOTEBOOK_RUNS"

# profile -> one line on what it is, shown at the top of every executed notebook
PROFILE_NOTES = {
    "tiny": ("a random-weight tiny model with SmolLM2's tokenizer: seconds per step, for CI; it writes no "
             "code and never answers, so rewards, tool calls and losses are mostly zero: only the "
             "plumbing is real"),
    "laptop": ("SmolLM2-135M-Instruct, format-primed once (taorl sft, cached under ~/.cache/taorl), on a "
               "laptop CPU: real tool calls, failed tools, filters and entropies; a few minutes per notebook"),
    "full": "the paper-scale config on one GPU (configs/qwen2.5-1.5b.yaml); hours per arm",
}


def runs_root() -> Path:
    """$TAORL_NOTEBOOK_RUNS, else ./runs (beside the notebook when run from Jupyter)."""
    root = os.environ.get(ENV_RUNS)
    return (Path(root) if root else Path.cwd() / "runs").expanduser().resolve()


def execution_dir(name: str, root: str | Path | None = None) -> Path:
    """A new, empty directory for this execution of notebook `name`: <root>/<name>/<time>[-k]."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"execution_dir: notebook name {name!r}: expected a plain name such as '03'")
    base = (Path(root) if root is not None else runs_root()) / name
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1, 1000):
        d = base / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            d.mkdir()
        except FileExistsError:
            continue
        return d
    raise RuntimeError(f"execution_dir: {base}: could not make a new directory for {stamp}")


def profile_banner(profile: str) -> str:
    """One line naming the profile that produced the outputs below it, and what that profile is."""
    if profile not in PROFILE_NOTES:
        from taorl.errors import UserError

        raise UserError(f"PROFILE={profile!r}: expected one of {', '.join(PROFILE_NOTES)}")
    return f"Outputs below come from PROFILE = {profile!r}: {PROFILE_NOTES[profile]}."


def profile_policy(cfg):
    """The policy a notebook looks through: cfg.model, or the weights training starts from
    (train.init_from: a directory, or 'sft' for the cached format-primed weights, primed on first use)."""
    from taorl.train.policy import build_policy

    init = cfg.train.init_from
    if not init:
        return build_policy(cfg)
    if init == "sft":
        from taorl.train.sft import primed_weights

        init = str(primed_weights(cfg))
    return build_policy(cfg, model_name=init)
