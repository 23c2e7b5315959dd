"""Ablations as arms: runs that differ ONLY in the switches under study, and their comparison.

Every ablation notebook goes through this one helper, so no arm can differ by accident:

    base = profile_config("tiny")                                   # or "full" (GPU, paper scale)
    res = run_arms(base, {"grpo": ["algo.filter.group.enabled=false"],
                          "tao":  []}, seeds=[0, 1], runs_dir="runs/ablations/nb03")
    res.diff()                    # the dotted keys each arm changes w.r.t. the base config
    df, fig = compare(res, ["reward", "tao/groups_kept"])

Run directories are ordinary taorl runs (``<runs_dir>/<arm>/seed-<s>``): open them in the
dashboard with ``taorl dashboard <runs_dir>``. A finished run whose resolved config is identical
is reused instead of re-trained (``reuse=True``), so re-executing a notebook is cheap.

Two smaller tools for the "microscope" parts of the notebooks, on trajectories you already have
(from ``taorl.rollout.run_rollouts`` or ``taorl.lab.walkthrough.replay_rollouts``):

    decide(trajs, cfg)            criterion 1 / void / overlong weights, criterion 2, advantages:
                                  the same taorl.algo calls, in the same order, as the trainer
    token_frame(trajs, dec, cfg, policy)
                                  one policy forward -> gate, Ĥ, (1 + a·g·Ĥ), Ã per model token
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from taorl.config import Config, apply_overrides, config_diff, load_config
from taorl.errors import UserError

# profile -> (config file under configs/, extra overrides). "tiny": CPU, seconds, random model (CI);
# "laptop": the format-primed SmolLM2 of configs/default.yaml on a 2-core CPU, a few minutes per
# notebook (smaller batches and turns than the default run; nothing that enters the priming cache
# key is changed, so it reuses the primed weights `make train` cached); "full": one GPU, paper config.
PROFILES: dict[str, tuple[str, list[str]]] = {
    "tiny": ("tiny.yaml", ["logging.progress=false", "tool.workers=1"]),
    "laptop": ("default.yaml", ["rollout.batch_prompts=2", "rollout.oversample=1.0",
                                "rollout.max_turn_tokens=160", "rollout.max_response_tokens=384",
                                "train.mini_batch_prompts=2", "train.steps=2", "tool.workers=1"]),
    "full": ("qwen2.5-1.5b.yaml", []),  # the paper's smallest scale, one GPU
}
REPO_ROOT = Path(__file__).resolve().parents[2]


def profile_config(profile: str, overrides: list[str] | tuple[str, ...] = (), *,
                   configs_dir: str | Path | None = None) -> Config:
    """The base config of a notebook profile ("tiny", "laptop" or "full"), with extra dotted overrides."""
    if profile not in PROFILES:
        raise UserError(f"PROFILE={profile!r}: expected one of {', '.join(PROFILES)}")
    name, extra = PROFILES[profile]
    path = Path(configs_dir) if configs_dir is not None else REPO_ROOT / "configs"
    return load_config(path / name, [*extra, *overrides])


def _as_config(base: Config | str | Path | None, profile: str) -> Config:
    if base is None:
        return profile_config(profile)
    if isinstance(base, Config):
        return base
    return load_config(base)


# --------------------------------------------------------------------------------------- results
@dataclass
class ArmResults:
    """What run_arms made: the base config, the arms, and one run directory per (arm, seed)."""

    base: Config
    arms: dict[str, list[str]]
    seeds: list[int]
    runs: dict[tuple[str, int], Path] = field(default_factory=dict)
    configs: dict[str, Config] = field(default_factory=dict)  # per arm (seed 0's train.seed aside)
    reused: list[tuple[str, int]] = field(default_factory=list)

    def diff(self) -> pl.DataFrame:
        """arm, key, base, value: every dotted config key an arm changes (train.seed excluded)."""
        rows = []
        base = self.base.to_dict()
        for arm, cfg in self.configs.items():
            for key, (a, b) in config_diff(base, cfg.to_dict()).items():
                if key in ("train.seed", "logging.run_name"):
                    continue
                rows.append({"arm": arm, "key": key, "base": repr(a), "value": repr(b)})
        return pl.DataFrame(rows, schema={"arm": pl.String, "key": pl.String, "base": pl.String,
                                          "value": pl.String})

    def table(self, name: str, **kwargs) -> pl.DataFrame:
        """One run-store table (metrics long form, groups, trajectories, tokens, evals) of every run,
        with `arm` and `seed` columns first."""
        from taorl.store import open_run

        frames = []
        for (arm, seed), path in self.runs.items():
            run = open_run(path)
            if name == "metrics":
                df = run.metrics(wide=False, **kwargs)
            else:
                df = getattr(run, name)(**kwargs)
            frames.append(df.with_columns(pl.lit(arm).alias("arm"), pl.lit(seed, pl.Int64).alias("seed"))
                          .select("arm", "seed", *df.columns))
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()

    def metrics(self) -> pl.DataFrame:
        """Tidy: arm, seed, step, name, value (one row per run, step and metric)."""
        return self.table("metrics").select("arm", "seed", "step", "name", "value")

    def run_dirs(self) -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = {}
        for (arm, _seed), p in self.runs.items():
            out.setdefault(arm, []).append(p)
        return out


# -------------------------------------------------------------------------------------- run_arms
def arm_config(base: Config, overrides: list[str], seed: int) -> Config:
    """The config of one arm and seed: base <- the arm's overrides <- train.seed."""
    return apply_overrides(base, [*overrides, f"train.seed={seed}"])


