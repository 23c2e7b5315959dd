"""`taorl experiment EXPERIMENT.yaml`: run (or resume) every arm x seed, then write the report."""

from __future__ import annotations

from pathlib import Path

from taorl.errors import UserError


def experiment_main(args) -> int:
    from taorl.experiment.report import write_report
    from taorl.experiment.runner import describe, held_out_problems, plan_experiment, run_experiment
    from taorl.experiment.spec import load_experiment

    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise UserError(f"--seeds {args.seeds!r}: expected a comma list of integers") from None
    label = args.label
    if label is None and (seeds is not None or args.steps is not None):
        label = "reduced run: " + ", ".join(x for x in (f"seeds {seeds}" if seeds is not None else "",
                                                         f"{args.steps} steps" if args.steps is not None else "") if x)
    spec = load_experiment(args.experiment, seeds=seeds, steps=args.steps, label=label)
    out = Path(args.out) if args.out else spec.default_out()
    if args.plan:
        for line in describe(plan_experiment(spec, out), spec, out):
            print(line)
        return 0
    if args.report_only:
        problems, dropped = held_out_problems(spec, spec.run_config(spec.baseline_arm, spec.seeds[0]))
        rep = write_report(spec, out, held_out=(len(problems), dropped), figures_png=not args.no_png,
                           report_only=True)
        print(f"report: {rep / 'report.md'}")
        return 0
    run_experiment(spec, out, figures_png=not args.no_png, jobs=args.jobs)
    return 0
