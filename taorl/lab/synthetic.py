"""A realistic synthetic run directory, written with the trainer's own RunWriter.

For dashboard demos, dashboard tests and benchmarks: no model, no sandbox, seconds to write.
What is simulated is the *data*, not the bookkeeping: filters, advantages, gates and the shaped
advantage come from the real taorl.algo functions, so every invariant of a real run holds
(weights 0 exactly where a reason says so, Â from the group rewards, Ã = Â·(1 + a·g·Ĥ)).

The story a synthetic run tells, step s of S, progress u = s / (S - 1):

    accuracy       base p(u) = 0.25 → 0.62; each group (prompt) has its own difficulty,
                   logit p_g = logit p(u) + N(0, 1.8²), so many groups are all-right / all-wrong
    tool calls     0..5 per rollout, more and more successful over training; statuses with
                   realistic latencies (timeouts ≈ 5 s); a rollout whose calls all failed is
                   criterion 1's flag and rarely right
    void/truncated rare and shrinking; both give reward 0 and weight 0
    entropy        H_t = h(u) · e^{ε} · (0.6 in code) + A(u) · e^{-offset/τ} · e^{ε'}
                   a spike right after each tool return decaying with the offset; A(u) shrinks
                   over training when shaping is on (the post-tool tokens get resolved), much
                   less when it is off
    evals          every `eval_every` steps, the seven benchmarks (avg@16, pass@1, pass@16, CI)

Tokens are written for the first `token_trajectories` rollouts of kept groups (the trainer keeps
token rows only for trained rollouts, logging.token_traj_per_step of them).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
import zlib
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl

from taorl.errors import UserError
from taorl.store.schema import TOKENS, TRAJECTORIES
from taorl.types import OK_STATUSES, TOOL_STATUSES

# the seven benchmarks of the paper: n problems, Avg@16 of the TIR baseline and of TAO-RL / SimpleTIR
BENCHMARKS = {
    "aime24": (30, 0.106, 0.354, 0.333),
    "aime25": (30, 0.104, 0.240, 0.210),
    "math500": (500, 0.421, 0.788, 0.775),
    "olympiadbench": (675, 0.209, 0.470, 0.430),
    "amc23": (40, 0.289, 0.691, 0.688),
    "hmmt25": (30, 0.110, 0.183, 0.167),
    "minerva": (272, 0.080, 0.231, 0.212),
}
VOCAB = 49152
MAX_TURNS = 5
TAU = 12.0  # decay (tokens) of the post-tool entropy spike
# tool call statuses: probability at the start of training (ok grows, the failures shrink)
STATUS_P0 = {"ok": 0.66, "no_output": 0.05, "syntax_error": 0.09, "runtime_error": 0.13, "timeout": 0.03,
             "memory": 0.01, "output_truncated": 0.02, "sandbox_error": 0.01}
SYSTEM = "Solve the problem. You may write Python in a ```python code block; it is executed and you see its output. Put the final answer in \\boxed{}."
THOUGHTS = [
    "Let me compute this carefully.",
    "I will use Python to avoid arithmetic mistakes.",
    "First, let me set up the expression.",
    "The product is large, so a quick check with code is safer.",
    "Let me double-check the previous result.",
    "Hmm, that does not look right. Let me try again with a cleaner script.",
    "We need the exact value, not an approximation.",
    "Let me break the problem into two parts and compute each one.",
    "Now I add the remaining term.",
    "Wait, I should verify the intermediate value before going on.",
]
ERRORS = {
    "runtime_error": "NameError: name 'total' is not defined",
    "syntax_error": "SyntaxError: invalid syntax",
    "timeout": "TimeoutError: execution exceeded 5.0 s",
    "memory": "MemoryError",
    "sandbox_error": "sandbox error: worker died",
    "no_output": "",
}
_TOKEN_RE = re.compile(r"\n|[ \t]*[A-Za-z]+|[ \t]*\d{1,3}|[ \t]*[^\sA-Za-z\d]|[ \t]+")


def tokenize(text: str) -> list[str]:
    """A stand-in for BPE: words with their leading space, digits in threes, punctuation, newlines."""
    return _TOKEN_RE.findall(text)


_IDS: dict[str, int] = {}


def token_id(tok: str) -> int:
    i = _IDS.get(tok)
    if i is None:
        i = _IDS[tok] = zlib.crc32(tok.encode()) % VOCAB
    return i


def _curve(u: float, start: float, end: float, k: float = 3.0) -> float:
    """Saturating progress from start to end: start + (end - start)(1 - e^{-ku}) / (1 - e^{-k})."""
    return start + (end - start) * (1 - math.exp(-k * u)) / (1 - math.exp(-k))


def _status_probs(u: float) -> np.ndarray:
    p = np.array([STATUS_P0[s] for s in TOOL_STATUSES])
    fail = np.array([s not in OK_STATUSES for s in TOOL_STATUSES])
    p[fail] *= 1.0 - 0.6 * u  # failures become rarer
    return p / p.sum()


# ------------------------------------------------------------------------------------ rollouts
def _rollouts(rng: np.random.Generator, u: float, p_group: list[float], problems: list[tuple[int, int, int]],
              G: int) -> list[dict]:
    """Per-rollout facts and turns as (segment, turn, text) pieces, for G rollouts of each problem.
    The random draws of the whole step are made up front as arrays (fast), the texts in a loop."""
    n = len(problems) * G
    n_call = rng.choice(6, size=n, p=_norm([0.12 - 0.08 * u, 0.45, 0.25 + 0.05 * u, 0.12, 0.05, 0.02]))
    total = int(n_call.sum())
    status_idx = rng.choice(len(TOOL_STATUSES), size=total, p=_status_probs(u))
    ok_ms = rng.lognormal(math.log(35.0), 0.6, total)
    err_ms = rng.lognormal(math.log(18.0), 0.5, total)
    to_ms = 5000.0 + rng.uniform(0, 40, total)
    trunc = rng.random(n) < 0.06 - 0.045 * u
    void = ~trunc & (rng.random(n) < 0.07 - 0.055 * u)
    luck, wrong_out = rng.random(n), rng.random(total)
    thoughts = rng.integers(0, len(THOUGHTS), size=(total + n, 3))
    n_thoughts = rng.integers(1, 4, total + n)
    offsets = rng.integers(1, 500, n)
    ramble = rng.integers(0, len(THOUGHTS), size=(n, 40))
    out, c0 = [], 0
    for k in range(n):
        a, b, c = problems[k // G]
        ans = a * b + c
        nc = int(n_call[k])
        statuses = [TOOL_STATUSES[i] for i in status_idx[c0:c0 + nc]]
        ms = [float(to_ms[c0 + j] if s == "timeout" else ok_ms[c0 + j] if s in OK_STATUSES else err_ms[c0 + j])
              for j, s in enumerate(statuses)]
        n_ok = sum(s in OK_STATUSES for s in statuses)
        finish = ("max_turns" if nc == 5 else "length" if trunc[k] else "void" if void[k] else "answer")
        p = p_group[k // G] * (0.3 if (nc > 0 and n_ok == 0) else 1.0)
        reward = 1.0 if finish == "answer" and luck[k] < p else 0.0
        pieces: list[tuple[str, int, str]] = []
        for j in range(nc):
            thought = " ".join(THOUGHTS[i] for i in thoughts[c0 + j, : n_thoughts[c0 + j]])
            code = f"x = {a} * {b}\nprint(x + {c})" if j == 0 else f"print({a} * {b} + {c})"
            pieces.append(("model", j, f"{thought}\n```python\n{code}\n```"))
            s = statuses[j]
            if s in OK_STATUSES:
                res = str(ans) if reward or wrong_out[c0 + j] < 0.6 else str(ans + 1 + int(wrong_out[c0 + j] * 97))
                if s == "output_truncated":
                    res = (res + " ") * 40
            else:
                res = ERRORS[s]
            pieces.append(("tool", j, f"\nCode execution result: {res}\n"))
        c0 += nc
        if finish == "answer":
            shown = ans if reward else ans + int(offsets[k])
            t = thoughts[total + k]
            thought = THOUGHTS[4 + t[0] % 6] + " " if n_thoughts[total + k] > 1 else ""
            pieces.append(("model", nc, f"{thought}The result is {shown}.\nSo the answer is \\boxed{{{shown}}}."))
        elif finish == "void":
            pieces.append(("model", nc, "I think we need to reconsider the approach and think about it more."))
        elif finish == "length":
            pieces.append(("model", nc, " ".join(THOUGHTS[i] for i in ramble[k])))
        out.append({"n_call": nc, "n_ok": n_ok, "statuses": statuses, "call_ms": ms, "void": bool(void[k]),
                    "truncated": bool(trunc[k]), "finish": finish, "reward": reward,
                    "n_turns": nc + (0 if finish == "max_turns" else 1), "pieces": pieces,
                    "answer_info": str(ans) if reward else ("wrong" if finish == "answer" else "")})
    return out


def _norm(p: list[float]) -> np.ndarray:
    x = np.maximum(np.asarray(p, dtype=float), 1e-6)
    return x / x.sum()


def _tokens_of(pieces: list[tuple[str, int, str]]) -> tuple[list[str], list[str], list[int]]:
    toks, segs, turns = [], [], []
    for seg, turn, text in pieces:
        t = tokenize(text)
        toks += t
        segs += [seg] * len(t)
        turns += [turn] * len(t)
    return toks, segs, turns


# -------------------------------------------------------------------------------- token rows
def _token_rows(rng, traj: int, prompt_toks: list[str], toks, segs, turns, u: float, shaping: bool,
                adv: float, weight: float, coef: float, out: dict[str, list]) -> dict[str, float]:
    """Append one rollout's token rows to `out` (column lists); return its entropy sums."""
    n = len(toks)
    seg = np.array(segs)
    model = seg == "model"
    turn = np.array(turns)
    # offset: model tokens since the last tool return (None before the first one)
    offset = np.full(n, -1)
    seen, k = False, 0
    for i in range(n):
        if seg[i] == "tool":
            seen, k = True, 0
        else:
            if seen:
                offset[i] = k
            k += 1
    # code-block tokens (between ``` fences) are more certain
    in_code = np.zeros(n, dtype=bool)
    inside = False
    for i, t in enumerate(toks):
        if t.strip() == "`" and i + 2 < n and toks[i + 1] == "`" and toks[i + 2] == "`":
            inside = not inside
        in_code[i] = inside and model[i]
    # H_t = h(u)·e^ε·(0.6 in code) + A(u)·e^{-offset/τ}·e^ε'
    h = 0.55 - 0.2 * u
    amp = 1.6 * (1 - 0.6 * u) if shaping else 1.6 * (1 - 0.1 * u)
    H = h * np.exp(rng.normal(0, 0.5, n)) * np.where(in_code, 0.6, 1.0)
    post = (offset >= 0) & model
    H = H + np.where(post, amp * np.exp(-np.maximum(offset, 0) / TAU) * np.exp(rng.normal(0, 0.3, n)), 0.0)
    H = np.where(model, H, np.nan)
    lp = -H * rng.uniform(0.3, 1.2, n) - 0.01
    lp_train = lp + rng.normal(0, 0.02, n)
    # post-tool gate: model tokens of turn k+1 when turn k ran a code block (every turn but the
    # last has one in this simulation, so: model tokens of turns >= 1)
    gate = (model & (turn >= 1)).astype(float) if shaping else np.zeros(n)
    # Ĥ over the rollout's loss tokens (model tokens), σ population std, := 1 with < 2 tokens
    Hm = H[model]
    mu = Hm.mean() if Hm.size else 0.0
    sd = Hm.std() if Hm.size >= 2 else 1.0
    h_norm = np.where(model, (np.nan_to_num(H) - mu) / (sd + 1e-8), 0.0)
    adv_t = np.where(model, adv, 0.0)
    shaped = adv_t * (1.0 + coef * gate * h_norm)  # Ã = Â·(1 + a·g·Ĥ)
    w_t = np.where(model, weight, 0.0)

    P = len(prompt_toks)
    out["traj"] += [traj] * (P + n)
    out["pos"] += list(range(P + n))
    out["turn"] += [-1] * P + turns
    out["token_id"] += [token_id(t) for t in prompt_toks] + [token_id(t) for t in toks]
    out["token"] += prompt_toks + toks
    out["segment"] += ["prompt"] * P + segs
    out["offset"] += [None] * P + [None if o < 0 else int(o) for o in offset]
    nan = [None] * P
    out["entropy"] += nan + [None if not m else float(x) for m, x in zip(model, H)]
    out["logprob_sample"] += nan + [None if not m else float(x) for m, x in zip(model, lp)]
    out["logprob_train"] += nan + [None if not m else float(x) for m, x in zip(model, lp_train)]
    out["advantage"] += nan + adv_t.tolist()
    out["shaped_advantage"] += nan + shaped.tolist()
    out["weight"] += [0.0] * P + w_t.tolist()
    out["gate"] += [0.0] * P + gate.tolist()
    other = model & ~post
    g = gate > 0
    f = 1.0 + coef * h_norm[g]
    return {"h_sum": float(np.nansum(H)), "h_n": int(model.sum()),
            "post_sum": float(H[post].sum()), "post_n": int(post.sum()),
            "other_sum": float(H[other].sum()), "other_n": int(other.sum()),
            "f_sum": float(f.sum()), "f_sq": float((f ** 2).sum()), "f_n": int(g.sum()),
            "f_min": float(f.min()) if f.size else 1.0, "f_max": float(f.max()) if f.size else 1.0}