def _finished_with(run_dir: Path, cfg: Config) -> bool:
    import json

    mf = run_dir / "manifest.json"
    if not mf.is_file():
        return False
    try:
        m = json.loads(mf.read_text())
    except (OSError, ValueError):
        return False
    return m.get("status") == "finished" and m.get("config_hash") == cfg.hash()


def run_arms(base_config: Config | str | Path | None, arms: dict[str, list[str]],
             seeds: list[int] | tuple[int, ...] = (0,), profile: str = "tiny",
             runs_dir: str | Path = "runs/ablations", *, reuse: bool = True,
             verbose: bool = True) -> ArmResults:
    """Train every arm for every seed; arms differ from the base only by their overrides.

    base_config: a Config, a YAML path, or None for profile_config(profile).
    arms: name -> list of dotted overrides (an empty list is the base itself).
    Returns an ArmResults; each run lives in <runs_dir>/<arm>/seed-<seed>.
    """
    import shutil
    import time

    from taorl.train.trainer import Trainer

    if not arms:
        raise UserError("run_arms: no arms given")
    for arm in arms:
        if not arm or "/" in arm or arm.startswith("."):
            raise UserError(f"run_arms: arm name {arm!r}: expected a plain name (no '/', not empty)")
    base = _as_config(base_config, profile)
    seeds = [int(s) for s in seeds]
    res = ArmResults(base=base, arms={k: list(v) for k, v in arms.items()}, seeds=seeds)
    for arm, overrides in arms.items():
        try:
            res.configs[arm] = arm_config(base, overrides, seeds[0] if seeds else base.train.seed)
        except UserError as e:
            raise UserError(f"run_arms: arm {arm!r}: {e}") from None
    root = Path(runs_dir)
    for arm, overrides in arms.items():
        for seed in seeds:
            cfg = arm_config(base, overrides, seed)
            run_dir = root / arm / f"seed-{seed}"
            res.runs[(arm, seed)] = run_dir
            if reuse and _finished_with(run_dir, cfg):
                res.reused.append((arm, seed))
                if verbose:
                    print(f"[{arm} seed {seed}] reusing {run_dir}")
                continue
            if run_dir.exists():
                shutil.rmtree(run_dir)
            t0 = time.perf_counter()
            Trainer(cfg, run_dir).run()
            if verbose:
                print(f"[{arm} seed {seed}] {cfg.train.steps} steps in {time.perf_counter() - t0:.1f}s -> {run_dir}")
    return res


