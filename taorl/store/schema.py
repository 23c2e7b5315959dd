"""The run directory contract: the tables, their columns, the manifest. Shared by the trainer
(writer), the dashboard, notebooks and tests (readers). Bump SCHEMA_VERSION on any breaking change.

    <run>/manifest.json        written last, atomically; only steps <= last_step are published
    <run>/config.yaml          the resolved config
    <run>/metrics/step=000012/part-0.parquet     (hive-partitioned by step, zstd)
    <run>/groups/step=000012/part-0.parquet
    <run>/trajectories/step=000012/part-0.parquet
    <run>/tokens/step=000012/part-0.parquet      (may hold a sample of trajectories per step)
    <run>/evals/step=000012/part-0.parquet
    <run>/checkpoints/step=000012/...            (trainer-owned, not read by the dashboard)

`step` is not stored inside the files: it comes from the hive partition.
"""

from __future__ import annotations

import polars as pl

SCHEMA_VERSION = 1

# Long format: one row per (step, metric name). Names follow TRL/verl where they exist
# (reward, entropy, clip_ratio/high_mean, completions/clipped_ratio, tools/call_frequency, ...)
# and use tao/ for ours (tao/groups_dropped/group_all_correct, tao/post_tool_entropy, ...).
METRICS = {
    "name": pl.String,
    "value": pl.Float64,
    "wall_s": pl.Float64,  # seconds since the run started when the step was published
}

GROUPS = {
    "group": pl.Int32,  # index within the step (over the oversampled set)
    "problem_id": pl.String,
    "problem": pl.String,
    "answer": pl.String,
    "rewards": pl.List(pl.Float64),  # G rewards, in rollout order
    "pass_rate": pl.Float64,
    "reward_std": pl.Float64,
    "n_untruncated": pl.Int32,
    "kept": pl.Boolean,  # trained on this step
    "reason": pl.String,  # null when kept; else one of types.GROUP_REASONS
    "duplicates": pl.Int32,  # extra copies trained (refill: duplicate), else 0
}

TRAJECTORIES = {
    "traj": pl.Int32,  # group * G + index: unique within the step
    "group": pl.Int32,
    "index": pl.Int32,
    "problem_id": pl.String,
    "reward": pl.Float64,
    "reward_info": pl.String,  # extracted answer, or why grading gave 0
    "n_turns": pl.Int32,
    "n_call": pl.Int32,
    "n_ok": pl.Int32,
    "statuses": pl.List(pl.String),  # per tool call
    "call_ms": pl.List(pl.Float64),  # per tool call wall time
    "void": pl.Boolean,
    "truncated": pl.Boolean,
    "finish": pl.String,  # answer | max_turns | void | length
    "length": pl.Int32,  # response tokens (model + tool)
    "n_model_tokens": pl.Int32,
    "advantage": pl.Float64,  # Â (group-normalised), 0 for dropped groups
    "weight": pl.Float64,  # loss weight after criterion 1 / void / overlong masks (0 if group dropped)
    "reason": pl.String,  # null, or why the weight is < 1 (types.TRAJ_REASONS), or the group's reason
    "group_kept": pl.Boolean,
    "has_tokens": pl.Boolean,  # token rows were written for it this step
    "text": pl.String,  # decoded response (display only)
}

TOKENS = {
    "traj": pl.Int32,
    "pos": pl.Int32,  # position in the full sequence (prompt tokens first)
    "turn": pl.Int32,  # -1 for prompt tokens
    "token_id": pl.Int32,
    "token": pl.String,  # decoded text of this single token
    "segment": pl.String,  # prompt | model | tool
    "offset": pl.Int32,  # model tokens since the last tool return (0 = first after it); null before any
    "entropy": pl.Float32,  # H_t from the training forward pass (null for prompt/tool)
    "logprob_sample": pl.Float32,  # sampling logprob from the engine
    "logprob_train": pl.Float32,  # trainer's logprob of the same token
    "advantage": pl.Float32,  # Â_t
    "shaped_advantage": pl.Float32,  # Ã_t
    "weight": pl.Float32,  # loss weight of the token (trajectory weight * loss mask)
    "gate": pl.Float32,  # g_t
}

EVALS = {
    "benchmark": pl.String,
    "metric": pl.String,  # avg@16, pass@1, pass@16, tool_call_rate, tool_success_rate, ...
    "value": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "n_problems": pl.Int32,
    "n_samples": pl.Int32,  # samples per problem
}

TABLES: dict[str, dict[str, pl.DataType]] = {
    "metrics": METRICS,
    "groups": GROUPS,
    "trajectories": TRAJECTORIES,
    "tokens": TOKENS,
    "evals": EVALS,
}

# manifest.json keys
#   schema_version: int       SCHEMA_VERSION of the writer
#   run_id: str               directory name unless given
#   config_hash: str
#   status: "running" | "finished" | "failed"
#   last_step: int            last complete (published) step, -1 before the first
#   created_at, updated_at: float (unix seconds)
#   started_wall: float       unix time the run started (wall_s origin)
#   extra: dict               free-form (device, taorl version, model name)
#   revision: int             bumped on every manifest write (steps, late evals, finish): cache key
#   eval_parts: {str: int}    step -> number of evals part files (part-0 .. part-<n-1>); write_evals
#                             adds parts to a published step, readers read exactly these
