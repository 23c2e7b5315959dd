"""Writes the numbered notebooks (stored without outputs). Edit the cells here, then run
`.venv/bin/python notebooks/_build.py`. Notebooks call taorl only: their logic lives in
taorl/lab/ablation.py, taorl/lab/walkthrough.py, taorl.viz and taorl.store."""

import os
from pathlib import Path

import nbformat as nbf

HERE = Path(os.environ.get("TAORL_NB_OUT") or Path(__file__).parent)  # tests build into a temp dir


# Measured wall time of one execution on PROFILE = "laptop" (idle 2-core CPU, primed SmolLM2 already
# cached; 07 primes a second seed's model itself, about 90 s): docs/notebooks/timings.json, made by
# notebooks/_publish.py. None: not measured yet.
LAPTOP_RUNTIME: dict[str, str | None] = {
    "00": "about 25 s", "01": "about 20 s", "02": "about 30 s", "03": "about 45 s", "04": "about 50 s",
    "05": "about 10 s", "06": "about 2 minutes", "07": "about 3.5 minutes", "08": "about 1.5 minutes", "10": "about 30 s",
}


def header(title, learn, tiny, full, end):
    laptop = LAPTOP_RUNTIME.get(title[:2])
    laptop = f"{laptop} (measured)" if laptop else "a few minutes (not measured yet)"
    return (f"# {title}\n\n**What you will learn.** {learn}\n\n"
            f"**Runtime.** `PROFILE = \"tiny\"` (random tiny model, for CI): {tiny} on a 2-core CPU. "
            f"`PROFILE = \"laptop\"` (format-primed SmolLM2-135M, real tool calls): {laptop} on a 2-core CPU, "
            f"plus about 90 s once (idle 2-core CPU) to prime the model if `make train` has not cached it yet. "
            f"`PROFILE = \"full\"`: {full}.\n\n"
            f"**What you should see at the end.** {end}\n\n"
            f"Each execution writes its runs to a new folder `runs/<notebook>/<time>/` beside this notebook, so "
            f"\"restart kernel and run all\" can be repeated; the same seed gives the same numbers.")


PARAMS = ('PROFILE = "tiny"  # "tiny": random tiny model, seconds (CI) | "laptop": format-primed SmolLM2 '
          'on a CPU, minutes | "full": GPU, paper-scale config')
BANNER = """
from taorl.lab.notebook import profile_banner
print(profile_banner(PROFILE))
"""


