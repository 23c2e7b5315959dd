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
    from taorl.train.primed import REPORT_FILE, primed_key
    from taorl.train.sft import primed_weights

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


def test_priming_leaves_the_callers_random_streams_alone(tmp_path, monkeypatch):
    import random

    import numpy as np
    import torch

    from taorl.train.sft import primed_weights

    monkeypatch.setenv("TAORL_CACHE", str(tmp_path))
    torch.manual_seed(123)
    random.seed(1)
    np.random.seed(2)
    t, p, n = torch.get_rng_state().clone(), random.getstate(), np.random.get_state()[1].copy()
    primed_weights(_cfg())  # builds: draws LoRA inits, shuffles, samples
    assert torch.equal(torch.get_rng_state(), t)
    assert random.getstate() == p
    assert np.array_equal(np.random.get_state()[1], n)


def test_run_that_primes_first_equals_run_from_the_cache(tmp_path):
    """The same config twice in a fresh cache: the first run primes in-process, the second finds the
    cache. Their LoRA initialisation, rollouts and losses must be identical (they used to differ
    from the first update on, because priming moved the random streams before LoRA was set up)."""
    import os
    import subprocess
    import sys

    import polars as pl

    from taorl.store import open_run

    args = [sys.executable, "-m", "taorl.cli", "train", str(ROOT / "configs" / "tiny.yaml"),
            "train.init_from=sft", "sft.n_examples=4", "sft.steps=3", "sft.batch_size=2", "sft.probe_problems=1",
            "algo.filter.group.enabled=false", "algo.filter.void_turn_mask=false",
            "algo.filter.overlong_mask=false", "algo.filter.tool.enabled=false", "algo.loss.entropy_coef=0.01",
            "train.lr=1e-2", "logging.progress=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TAORL_CACHE": str(tmp_path / "cache")}
    outs = []
    for name in ("primes", "cached"):
        out = subprocess.run([*args, "--run-dir", str(tmp_path / name)], capture_output=True, text=True,
                             timeout=600, check=False, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        outs.append(out.stdout)
    assert "priming smollm2" not in outs[0]  # (the tiny model is primed, not SmolLM2)
    assert "train.init_from=sft: priming tiny" in outs[0] and "priming" not in outs[1]
    assert "priming 3/4 3 supervised steps" in outs[0]  # the phases are announced
    a, b = (open_run(tmp_path / n).metrics() for n in ("primes", "cached"))
    assert a["loss"].to_list() == b["loss"].to_list() and any(x != 0 for x in a["loss"].to_list())
    ta, tb = (open_run(tmp_path / n).trajectories().sort("step", "traj") for n in ("primes", "cached"))
    assert ta["text"].to_list() == tb["text"].to_list()
    assert isinstance(ta, pl.DataFrame)