# ---------------------------------------------------------------------------------------- evals
def _eval_rows(rng, u: float, shaping: bool) -> list[dict]:
    rows = []
    for bench, (n, base, tao, simple) in BENCHMARKS.items():
        v = _curve(u, base, tao if shaping else simple) + rng.normal(0, 0.01)
        v = float(min(max(v, 0.0), 1.0))
        values = {"avg@16": v, "pass@1": v, "pass@16": 1 - (1 - v) ** 5}
        for metric, x in values.items():
            half = 1.96 * math.sqrt(max(x * (1 - x), 1e-4) / n)
            rows.append({"benchmark": bench, "metric": metric, "value": x, "ci_low": max(0.0, x - half),
                         "ci_high": min(1.0, x + half), "n_problems": n, "n_samples": 16})
    return rows


# ----------------------------------------------------------------------------------------- main
def write_synthetic_run(run_dir: str | Path, steps: int = 50, trajectories_per_step: int = 64,
                        token_trajectories: int = 16, group_size: int = 8, seed: int = 0,
                        shaping: bool = True, eval_every: int | None = None, finish: bool = True,
                        progress: bool = False, durable: bool = False) -> Path:
    """Write a synthetic run of `steps` steps to `run_dir` (which must not hold a run yet).

    trajectories_per_step = groups × group_size (oversampled ×2: half the groups at most train);
    token rows for the first `token_trajectories` rollouts of kept groups; evals every
    `eval_every` steps (default: about ten evals) and at the last step. finish=False leaves the run
    "running" (as a live run looks). durable=False skips the writer's fsyncs (synthetic data needs
    no crash safety; the atomic renames and the manifest-last order are unchanged). Returns the
    run directory.
    """
    with contextlib.nullcontext() if durable else mock.patch("os.fsync", lambda fd: None):
        return _write(Path(run_dir), steps, trajectories_per_step, token_trajectories, group_size, seed,
                      shaping, eval_every, finish, progress)


