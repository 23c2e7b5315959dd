"""Run an experiment: every (arm, seed) trained by the normal trainer, then evaluated on the
held-out set at the scheduled steps; resumable run by run.

Layout of the output folder:

    <out>/experiment.yaml                     the experiment as run (seeds/steps/label overrides applied)
    <out>/runs/<arm>/seed-<s>/                ordinary taorl run directories (`taorl dashboard <out>/runs`)
    <out>/heldout/<arm>/seed-<s>/step=NNNNNN.parquet
                                              held-out metrics after NNNNNN optimizer steps
    <out>/report/                             summary.parquet, report.md, report.json, figures/

A run directory holds the checkpoint the trainer saves after every eval.every steps (checkpoint
"step=K" = the weights after K+1 optimizer steps), so evaluation reads exactly what the trainer
saved. On a second call each run is looked at in turn:

    finished with the same config     skip training
    a checkpoint, not finished        resume from it (Trainer(resume=True), the same path as
                                      `taorl train --resume`)
    no checkpoint                     start it again
    a different config                error naming the first differing key (use another --out)

and only the held-out evaluations whose file is missing are computed.

The initial weights are evaluated once per seed: arms whose run configs differ only in `algo.*` keys
start from the same weights and sample the held-out set with the same seed, so their step-0 files
are copies of one evaluation (the log says which). `jobs=N` runs N runs at once, each in its own
process with its log in <out>/logs/ and cpu_count/k torch threads unless OMP_NUM_THREADS is set, k
being the runs under way when its training or evaluation starts (N, or fewer at the end, so the last
run does not leave a core idle).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from taorl.config import Config, config_diff
from taorl.errors import UserError
from taorl.experiment.spec import ExperimentSpec, heldout_file, run_dir

# keys that may differ between an unfinished run and its continuation (they do not change the maths
# of the steps already made); train.steps may grow, so an experiment can be extended
FREE_KEYS = ("logging.progress", "train.steps", "train.checkpoint_every", "train.keep_checkpoints")


@dataclass
class RunPlan:
    arm: str
    seed: int
    dir: Path
    cfg: Config
    action: str  # "skip" | "resume" | "start"
    from_step: int = 0  # first step the trainer will run


# ------------------------------------------------------------------------------------ held-out
def held_out_problems(spec: ExperimentSpec, cfg: Config) -> tuple[list, int]:
    """The held-out procedural problems, minus any whose text is also in the training pool.
    Returns (problems, number dropped)."""
    from taorl.data import load_train_problems
    from taorl.data.procedural import generate

    e = spec.eval
    drawn = generate(e.problems, difficulty=e.difficulty, seed=e.seed, kinds=e.kinds)
    train_texts = {p.problem for p in load_train_problems(cfg.data)}
    kept = [p for p in drawn if p.problem not in train_texts]
    if not kept:
        raise UserError(f"{spec.path}: every held-out problem is also a training problem; change eval.seed")
    return kept, len(drawn) - len(kept)


def eval_sample_seed(spec: ExperimentSpec, seed: int) -> int:
    """Sampling seed of the held-out rollouts of seed `seed`: the same for every arm and step, so
    arms are compared on the same random numbers (paired)."""
    return 1_000_003 * int(seed) + int(spec.eval.seed)


def heldout_metrics(trajs: list, n_problems: int, n: int, ks: list[int]) -> dict[str, float]:
    """avg@n, pass@k (unbiased), tool-call rate and tool success rate of n samples per problem, and
    what the rollouts did with the tool (taorl.experiment.calls.call_metrics)."""
    from taorl.eval.metrics import summarize, tool_success_rate

    correct = [0] * n_problems
    for t in trajs:
        correct[t.group] += int(t.reward >= 1.0)
    m = {name: v for name, (v, _lo, _hi) in summarize(correct, n, ks=[1, *ks]).items()}
    m["tool_call_rate"] = sum(t.n_call > 0 for t in trajs) / len(trajs)
    m["tool_success_rate"] = tool_success_rate([t.n_call for t in trajs], [t.n_ok for t in trajs])
    m["response_tokens"] = sum(t.length for t in trajs) / len(trajs)
    # calls per rollout, calls after an error, accuracy by number of calls (taorl.experiment.calls)
    from taorl.experiment.calls import call_metrics

    m.update(call_metrics(trajs))
    return m


def initial_policy(cfg: Config):
    """The weights training starts from (train.init_from resolved like the trainer does)."""
    from taorl.train.policy import build_policy

    init_from = cfg.train.init_from
    if init_from == "sft":
        from taorl.train.sft import primed_weights

        init_from = str(primed_weights(cfg))
    return build_policy(cfg, model_name=init_from)


def evaluate_run(spec: ExperimentSpec, plan: RunPlan, out: Path, problems: list, steps: list[int],
                 log: Callable[[str], None] = print) -> None:
    """Held-out metrics of one run after each of `steps` optimizer steps (0 = initial weights)."""
    from taorl.eval.runner import eval_rollout_config
    from taorl.rollout.factory import build_engine
    from taorl.rollout.loop import run_rollouts
    from taorl.tools import Sandbox
    from taorl.train.checkpoint import list_checkpoints

    cfg = plan.cfg
    n = spec.eval.n or cfg.eval.n
    ks = [k for k in (spec.eval.k or cfg.eval.k) if k <= n]
    ckpts = dict(list_checkpoints(plan.dir))
    policy = initial_policy(cfg)
    policy.train_mode(False)
    engine = build_engine(cfg, policy)
    try:
        with Sandbox(cfg.tool) as sandbox:
            for step in steps:
                if step > 0:
                    if step - 1 not in ckpts:
                        raise UserError(f"{plan.dir}: no checkpoint after {step} steps "
                                        f"(expected checkpoints/step={step - 1:06d})")
                    policy.load(ckpts[step - 1] / "policy")
                    engine.sync(policy.model)
                t0 = time.perf_counter()
                trajs = run_rollouts(engine, sandbox, problems, n, eval_rollout_config(cfg), cfg.data,
                                     tool_enabled=cfg.eval.tool, seed=eval_sample_seed(spec, plan.seed),
                                     progress=False)
                m = heldout_metrics(trajs, len(problems), n, ks)
                dt = time.perf_counter() - t0
                f = heldout_file(out, plan.arm, plan.seed, step)
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_suffix(".tmp")
                pl.DataFrame({"arm": plan.arm, "seed": plan.seed, "step": step,
                              "metric": [f"heldout/{k}" for k in m], "value": [float(v) for v in m.values()],
                              "n_problems": len(problems), "n_samples": n, "seconds": dt}
                             ).write_parquet(tmp)
                tmp.replace(f)  # a file is there only once complete
                log(f"      held-out after {step} steps: avg@{n} {m[f'avg@{n}']:.3f}, "
                    f"tool calls {m['tool_call_rate']:.2f} ({dt:.0f} s)")
    finally:
        close = getattr(engine, "close", None)
        if close:
            close()


# ---------------------------------------------------------------------------------------- plan
def plan_run(spec: ExperimentSpec, out: Path, arm: str, seed: int) -> RunPlan:
    """What a call has to do for one run (see the module doc)."""
    from taorl.train.checkpoint import latest_checkpoint

    cfg = spec.run_config(arm, seed)
    d = run_dir(out, arm, seed)
    mf = d / "manifest.json"
    if not mf.is_file():
        return RunPlan(arm, seed, d, cfg, "start")
    import yaml

    saved = yaml.safe_load((d / "config.yaml").read_text()) if (d / "config.yaml").is_file() else {}
    diff = {k: v for k, v in config_diff(saved or {}, cfg.to_dict()).items() if k not in FREE_KEYS}
    if diff:
        key, (old, new) = next(iter(diff.items()))
        raise UserError(f"{d}: made with a different config at {key} (run: {old!r}, experiment now: "
                        f"{new!r}); delete that run or write the experiment to another --out")
    m = json.loads(mf.read_text())
    if m.get("status") == "finished" and int(m.get("last_step", -1)) == cfg.train.steps - 1:
        return RunPlan(arm, seed, d, cfg, "skip", cfg.train.steps)
    ck = latest_checkpoint(d)
    if ck is None:
        return RunPlan(arm, seed, d, cfg, "start")
    return RunPlan(arm, seed, d, cfg, "resume", ck.step + 1)


def plan_experiment(spec: ExperimentSpec, out: Path) -> list[RunPlan]:
    """Seeds outermost, so an interrupted experiment has whole seeds (every arm) done first."""
    return [plan_run(spec, out, arm, seed) for seed in spec.seeds for arm in spec.arms]


def describe(plans: list[RunPlan], spec: ExperimentSpec, out: Path) -> list[str]:
    lines = []
    for i, p in enumerate(plans, 1):
        steps = p.cfg.train.steps
        todo = [s for s in spec.eval_steps(steps) if not heldout_file(out, p.arm, p.seed, s).is_file()]
        what = {"skip": f"finished ({steps} steps), skipped",
                "resume": f"resume at step {p.from_step} of {steps}",
                "start": f"train {steps} steps"}[p.action]
        ev = f"; evaluate after {todo} steps" if todo else "; held-out evaluations done"
        lines.append(f"[{i}/{len(plans)}] {p.arm} seed {p.seed}: {what}{ev}")
    return lines


# ----------------------------------------------------------------------------------------- run
def train_run(plan: RunPlan) -> None:
    """Train (or resume) one run with the normal trainer."""
    from taorl.train.trainer import Trainer

    if plan.action == "start" and plan.dir.exists():
        shutil.rmtree(plan.dir)
    Trainer(plan.cfg, plan.dir, resume=plan.action == "resume").run()


def _in_process(out: Path, arm: str, seed: int, what: str, log: Callable[[str], None], *,
                logfile: Path | None = None, threads: int | None = None) -> None:
    """Run `python -m taorl.experiment.worker OUT ARM SEED WHAT` and wait: every training and every
    evaluation gets a fresh process (GPU engines such as vLLM allow one engine per process, and the
    memory of one run never leaks into the next). With `logfile` its output goes there (appended)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "taorl.experiment.worker", str(out), arm, str(seed), what]
    env = dict(os.environ)
    if threads and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(threads)
    if logfile is None:
        rc = subprocess.run(cmd, env=env, check=False).returncode
    else:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(logfile, "ab") as fh:
            rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        tail = ""
        if logfile is not None and logfile.is_file():
            last = logfile.read_text(errors="replace").splitlines()[-15:]
            tail = "\n" + "\n".join(f"        | {x[-200:]}" for x in last)
        raise UserError(f"{arm} seed {seed}: {what} failed (exit code {rc}; command: {' '.join(cmd)}"
                        + (f"; log: {logfile}" if logfile else "") + "); fix the cause and run the same "
                        f"experiment command again: finished runs are kept{tail}")


