"""`taorl export RUN_DIR [--step N] --out DIR` writes a plain transformers model whose logits equal
the trained policy's (LoRA adapter applied, not merged); `taorl eval RUN_DIR` evaluates it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared" / "benchmarks"
# the tiny model always gets reward 0: without the group filter and the masks and with an entropy bonus and a
# large lr, every step moves the adapter (as in test_resume)
ARGS = ["train.steps=2", "train.checkpoint_every=1", "algo.filter.group.enabled=false",
        "algo.filter.void_turn_mask=false", "algo.filter.overlong_mask=false", "algo.filter.tool.enabled=false",
        "algo.loss.entropy_coef=0.01", "train.lr=1e-2", "logging.progress=false"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TAORL_DATA_DIR": str(SHARED)}


def _taorl(*args):
    return subprocess.run([sys.executable, "-m", "taorl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, check=False, env=ENV)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("export") / "run"
    out = _taorl("train", ROOT / "configs" / "tiny.yaml", *ARGS, "--run-dir", run)
    assert out.returncode == 0, out.stderr[-3000:]
    return run


def _policy_logits(run, step, ids):
    """Independently: the run's policy with the checkpoint's adapter, unmerged (peft forward)."""
    from taorl.config import load_config
    from taorl.train.policy import build_policy

    cfg = load_config(run / "config.yaml")
    policy = build_policy(cfg)
    base = policy.model(input_ids=ids).logits.detach()
    policy.load(run / "checkpoints" / f"step={step:06d}" / "policy")
    policy.model.eval()
    with torch.no_grad():
        return base, policy.model(input_ids=ids).logits


def test_export_equals_trained_policy(run, tmp_path):
    from transformers import AutoModelForCausalLM

    out = _taorl("export", run, "--out", tmp_path / "last")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"exported {run} step 1" in out.stdout and "taorl eval" in out.stdout
    assert json.loads((tmp_path / "last" / "taorl_export.json").read_text())["step"] == 1
    assert _taorl("export", run, "--step", 0, "--out", tmp_path / "first").returncode == 0

    ids = torch.tensor([[1, 520, 33, 1171, 28, 99, 4000, 17]])
    for step, d in ((1, "last"), (0, "first")):
        plain = AutoModelForCausalLM.from_pretrained(tmp_path / d)  # no peft, no taorl
        assert not any("lora" in k for k in plain.state_dict())
        with torch.no_grad():
            got = plain(input_ids=ids).logits
        base, want = _policy_logits(run, step, ids)
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(want, base, atol=1e-4)  # training moved the weights: the test can fail
    assert (tmp_path / "last" / "tokenizer.json").is_file()


def test_export_errors_are_one_line(run, tmp_path):
    bad = _taorl("export", run, "--step", 7, "--out", tmp_path / "x")
    assert bad.returncode == 2 and "--step 7" in bad.stderr and "0, 1" in bad.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    bad = _taorl("export", run, "--out", tmp_path / "full")
    assert bad.returncode == 2 and "not empty" in bad.stderr
    bad = _taorl("export", tmp_path, "--out", tmp_path / "y")
    assert bad.returncode == 2 and "not a taorl run directory" in bad.stderr


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/benchmarks not present")
def test_eval_a_run_directory(run, tmp_path):
    out = _taorl("eval", run, "--step", 0, "--benchmarks", "amc23", "--k", 1, "--limit", 1,
                 "--out", tmp_path / "ev", "eval.max_turns=1", "eval.max_response_tokens=16")
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["model"] == f"{run} step 0" and res["protocol"]["n"] == 1
    assert (run / "exports" / "step=000000" / "config.json").is_file()  # exported once, reused


def test_a_checkpoint_directory_names_its_run_and_step(run, tmp_path):
    from taorl.errors import UserError
    from taorl.export import locate_run

    ck = run / "checkpoints" / "step=000000"
    assert locate_run(ck) == (run, 0)
    assert locate_run(ck / "policy") == (run, 0)
    assert locate_run(run) == (run, None) and locate_run(run, 1) == (run, 1)
    assert locate_run(tmp_path) == (None, None)
    with pytest.raises(UserError, match="checkpoint of step 0"):
        locate_run(ck, 1)
    out = _taorl("export", ck / "policy", "--out", tmp_path / "from-ckpt")
    assert out.returncode == 0 and f"exported {run} step 0" in out.stdout, out.stderr[-2000:]
