"""train.init_from: sft builds the primed weights once per (model, sft section, format) and reuses them."""

import json
from pathlib import Path

import pytest

from taorl.config import load_config

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(*over):
    return load_config(ROOT / "configs" / "tiny.yaml", [
        "sft.n_examples=2", "sft.steps=2", "sft.batch_size=2", "sft.probe_problems=1", "rollout.group_size=2",
        "rollout.max_turn_tokens=8", "rollout.max_response_tokens=16", "train.init_from=sft", *over])


def test_primed_weights_are_built_once_and_keyed(tmp_path, monkeypatch):
    from taorl.train.sft import REPORT_FILE, primed_key, primed_weights

    monkeypatch.setenv("TAORL_CACHE", str(tmp_path))
    cfg = _cfg()
    d = primed_weights(cfg)
    assert d == tmp_path / "primed" / primed_key(cfg)
    report = json.loads((d / REPORT_FILE).read_text())
    assert report["steps"] == 2 and len(report["losses"]) == 2
    assert (d / "config.json").is_file() and (d / "tokenizer.json").is_file()
    stamp = (d / REPORT_FILE).stat().st_mtime_ns
    assert primed_weights(cfg) == d and (d / REPORT_FILE).stat().st_mtime_ns == stamp  # reused
    assert not [p for p in (tmp_path / "primed").iterdir() if p.name.startswith(".tmp-")]
    # what the weights depend on changes the key; what they do not (RL settings) does not
    assert primed_key(_cfg("sft.lr=1e-3")) != primed_key(cfg)
    assert primed_key(_cfg("data.system_prompt=Answer.")) != primed_key(cfg)
    assert primed_key(_cfg("algo.shaping.coef=0.5", "train.lr=0.1")) == primed_key(cfg)