# --------------------------------------------------------------------------------------- compare
def summarize(tidy: pl.DataFrame) -> pl.DataFrame:
    """arm, name, mean, std, n, sem over seeds of a per-(arm, seed, name) value frame."""
    return (tidy.group_by("arm", "name", maintain_order=True)
            .agg(pl.col("value").mean().alias("mean"), pl.col("value").std().fill_null(0.0).alias("std"),
                 pl.len().alias("n"))
            .with_columns((pl.col("std") / pl.col("n").cast(pl.Float64).sqrt()).alias("sem")))


def compare(results: ArmResults, metrics: list[str] | tuple[str, ...], *, reduce: str = "mean",
            title: str | None = None) -> tuple[pl.DataFrame, Any]:
    """A tidy frame and a figure comparing the arms on `metrics`.

    reduce: how each run's steps become one number: "mean" over steps, "last" step, or "sum".
    Returns (frame with arm, seed, name, value  -- one row per run and metric; figure: mean ± sem
    over seeds per arm, one panel per metric).
    """
    if reduce not in ("mean", "last", "sum"):
        raise UserError(f"compare: reduce={reduce!r}: expected mean, last or sum")
    m = results.metrics().filter(pl.col("name").is_in(list(metrics)))
    agg = {"mean": pl.col("value").mean(), "sum": pl.col("value").sum(),
           "last": pl.col("value").sort_by("step").last()}[reduce]
    per_run = (m.group_by("arm", "seed", "name", maintain_order=True).agg(agg.alias("value")))
    # runs that never logged a metric (e.g. no trained tokens) show up as missing, not as 0
    order = {a: i for i, a in enumerate(results.arms)}
    per_run = per_run.sort(pl.col("arm").replace_strict(order, return_dtype=pl.Int64), "seed", "name")
    fig = comparison_figure(summarize(per_run), list(results.arms), list(metrics), title=title)
    return per_run, fig


