"""What TAO-RL's maths costs on top of plain GRPO, and what the chunked entropy saves in memory.

    .venv/bin/python benchmarks/bench_algo.py                 # B=16, T=1024, V=49152, D=64, CPU
    .venv/bin/python benchmarks/bench_algo.py --quick         # B=2, a few seconds

Time, measured side by side in one run (interleaved ABBA repetitions; the ratio of minima is the
headline figure, since other jobs on a shared CPU only ever add time), on the same batch:

    plain GRPO:  advantages -> chunked log-probs (no entropy) from hidden and lm_head -> PPO loss -> backward
    TAO-RL:      filters (criterion 1 weights + criterion 2 selection over a whole step of rollouts)
                 -> advantages -> chunked log-probs AND entropy from the same logits chunk
                 -> post-tool gate -> normalised entropy -> shaped advantage -> PPO loss -> backward

Both need the per-token log-probs, so both run the lm_head matmul and the softmax chunk by chunk;
the entropy is one more reduction over the chunk already in cache (Σ p s). The model body is not
part of either (hidden states are a leaf tensor standing in for it), so the overhead reported is
relative to the loss head alone, the most unfavourable denominator: in training the transformer
forward/backward comes on top of both.

Memory: peak RSS growth of a fresh subprocess computing the token entropy (and log-probs with
their backward) either naively (full [B, T, V] fp32 logits, log_softmax) or chunked.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from taorl.algo import (
    TokenBatch,
    filter_groups,
    group_advantages,
    logprobs_and_entropy_from_hidden,
    policy_loss,
    tao_loss,
    trajectory_weights,
)
from taorl.config import AlgoConfig
from taorl.types import ToolCall, Trajectory


def make_trajectories(B: int, T: int, V: int, g: torch.Generator) -> list[Trajectory]:
    """B rollouts of exactly T tokens: a 64-token prompt, then turns of model tokens (about 150)
    each followed by a 40-token observation, the last turn without a call."""
    out = []
    P = min(64, T // 4)
    for b in range(B):
        R = T - P
        seg, turn, calls = [], [], []
        k = 0
        while len(seg) < R:
            m = min(int(torch.randint(100, 200, (1,), generator=g)), R - len(seg))
            seg += [1] * m
            turn += [k] * m
            o = min(40, R - len(seg))
            if o > 0 and len(seg) + o < R:
                seg += [2] * o
                turn += [k] * o
                calls.append(ToolCall(turn=k, code="", status="ok" if (b + k) % 3 else "runtime_error"))
            k += 1
        out.append(Trajectory(group=b // 4, index=b % 4, problem_id=str(b), problem="", answer="",
                              prompt_ids=torch.randint(0, V, (P,), generator=g).tolist(),
                              response_ids=torch.randint(0, V, (R,), generator=g).tolist(), segment=seg,
                              turn=turn, sample_logprobs=(-torch.rand(R, generator=g) * 3).tolist(),
                              tool_calls=calls, n_turns=k))
    return out


def step_facts(N: int, G: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-rollout facts of a whole step (N groups x G rollouts) for the filters."""
    n_call = torch.randint(0, 4, (N, G), generator=g)
    return {"rewards": (torch.rand(N, G, generator=g) < 0.4).double(), "n_call": n_call,
            "n_ok": torch.minimum(n_call, torch.randint(0, 3, (N, G), generator=g)),
            "void": torch.rand(N, G, generator=g) < 0.05, "truncated": torch.rand(N, G, generator=g) < 0.05}


def plain_grpo(batch, hidden, W, facts, cfg, chunk):
    adv = group_advantages(facts["rewards"], cfg.adv, cfg.adv_eps)
    logp, _ = logprobs_and_entropy_from_hidden(hidden, W, batch.targets, 1.0, chunk, with_entropy=False)
    loss, _ = policy_loss(logp, batch.old_logprobs, batch.adv, batch.weight, cfg.loss)
    loss.backward()
    return adv