@dataclass
class _Task:
    plan: RunPlan
    steps: list[str]  # worker actions in order: "start" (step-0 evaluation only), "train", "eval"
    line: str  # what the log says when the task begins


def _run_task(t: _Task, spec: ExperimentSpec, out: Path, problems: list, log: Callable[[str], None],
              isolate: bool, jobs: int, under_way: Callable[[], int] = lambda: 1) -> None:
    """under_way(): how many tasks run now (this one included); each process gets its share of the cores."""
    p = t.plan
    log(t.line)
    for what in t.steps:
        threads = max(1, (os.cpu_count() or 1) // max(1, under_way())) if jobs > 1 else None
        t0 = time.perf_counter()
        logfile = out / "logs" / f"{p.arm}-seed-{p.seed}-{what}.log" if jobs > 1 else None
        if isolate:
            _in_process(out, p.arm, p.seed, what, log, logfile=logfile, threads=threads)
        elif what == "train":
            train_run(p)
        else:
            evaluate_pending(spec, out, p, problems, log, only_start=what == "start")
        gc.collect()
        if what == "train":
            log(f"      {p.arm} seed {p.seed}: trained in {time.perf_counter() - t0:.0f} s -> {p.dir}")


def _run_tasks(tasks: list[_Task], spec: ExperimentSpec, out: Path, problems: list, log: Callable[[str], None],
               isolate: bool, jobs: int, t_all: float, *, count: bool = True) -> None:
    """Each task's steps in order; up to `jobs` tasks at once (count: log "k/n runs done"). With
    several jobs a failed run does not stop the others; the first failure is raised once all have ended."""
    import threading

    lock = threading.Lock()
    done = ended = 0  # ended: finished or failed

    def locked_log(msg: str) -> None:
        with lock:
            log(msg)

    def under_way() -> int:  # the runs going on now: `jobs` of them, or the ones left at the end
        return min(jobs, len(tasks) - ended)

    def one(t: _Task) -> None:
        nonlocal done, ended
        try:
            _run_task(t, spec, out, problems, locked_log, isolate, jobs, under_way=under_way)
        finally:
            with lock:
                ended += 1
        if count:
            with lock:
                done += 1
                if done < len(tasks):
                    log(f"      {done}/{len(tasks)} runs done, {(time.perf_counter() - t_all) / 60:.1f} min so far")

    if jobs <= 1:
        for t in tasks:
            one(t)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, t) for t in tasks]
        errors = [f.exception() for f in futures]
    errors = [e for e in errors if e is not None]
    for e in errors[1:]:
        log(f"      also failed: {e}")
    if errors:
        raise errors[0]


