"""Experiments: arms x seeds through the normal trainer, held-out evaluation at fixed steps, and a
report with intervals over seeds (`taorl experiment EXPERIMENT.yaml`).

    spec     the experiment file (arms, seeds, held-out schedule) -> ExperimentSpec
    runner   train / resume / skip each run, evaluate its checkpoints on the held-out set
    stats    mean and 95 % Student-t interval over seeds, paired differences
    report   summary.parquet, report.md, report.json, figures; load_report / find_reports
    cli      the `taorl experiment` subcommand
"""

from taorl.experiment.report import find_reports, load_report, write_report
from taorl.experiment.runner import plan_experiment, run_experiment
from taorl.experiment.spec import ExperimentSpec, load_experiment
from taorl.experiment.stats import Interval, mean_interval, paired_difference

__all__ = ["ExperimentSpec", "Interval", "find_reports", "load_experiment", "load_report", "mean_interval",
           "paired_difference", "plan_experiment", "run_experiment", "write_report"]
