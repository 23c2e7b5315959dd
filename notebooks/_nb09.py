"""Cells of notebook 09 (TAO-RL in a TRL script), written by notebooks/_build.py like the others:
`notebook("09_tao_rl_in_trl", cells(header, PARAMS))`."""


def cells(header, params):
    # the list is not indented further, so the cells' code reads as it will in the notebook
    return [
    ("md", header("09 · TAO-RL in your TRL script",
                  "how a TRL GRPOTrainer script gets TAO-RL with a one-line change (TaoGRPOTrainer), the paper's "
                  "turn format and taorl's sandbox (TaoRollout), and a taorl run directory that the dashboard "
                  "opens beside a taorl run (docs/trl.md).",
                  "about 1 minute (two TRL runs of 2 steps each on the random tiny model)",
                  "an hour or more on one GPU (not yet run on a GPU)",
                  "two TRL runs (TAO-RL and plain GRPOTrainer) read back by taorl.store: the groups TAO-RL "
                  "dropped with their reasons, the trajectories with their weights, the token view of one "
                  "rollout, and the command that opens both runs in the dashboard.")),
    ("params", params),
    ("md", ("The diff to a TRL script is three lines: the trainer class, taorl's loss settings as `GRPOConfig` "
           "arguments, and (for models that write fenced Python blocks, like the paper's base models) "
           "`rollout_func=TaoRollout(cfg)`:\n\n"
           "```diff\n"
           "-from trl import GRPOConfig, GRPOTrainer\n"
           "+from trl import GRPOConfig\n"
           "+from taorl.integrations.trl import TaoGRPOTrainer as GRPOTrainer, TaoRollout, tao_config, trl_loss_args\n"
           "+cfg = tao_config(\"paper\")\n"
           " args = GRPOConfig(..., **trl_loss_args(cfg.algo))\n"
           " trainer = GRPOTrainer(model=model, reward_funcs=[...], args=args, train_dataset=ds,\n"
           "+                      rollout_func=TaoRollout(cfg), tao=cfg, run_dir=\"runs/my-trl-run\")\n"
           "```")),
    ("code", """
import tempfile
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer
from taorl.data import load_problems
from taorl.integrations.trl import (TaoGRPOTrainer, TaoRollout, TaoRunCallback, boxed_answer_reward,
                                    tao_config, trl_loss_args)
from taorl.lab.ablation import profile_config
from taorl.lab.notebook import profile_policy
from taorl.lab.walkthrough import notebook_runs_dir

base = profile_config(PROFILE)
# the tiny random model never finishes inside its budget: every rollout is truncated, so the tiny profile turns
# off the overlong mask and criterion 2's minimum of untruncated rollouts (min_n)
cfg = tao_config(base, ["rollout.max_turn_tokens=24", "rollout.obs_max_tokens=16", "algo.filter.overlong_mask=false",
                        "algo.filter.group.min_n=0"] if PROFILE == "tiny" else [])
STEPS = {"tiny": 2, "laptop": 2, "full": 50}[PROFILE]
G = cfg.rollout.group_size
problems = load_problems("procedural", n=16, difficulty=cfg.data.difficulty, seed=0)
data = Dataset.from_list([{"prompt": p.problem, "answer": p.answer} for p in problems])

def parity_reward(completions, **kw):
    # SYNTHETIC stand-in for the tiny random model, which never answers right: 1 when the text has an odd length
    return [float(len(c) % 2) for c in completions]

reward = parity_reward if PROFILE == "tiny" else boxed_answer_reward
runs = notebook_runs_dir("09")
print("reward:", reward.__name__, "| runs go to", runs)
"""),
    ("code", """
def train(run_name, tao_on):
    policy = profile_policy(base)                     # a fresh copy of the starting weights for each run
    model = policy.model.train()
    args = GRPOConfig(output_dir=tempfile.mkdtemp(), max_steps=STEPS, learning_rate=base.train.lr, seed=0,
                      per_device_train_batch_size=2 * G, num_generations=G,
                      max_completion_length=cfg.rollout.max_response_tokens, logging_steps=1, save_strategy="no",
                      report_to=[], use_cpu=PROFILE != "full", bf16=False, disable_tqdm=True,
                      **trl_loss_args(cfg.algo))
    common = dict(model=model, processing_class=policy.tokenizer, reward_funcs=[reward], args=args,
                  train_dataset=data, rollout_func=TaoRollout(cfg))
    if tao_on:   # the TAO-RL trainer; run_dir attaches the run-directory callback
        trainer = TaoGRPOTrainer(**common, tao=cfg, run_dir=runs / run_name)
    else:        # plain TRL, with the same callback attached by hand
        trainer = GRPOTrainer(**common)
        TaoRunCallback(runs / run_name, cfg).attach(trainer)
    trainer.train()
    trainer.rollout_func.close()
    return runs / run_name

tao_dir = train("trl-tao-rl", True)
plain_dir = train("trl-plain-grpo", False)
"""),
    ("code", """
import polars as pl
from taorl.store import open_run
tao, plain = open_run(tao_dir), open_run(plain_dir)
assert tao.manifest["extra"]["engine"] == "trl" and tao.last_step == STEPS == plain.last_step
groups = tao.groups().select("step", "group", "rewards", "pass_rate", "n_untruncated", "kept", "reason")
# criterion 2: a group trains exactly when its rewards spread and enough rollouts finished; plain GRPOTrainer
# keeps every group
min_n = cfg.algo.filter.group.min_n
assert all(r["kept"] == (len(set(r["rewards"])) > 1 and r["n_untruncated"] >= min_n) for r in groups.iter_rows(named=True))
assert plain.groups()["kept"].all()
groups
"""),
    ("code", """
trajs = tao.trajectories().select("step", "traj", "group", "reward", "n_call", "n_ok", "advantage", "weight", "reason")
# a dropped group's rollouts have weight 0: TaoGRPOTrainer took them out of TRL's loss mask
assert (trajs.filter(pl.col("reason").is_in(["group_all_correct", "group_all_wrong"]))["weight"] == 0).all()
trajs.head(8)
"""),
    ("code", """
from IPython.display import HTML
from taorl.viz.figures import curves_figure
from taorl.viz.tokens import token_html
step = tao.last_step
kept = tao.trajectories(step).filter(pl.col("weight") > 0)
t = int(kept["traj"][0]) if kept.height else 0
display(HTML(token_html(tao.tokens(step, t), "entropy")))     # the dashboard's token view, on the TRL run
curves_figure({"TAO-RL (TRL)": tao.metrics(), "plain GRPOTrainer": plain.metrics()}, ["reward", "entropy", "loss"])
"""),
    ("code", """
print(f"open both runs in the dashboard:  taorl dashboard {runs}")
"""),
    ("md", ("**What this shows.** The same TRL script trains with TAO-RL after swapping the trainer class: "
           "groups without reward spread are dropped (reason recorded, weight 0, out of TRL's loss), and "
           "both runs, TAO-RL and plain GRPOTrainer, are ordinary taorl run directories that `taorl.store` "
           "and the dashboard read. On the tiny profile the reward is a synthetic stand-in (the random model "
           "never answers); on `laptop` the primed SmolLM2 writes real code blocks, so criterion 1 and the "
           "post-tool shaping have real tool statuses to act on. The GPU profile (Unsloth + vLLM) is not yet run.")),
    ]
