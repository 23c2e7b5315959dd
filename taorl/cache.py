"""Where taorl keeps what it builds once per machine: $TAORL_CACHE, default ~/.cache/taorl.

    models/      converted SmolLM2 and its tokenizer (taorl.models)
    primed/      format-primed weights, one folder per taorl.train.primed.primed_key
    gpu-models/  random-init models written out for vLLM and Unsloth (taorl.gpu)
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$TAORL_CACHE, default ~/.cache/taorl."""
    return Path(os.environ.get("TAORL_CACHE") or Path.home() / ".cache" / "taorl").expanduser()
