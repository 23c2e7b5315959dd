"""Cells of notebook 10 (dose-response), written by notebooks/_build.py like the others:
`notebook("10_dose_response", cells(header, PARAMS))`."""


def cells(header, params):
    return [
        ("md", header("10 · Dose-response: where the tool output must be interpreted",
                      "the procedural kinds whose tool output needs a decision (a case split on a printed value, "
                      "the right element of a printed list, an error line that says which repair to make); what "
                      "the entropy shaping (1 + a·Ĥ) does on them for a ∈ {0, 0.01, 0.1, 0.3}; and how to read "
                      "the dose-response experiment's report (held-out accuracy against a, post-tool entropy over "
                      "training, tool calls and calls after an error).",
                      "about 30 s", "the experiment: hours on one GPU (5 arms × 3 seeds)",
                      "two-call reference solutions run in the sandbox, the factor's spread per a on their "
                      "post-tool tokens, and the experiment's dose-response table and figures with the reading "
                      "beside the paper's claim.")),
        ("params", params),
        ("md", ("## Problems whose tool output must be interpreted\n\nEach kind's reference makes two calls; the "
                "second is written from what the first printed (here run for real in the sandbox). Copying the first "
                "output into `\\boxed{}` is wrong for every problem of these kinds.")),
        ("code", '''
import polars as pl
from taorl.data.interpret import KINDS
from taorl.data.procedural import generate
from taorl.lab.ablation import profile_config, decide, token_frame
from taorl.lab.notebook import profile_policy
from taorl.lab.walkthrough import replay_rollouts
from taorl.tools import Sandbox
from taorl.tools.observation import observation_body
from taorl.train.sft import interpret_turns

short = ["rollout.max_turns=4", "rollout.max_turn_tokens=96", "rollout.max_response_tokens=400",
         "rollout.group_size=2", "rollout.batch_prompts=3", "tool.timeout_s=5"]
if PROFILE == "tiny":   # the outputs must fit in the observation
    short.append("rollout.obs_max_tokens=96")
cfg = profile_config(PROFILE, short)
problems = generate(3, difficulty=2, seed=11, kinds=list(KINDS))   # one of each kind
with Sandbox(cfg.tool) as sandbox:
    turns = interpret_turns(problems, sandbox)
for p, t in zip(problems, turns):
    print(f"[{p.meta['kind']}] {p.problem}  -> {p.answer}")
    for text, res in t:
        print("   ", text.strip().replace(chr(10), " | "), " => ", observation_body(res))
    assert observation_body(t[-1][1]) == p.answer and observation_body(t[0][1]) != p.answer
'''),
        ("md", ("## The decision after the tool, and what the shaping does to it\n\nBelow, each problem gets two "
                "replayed rollouts through the real loop: the reference (interpret the first output, call again) "
                "and a careless one that boxes the first output. The policy scores every token; the shaped "
                "advantage multiplies each post-tool token's advantage by (1 + a·Ĥ), Ĥ its normalised entropy.")),
        ("code", '''
policy = profile_policy(cfg)   # the primed SmolLM2 on "laptop" (primed on the arithmetic kinds), random on "tiny"
scripts = []
for p, t in zip(problems, turns):
    first = observation_body(t[0][1])
    scripts.append([[text for text, _ in t] + [f"\\nThe answer is \\\\boxed{{{p.answer}}}."],
                    [t[0][0], f"\\nThe answer is \\\\boxed{{{first}}}."]])
with Sandbox(cfg.tool) as sandbox:
    trajs = replay_rollouts(problems, scripts, policy.model, policy.tokenizer, cfg, sandbox)
assert [t.reward for t in trajs] == [1.0, 0.0] * len(problems)
dec = decide(trajs, cfg)
rows = []
for a in [0.0, 0.01, 0.1, 0.3]:
    ov = ["algo.shaping.enabled=false"] if a == 0 else [f"algo.shaping.coef={a}"]
    f = token_frame(trajs, dec, profile_config(PROFILE, [*short, *ov]), policy)
    g = f.filter((pl.col("segment") == "model") & (pl.col("post_tool") > 0))
    if a > 0:
        assert (g["factor"] - (1 + a * g["entropy_norm"])).abs().max() < 1e-4   # factor = 1 + a·Ĥ
    rows.append({"a": a, "post-tool tokens": g.height, "mean entropy (nats)": float(g["entropy"].mean()),
                 "factor min": float(g["factor"].min()), "factor max": float(g["factor"].max()),
                 "factor std": float(g["factor"].std())})
pl.DataFrame(rows)
'''),
        ("md", ("The factor's spread grows linearly with a: at the paper's a = 0.01 it stays within about 1 ± 0.01·max Ĥ, "
                "so the shaped advantage is nearly the plain one; at a = 0.3 the most uncertain post-tool tokens weigh "
                "noticeably more. Whether that changes what the model learns is what the experiment measures.\n\n"
                "## The dose-response experiment\n\n`taorl experiment configs/experiments/cpu-smollm2-interpret.yaml "
                "--jobs 2` trains GRPO-TIR and the filters-on arms a ∈ {0, 0.01, 0.1, 0.3} on these kinds, with three "
                "seeds, and writes a report. The cell reads the committed one under `docs/results/`.")),
        ("code", '''
from pathlib import Path
import taorl
from taorl.experiment import find_reports, load_report
repo = Path(taorl.__file__).resolve().parents[1]
found = [f for f in find_reports(repo / "docs" / "results") + find_reports(repo / "runs" / "experiments")
         if load_report(f).get("dose")]
if not found:
    print("No dose-response report here yet. Make one with: "
          "taorl experiment configs/experiments/cpu-smollm2-interpret.yaml --jobs 2")
else:
    rep = load_report(max(found, key=lambda f: (f / "report.json").stat().st_mtime))
    print(f"{rep['name']}: {rep['label'] or 'full run'} ({rep['folder']}), {rep['primary']} after {rep['final_step']} steps")
    def pct(d):
        return "–" if not d or d.get("low") is None else f"{100 * d['mean']:+.1f} % [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
    for r in rep["dose"]:
        print(f"  a = {r['a']:<5g} {r['arm']:14s} {100 * r['mean']:.1f} %   vs a = 0: {pct(r['delta'])}")
    assert [r["a"] for r in rep["dose"]] == sorted(r["a"] for r in rep["dose"])
    sh = pl.DataFrame([{"arm": arm, **{k: (v or {}).get("mean") for k, v in a["shaping"].items()
                                        if k in ("tao/post_tool_entropy", "tao/shaping_factor_min",
                                                 "tao/shaping_factor_max", "tools/call_frequency",
                                                 "calls/calls_after_error")}}
                       for arm, a in rep["arms"].items()])
    display(sh)
    for name in ("dose", "post_tool_entropy", "calls"):
        if name in rep["figures"]:
            display(rep["figures"][name])
'''),
        ("md", ("**What this shows / what to look for.** The reference and the careless rollout share their first "
                "turn; they part right after the tool output, where the post-tool tokens are, and the factor (1 + a·Ĥ) "
                "is exactly linear in a there (asserted). On the tiny profile the random model's entropy is the same "
                "everywhere, so only the arithmetic of the factor is shown; on `laptop` the primed SmolLM2 scores the "
                "decision tokens. The paper's claim is that weighting these high-entropy post-tool tokens (a = 0.01) "
                "improves accuracy; the report beside it says, for these kinds at CPU scale, whether any a did, with "
                "intervals over seeds, and how the post-tool entropy, the factor's spread and the tool use moved "
                "per arm (docs/results/cpu-smollm2-interpret/report.md has the plain-words reading).")),
    ]