def run_experiment(spec: ExperimentSpec, out: str | Path, *, figures_png: bool = True,
                   log: Callable[[str], None] = print, isolate: bool = True, jobs: int = 1) -> Path:
    """Train and evaluate every (arm, seed) not done yet, then write the report. Returns the report dir.

    isolate: each training and evaluation in its own process (default); False runs them here.
    jobs: how many runs at once (each in its own process; needs isolate)."""
    from taorl.experiment.report import write_report

    if jobs < 1:
        raise UserError(f"--jobs {jobs}: expected at least 1")
    if jobs > 1 and not isolate:
        raise UserError("jobs > 1 runs each run in its own process: it needs isolate=True")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plans = plan_experiment(spec, out)
    write_spec(spec, out)
    problems, dropped = held_out_problems(spec, plans[0].cfg)
    log(f"experiment {spec.name}: {len(spec.arms)} arms x {len(spec.seeds)} seeds -> {out}"
        + (f" ({jobs} runs at once; their logs in {out / 'logs'})" if jobs > 1 else ""))
    kinds = f", kinds {', '.join(spec.eval.kinds)}" if spec.eval.kinds else ""
    log(f"held-out: {len(problems)} procedural problems (difficulty {spec.eval.difficulty}{kinds}, seed "
        f"{spec.eval.seed}; {dropped} dropped as also in the training pool)")
    t_all = time.perf_counter()
    lines = describe(plans, spec, out)
    # the initial weights first, once per seed (the other arms' step-0 files are copies)
    first = [_Task(p, ["start"], f"initial weights, seed {p.seed} ({p.arm}): held-out evaluation")
             for p in plans if spec.eval.at_start and start_source(spec, p) == p.arm
             and not heldout_file(out, p.arm, p.seed, 0).is_file()]
    _run_tasks(first, spec, out, problems, log, isolate, jobs, t_all, count=False)
    tasks = []
    for p, line in zip(plans, lines):
        needs_eval = any(not heldout_file(out, p.arm, p.seed, s).is_file() for s in spec.eval_steps(p.cfg.train.steps))
        tasks.append(_Task(p, (["train"] if p.action in ("start", "resume") else []) + (["eval"] if needs_eval else []),
                           line))
    _run_tasks(tasks, spec, out, problems, log, isolate, jobs, t_all)
    report = write_report(spec, out, held_out=(len(problems), dropped), figures_png=figures_png, log=log)
    log(f"experiment finished in {(time.perf_counter() - t_all) / 60:.1f} min")
    log(f"report: {report / 'report.md'}")
    log(f"browse the runs: taorl dashboard {out / 'runs'}   (the Ablations page shows this report)")
    return report


