"""Small helpers for the walkthrough notebooks (not dashboard figures: those live in taorl.viz).

Replayed rollouts. To look at filters and shaping on trajectories whose content we choose (a call
that fails, a void turn, a group where every rollout is right), `ReplayEngine` is an Engine whose
turns are hand-written text instead of samples. Everything around it is the real thing: the
multi-turn loop (taorl.rollout.loop.run_rollouts) stops each turn after its first code block, the
sandbox runs the code, the observation is rendered and tokenized as in training, the grader gives
the reward, and the log-probabilities of the replayed tokens come from a real model (teacher
forcing, log softmax(z / T)), so entropies and ratios are that model's.

    scripts = [[["Let me compute.\\n```python\\nprint(34 + 44)\\n```", "So \\\\boxed{78}."], ...], ...]
    trajs = replay_rollouts(problems, scripts, model, tokenizer, cfg, sandbox)

`scripts[g][i]` is the list of turn texts of rollout i of problem g (every problem has the same
number G of rollouts). A script that runs out of turns ends with an end-of-turn token (a void turn
if the loop still wanted one).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import torch

from taorl.rollout.engine import Completion, SamplingParams
from taorl.types import SEG_TOOL, SEGMENT_NAMES, Trajectory


class ReplayEngine:
    """Engine protocol (taorl.rollout.engine) over hand-written turns, scored by a real model."""

    def __init__(self, model, tokenizer, scripts: Sequence[Sequence[str]]):
        self.model = model
        self.tokenizer = tokenizer
        self.scripts = [list(s) for s in scripts]
        self._seen: list[list[int] | None] = [None] * len(self.scripts)  # last context + ids per script
        self._turn = [0] * len(self.scripts)
        self.eos = tokenizer.eos_token_id

    def sync(self, policy_model) -> None:
        self.model = policy_model

    def _assign(self, prompts: list[list[int]]) -> list[int]:
        """Which script each context continues. The loop keeps live trajectories in creation order,
        so a monotone scan over scripts whose last context is a prefix finds them."""
        if all(s is None for s in self._seen):
            if len(prompts) != len(self.scripts):
                raise ValueError(f"replay: first call has {len(prompts)} prompts for {len(self.scripts)} scripts")
            return list(range(len(prompts)))
        out, j = [], 0
        for ctx in prompts:
            while j < len(self.scripts):
                seen = self._seen[j]
                if seen is not None and len(ctx) > len(seen) and ctx[: len(seen)] == seen:
                    break
                j += 1
            if j == len(self.scripts):
                raise ValueError("replay: a context continues none of the scripts")
            out.append(j)
            j += 1
        return out

    def _turn_ids(self, j: int, k: int) -> tuple[list[int], bool]:
        """Token ids of turn k of script j (cut after its first code block) and whether it stops there."""
        from taorl.tools.parse import complete_block_end

        turns = self.scripts[j]
        if k >= len(turns):
            return [self.eos], False
        text = turns[k]
        end = complete_block_end(text)
        if end is not None:
            return self.tokenizer.encode(text[:end], add_special_tokens=False), True
        return self.tokenizer.encode(text, add_special_tokens=False) + [self.eos], False

    @torch.no_grad()
    def _logprobs(self, pairs: list[tuple[list[int], list[int]]], temperature: float) -> list[list[float]]:
        """log softmax(z / T) of each (context, ids) continuation, one right-padded forward for all;
        the output head is applied only at the positions that predict the replayed ids."""
        if not pairs:
            return []
        seqs = [ctx + ids for ctx, ids in pairs]
        L = max(len(x) for x in seqs)
        pad = self.eos if self.eos is not None else 0
        input_ids = torch.tensor([x + [pad] * (L - len(x)) for x in seqs])
        mask = torch.tensor([[1] * len(x) + [0] * (L - len(x)) for x in seqs])
        lm = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # peft
        body = getattr(lm, lm.base_model_prefix)
        hidden = body(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
        head = lm.get_output_embeddings()
        out = []
        for b, (ctx, ids) in enumerate(pairs):
            if not ids:
                out.append([])
                continue
            z = head(hidden[b, len(ctx) - 1: len(ctx) - 1 + len(ids)]).float()
            logp = torch.log_softmax(z / max(temperature, 1e-6), dim=-1)
            out.append(logp.gather(-1, torch.tensor(ids)[:, None]).squeeze(-1).tolist())
        return out

    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 max_tokens: Sequence[int] | None = None) -> list[Completion]:
        owners = self._assign(prompts)
        turns = []
        for n, (ctx, j) in enumerate(zip(prompts, owners)):
            ids, stops = self._turn_ids(j, self._turn[j])
            cap = params.max_tokens if max_tokens is None else min(params.max_tokens, int(max_tokens[n]))
            finish = "stop" if stops else "eos"
            if len(ids) > cap:
                ids, finish = ids[:cap], "length"
            self._seen[j] = list(ctx) + ids
            self._turn[j] += 1
            turns.append((ids, finish))
        lps = self._logprobs([(list(ctx), ids) for ctx, (ids, _) in zip(prompts, turns)], params.temperature)
        return [Completion(token_ids=ids, logprobs=lp, finish=finish) for (ids, finish), lp in zip(turns, lps)]


def replay_rollouts(problems: list, scripts: Sequence[Sequence[Sequence[str]]], model, tokenizer, cfg,
                    sandbox, *, seed: int = 0) -> list[Trajectory]:
    """Run the real rollout loop over hand-written turns (see the module docstring)."""
    from taorl.rollout.loop import run_rollouts

    if len(scripts) != len(problems):
        raise ValueError(f"replay: {len(scripts)} script groups for {len(problems)} problems")
    G = len(scripts[0])
    if any(len(s) != G for s in scripts):
        raise ValueError("replay: every problem needs the same number of scripted rollouts")
    engine = ReplayEngine(model, tokenizer, [turns for group in scripts for turns in group])
    return list(run_rollouts(engine, sandbox, problems, G, cfg.rollout, cfg.data, tool_enabled=True,
                             seed=seed, progress=False))


# ------------------------------------------------------------------------------------- display
def segments_frame(t: Trajectory, tokenizer) -> pl.DataFrame:
    """One row per contiguous run of (segment, turn): its text, token count and what it is."""
    rows = []
    start = 0
    n = len(t.response_ids)
    for k in range(1, n + 1):
        if k == n or t.segment[k] != t.segment[start] or t.turn[k] != t.turn[start]:
            ids = t.response_ids[start:k]
            rows.append({"turn": t.turn[start], "segment": SEGMENT_NAMES[t.segment[start]], "tokens": k - start,
                         "start": start, "trained": t.segment[start] != SEG_TOOL,
                         "text": tokenizer.decode(ids)})
            start = k
    return pl.DataFrame(rows, schema={"turn": pl.Int64, "segment": pl.String, "tokens": pl.Int64,
                                      "start": pl.Int64, "trained": pl.Boolean, "text": pl.String})


def calls_frame(trajs: Sequence[Trajectory]) -> pl.DataFrame:
    """One row per tool call: group, index, turn, status, ok, stdout / last stderr line, ms."""
    rows = [{"group": t.group, "index": t.index, "turn": c.turn, "status": c.status, "ok": c.ok,
             "code": c.code, "stdout": c.stdout.strip()[:80], "stderr_last": c.stderr_last[:80],
             "wall_ms": c.wall_ms}
            for t in trajs for c in t.tool_calls]
    return pl.DataFrame(rows, schema={"group": pl.Int64, "index": pl.Int64, "turn": pl.Int64,
                                      "status": pl.String, "ok": pl.Boolean, "code": pl.String,
                                      "stdout": pl.String, "stderr_last": pl.String, "wall_ms": pl.Float64})


def tokens_html(tokens: Sequence[str], segments: Sequence[str], values: Sequence[float | None] | None = None,
                vmax: float | None = None) -> str:
    """Plain token view: tool output boxed, model tokens shaded by `values` (e.g. entropy); every
    token escaped. The dashboard's richer view is taorl.viz's; this one needs nothing but the text."""
    vals = [v for v in (values or []) if v is not None]
    top = vmax if vmax is not None else (max(vals) if vals else 1.0) or 1.0
    parts = ['<div style="font-family:monospace;white-space:pre-wrap;line-height:1.7">']
    for k, (tok, seg) in enumerate(zip(tokens, segments)):
        text = html.escape(tok)
        v = values[k] if values is not None else None
        if seg == "tool":
            style = "border:1px solid #888;background:#eee;color:#555"
        elif seg == "prompt":
            style = "color:#999"
        else:
            alpha = 0.0 if v is None else min(max(v / top, 0.0), 1.0)
            style = f"background:rgba(220,80,40,{alpha:.2f})"
        title = "" if v is None else f' title="{v:.3f}"'
        parts.append(f'<span style="{style}"{title}>{text}</span>')
    parts.append("</div>")
    return "".join(parts)


def entropy_by_offset(tokens: pl.DataFrame, max_offset: int = 32) -> pl.DataFrame:
    """Mean entropy and count of model tokens by offset from the last tool return (token_frame
    columns `offset`, `entropy`, `segment`); offset -1 = model tokens before any tool output."""
    return (tokens.filter(pl.col("segment") == "model")
            .with_columns(pl.col("offset").fill_null(-1))
            .filter(pl.col("offset") <= max_offset)
            .group_by("offset").agg(pl.col("entropy").mean().alias("entropy"), pl.len().alias("n"))
            .sort("offset"))


# ------------------------------------------------------------------------------ demo material
def _codes(p) -> dict[str, str]:
    """Variants of a procedural problem's reference program, one per tool-call outcome."""
    code = p.meta["solution_code"]
    return {
        "ok": code,
        "syntax_error": code.replace("print(", "print((", 1),  # an unclosed parenthesis
        "runtime_error": "print(value_we_never_defined)",
        "no_output": code.replace("print(", "value = (", 1),  # runs, prints nothing
    }