def tao_rl(batch, hidden, W, facts, cfg, chunk, B_prompts):
    tdec = trajectory_weights(facts["n_call"], facts["n_ok"], facts["void"], facts["truncated"], cfg.filter)
    filter_groups(facts["rewards"], facts["truncated"], cfg.filter.group, B_prompts, 0, stats_mask=tdec.stats_mask)
    adv = group_advantages(facts["rewards"], cfg.adv, cfg.adv_eps, tdec.stats_mask)
    logp, H = logprobs_and_entropy_from_hidden(hidden, W, batch.targets, 1.0, chunk)
    loss, _, _ = tao_loss(batch, logp, H, cfg)
    loss.backward()
    return adv


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ memory
MEM_CHILD = r"""
import json, resource, sys, torch
from taorl.algo import logprobs_and_entropy_from_hidden
B, T, V, D, chunk, mode, grad = json.loads(sys.argv[1])
g = torch.Generator().manual_seed(0)
h = torch.randn(B, T, D, generator=g).requires_grad_(grad)
W = (torch.randn(V, D, generator=g) * 0.05).requires_grad_(grad)
y = torch.randint(0, V, (B, T), generator=g)
def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024
base = rss_kb()
with torch.set_grad_enabled(grad):
    if mode == "naive":
        logits = (h @ W.T).float()                       # [B, T, V] fp32
        ls = torch.log_softmax(logits, -1)
        H = -(ls.exp() * ls).sum(-1)
        logp = ls.gather(-1, y[..., None]).squeeze(-1)
    else:
        logp, H = logprobs_and_entropy_from_hidden(h, W, y, 1.0, chunk)
    if grad:
        (logp.sum() + 0.1 * H.sum()).backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"peak_growth_mb": (peak - base) / 1024, "H_mean": float(H.mean())}))
"""