def evaluate_pending(spec: ExperimentSpec, out: Path, plan: RunPlan, problems: list,
                     log: Callable[[str], None] = print, *, only_start: bool = False) -> None:
    """The run's missing held-out evaluations (only step 0 with only_start); a missing step-0 file
    is copied from its start source's (see start_source) when that exists."""
    todo = [s for s in spec.eval_steps(plan.cfg.train.steps) if not heldout_file(out, plan.arm, plan.seed, s).is_file()]
    if only_start:
        todo = [s for s in todo if s == 0]
    if 0 in todo and copy_start_eval(spec, out, plan, log):
        todo.remove(0)
    if todo:
        evaluate_run(spec, plan, out, problems, todo, log=log)


# ------------------------------------------------------------------------- shared start evaluation
def start_twins(a: Config, b: Config) -> bool:
    """Whether two run configs start from the same weights and evaluate them the same way: they
    differ only in algo.* keys (and the free keys), and prime to the same cache entry."""
    diff = config_diff(a.to_dict(), b.to_dict())
    if any(not k.startswith("algo.") and k not in FREE_KEYS for k in diff):
        return False
    if a.train.init_from == "sft":
        from taorl.train.primed import primed_key

        return primed_key(a) == primed_key(b)
    return True


def start_source(spec: ExperimentSpec, plan: RunPlan) -> str:
    """The first arm (in file order) whose step-0 evaluation this run's equals (itself if none)."""
    for arm in spec.arms:
        if arm == plan.arm or start_twins(spec.run_config(arm, plan.seed), plan.cfg):
            return arm
    return plan.arm


def copy_start_eval(spec: ExperimentSpec, out: Path, plan: RunPlan, log: Callable[[str], None] = print) -> bool:
    """Write this run's step-0 file from its start source's, if that exists. Returns whether it did."""
    src_arm = start_source(spec, plan)
    src = heldout_file(out, src_arm, plan.seed, 0)
    if src_arm == plan.arm or not src.is_file():
        return False
    f = heldout_file(out, plan.arm, plan.seed, 0)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    pl.read_parquet(src).with_columns(pl.lit(plan.arm).alias("arm")).write_parquet(tmp)
    tmp.replace(f)
    log(f"      held-out after 0 steps: the same weights and sampling as {src_arm} seed {plan.seed}; "
        f"its evaluation copied")
    return True


def write_spec(spec: ExperimentSpec, out: Path) -> Path:
    """<out>/experiment.yaml: the experiment as run (what the worker processes read)."""
    import yaml

    d = spec.model_dump(exclude={"path"})
    d["config"] = str(spec.base_config_path().resolve())
    f = Path(out) / "experiment.yaml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    return f