def notebook(name, cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out = []
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            out.append(nbf.v4.new_markdown_cell(src))
        else:
            c = nbf.v4.new_code_cell(src)
            if kind == "params":
                c.metadata["tags"] = ["parameters"]
            out.append(c)
            if kind == "params":  # which profile produced the outputs, right under the parameters
                out.append(nbf.v4.new_code_cell(BANNER.strip("\n")))
    nb.cells = out
    for c in nb.cells:  # stable ids keep diffs small
        c.pop("id", None)
    nb.nbformat_minor = 4
    nbf.write(nb, HERE / f"{name}.ipynb")


# Common microscope set-up: the demo batch replayed through the real loop + sandbox + grader.
REPLAY = '''
from taorl.lab.ablation import profile_config, decide, token_frame
from taorl.data.procedural import generate
from taorl.tools import Sandbox
from taorl.lab.notebook import profile_policy
from taorl.lab.walkthrough import demo_scripts, replay_rollouts

short = ["rollout.max_turns=3", "rollout.max_turn_tokens=64", "rollout.max_response_tokens=256",
         "rollout.group_size=4", "rollout.batch_prompts=4", "tool.timeout_s=2"]
if PROFILE == "tiny":   # longer observations than tiny.yaml's; laptop keeps the ones it was primed with
    short.append("rollout.obs_max_tokens=32")
cfg = profile_config(PROFILE, short)
policy = profile_policy(cfg)   # scores the replayed tokens (log-probs, entropies); primed weights on "laptop"
problems = generate(4, difficulty=0, seed=0)
with Sandbox(cfg.tool) as sandbox:
    trajs = replay_rollouts(problems, demo_scripts(problems), policy.model, policy.tokenizer, cfg, sandbox)
print(f"{len(trajs)} rollouts of {len({t.problem_id for t in trajs})} problems, model {cfg.model.name}")
'''

# ------------------------------------------------------------------------------------------ 00
notebook("00_quickstart", [
    ("md", header("00 · Quickstart",
                  "how one tool-integrated rollout is built (model turn → Python → observation → answer), "
                  "what the policy writes when it samples on its own, what a run directory holds after a "
                  "two-step training run, and how to open the dashboard on it.",
                  "about 40 s", "a few minutes on one GPU",
                  "a rollout drawn token by token with the tool output boxed, four sampled rollouts with their "
                  "tool calls and entropies, a two-step run's metrics table, and the `taorl dashboard` command.")),
    ("params", PARAMS),
    ("md", ("## One rollout with a tool call\n\nThe policy (here the profile's model) reads the problem; "
           "the turn below is replayed text so that it surely holds a code block, but everything else is the "
           "real thing: the rollout loop stops the turn after the code block, the sandbox runs the code, the "
           "observation is appended as tokens, the grader scores the final `\\boxed{}`.")),
    ("code", """
from IPython.display import HTML, display
import polars as pl
from taorl.lab.ablation import profile_config, decide, token_frame
from taorl.data.procedural import generate
from taorl.tools import Sandbox
from taorl.lab.notebook import profile_policy
from taorl.lab.walkthrough import replay_rollouts, segments_frame
from taorl.viz import token_html

cfg = profile_config(PROFILE, ["rollout.group_size=2", "rollout.batch_prompts=1", "rollout.max_turn_tokens=64"])
policy = profile_policy(cfg)    # the primed SmolLM2 on "laptop" (primed once, then read from the cache)
problem = generate(1, difficulty=0, seed=0)[0]
code = problem.meta["solution_code"]
turns = [f"Let me compute it.\\n```python\\n{code}\\n```", f"\\nSo the answer is \\\\boxed{{{problem.answer}}}."]
with Sandbox(cfg.tool) as sandbox:
    trajs = replay_rollouts([problem], [[turns, turns]], policy.model, policy.tokenizer, cfg, sandbox)
t = trajs[0]
print(problem.problem, "->", problem.answer)
print("tool calls:", [(c.status, c.stdout.strip()) for c in t.tool_calls], "| reward:", t.reward)
segments_frame(t, policy.tokenizer)
"""),
    ("code", """
dec = decide(trajs, cfg, batch_prompts=1)
tokens = token_frame(trajs, dec, cfg, policy)
display(HTML(token_html(tokens.filter(pl.col("traj") == 0), "entropy")))
assert t.n_call == 1 and t.tool_calls[0].status == "ok" and t.reward == 1.0
assert tokens.filter(pl.col("segment") == "tool")["entropy"].null_count() == tokens.filter(pl.col("segment") == "tool").height
"""),
    ("md", ("Hover a token for its entropy, log-prob, advantage, gate and weight. The boxed grey span is the "
           "tool's output: it is part of the context but never trained on.")),
    ("md", ("## Rollouts the policy writes itself\n\nNow the policy samples, with the profile's own turn "
           "lengths and temperature: four rollouts of one problem at the training difficulty. On `laptop` the "
           "primed SmolLM2 writes Python, some calls fail and the model reads the error; on `tiny` the random "
           "model writes random tokens (void turns, no calls).")),
    ("code", """
from taorl.rollout.hf import HFEngine
from taorl.rollout.loop import run_rollouts
from taorl.lab.walkthrough import calls_frame

scfg = profile_config(PROFILE, ["rollout.batch_prompts=1"])
engine = HFEngine(policy.model, policy.tokenizer, gen_batch_size=scfg.rollout.gen_batch_size)
asked = generate(1, difficulty=scfg.data.difficulty, seed=1)
with Sandbox(scfg.tool) as sandbox:
    sampled = run_rollouts(engine, sandbox, asked, scfg.rollout.group_size, scfg.rollout, scfg.data,
                           tool_enabled=True, seed=scfg.train.seed, progress=False)
print(asked[0].problem, "->", asked[0].answer)
pl.DataFrame([{"rollout": s.index, "reward": s.reward, "tool calls": s.n_call, "successful calls": s.n_ok,
               "void turn": s.void, "finish": s.finish, "graded": s.reward_info[:40]} for s in sampled])
"""),
    ("code", """
sdec = decide(sampled, scfg, batch_prompts=1)
stokens = token_frame(sampled, sdec, scfg, policy)
pick = max(sampled, key=lambda s: (s.n_call, -s.index))       # the rollout with the most tool calls
print(f"rollout {pick.index}: {pick.n_call} tool calls, reward {pick.reward}; "
      f"group kept: {sdec.groups['kept'][0]} ({sdec.groups['reason'][0]})")
display(HTML(token_html(stokens.filter(pl.col("traj") == pick.index), "entropy")))
calls_frame(sampled).drop("code")
"""),
    ("md", ("On `laptop`, look at the first tokens after a tool's output (the turn that reads it): their entropy "
           "is where TAO-RL's post-tool shaping acts (notebooks 05 and 06).")),
    ("md", ("## A two-step training run\n\n`taorl train configs/tiny.yaml` does the same from the shell "
           "(`configs/default.yaml` for the laptop profile's model).")),
    ("code", """
from taorl.store import open_run
from taorl.train.trainer import Trainer
from taorl.lab.walkthrough import notebook_runs_dir

run_dir = notebook_runs_dir("00") / "quickstart"     # a new folder for every execution
# laptop: sample twice the prompts a step trains on, so criterion 2 can find groups with mixed rewards
cfg_run = profile_config(PROFILE, ["train.steps=2", *{"laptop": ["rollout.oversample=2.0"]}.get(PROFILE, [])])
Trainer(cfg_run, run_dir).run()
run = open_run(run_dir)
print(run)
reasons = run.groups().group_by("kept", "reason").len().sort("kept", "reason")
print("groups by criterion 2's decision (reason null = kept):", reasons.rows())
run.metrics().select("step", "reward", "tools/call_rate", "tools/success_rate", "tao/groups_kept", "tao/void_rate",
                     "loss", "grad_norm")
"""),
    ("code", """
assert run.status == "finished" and run.last_step == 1
assert run.trajectories().height == 2 * cfg_run.rollout.group_size * int(cfg_run.rollout.batch_prompts * cfg_run.rollout.oversample + 0.999)
print("Open the dashboard on it (in a terminal, not here):")
print(f"    taorl dashboard {run_dir.parent}")
"""),
    ("md", ("**What this shows.** A trajectory is the prompt, then model tokens and observation tokens "
           "interleaved turn by turn; a run directory is a set of Parquet tables (metrics, groups, "
           "trajectories, tokens) that the dashboard and these notebooks read. On `tiny` the random model "
           "writes no code (void turns, zero rewards, nothing to learn from): it only proves the plumbing. On "
           "`laptop` the primed model calls the tool and groups whose rollouts all agree (all right or all "
           "wrong) are dropped by criterion 2; only mixed groups give a loss and a gradient. The next notebooks "
           "take those filters one at a time.")),
])

# ------------------------------------------------------------------------------------------ 01
notebook("01_anatomy_of_a_tir_trajectory", [
    ("md", header("01 · Anatomy of a TIR trajectory",
                  "the segments of a tool-integrated trajectory (prompt, model turns, observations), its loss "
                  "mask, the statuses a tool call can end with, and the post-tool gate g_t (spec §1, §3).",
                  "about 40 s", "about 1 minute",
                  "a table of call statuses from the real sandbox, a trajectory's segments, and the gate lit "
                  "exactly on the model tokens of the turn after a code block.")),
    ("params", PARAMS),
    ("md", "## Statuses of tool calls\n\nEach snippet goes through the real sandbox (`taorl.tools.Sandbox`)."),
    ("code", '''
import polars as pl
from taorl.lab.ablation import profile_config
from taorl.tools import Sandbox

snippets = {
    "ok": "print(6 * 7)",
    "no_output": "x = 6 * 7",
    "syntax_error": "print((6 * 7)",
    "runtime_error": "print(1 / 0)",
    "timeout": "while True:\\n    pass",
    "output_truncated": "print('x' * 100_000)",
}
tcfg = profile_config(PROFILE, ["tool.timeout_s=1"]).tool
with Sandbox(tcfg) as sb:
    results = {k: sb.run(code) for k, code in snippets.items()}
statuses = pl.DataFrame([{"snippet": k, "status": r.status, "stdout": r.stdout[:30], "stderr_last": r.stderr_last[:60]}
                         for k, r in results.items()])
statuses
'''),
    ("code", '''
assert {k: r.status for k, r in results.items()} == {k: k for k in snippets}
'''),
    ("md", ("Only `ok` and `output_truncated` count as successes (`n_ok`): a call must finish without an "
           "exception *and* print something. `no_output` runs fine but tells the model nothing.")),
    ("md", "## Segments and masks of replayed rollouts"),
    ("code", REPLAY),
    ("code", '''
from taorl.lab.walkthrough import segments_frame, calls_frame
t = next(x for x in trajs if x.n_call == 2)   # demo_scripts: a call that printed nothing, then one that worked
print(t.text)
segments_frame(t, policy.tokenizer)
'''),
    ("code", "calls_frame(trajs).drop(\"code\")"),
    ("md", ("## Loss mask and the post-tool gate\n\n`token_frame` runs one forward of the policy and the exact "
           "`tao_loss` pipeline. The loss mask is 1 on model tokens only; the gate (paper: `post_tool`) is 1 "
           "on every model token of turn k+1 when turn k ran a code block (\"one-step delay\").")),
    ("code", '''
from IPython.display import HTML, display
from taorl.viz import token_html
dec = decide(trajs, cfg)
tokens = token_frame(trajs, dec, cfg, policy)
one = tokens.filter(pl.col("traj") == t.group * 4 + t.index)
display(HTML(token_html(one, "gate")))
tokens.group_by("segment", "turn").agg(pl.len().alias("tokens"), pl.col("gate").mean().alias("gated share")).sort("turn", "segment")
'''),
    ("code", '''
# every claim above, checked on these trajectories
called_turns = {(x.group, x.index, c.turn) for x in trajs for c in x.tool_calls}
expected = [seg == "model" and (g, i, k - 1) in called_turns
            for g, i, k, seg in tokens.select("group", "index", "turn", "segment").iter_rows()]
assert tokens["post_tool"].cast(bool).to_list() == expected          # gate = model token of a turn after a call
assert tokens.filter(pl.col("segment") == "tool")["gate"].sum() == 0  # observations: never gated
assert tokens.filter(pl.col("turn") == 0)["gate"].sum() == 0          # first turn: never gated
code_compat = profile_config(PROFILE, [*short, "preset=code_compat", "algo.shaping.gate=all"])
all_tokens = token_frame(trajs, dec, code_compat, policy).filter(pl.col("segment") == "model")
assert all_tokens["gate"].mean() == 1.0                                # the released code gates every model token
'''),
    ("md", ("**What this shows.** Observation tokens sit in the sequence but carry no loss and no gate; the "
           "post-tool gate picks exactly the model tokens that read a tool's output, while the released code's "
           "`gate: all` picks every model token (gated share 1).")),
])

# ------------------------------------------------------------------------------------------ 02
notebook("02_grpo_tir_baseline", [
    ("md", header("02 · GRPO-TIR baseline (no filters)",
                  "what plain GRPO does with tool-integrated rollouts: zero-variance groups that carry no "
                  "signal, trajectories whose tools all failed but still get advantage, void turns, and the grad norm.",
                  "about 1 minute", "an hour or so on one GPU (200 steps)",
                  "the baseline's per-rollout advantages on a batch that contains every case, and its training curves.")),
    ("params", PARAMS),
    ("code", REPLAY),
    ("code", '''
import polars as pl
BASELINE = ["algo.filter.group.enabled=false", "algo.filter.tool.enabled=false", "algo.filter.void_turn_mask=false",
            "algo.filter.overlong_mask=false", "algo.shaping.enabled=false"]
base_cfg = profile_config(PROFILE, [*short, *BASELINE])
dec = decide(trajs, base_cfg)
dec.trajectories.select("group", "index", "reward", "statuses", "void", "weight", "advantage")
'''),
    ("code", '''
g = dec.groups
zero_var = g.filter(pl.col("std") < 1e-3)
print(f"{zero_var.height} of {g.height} groups have zero reward variance -> every advantage in them is 0")
tr = dec.trajectories
assert tr.filter(pl.col("group").is_in(zero_var["group"].to_list()))["advantage"].abs().max() == 0.0
failed_tools = tr.filter(pl.col("flagged"))
print(f"{failed_tools.height} rollouts tried the tool and every call failed; the baseline trains on all of them:")
print(failed_tools.select("group", "index", "reward", "statuses", "weight", "advantage"))
assert (failed_tools["weight"] == 1.0).all() and (tr.filter(pl.col("void"))["weight"] == 1.0).all()
'''),
    ("md", ("Group 3, rollout 0 failed its tool call and still guessed right: GRPO gives it a *positive* "
           "advantage, rewarding broken code. Zero-variance groups cost a forward/backward but move nothing.")),
    ("md", "## The baseline in training"),
    ("code", '''
from taorl.lab.ablation import run_arms, compare
from taorl.lab.walkthrough import notebook_runs_dir
STEPS = {"tiny": 2, "laptop": 2, "full": 200}[PROFILE]
SEEDS = {"tiny": [0], "laptop": [0], "full": [0, 1, 2]}[PROFILE]
res = run_arms(profile_config(PROFILE, [f"train.steps={STEPS}"]), {"grpo_tir": BASELINE}, seeds=SEEDS,
               runs_dir=notebook_runs_dir("02"))
from taorl.viz import curves_figure
from taorl.store import open_run
curves = {f"{a} s{s}": open_run(p).metrics() for (a, s), p in res.runs.items()}
curves_figure(curves, ["reward", "tools/success_rate", "tao/void_rate", "grad_norm"], smoothing=0.0)
'''),
    ("code", '''
groups = res.table("groups")
zero = groups.filter(pl.col("reward_std") < 1e-3)
print(f"groups trained: {groups['kept'].sum()} of {groups.height}; zero-variance among them: {zero['kept'].sum()}")
assert groups["kept"].all()                                  # no criterion 2: every sampled group trains
traj = res.table("trajectories")
in_zero = traj.join(zero.select("step", "group"), on=["step", "group"])
assert in_zero["advantage"].abs().max() in (None, 0.0)      # ... but zero-variance groups have zero advantage
df, fig = compare(res, ["reward", "grad_norm", "tao/void_rate"])
fig
'''),
    ("md", ("**What this shows.** Without filters, every group trains; those with all-equal rewards (on the "
           "tiny profile: all of them, the random model never answers, so the grad norm is ~0; on `laptop`, the "
           "groups the primed model solves every time) contribute zero advantage and waste their compute. Rollouts whose tools all failed, and void turns, are trained on "
           "like any other. Notebooks 03 and 04 add the filters one at a time.")),
])

# ------------------------------------------------------------------------------------------ 03
notebook("03_criterion2_zero_variance_groups", [
    ("md", header("03 · Criterion 2: zero-variance groups",
                  "which groups criterion 2 (answer discriminability, 0 < ρ < 1) drops and why, how many "
                  "survive, and how oversampling and refill (train on fewer vs duplicate) fill the batch.",
                  "about 1 minute", "about 2 hours on one GPU (2 arms × 3 seeds)",
                  "drop counts per reason that match the groups' pass rates, and a comparison of kept groups per step.")),
    ("params", PARAMS),
    ("code", REPLAY),
    ("code", '''
import polars as pl
arms = {
    "off":        ["algo.filter.group.enabled=false"],
    "on (fewer)": [],
    "on, B=3, duplicate": ["algo.filter.group.refill=duplicate", "rollout.batch_prompts=3"],
    "band 0.25-0.75": ["algo.filter.group.acc_low=0.25", "algo.filter.group.acc_high=0.75"],
}
rows = []
for arm, ov in arms.items():
    c = profile_config(PROFILE, [*short, *ov])
    d = decide(trajs, c)
    for r in d.groups.iter_rows(named=True):
        rows.append({"arm": arm, **{k: r[k] for k in ("group", "pass_rate", "kept", "reason", "duplicates")}})
table = pl.DataFrame(rows)
table.pivot(on="arm", index=["group", "pass_rate"], values="reason")
'''),
    ("code", '''
on = table.filter(pl.col("arm") == "on (fewer)")
zero_variance = on.filter((pl.col("pass_rate") == 0) | (pl.col("pass_rate") == 1))
assert on.filter(~pl.col("kept")).height == zero_variance.height      # criterion 2 drops every zero-variance group
assert set(on.filter(~pl.col("kept"))["group"]) == set(zero_variance["group"])
dup = table.filter(pl.col("arm") == "on, B=3, duplicate")
n_valid = dup["kept"].sum()
assert dup["duplicates"].sum() == 3 - n_valid                            # refill fills B with copies
assert table.filter(pl.col("arm") == "off")["kept"].all()
print(f"valid groups: {n_valid} of {on.height}; duplicate refill adds {dup['duplicates'].sum()} copies")
'''),
    ("md", "## In training: kept groups per step"),
    ("code", '''
from taorl.lab.ablation import run_arms, compare
from taorl.lab.walkthrough import notebook_runs_dir
STEPS = {"tiny": 1, "laptop": 2, "full": 200}[PROFILE]
SEEDS = {"tiny": [0], "laptop": [0], "full": [0, 1, 2]}[PROFILE]
base = profile_config(PROFILE, [f"train.steps={STEPS}", "rollout.oversample=2.0"])
res = run_arms(base, {"no_c2": ["algo.filter.group.enabled=false"], "c2": []}, seeds=SEEDS,
               runs_dir=notebook_runs_dir("03"))
res.diff()
'''),
    ("code", '''
groups = res.table("groups")
c2 = groups.filter(pl.col("arm") == "c2")
kept = c2.filter(pl.col("kept"))
assert ((kept["pass_rate"] > 0) & (kept["pass_rate"] < 1)).all()       # survivors are discriminative
dropped = c2.filter(~pl.col("kept") & pl.col("reason").is_in(["group_all_correct", "group_all_wrong"]))
assert dropped.height == c2.filter((pl.col("reward_std") < 1e-3) & (pl.col("n_untruncated") >= 4)).height
print(c2.group_by("reason").len())
df, fig = compare(res, ["tao/groups_kept", "tao/groups_dropped/group_all_wrong", "train/trained_rollouts"], reduce="sum")
fig
'''),
    ("md", ("**What this shows.** Every group with ρ ∈ {0, 1} is dropped with its reason; on the tiny profile "
           "the random model never answers, so every group is all-wrong and the `c2` arm trains on nothing "
           "(the honest outcome, logged as `group_all_wrong`). With a real model, look for the share of "
           "dropped groups falling as the policy improves, and for `not_selected` when oversampling gives "
           "more valid groups than B.")),
])

# ------------------------------------------------------------------------------------------ 04
notebook("04_criterion1_failed_tools", [
    ("md", header("04 · Criterion 1: trajectories whose tools all failed",
                  "how criterion 1 down-weights rollouts that tried the tool and never got a successful call "
                  "(strength s), what `baseline: keep | exclude` does to the group statistics, and the void-turn mask.",
                  "about 50 s", "about 4 hours on one GPU (4 arms × 3 seeds)",
                  "weights equal to 1 − s on flagged rollouts, advantages recomputed without them under `exclude`, "
                  "and a comparison of masked rollouts per arm.")),
    ("params", PARAMS),
    ("code", REPLAY),
    ("code", '''
import polars as pl
arms = {
    "s=0 (off)": ["algo.filter.tool.strength=0.0"],
    "s=0.5": ["algo.filter.tool.strength=0.5"],
    "s=1 keep": [],
    "s=1 exclude": ["algo.filter.tool.baseline=exclude"],
    "s=1, no void mask": ["algo.filter.void_turn_mask=false"],
}
decs = {arm: decide(trajs, profile_config(PROFILE, [*short, *ov])) for arm, ov in arms.items()}
cols = ["group", "index", "reward", "statuses", "void", "flagged"]
view = decs["s=1 keep"].trajectories.select(cols)
for arm, d in decs.items():
    view = view.with_columns(d.trajectories["weight"].alias(f"w[{arm}]"), d.trajectories["advantage"].round(3).alias(f"A[{arm}]"))
view
'''),
    ("code", '''
keep = decs["s=1 keep"].trajectories
flag = keep["flagged"]
# weights: 1 - s on flagged rollouts that no other mask zeroes (void turns and overlong rollouts get 0)
for arm, s in [("s=0 (off)", 0.0), ("s=0.5", 0.5), ("s=1 keep", 1.0)]:
    t = decs[arm].trajectories.filter(pl.col("flagged") & pl.col("group_kept"))
    assert (t["weight"] == 1.0 - s).all(), arm
# keep: flagged rollouts still count in their group's mean/std; exclude: statistics without them
ex = decs["s=1 exclude"]
assert keep["in_stats"].all() and (ex.trajectories["in_stats"] == ~flag).all()
g3 = ex.trajectories.filter((pl.col("group") == 3) & ~pl.col("flagged"))
r = g3["reward"]
expected = ((r - r.mean()) / (r.std() + 1e-6)).to_list()
assert max(abs(a - b) for a, b in zip(g3["advantage"].to_list(), expected)) < 1e-5   # GRPO over the unflagged
# void-turn mask: the void rollout has weight 0 with it and 1 without it
void_w = {arm: d.trajectories.filter(pl.col("void") & pl.col("group_kept"))["weight"].to_list() for arm, d in decs.items()}
assert void_w["s=1 keep"] == [0.0] and void_w["s=1, no void mask"] == [1.0]
print("dropped groups under exclude:", ex.groups.filter(~pl.col("kept")).select("group", "reason").rows())
'''),
    ("md", ("Under `exclude`, group 2 (all wrong) stays dropped and criterion 2 is re-applied over the "
           "unflagged rollouts only; in group 3 the rollout that failed its call yet answered right no longer "
           "raises the group mean.")),
    ("md", "## In training"),
    ("code", '''
from taorl.lab.ablation import run_arms, compare
from taorl.lab.walkthrough import notebook_runs_dir
STEPS = {"tiny": 1, "laptop": 2, "full": 200}[PROFILE]
SEEDS = {"tiny": [0], "laptop": [0], "full": [0, 1, 2]}[PROFILE]
res = run_arms(profile_config(PROFILE, [f"train.steps={STEPS}"]),
               {"c2 only": ["algo.filter.tool.enabled=false"], "c1+c2": [],
                "c1+c2 exclude": ["algo.filter.tool.baseline=exclude"],
                "c1+c2 no void mask": ["algo.filter.void_turn_mask=false"]},
               seeds=SEEDS, runs_dir=notebook_runs_dir("04"))
traj = res.table("trajectories")
assert traj.filter((pl.col("arm") == "c1+c2 no void mask") & (pl.col("reason") == "void_turn")).height == 0
df, fig = compare(res, ["tao/traj_masked/tools_all_failed", "tao/traj_masked/void_turn", "tools/success_rate"], reduce="mean")
fig
'''),
    ("md", ("**What this shows.** Criterion 1 acts on weights, not rows: a flagged rollout keeps its place "
           "(and, under `keep`, its vote in the group baseline) but contributes (1 − s) of its gradient. On the "
           "tiny profile the random model writes no code, so only the void-turn mask shows in training; on "
           "`laptop` the primed model's failed calls are flagged in training too (`tao/traj_masked/tools_all_failed`); "
           "over many steps, look for `tools/success_rate` rising faster with c1 than without.")),
])

# ------------------------------------------------------------------------------------------ 05
notebook("05_entropy_at_tool_boundaries", [
    ("md", header("05 · Entropy at tool boundaries",
                  "whether a real model's token entropy jumps right after it reads a tool's output, before any "
                  "training: the observation behind TAO-RL's post-tool shaping.",
                  "about 60 s (SmolLM2-135M on CPU, converted once)", "a few minutes (sampled rollouts of the base model)",
                  "mean entropy vs offset from the tool return, with the tokens before the call for comparison.")),
    ("params", PARAMS),
    ("md", ("On the tiny profile a random model has the same entropy everywhere (≈ log V), so this notebook "
           "uses SmolLM2-135M-Instruct reading the replayed TIR trajectories (teacher forcing); on `laptop` the "
           "format-primed SmolLM2 reads them. On the full profile, replace them with rollouts sampled from the "
           "base model.")),
    ("code", REPLAY.replace("cfg = profile_config(PROFILE, short)",
                            'cfg = profile_config(PROFILE, short + (["model.name=smollm2-135m", "model.dtype=bfloat16", "model.lora.enabled=false"] if PROFILE == "tiny" else []))')
                   .replace("demo_scripts(problems)", "demo_scripts(problems)[0::3]")   # the two mixed groups: 0 and 3
                   .replace("replay_rollouts(problems,", "replay_rollouts(problems[0::3],")),
    ("code", '''
import math
import polars as pl
from taorl.store.queries import boundary_profile, boundary_stats
from taorl.viz import boundary_profile_figure
dec = decide(trajs, cfg)
tokens = token_frame(trajs, dec, cfg, policy)
model_tok = tokens.filter(pl.col("segment") == "model")
V = policy.lm_head_weight.shape[0]
assert model_tok["entropy"].is_finite().all() and model_tok["entropy"].min() >= 0
assert model_tok["entropy"].max() <= math.log(V) + 1e-3          # H <= log |V|
prof = boundary_profile(boundary_stats(tokens, before=8, after=24), buckets=1)
boundary_profile_figure({cfg.model.name: prof}, title="entropy vs offset from the tool return (before training)")
'''),
    ("code", '''
post = model_tok.filter(pl.col("post_tool") == 1)["entropy"].mean()
other = model_tok.filter(pl.col("post_tool") == 0)["entropy"].mean()
first = model_tok.filter(pl.col("offset").is_between(0, 3))["entropy"].mean()
print(f"mean entropy: post-tool turn {post:.3f} | first 4 tokens after the output {first:.3f} | other model tokens {other:.3f}")
'''),
    ("md", ("**What this shows / what to look for.** The curve starts at the first model token after each tool "
           "output (offset 0). TAO-RL's premise is that entropy is high there (the model must absorb new "
           "information) and decays over the turn. On these short replayed turns with a 135M model the effect "
           "is small and noisy; judge it on the full profile's sampled rollouts, where the 95 % bands are tight.")),
])

# ------------------------------------------------------------------------------------------ 06
notebook("06_entropy_shaping", [
    ("md", header("06 · Entropy shaping: which tokens, how strong",
                  "the shaped advantage Ã = Â(1 + a·g·Ĥ) under three gates: post-tool tokens (paper), all tokens "
                  "(released code), non-post-tool tokens (negative control); the distribution of (1 + a·Ĥ); "
                  "sweeps of a and of the window W.",
                  "about 1.5 minutes", "about 6 hours on one GPU (3 gates × 3 seeds)",
                  "factor histograms per gate, a linear sweep in a, window counts, and a training comparison.")),
    ("params", PARAMS),
    ("code", REPLAY),
    ("code", '''
import polars as pl
import plotly.express as px
dec = decide(trajs, cfg)
gates = {"post_tool (paper)": [], "all (code)": ["algo.shaping.gate=all"], "non_post_tool (control)": ["algo.shaping.gate=non_post_tool"]}
frames = {arm: token_frame(trajs, dec, profile_config(PROFILE, [*short, *ov]), policy) for arm, ov in gates.items()}
tok = pl.concat([f.with_columns(pl.lit(a).alias("arm")) for a, f in frames.items()])
trained = tok.filter((pl.col("segment") == "model") & (pl.col("weight") > 0))
print(trained.group_by("arm", maintain_order=True).agg(pl.col("gate").mean().alias("gated share"),
      pl.col("factor").min().alias("min factor"), pl.col("factor").max().alias("max factor")))
px.histogram(trained.filter(pl.col("gate") == 1), x="factor", color="arm", barmode="overlay", nbins=40,
             title="(1 + a·Ĥ) on gated tokens, a = 0.01")
'''),
    ("code", '''
p, a_, n = (frames[k].filter(pl.col("segment") == "model") for k in gates)
assert (a_["gate"] == 1).all()                                        # "all" gates every model token
assert ((p["gate"] + n["gate"]) == 1).all()                           # post-tool and its control partition them
assert (p.filter(pl.col("gate") == 0)["factor"] == 1).all()          # ungated tokens keep Â exactly
m = p.filter(pl.col("gate") == 1)
assert (m["factor"] - (1 + 0.01 * m["entropy_norm"])).abs().max() < 1e-5   # factor = 1 + a·Ĥ
'''),
    ("md", "## Sweeps: the coefficient a and the window W"),
    ("code", '''
rows = []
for a in [0.005, 0.01, 0.02, 0.05]:
    f = token_frame(trajs, dec, profile_config(PROFILE, [*short, f"algo.shaping.coef={a}"]), policy)
    g = f.filter(pl.col("gate") == 1)
    rows.append({"a": a, "max |factor-1|": float((g["factor"] - 1).abs().max()), "std factor": float(g["factor"].std())})
sweep_a = pl.DataFrame(rows)
r = sweep_a["max |factor-1|"] / sweep_a["a"]
assert (r - r[0]).abs().max() < 1e-4 * r[0]                          # the deviation is linear in a
rows = []
for W in [1, 2, 4, 8, None]:
    f = token_frame(trajs, dec, profile_config(PROFILE, [*short, f"algo.shaping.window={'null' if W is None else W}"]), policy)
    g = f.filter(pl.col("gate") == 1)
    rows.append({"W": str(W), "gated tokens": g.height, "max offset gated": g["offset"].max()})
sweep_w = pl.DataFrame(rows)
assert all(r["max offset gated"] < int(r["W"]) for r in sweep_w.iter_rows(named=True) if r["W"] != "None")
sweep_a, sweep_w
'''),
    ("md", "## In training"),
    ("code", '''
from taorl.lab.ablation import run_arms, compare
from taorl.lab.walkthrough import notebook_runs_dir
STEPS = {"tiny": 1, "laptop": 2, "full": 200}[PROFILE]
SEEDS = {"tiny": [0], "laptop": [0], "full": [0, 1, 2]}[PROFILE]
# filters off in this comparison, so that every rollout trains and shows its gate (even void ones)
NO_FILTERS = ["algo.filter.group.enabled=false", "algo.filter.void_turn_mask=false", "algo.filter.overlong_mask=false"]
res = run_arms(profile_config(PROFILE, [f"train.steps={STEPS}", *NO_FILTERS]),
               {"post_tool": [], "all": ["algo.shaping.gate=all"], "non_post_tool": ["algo.shaping.gate=non_post_tool"]},
               seeds=SEEDS, runs_dir=notebook_runs_dir("06"))
df, fig = compare(res, ["tao/gated_fraction", "tao/shaping_factor_std", "entropy"])
g = df.filter(pl.col("name") == "tao/gated_fraction")
assert g.filter(pl.col("arm") == "all")["value"].to_list() == [1.0] * len(SEEDS)
fig
'''),
    ("md", ("**What this shows.** With a = 0.01 the factor stays within about ±a·max|Ĥ| of 1, so shaping "
           "re-weights tokens gently; the three gates differ only in which tokens get it (the all-gate lights "
           "every model token, the control exactly the complement of the paper's gate). On the tiny profile "
           "the random model writes no code, so in training the post-tool gate is empty (gated fraction 0); on "
           "`laptop` the primed model's calls light it. On the full profile compare accuracy and post-tool entropy across the three arms.")),
])

# ------------------------------------------------------------------------------------------ 07
notebook("07_tao_rl_vs_baselines", [
    ("md", header("07 · Full TAO-RL vs the baselines",
                  "how to compare methods fairly (same seeds, steps and problems; only the switches differ) and "
                  "report held-out accuracy as Avg@k / Pass@k with error bars over seeds, beside the paper's table.",
                  "about 2 minutes", "a day on one GPU (3 arms × 3 seeds × 200 steps, then the seven benchmarks)",
                  "a table of Avg@k / Pass@k per arm with seed spread, and the paper's numbers clearly labelled as another scale.")),
    ("params", PARAMS),
    ("code", '''
import polars as pl
from taorl.lab.ablation import profile_config, run_arms, evaluate_arms, comparison_figure, summarize
from taorl.data.procedural import generate
from taorl.lab.walkthrough import notebook_runs_dir
STEPS = {"tiny": 1, "laptop": 2, "full": 200}[PROFILE]
SEEDS = {"tiny": [0, 1], "laptop": [0, 1], "full": [0, 1, 2]}[PROFILE]
K = {"tiny": 2, "laptop": 4, "full": 16}[PROFILE]
ARMS = {
    "TIR baseline": ["algo.filter.group.enabled=false", "algo.filter.tool.enabled=false",
                     "algo.filter.void_turn_mask=false", "algo.filter.overlong_mask=false", "algo.shaping.enabled=false"],
    "SimpleTIR-style": ["algo.filter.tool.enabled=false", "algo.shaping.enabled=false"],
    "TAO-RL": [],
}
EVAL = {"tiny": ["eval.max_turns=2", "eval.max_response_tokens=48"],
        "laptop": ["eval.max_turns=3", "eval.max_response_tokens=384"], "full": []}[PROFILE]   # paper protocol on full
res = run_arms(profile_config(PROFILE, [f"train.steps={STEPS}", *EVAL]), ARMS, seeds=SEEDS, runs_dir=notebook_runs_dir("07"))
res.diff()
'''),
    ("code", '''
held_out = generate({"tiny": 2, "laptop": 2, "full": 200}[PROFILE], difficulty=0, seed=999)   # disjoint from training (seed 0)
ev = evaluate_arms(res, held_out, n=K, ks=(K,))
tidy = ev.rename({"metric": "name"})
summary = summarize(tidy)
assert set(ev["seed"]) == set(SEEDS) and ev.filter(pl.col("metric") == f"avg@{K}").height == len(ARMS) * len(SEEDS)
assert (ev.filter(pl.col("metric") == f"pass@{K}")["value"] >= ev.filter(pl.col("metric") == f"avg@{K}")["value"]).all()
comparison_figure(summary, list(ARMS), [f"avg@{K}", f"pass@{K}", "tool_call_rate"],
                  title=f"held-out procedural problems, {PROFILE} profile: mean ± s.e.m. over {len(SEEDS)} seeds")
'''),
    ("code", '''
ours = summary.filter(pl.col("name") == f"avg@{K}").select("arm", (pl.col("mean") * 100).round(2).alias(f"ours: Avg@{K} (%)"),
                                                          (pl.col("sem") * 100).round(2).alias("± s.e.m."))
paper = pl.DataFrame({"arm": ["TAO-RL", "SimpleTIR-style", "TIR baseline"],
                      "paper, Qwen2.5-7B, MATH500 Avg@16 (%)": [78.80, 77.51, 42.11],
                      "paper, AIME24 Avg@16 (%)": [35.42, 33.33, 10.63]})
print(f"OURS: {PROFILE} profile ({res.base.model.name}, {STEPS} steps, procedural problems). "
      "PAPER: Qwen2.5-7B base, full RL run, real benchmarks (spec §5). Different scales: compare orderings, not values.")
ours.join(paper, on="arm", how="left")
'''),
    ("md", ("## The experiment report\n\n`taorl experiment EXPERIMENT.yaml` runs the same comparison as a "
           "resumable experiment (arms × seeds through the trainer, held-out accuracy at fixed steps) and writes a "
           "report: 95 % intervals over seeds and paired differences between arms. The cell below reads the "
           "newest report under `docs/results/` or `runs/experiments/`, if this machine has one.")),
    ("code", '''
from pathlib import Path
import taorl
from taorl.experiment import find_reports, load_report
repo = Path(taorl.__file__).resolve().parents[1]
found = find_reports(repo / "docs" / "results") + find_reports(repo / "runs" / "experiments")
if not found:
    print("No experiment report here yet. Make one with: taorl experiment configs/experiments/cpu-smollm2.yaml "
          "(hours on a 2-core CPU), or a labelled reduced run: ... --seeds 0 --steps 10")
else:
    rep = load_report(max(found, key=lambda f: (f / "report.json").stat().st_mtime))
    print(f"{rep['name']}: {rep['label'] or 'full run'} ({rep['folder']})")
    def pct(d):
        return "–" if d.get("low") is None else f"{100 * d['mean']:.1f} % [{100 * d['low']:.1f}, {100 * d['high']:.1f}]"
    for arm, a in rep["arms"].items():
        f = a["final"].get(rep["primary"]) or {}
        print(f"  {arm:14s} {rep['primary']} after {rep['final_step']} steps: {pct(f)} over {f.get('n')} seeds")
    # paired differences (same seed): each arm against the baseline, then the other arms pairwise
    for arm, p in rep["paired"].items():
        print(f"  {arm} − {rep['baseline']}: {pct(p[rep['primary']])}")
    for name, d in rep.get("pairs", {}).items():
        print(f"  {name}: {pct(d)}")
    display(rep["figures"]["heldout"])
    if "paired" in rep["figures"]:
        display(rep["figures"]["paired"])
'''),
    ("md", ("**What this shows / what to look for.** Pass@k is never below Avg@k (asserted). On the tiny "
           "profile a one-step random model answers nothing, so every arm scores 0: the numbers only prove the "
           "pipeline; `laptop` runs two steps from the primed model, too few to separate the arms. On the full "
           "profile, the paper's claim to check is the ordering TAO-RL ≥ SimpleTIR ≫ "
           "TIR baseline, with the gap larger than the seed spread.")),
])

# ------------------------------------------------------------------------------------------ 08
notebook("08_variants", [
    ("md", header("08 · Variants: Cheng's additive bonus, the 80/20 entropy gate, Dr.GRPO, anti-clip",
                  "four published alternatives run through the same helper: an additive entropy bonus "
                  "min(α·H, |Â|/κ), a gate on the top 20 % entropy tokens, Dr.GRPO's unnormalised advantage, and "
                  "the anti-clip of gated tokens.",
                  "about 1.5 minutes", "about 8 hours on one GPU (5 arms × 3 seeds)",
                  "each variant's effect on the same batch checked against its formula, and a training comparison.")),
    ("params", PARAMS),
    ("code", REPLAY),
    ("code", '''
import polars as pl
dec = decide(trajs, cfg)
V = {
    "TAO-RL": [],
    "Cheng additive": ["algo.shaping.form=additive"],
    "entropy top 20%": ["algo.shaping.gate=entropy_quantile", "algo.shaping.quantile=0.8"],
    "Dr.GRPO": ["algo.adv=drgrpo"],
}
frames = {}
for arm, ov in V.items():
    c = profile_config(PROFILE, [*short, *ov])
    frames[arm] = token_frame(trajs, decide(trajs, c), c, policy)
summary = pl.concat([f.filter((pl.col("segment") == "model") & (pl.col("weight") > 0))
                     .select(pl.lit(a).alias("arm"), pl.col("gate").mean().alias("gated share"),
                             (pl.col("shaped_advantage") - pl.col("advantage")).abs().max().alias("max |Ã - Â|"))
                     for a, f in frames.items()])
summary
'''),
    ("code", '''
# Cheng et al.: Ã = Â + g·min(α·H, |Â|/κ), α = 0.1, κ = 2
ch = frames["Cheng additive"].filter(pl.col("segment") == "model")
bonus = (ch["gate"] * pl.Series([min(0.1 * h, abs(a) / 2) for h, a in zip(ch["entropy"], ch["advantage"])]))
assert ((ch["shaped_advantage"] - ch["advantage"]) - bonus).abs().max() < 1e-5
# 80/20 gate: round(0.2 n) of the n trained model tokens (loss mask, weight > 0), the highest-entropy ones
eq = frames["entropy top 20%"].filter((pl.col("segment") == "model") & (pl.col("weight") > 0))
assert int(eq["gate"].sum()) == round(0.2 * eq.height)
assert eq.filter(pl.col("gate") == 1)["entropy"].min() >= eq.filter(pl.col("gate") == 0)["entropy"].max()
# Dr.GRPO: Â = r - mean(r), no division by the std
dr = decide(trajs, profile_config(PROFILE, [*short, "algo.adv=drgrpo"])).trajectories.filter(pl.col("group_kept"))
exp = dr.with_columns((pl.col("reward") - pl.col("reward").mean().over("group")).alias("e"))
assert (exp["advantage"] - exp["e"]).abs().max() < 1e-6
'''),
    ("md", ("Anti-clip only changes the loss where the policy ratio has moved above 1 + ε_high on a gated token, "
           "which needs more than one update on a batch; it shows in training as `tao/anti_clip_fraction` "
           "(with `train.ppo_epochs=2`).")),
    ("code", '''
from taorl.lab.ablation import run_arms, compare
from taorl.lab.walkthrough import notebook_runs_dir
STEPS = {"tiny": 1, "laptop": 2, "full": 200}[PROFILE]
SEEDS = {"tiny": [0], "laptop": [0], "full": [0, 1, 2]}[PROFILE]
arms = {**V, "anti-clip": ["algo.loss.anti_clip=true", "train.ppo_epochs=2"]}
res = run_arms(profile_config(PROFILE, [f"train.steps={STEPS}", "algo.filter.group.enabled=false"]), arms,
               seeds=SEEDS, runs_dir=notebook_runs_dir("08"))
d = res.diff()
assert set(d["arm"]) == set(arms) - {"TAO-RL"}          # each arm changes only its own switches
df, fig = compare(res, ["reward", "tao/gated_fraction", "grad_norm"])
fig
'''),
    ("md", ("**What this shows.** Each variant is one or two switches on the same base config (see `res.diff()`), "
           "and each does on a real batch exactly what its formula says. On the tiny profile the training arms "
           "only show the plumbing, on `laptop` two steps of real numbers; on the full profile compare accuracy and entropy curves across the five arms.")),
])
# ------------------------------------------------------------------------------------------ 09
from _nb09 import cells as _nb09_cells  # noqa: E402  (the cells live beside this file: notebooks/_nb09.py)

notebook("09_tao_rl_in_trl", _nb09_cells(header, PARAMS))

# ------------------------------------------------------------------------------------------ 10
from _nb10 import cells as _nb10_cells  # noqa: E402  (the cells live beside this file: notebooks/_nb10.py)

notebook("10_dose_response", _nb10_cells(header, PARAMS))

print("notebooks written to", HERE)