def _write(run_dir: Path, steps: int, trajectories_per_step: int, token_trajectories: int, group_size: int,
           seed: int, shaping: bool, eval_every: int | None, finish: bool, progress: bool) -> Path:
    import torch

    from taorl.algo.step import decide
    from taorl.config import Config, apply_overrides
    from taorl.store.writer import RunWriter
    from taorl.train.metrics import filter_metrics

    if steps < 1 or group_size < 2 or trajectories_per_step < group_size:
        raise UserError(f"synthetic run: need steps >= 1, group_size >= 2 and trajectories_per_step >= "
                        f"group_size (got {steps}, {group_size}, {trajectories_per_step})")
    if trajectories_per_step % group_size:
        raise UserError(f"synthetic run: trajectories_per_step ({trajectories_per_step}) must be a "
                        f"multiple of group_size ({group_size})")
    G = group_size
    N = trajectories_per_step // G
    B = max(1, N // 2)
    cfg = apply_overrides(Config(), [
        f"rollout.group_size={G}", f"rollout.batch_prompts={B}", "rollout.oversample=2.0",
        f"algo.shaping.enabled={str(shaping).lower()}", f"logging.token_traj_per_step={token_trajectories}",
        f"train.steps={steps}", f"train.seed={seed}",
        "model.name=synthetic", f"train.lr={3e-6 if shaping else 1e-6}"])
    cfg.logging.run_name = run_dir.name
    coef = cfg.algo.shaping.coef
    eval_every = eval_every or max(1, steps // 10)
    rng = np.random.default_rng(seed)
    writer = RunWriter(run_dir, cfg, extra={"model": "synthetic", "device": "none", "synthetic": True})
    wall = 0.0
    prompt_toks = tokenize(SYSTEM + "\n")
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"synth {Path(run_dir).name}", unit="step")
    for step in it:
        u = step / max(steps - 1, 1)
        base = _curve(u, 0.25, 0.62)
        # ---- rollouts
        abc = [tuple(int(x) for x in row) for row in rng.integers([12, 12, 1], [999, 999, 999], size=(N, 3))]
        p_group = (1 / (1 + np.exp(-(math.log(base / (1 - base)) + rng.normal(0, 1.8, N))))).tolist()
        probs = [(f"proc-{step:05d}-{g:03d}", f"What is {a} * {b} + {c}?", str(a * b + c))
                 for g, (a, b, c) in enumerate(abc)]
        rolls = _rollouts(rng, u, p_group, abc, G)
        toks = [_tokens_of(r["pieces"]) for r in rolls]

        def grid(key, dtype, rolls=rolls):
            return torch.tensor([r[key] for r in rolls], dtype=dtype).view(N, G)

        rewards, truncated = grid("reward", torch.float64), grid("truncated", torch.bool)
        # ---- filters -> advantages -> weights: the trainer's decision (taorl.algo.step.decide)
        dec = decide(rewards, grid("n_call", torch.long), grid("n_ok", torch.long), grid("void", torch.bool),
                     truncated, cfg.algo, B, seed * 100_003 + step)
        tdec, gdec, kept, adv, weights = dec.traj, dec.groups, dec.kept, dec.adv, dec.weights
        group_reason = dec.group_reasons
        traj_reason = [tdec.reasons[k // G][k % G] if kept[k // G] else group_reason[k // G]
                       for k in range(N * G)]
        token_set = [k for k in range(N * G) if kept[k // G]][:token_trajectories]
        token_lookup = set(token_set)
        # ---- tables
        groups = pl.DataFrame({
            "group": list(range(N)), "problem_id": [p[0] for p in probs], "problem": [p[1] for p in probs],
            "answer": [p[2] for p in probs], "rewards": rewards.tolist(),
            "pass_rate": gdec.pass_rate.tolist(), "reward_std": gdec.std.tolist(),
            "n_untruncated": (~truncated).sum(-1).tolist(), "kept": kept.tolist(), "reason": group_reason,
            "duplicates": [int(d) if kept[g] else 0 for g, d in enumerate(list(gdec.duplicates))],
        })
        seg_counts = [(len(t[0]), sum(s == "model" for s in t[1])) for t in toks]
        traj = pl.DataFrame({
            "traj": list(range(N * G)), "group": [k // G for k in range(N * G)],
            "index": [k % G for k in range(N * G)], "problem_id": [probs[k // G][0] for k in range(N * G)],
            "reward": [r["reward"] for r in rolls], "reward_info": [r["answer_info"] for r in rolls],
            "n_turns": [r["n_turns"] for r in rolls], "n_call": [r["n_call"] for r in rolls],
            "n_ok": [r["n_ok"] for r in rolls], "statuses": [r["statuses"] for r in rolls],
            "call_ms": [r["call_ms"] for r in rolls], "void": [r["void"] for r in rolls],
            "truncated": [r["truncated"] for r in rolls], "finish": [r["finish"] for r in rolls],
            "length": [n for n, _ in seg_counts], "n_model_tokens": [m for _, m in seg_counts],
            "advantage": adv.flatten().tolist(), "weight": weights.flatten().tolist(), "reason": traj_reason,
            "group_kept": [bool(kept[k // G]) for k in range(N * G)],
            "has_tokens": [k in token_lookup for k in range(N * G)],
            "text": ["".join(p[2] for p in r["pieces"]) for r in rolls],
        }, schema=TRAJECTORIES)
        cols: dict[str, list] = {c: [] for c in TOKENS}
        acc = {}
        for k in token_set:
            ptoks = prompt_toks + tokenize(probs[k // G][1] + "\n")
            s = _token_rows(rng, k, ptoks, *toks[k], u, shaping, float(adv.flatten()[k]),
                            float(weights.flatten()[k]), coef, cols)
            for key, v in s.items():
                if key == "f_min":
                    acc[key] = min(acc.get(key, v), v)
                elif key == "f_max":
                    acc[key] = max(acc.get(key, v), v)
                else:
                    acc[key] = acc.get(key, 0) + v
        tokens = pl.DataFrame(cols, schema=TOKENS)
        # ---- metrics (TRL/verl names where they exist, tao/ for ours)
        n = len(rolls)
        calls = sum(r["n_call"] for r in rolls)
        n_ok = sum(r["n_ok"] for r in rolls)
        lengths = [x for x, _ in seg_counts]
        model_tok = sum(m for _, m in seg_counts)
        gen_s = model_tok / (2400.0 * (1 + 0.1 * rng.normal()))
        tool_s = sum(sum(r["call_ms"]) for r in rolls) / 1000 / 8
        train_s = 0.004 * model_tok * (1 + 0.05 * rng.normal())
        m = {
            "reward": float(rewards.mean()), "accuracy": float((rewards >= 1).double().mean()),
            "tools/call_frequency": calls / n, "tools/call_rate": sum(r["n_call"] > 0 for r in rolls) / n,
            "tools/success_rate": n_ok / calls if calls else 0.0,
            "completions/mean_length": sum(lengths) / n, "completions/max_length": float(max(lengths)),
            "completions/mean_model_tokens": model_tok / n,
            "completions/clipped_ratio": sum(r["truncated"] for r in rolls) / n,
            "tao/void_rate": sum(r["void"] for r in rolls) / n, "turns/mean": sum(r["n_turns"] for r in rolls) / n,
        }
        m.update(filter_metrics(group_reason, traj_reason))
        if acc.get("h_n"):
            m["entropy"] = acc["h_sum"] / acc["h_n"]
        if acc.get("post_n"):
            m["tao/post_tool_entropy"] = acc["post_sum"] / acc["post_n"]
        if acc.get("other_n"):
            m["tao/other_entropy"] = acc["other_sum"] / acc["other_n"]
        fn = acc.get("f_n", 0)
        fmean = acc["f_sum"] / fn if fn else 1.0
        m.update({
            "tao/shaping_factor_mean": fmean,
            "tao/shaping_factor_std": math.sqrt(max(acc["f_sq"] / fn - fmean ** 2, 0.0)) if fn else 0.0,
            "tao/shaping_factor_min": acc.get("f_min", 1.0) if fn else 1.0,
            "tao/shaping_factor_max": acc.get("f_max", 1.0) if fn else 1.0,
            "clip_ratio/high_mean": float(abs(rng.normal(0.004, 0.002))),
            "clip_ratio/low_mean": float(abs(rng.normal(0.002, 0.001))),
            "clip_ratio/dual": float(abs(rng.normal(0.0003, 0.0002))),
            "ratio_mean": float(1 + rng.normal(0, 0.002)),
            "pg_loss": float(rng.normal(0, 0.02)), "loss": float(rng.normal(0, 0.02)),
            "grad_norm": float(rng.lognormal(math.log(0.25), 0.35)) * (4 if rng.random() < 0.02 else 1),
            "lr": cfg.train.lr, "sampling/logp_diff_mean": float(abs(rng.normal(0.012, 0.002))),
            "train/n_updates": float(max(1, math.ceil(int(kept.sum()) / cfg.train.mini_batch_prompts))),
            "train/trained_rollouts": float(int(kept.sum()) * G),
            "perf/gen_s": gen_s, "perf/tool_s": tool_s, "perf/reward_s": 0.002 * n,
            "perf/rollout_s": gen_s + tool_s + 0.002 * n, "perf/train_s": train_s,
            "perf/tokens_per_s": model_tok / gen_s, "perf/log_s": 0.05,
        })
        m["grad_norm_max"] = m["grad_norm"] * 1.3
        m["perf/step_s"] = m["perf/rollout_s"] + train_s + 0.05
        wall += m["perf/step_s"]
        last = step == steps - 1
        evals = _eval_rows(rng, u, shaping) if (step % eval_every == 0 or last) else None
        # simulated clock: wall_s of this step = the simulated seconds since the start
        writer.manifest["started_wall"] = time.time() - wall
        writer.write_step(step, metrics=m, groups=groups, trajectories=traj, tokens=tokens, evals=evals)
    if finish:
        writer.finish()
    return Path(run_dir)


def synth_main(args) -> int:
    """`taorl synth OUT [--steps --trajectories --token-trajectories --seed --shaping on|off]`."""
    out = Path(args.out)
    if (out / "manifest.json").exists():
        raise UserError(f"{out}: already holds a run (manifest.json exists); choose another directory")
    t0 = time.perf_counter()
    write_synthetic_run(out, steps=args.steps, trajectories_per_step=args.trajectories,
                        token_trajectories=args.token_trajectories, seed=args.seed,
                        shaping=args.shaping == "on", progress=True)
    print(f"wrote a synthetic run ({args.steps} steps × {args.trajectories} rollouts) to {out} "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"view it: taorl dashboard {out}")
    return 0