def peak_memory(B, T, V, D, chunk, mode, grad) -> dict:
    # large blocks straight from mmap, so freed chunks go back to the OS and RSS tracks live memory
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "1048576"}
    out = subprocess.run([sys.executable, "-c", MEM_CHILD, json.dumps([B, T, V, D, chunk, mode, grad])],
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--B", type=int, default=16, help="rollouts in the batch")
    ap.add_argument("--T", type=int, default=1024, help="tokens per rollout")
    ap.add_argument("--V", type=int, default=49152, help="vocabulary (SmolLM2)")
    ap.add_argument("--D", type=int, default=64, help="hidden size of the lm_head")
    ap.add_argument("--chunk", type=int, default=64, help="tokens per logits chunk")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--mem-B", type=int, default=2, help="batch for the memory runs (naive needs ~3 x B·T·V·4 bytes)")
    ap.add_argument("--groups", type=int, default=32, help="groups per step for the filters (x G=16 rollouts)")
    ap.add_argument("--quick", action="store_true", help="B=2, 2 reps")
    args = ap.parse_args()
    if args.quick:
        args.B, args.reps = 2, 2
    B, T, V, D, chunk = args.B, args.T, args.V, args.D, args.chunk
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; B={B} T={T} V={V} D={D} chunk={chunk}")

    g = torch.Generator().manual_seed(0)
    trajs = make_trajectories(B, T, V, g)
    batch = TokenBatch.from_trajectories(trajs, torch.randn(B, generator=g), torch.ones(B), 0)
    hidden = torch.randn(B, T, D, generator=g).requires_grad_(True)
    W = (torch.randn(V, D, generator=g) * 0.05).requires_grad_(True)
    facts = step_facts(args.groups, 16, g)
    cfg = AlgoConfig()
    frac_post = float((batch.segment == 1).float().mean())
    print(f"batch: {int(batch.loss_mask.sum())} loss tokens ({frac_post:.0%} of positions); "
          f"filters over {args.groups} x 16 rollouts per step")

    def zero():
        hidden.grad = None
        W.grad = None

    # pairs in ABBA order (plain, tao, tao, plain, ...): slow drifts of a shared machine cancel in
    # the per-pair ratio; the minimum over runs is the other robust estimate
    plain_t, tao_t = [], []
    run_plain = lambda: plain_grpo(batch, hidden, W, facts, cfg, chunk)
    run_tao = lambda: tao_rl(batch, hidden, W, facts, cfg, chunk, 16)
    zero()
    run_plain(), zero(), run_tao()  # warm-up
    for r in range(args.reps):
        order = (run_plain, run_tao) if r % 2 == 0 else (run_tao, run_plain)
        res = {}
        for fn in order:
            zero()
            res[fn] = timed(fn)
        plain_t.append(res[run_plain])
        tao_t.append(res[run_tao])
        print(f"  pair {r + 1}/{args.reps}: plain {plain_t[-1]:.3f} s, tao {tao_t[-1]:.3f} s", flush=True)
    # components of the TAO-RL extra, timed alone
    t_filters = statistics.median(timed(lambda: (
        trajectory_weights(facts["n_call"], facts["n_ok"], facts["void"], facts["truncated"], cfg.filter),
        filter_groups(facts["rewards"], facts["truncated"], cfg.filter.group, 16, 0))) for _ in range(5))
    with torch.no_grad():
        logp, H = logprobs_and_entropy_from_hidden(hidden, W, batch.targets, 1.0, chunk)
        fp, ft = [], []
        for _ in range(args.reps):
            fp.append(timed(lambda: logprobs_and_entropy_from_hidden(hidden, W, batch.targets, 1.0, chunk,
                                                                     with_entropy=False)))
            ft.append(timed(lambda: logprobs_and_entropy_from_hidden(hidden, W, batch.targets, 1.0, chunk)))
        t_loss_plain = min(timed(lambda: policy_loss(
            logp, batch.old_logprobs, batch.adv, batch.weight, cfg.loss)) for _ in range(5))
        t_loss_tao = min(timed(lambda: tao_loss(batch, logp, H, cfg)) for _ in range(5))

    ratios = [t / p for p, t in zip(plain_t, tao_t)]
    print(f"\n== time (fwd + bwd of the loss head), {args.reps} interleaved pairs ==")
    print(f"plain GRPO (log-probs + PPO loss):          min {min(plain_t):7.3f} s  median {statistics.median(plain_t):7.3f} s"
          f"  runs {[round(x, 3) for x in plain_t]}")
    print(f"TAO-RL (+ entropy, gate, shaping, filters): min {min(tao_t):7.3f} s  median {statistics.median(tao_t):7.3f} s"
          f"  runs {[round(x, 3) for x in tao_t]}")
    print(f"overhead: ratio of minima {100 * (min(tao_t) / min(plain_t) - 1):+.2f} %  (target <= 3 %); "
          f"median of per-pair ratios {100 * (statistics.median(ratios) - 1):+.2f} %")
    print("  (on a CPU shared with other jobs the minimum is the estimate least disturbed by them)")
    print("components (timed alone, minima):")
    print(f"  entropy in the fused forward: {min(ft) - min(fp):+.3f} s  (forward {min(fp):.3f} -> {min(ft):.3f} s)")
    print(f"  gate + normalise + shape:     {t_loss_tao - t_loss_plain:+.4f} s  (PPO loss alone {t_loss_plain:.4f} s)")
    print(f"  filters (one step):           {t_filters:.4f} s")

    mB = args.mem_B
    print(f"\n== peak memory growth, fresh subprocess, B={mB} T={T} V={V} D={D} ==")
    full = mB * T * V * 4 / 2**20
    print(f"(one fp32 [B, T, V] logits tensor = {full:.0f} MB)")
    for grad in (False, True):
        nv = peak_memory(mB, T, V, D, chunk, "naive", grad)
        ch = peak_memory(mB, T, V, D, chunk, "chunked", grad)
        what = "log-probs + entropy, fwd + bwd" if grad else "entropy forward (no grad)   "
        ratio = ch["peak_growth_mb"] / max(nv["peak_growth_mb"], 1e-9)
        print(f"{what}: naive {nv['peak_growth_mb']:8.1f} MB   chunked {ch['peak_growth_mb']:7.1f} MB   "
              f"ratio {ratio:.3f} (target <= 0.25); mean H {nv['H_mean']:.5f} vs {ch['H_mean']:.5f}")
    if B != mB:
        ch = peak_memory(B, T, V, D, chunk, "chunked", True)
        print(f"chunked at B={B}, fwd + bwd: {ch['peak_growth_mb']:.1f} MB (naive would hold >= "
              f"{3 * B * T * V * 4 / 2**20:.0f} MB: logits, log_softmax and its exp)")
    print(f"(chunked grows with chunk x V, not B x T: {chunk} x {V} x 4 B = {chunk * V * 4 / 2**20:.1f} MB per buffer)")


if __name__ == "__main__":
    main()
