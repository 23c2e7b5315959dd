"""taorl's settings for a TRL run: a validated taorl Config, and its loss as GRPOConfig arguments.

The TAO-RL maths reads `cfg.algo` (filters, advantage estimator, shaping) exactly as taorl's own
trainer does; `cfg.rollout` / `cfg.tool` shape TaoRollout's turns and sandbox; `cfg.logging`
names the run directory. The loss itself is TRL's: `trl_loss_args(cfg.algo)` gives the GRPOConfig
keys that make TRL's loss taorl's (docs/trl.md, "What maps to what"):

    taorl                         TRL GRPOConfig
    clip_low ε_low = 0.2          epsilon = 0.2
    clip_high ε_high = 0.28       epsilon_high = 0.28
    dual_clip c = 3               delta = 3        (ratio capped at δ: for A < 0 this is the dual clip,
                                                    for A > 0 the clip at 1 + ε_high already binds)
    agg token-mean                loss_type = "dapo"  (Σ over the step's loss tokens / their count)
    agg micro-token-mean (*code*) loss_type = "bnpo"  (the same per micro-batch)
    agg seq-mean-token-mean       loss_type = "grpo"
    kl_coef                       beta
    entropy_coef                  entropy_coef
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taorl.config import AlgoConfig, Config, ConfigError, apply_overrides, load_config

_AGG_TO_LOSS_TYPE = {"token-mean": "dapo", "micro-token-mean": "bnpo", "seq-mean-token-mean": "grpo"}


def tao_config(tao: Config | AlgoConfig | Mapping | str | Path | None = None,
               overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A taorl Config: None (the paper's defaults), "paper" / "code_compat" / "code_script" (a preset),
    a YAML path, a dict of taorl sections ({"preset": ..., "algo": {...}}), an AlgoConfig or a Config;
    then dotted overrides ("algo.shaping.coef=0.02")."""
    if isinstance(tao, Config):
        cfg = tao
    elif isinstance(tao, AlgoConfig):
        cfg = Config(algo=tao)
    elif isinstance(tao, Mapping):
        flat = [f"{k}={v}" for k, v in _dotted(dict(tao))]
        cfg = load_config(None, flat)
    elif tao is None:
        cfg = load_config(None)
    elif isinstance(tao, (str, Path)) and str(tao) in ("paper", "code_compat", "code_script"):
        cfg = load_config(None, [f"preset={tao}"])
    elif isinstance(tao, (str, Path)):
        cfg = load_config(tao)
    else:
        raise ConfigError(f"tao={tao!r}: expected a preset name, a YAML path, a dict, an AlgoConfig or a Config")
    return apply_overrides(cfg, list(overrides)) if overrides else cfg


def _dotted(tree: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out += _dotted(dict(v), key + ".")
        else:
            out.append((key, _yaml_value(v)))
    return out


def _yaml_value(v: Any) -> str:
    import json

    return "null" if v is None else json.dumps(v) if isinstance(v, (list, dict, str, bool)) else str(v)


def trl_loss_args(algo: AlgoConfig) -> dict[str, Any]:
    """GRPOConfig keyword arguments for taorl's loss settings (see the module table).

    Raises for what TRL's loss has no equivalent of: agg seq-mean-token-sum and anti_clip."""
    lc = algo.loss
    if lc.agg not in _AGG_TO_LOSS_TYPE:
        raise ConfigError(f"algo.loss.agg={lc.agg!r}: TRL has no such aggregation (use token-mean -> dapo, "
                          "micro-token-mean -> bnpo or seq-mean-token-mean -> grpo)")
    if lc.anti_clip:
        raise ConfigError("algo.loss.anti_clip=true: TRL's loss has no anti-clip term (taorl's own trainer has)")
    return {"loss_type": _AGG_TO_LOSS_TYPE[lc.agg], "epsilon": lc.clip_low, "epsilon_high": lc.clip_high,
            "delta": lc.dual_clip, "beta": lc.kl_coef, "entropy_coef": lc.entropy_coef}


def loss_differences(algo: AlgoConfig, args: Any) -> list[str]:
    """Where a GRPOConfig's loss differs from taorl's settings, one line each (printed at start-up)."""
    want = trl_loss_args(algo)
    have = {"epsilon_high": args.epsilon_high if args.epsilon_high is not None else args.epsilon}
    lines = []
    for k, v in want.items():
        got = have.get(k, getattr(args, k, None))
        if (got is None) != (v is None) or (got is not None and v is not None and
                                          (str(got) != str(v) if isinstance(v, str) else abs(float(got) - float(v)) > 1e-12)):
            lines.append(f"GRPOConfig.{k}={got!r} where taorl's algo.loss gives {v!r}")
    return lines