def comparison_figure(summary: pl.DataFrame, arms: list[str], metrics: list[str], title: str | None = None):
    """Mean ± sem over seeds per arm, one panel per metric (taorl.viz's figure when it has one)."""
    try:  # the dashboard's ablation figure, when taorl.viz provides it
        from taorl.viz import ablation_bars  # type: ignore[attr-defined]

        return ablation_bars(summary, arms=arms, metrics=metrics, title=title)
    except (ImportError, AttributeError):
        pass
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = min(len(metrics), 3) or 1
    rows = max(1, math.ceil(len(metrics) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=metrics)
    for k, name in enumerate(metrics):
        s = summary.filter(pl.col("name") == name)
        by_arm = {r["arm"]: r for r in s.iter_rows(named=True)}
        xs = [a for a in arms if a in by_arm]
        fig.add_trace(go.Bar(x=xs, y=[by_arm[a]["mean"] for a in xs],
                             error_y={"type": "data", "array": [by_arm[a]["sem"] for a in xs]},
                             name=name, showlegend=False), row=k // cols + 1, col=k % cols + 1)
    fig.update_layout(title=title or "ablation: mean ± s.e.m. over seeds", height=320 * rows,
                      template="plotly_white", margin={"t": 60, "l": 40, "r": 20, "b": 40})
    return fig


# ------------------------------------------------------------------------ decisions on trajectories
@dataclass
class Decisions:
    """The data-level decisions of one step, as the trainer makes them (see decide)."""

    groups: pl.DataFrame  # group, pass_rate, std, kept, reason, duplicates
    trajectories: pl.DataFrame  # group, index, reward, n_call, n_ok, statuses, void, flagged, weight,
    #                             reason, in_stats, advantage
    adv: Any  # [N, G] torch tensor, 0 on dropped groups
    weights: Any  # [N, G] torch tensor, 0 on dropped groups
    n_valid: int  # groups passing criterion 2 before the random choice of B


def _grid(trajs, n: int, G: int):
    by = [[None] * G for _ in range(n)]
    for t in trajs:
        by[t.group][t.index] = t
    if any(x is None for row in by for x in row):
        raise UserError("decide: trajectories must cover every (group, index) of an n x G grid")
    return by


def decide(trajs: list, cfg: Config, *, seed: int = 0, batch_prompts: int | None = None) -> Decisions:
    """Criterion 1 / void / overlong weights, criterion 2 (+ refill), GRPO advantages on trajectories.

    The trainer's own decision (taorl.algo.step.decide, step 2 of Trainer.train_step) with the same
    inputs; batch_prompts defaults to cfg.rollout.batch_prompts.
    """
    from taorl.algo.step import decide_rollouts

    G = 1 + max(t.index for t in trajs)
    n = 1 + max(t.group for t in trajs)
    by = _grid(trajs, n, G)
    B = cfg.rollout.batch_prompts if batch_prompts is None else batch_prompts
    dec = decide_rollouts(by, cfg.algo, B, seed)
    tdec, gdec, adv, weights = dec.traj, dec.groups, dec.adv, dec.weights
    groups = pl.DataFrame({
        "group": list(range(n)),
        "rewards": [[by[g][i].reward for i in range(G)] for g in range(n)],
        "pass_rate": gdec.pass_rate.tolist(), "std": gdec.std.tolist(),
        "kept": gdec.kept.tolist(), "reason": gdec.reason, "duplicates": gdec.duplicates,
    })
    rows = []
    for g in range(n):
        for i in range(G):
            t = by[g][i]
            rows.append({"group": g, "index": i, "reward": t.reward, "n_call": t.n_call, "n_ok": t.n_ok,
                         "statuses": [c.status for c in t.tool_calls], "void": t.void, "finish": t.finish,
                         "flagged": bool(tdec.flagged[g, i]), "in_stats": bool(tdec.stats_mask[g, i]),
                         "weight": float(weights[g, i]), "reason": tdec.reasons[g][i],
                         "group_kept": bool(gdec.kept[g]), "advantage": float(adv[g, i])})
    return Decisions(groups=groups, trajectories=pl.DataFrame(rows), adv=adv, weights=weights,
                     n_valid=gdec.n_valid)


def token_frame(trajs: list, dec: Decisions, cfg: Config, policy, *, step: int = 0) -> pl.DataFrame:
    """One forward of `policy` over the trajectories -> one row per response token with what
    tao_loss computes for it: entropy H, gate g, post-tool flag, Ĥ, factor (1 + a·g·Ĥ), Â, Ã, weight.

    policy: a taorl.train.policy.Policy (hidden_states, lm_head_weight, tokenizer). The columns
    follow the run store's token table (step, traj, pos, turn, token_id, token, segment, offset,
    entropy, logprob_sample, logprob_train, advantage, shaped_advantage, weight, gate), so
    taorl.viz.token_html and taorl.store.queries.boundary_stats take it as it is, plus group,
    index, post_tool, entropy_norm, factor. Entropy is null on tool tokens.
    """
    import torch

    from taorl.algo import TokenBatch, logprobs_and_entropy_from_hidden, tao_loss
    from taorl.train.metrics import offsets_since_tool
    from taorl.types import SEGMENT_NAMES

    tok = policy.tokenizer
    G = 1 + max(t.index for t in trajs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    a = torch.tensor([float(dec.adv[t.group, t.index]) for t in trajs])
    w = torch.tensor([float(dec.weights[t.group, t.index]) for t in trajs])
    batch = TokenBatch.from_trajectories(trajs, a, w, pad)
    with torch.no_grad():
        hidden = policy.hidden_states(batch.input_ids, batch.attention_mask)
        logp, ent = logprobs_and_entropy_from_hidden(hidden, policy.lm_head_weight, batch.targets,
                                                     cfg.rollout.temperature, cfg.algo.entropy_chunk)
    batch.old_logp = logp.detach()
    _, _, pt = tao_loss(batch, logp, ent, cfg.algo)
    per_tok = {"entropy": pt["entropy"], "logprob_train": logp, "advantage": pt["adv"],
               "shaped_advantage": pt["shaped_adv"], "weight": pt["weight"], "gate": pt["gate"],
               "post_tool": pt["post_tool"], "entropy_norm": pt["entropy_norm"], "factor": pt["factor"]}
    cols: dict[str, list] = {k: [] for k in ("traj", "group", "index", "pos", "turn", "token_id", "token",
                                             "segment", "offset", "logprob_sample", *per_tok)}
    texts: dict[int, str] = {}
    for j, t in enumerate(trajs):
        P, L = len(t.prompt_ids), len(t.response_ids)
        sl = slice(P - 1, P - 1 + L)
        cols["traj"] += [t.group * G + t.index] * L
        cols["group"] += [t.group] * L
        cols["index"] += [t.index] * L
        cols["pos"] += list(range(P, P + L))
        cols["turn"] += list(t.turn)
        cols["token_id"] += list(t.response_ids)
        cols["token"] += [texts.setdefault(i, tok.decode([i])) for i in t.response_ids]
        cols["segment"] += [SEGMENT_NAMES[s] for s in t.segment]
        cols["offset"] += offsets_since_tool(t)
        cols["logprob_sample"] += list(t.sample_logprobs)
        for k, x in per_tok.items():
            cols[k] += x[j, sl].float().tolist()
    df = pl.DataFrame(cols, schema_overrides={"offset": pl.Int32, "traj": pl.Int32, "pos": pl.Int32,
                                              "turn": pl.Int32})
    model = pl.col("segment") == "model"
    return df.with_columns(
        pl.lit(step, pl.Int64).alias("step"),
        pl.when(model).then(pl.col("entropy")).alias("entropy"),
        pl.when(model).then(pl.col("logprob_train")).alias("logprob_train"),
    ).select("step", *cols)


# ------------------------------------------------------------------------------------ evaluation
def evaluate_arms(results: ArmResults, problems: list, *, n: int = 4, ks: tuple[int, ...] = (1,),
                  seed: int = 1234) -> pl.DataFrame:
    """Avg@n and unbiased Pass@k of every run's final weights on held-out `problems`.

    Each run's last checkpoint is loaded into a policy built from that run's config, and n samples
    per problem go through the rollout loop with the evaluation protocol (cfg.eval: temperature,
    top_p, max_turns, max_response_tokens). Returns tidy rows: arm, seed, metric, value, ci_low,
    ci_high (metrics: avg@n, pass@k for k <= n, tool_call_rate).
    """
    from taorl.eval.metrics import mean_ci, summarize
    from taorl.eval.runner import eval_rollout_config
    from taorl.lab.notebook import profile_policy
    from taorl.rollout.hf import HFEngine
    from taorl.rollout.loop import run_rollouts
    from taorl.tools import Sandbox
    from taorl.train.checkpoint import latest_checkpoint

    rows = []
    for (arm, s), run_dir in results.runs.items():
        cfg = arm_config(results.base, results.arms[arm], s)
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise UserError(f"evaluate_arms: {run_dir}: no checkpoint (did the run finish?)")
        policy = profile_policy(cfg)  # the weights the run started from (primed ones on the laptop profile)
        policy.load(ckpt.path / "policy")
        policy.train_mode(False)
        engine = HFEngine(policy.model, policy.tokenizer, gen_batch_size=cfg.rollout.gen_batch_size)
        with Sandbox(cfg.tool) as sb:
            trajs = run_rollouts(engine, sb, problems, n, eval_rollout_config(cfg), cfg.data,
                                 tool_enabled=cfg.eval.tool, seed=seed, progress=False)
        counts: dict[int, int] = {}
        for t in trajs:
            counts[t.group] = counts.get(t.group, 0) + int(t.reward >= 1.0)
        metrics = summarize([counts.get(g, 0) for g in range(len(problems))], n, ks=[1, *ks])
        metrics["tool_call_rate"] = mean_ci([float(t.n_call > 0) for t in trajs])
        for name, (v, lo, hi) in metrics.items():
            rows.append({"arm": arm, "seed": s, "metric": name, "value": v, "ci_low": lo, "ci_high": hi})
    return pl.DataFrame(rows)
