"""TAO-RL's overhead over plain GRPO, as a share of one RL step, measured on the same rollouts.

    python benchmarks/gpu/bench_overhead.py [--repeats 3]

One batch of rollouts (32 prompts x 8, 512-token turns, tools on) is generated once. Then, on that
same batch, side by side:
    update  ppo_update with TAO-RL (filters, exact chunked entropy, post-tool entropy shaping)
            vs plain GRPO (no filters, no shaping, so no entropy in the loss path)
    extras  the filter decisions (criterion 1 / 2, void, overlong) and the token-row logging
overhead = (update_tao - update_grpo + filters + token rows) / step time, where step time is
rollout + update_tao + logging. Target: <= 3%. Appends the table to RESULTS.md; without CUDA or
the GPU packages it exits with one line saying so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

PLAIN = ["algo.filter.group.enabled=false", "algo.filter.tool.enabled=false", "algo.filter.void_turn_mask=false",
         "algo.filter.overlong_mask=false", "algo.shaping.enabled=false"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="run the plumbing on a CPU with the tiny model and the hf path (not a figure)")
    a = ap.parse_args(argv)

    import common

    if a.cpu_dry_run:
        common.set_dry_run()
        a.repeats = 1
    common.require_gpu()
    cfg_tao = common.bench_config()
    from taorl.config import apply_overrides
    from taorl.gpu import preflight

    preflight(cfg_tao)
    cfg_grpo = apply_overrides(cfg_tao, PLAIN)
    import tempfile

    import torch

    from taorl.algo import filter_groups, group_advantages, trajectory_weights
    from taorl.rollout.loop import run_rollouts
    from taorl.train.records import token_rows
    from taorl.train.trainer import Trainer, ppo_update

    tr = Trainer(cfg_tao, Path(tempfile.mkdtemp(prefix="taorl-bench-")) / "run")
    G, n = common.ROLLOUTS, common.PROMPTS
    problems = tr.problems[:n]
    t0 = time.perf_counter()
    trajs = run_rollouts(tr.engine, tr.sandbox, problems, G, cfg_tao.rollout, cfg_tao.data, seed=0, progress=False)
    rollout_s = time.perf_counter() - t0
    getattr(tr.engine, "release", lambda: None)()
    by_group = [[None] * G for _ in range(n)]
    for t in trajs:
        by_group[t.group][t.index] = t

    def grid(f, dtype=torch.float64):
        return torch.tensor([[f(by_group[g][i]) for i in range(G)] for g in range(n)], dtype=dtype)

    def decisions(cfg):
        rewards, trunc = grid(lambda t: t.reward), grid(lambda t: t.truncated, torch.bool)
        tdec = trajectory_weights(grid(lambda t: t.n_call, torch.long), grid(lambda t: t.n_ok, torch.long),
                                  grid(lambda t: t.void, torch.bool), trunc, cfg.algo.filter)
        gdec = filter_groups(rewards, trunc, cfg.algo.filter.group, n, torch.Generator().manual_seed(0),
                             stats_mask=tdec.stats_mask)
        return rewards, tdec, gdec

    t0 = time.perf_counter()
    rewards, tdec, _gdec = decisions(cfg_tao)  # timed: the group decisions are part of the cost
    filters_s = time.perf_counter() - t0
    # the update runs on every group for both (timing the same work); weights as each method sets them
    adv = group_advantages(rewards, cfg_tao.algo.adv, cfg_tao.algo.adv_eps, tdec.stats_mask)
    adv = torch.where(adv.abs() > 0, adv, torch.full_like(adv, 0.5))  # no all-zero groups: full work
    groups = list(range(n))

    def update(cfg, weights):
        common.synchronize()
        t = time.perf_counter()
        out = ppo_update(tr.policy, tr.optimizer, cfg, by_group, groups, adv, weights, tr.pad_id, lr=1e-7)
        common.synchronize()
        return time.perf_counter() - t, out

    times = {"tao": [], "grpo": []}
    peaks = {}
    for _ in range(a.repeats):
        for name, cfg, w in (("grpo", cfg_grpo, torch.ones(n, G, dtype=torch.float64)),
                             ("tao", cfg_tao, tdec.weights.clone().clamp(min=0.5))):
            common.reset_peak()
            dt, out = update(cfg, w)
            times[name].append(dt)
            peaks[name] = common.peak_gb()
    tok = out["tokens"]
    t0 = time.perf_counter()
    flat = [by_group[g][i] for g in range(n) for i in range(G)]
    rows_n = sum(len(token_rows(flat[k], k, tok[k], tr._token_text)) for k in sorted(tok))
    tokens_s = time.perf_counter() - t0
    up_tao, up_grpo = min(times["tao"]), min(times["grpo"])
    step = rollout_s + up_tao + tokens_s + filters_s
    over = (up_tao - up_grpo) + filters_s + tokens_s
    rows = [["rollout (generation + tools + reward)", rollout_s, rollout_s / step, ""],
            ["update, plain GRPO", up_grpo, up_grpo / step, peaks["grpo"]],
            ["update, TAO-RL", up_tao, up_tao / step, peaks["tao"]],
            ["filters", filters_s, filters_s / step, ""],
            [f"token rows ({rows_n})", tokens_s, tokens_s / step, ""],
            ["TAO-RL overhead (target <= 3%)", over, over / step, ""],
            ["peak memory TAO / GRPO (target <= 1.05)", "", "", peaks["tao"] / peaks["grpo"] if peaks["grpo"] else "n/a"]]
    common.append_result("bench_overhead", ["part", "seconds", "share of step", "peak GB"], rows)
    tr.sandbox.close() if hasattr(tr.sandbox, "close") else None
    return 0


if __name__ == "__main__":
    sys.exit(main())
