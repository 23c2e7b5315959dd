"""One step of one run of an experiment, in its own process (started by taorl.experiment.runner):

    python -m taorl.experiment.worker OUT ARM SEED train     train or resume the run
    python -m taorl.experiment.worker OUT ARM SEED eval      its missing held-out evaluations
    python -m taorl.experiment.worker OUT ARM SEED start     its held-out evaluation at step 0 only

OUT holds experiment.yaml, written by the runner before it starts any worker.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from taorl.errors import UserError
    from taorl.experiment.runner import evaluate_pending, held_out_problems, plan_run, train_run
    from taorl.experiment.spec import load_experiment

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[3] not in ("train", "eval", "start"):
        print(__doc__, file=sys.stderr)
        return 2
    out, arm, seed, what = Path(args[0]), args[1], int(args[2]), args[3]
    try:
        spec = load_experiment(out / "experiment.yaml")
        plan = plan_run(spec, out, arm, seed)
        if what == "train":
            if plan.action != "skip":
                train_run(plan)
        else:
            problems, _ = held_out_problems(spec, plan.cfg)
            evaluate_pending(spec, out, plan, problems, only_start=what == "start")
    except UserError as e:
        print(f"taorl experiment ({arm} seed {seed}, {what}): error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
