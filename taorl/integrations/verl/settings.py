"""The `tao:` block of verl's Hydra config -> a validated taorl Config.

verl rejects unknown keys under `algorithm` and `actor.policy_loss`, but a new top-level block passes
its validation (`+tao.preset=code_compat` on the command line, or `tao:` in the YAML). The block
holds taorl's own sections with taorl's own names and defaults (configs/default.yaml, spec §2-§4):

    tao:
      preset: paper                    # or code_compat (the released code's choices)
      algo:    {adv: grpo, filter: {...}, shaping: {coef: 0.01, ...}}
      rollout: {max_turns: 5, max_turn_tokens: 1024, obs_max_chars: 512, obs_max_tokens: 256}
      tool:    {timeout_s: 5, workers: 4, ...}
      logging: {runs_dir: runs, run_name: verl-qwen, token_traj_per_step: 64}
      entropy_source: old_policy       # or train_forward (a key of the plugin, not of taorl's Config)

`entropy_source` (plugin_options) picks where Ĥ comes from: `old_policy` shapes the advantage in the
trainer's advantage step from the entropy verl recomputes before the update (design A, the
default); `train_forward` installs taorl.integrations.verl.loss.tao_ppo_loss on the actor workers,
which shapes with the entropy of the training forward pass (design L, the released code's choice;
needs actor.calculate_entropy=true). The rest of the block goes through taorl.config.load_config as
dotted overrides, so presets apply the same way and a typo fails with the same one-line error
(`verl config tao.algo.shapng: unknown key ...`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taorl.config import Config, ConfigError, load_config


def _plain(block: Any) -> Any:
    """An OmegaConf node (or anything mapping-like) -> plain dicts/lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(block, (DictConfig, ListConfig)):
            return OmegaConf.to_container(block, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf comes with verl
        pass
    return block


def _dotted(tree: Mapping, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and k != "init_overrides":
            out += _dotted(v, key + ".")
        else:
            out.append((key, v))
    return out


ENTROPY_SOURCES = ("old_policy", "train_forward")
PLUGIN_KEYS = ("entropy_source",)  # keys of the `tao:` block that belong to the plugin, not to taorl's Config


@dataclass(frozen=True)
class PluginOptions:
    entropy_source: str = "old_policy"

    @property
    def loss_time(self) -> bool:
        """Shaping in the loss (design L) rather than in the advantage step (design A)."""
        return self.entropy_source == "train_forward"


def _tree(block: Any) -> Mapping:
    tree = _plain(block) or {}
    if not isinstance(tree, Mapping):
        raise ConfigError(f"verl config tao: expected a mapping of taorl sections, got {type(tree).__name__}")
    return tree


def plugin_options(block: Any = None) -> PluginOptions:
    """The plugin's own keys of the `tao:` block (validated; defaults when absent)."""
    tree = _tree(block)
    source = tree.get("entropy_source", "old_policy")
    if source not in ENTROPY_SOURCES:
        raise ConfigError(f"verl config tao.entropy_source: {source!r}, expected one of "
                          f"{', '.join(map(repr, ENTROPY_SOURCES))}")
    return PluginOptions(entropy_source=str(source))


def block_keys(block: Any = None, section: str = "") -> set[str]:
    """The dotted keys the `tao:` block sets under `section` (e.g. "algo.loss."), section removed."""
    return {k[len(section):] for k, _ in _dotted(_tree(block)) if k.startswith(section)}


def tao_config(block: Any = None) -> Config:
    """The taorl Config of a verl run: taorl defaults <- preset <- the `tao:` block (less PLUGIN_KEYS)."""
    tree = {k: v for k, v in _tree(block).items() if k not in PLUGIN_KEYS}
    overrides = [f"{k}={json.dumps(v)}" for k, v in _dotted(tree)]
    try:
        return load_config(None, overrides)
    except ConfigError as e:
        raise ConfigError(f"verl config tao.{str(e).split(': ', 1)[-1]}") from None