def demo_scripts(problems: list) -> list[list[list[str]]]:
    """Four hand-written rollouts for each of the first four procedural problems, chosen so that one
    step meets every case the filters handle (the answers and programs come from the problems):

    group 0  mixed:      tool ok + right | syntax error + wrong | void turn | no tool + right
    group 1  all right:  ρ = 1, zero variance (criterion 2 drops it)
    group 2  all wrong:  ρ = 0, zero variance; failing tools
    group 3  mixed:      runtime error then right anyway | tool ok + wrong | no_output, then ok, right |
                         no tool + wrong
    """
    if len(problems) < 4:
        raise ValueError("demo_scripts: needs 4 procedural problems")
    out = []
    for g, p in enumerate(problems[:4]):
        c = _codes(p)
        right, wrong = p.answer, str(int(p.answer) + 1)

        def call(kind: str, c: dict = c) -> str:
            return f"Let me compute it.\n```python\n{c[kind]}\n```"

        def box(x: str) -> str:
            return f"\nSo the answer is \\boxed{{{x}}}."

        if g == 0:
            out.append([[call("ok"), box(right)], [call("syntax_error"), box(wrong)],
                        ["I am not sure where to start."], [f"In my head: \\boxed{{{right}}}."]])
        elif g == 1:
            out.append([[call("ok"), box(right)], [call("ok"), box(right)],
                        [f"Easy: \\boxed{{{right}}}."], [call("ok"), box(right)]])
        elif g == 2:
            out.append([[call("runtime_error"), box(wrong)], [call("syntax_error"), box(wrong)],
                        [call("no_output"), box(wrong)], [f"I guess \\boxed{{{wrong}}}."]])
        else:
            out.append([[call("runtime_error"), box(right)], [call("ok"), box(wrong)],
                        [call("no_output"), "Nothing printed; print it.\n```python\n" + c["ok"] + "\n```",
                         box(right)],
                        [f"Roughly \\boxed{{{wrong}}}."]])
    return out


def notebook_runs_dir(name: str) -> Path:
    """A fresh directory for this execution of notebook `name` (taorl.lab.notebook.execution_dir):
    <runs root>/<name>/<time>, the root being $TAORL_NOTEBOOK_RUNS or ./runs beside the notebook."""
    from taorl.lab.notebook import execution_dir

    return execution_dir(name)
