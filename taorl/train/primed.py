"""Where the format-primed weights of a config live (taorl sft builds them: taorl.train.sft).

    primed_key(cfg)   what they depend on, hashed: the model, the sft section, the prompt and
                      observation format, the tool, the seeds (not the RL settings)
    primed_dir(cfg)   $TAORL_CACHE/primed/<model>-<hash>; complete once REPORT_FILE is in it

Light on purpose (no torch, no trainer): model loading asks it whether priming is done without
importing the code that primes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from taorl.cache import cache_root
from taorl.config import Config

REPORT_FILE = "sft_report.json"  # written last, so its presence marks a complete folder


def primed_key(cfg: Config) -> str:
    """What the primed weights depend on: model, sft section, prompt/observation format, tool."""
    parts = {"model": cfg.model.model_dump(mode="json"), "sft": cfg.sft.model_dump(mode="json"),
             "system_prompt": cfg.data.system_prompt, "chat": cfg.data.use_chat_template,
             "obs": [cfg.rollout.obs_max_chars, cfg.rollout.obs_max_tokens], "seed": [cfg.train.seed, cfg.data.seed],
             "grad_clip": cfg.train.grad_clip, "entropy_chunk": cfg.algo.entropy_chunk}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
    return f"{Path(cfg.model.name).name}-{digest}"


def primed_dir(cfg: Config) -> Path:
    return cache_root() / "primed" / primed_key(cfg)


def is_primed(cfg: Config) -> bool:
    return (primed_dir(cfg) / REPORT_FILE).is_file()
