"""Kill a training process with SIGKILL in the middle of a step, resume it, and get exactly the run an
uninterrupted process produces: same losses, same rollouts, no partial or duplicated step."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).parents[1]
# 4 steps, checkpoint after steps 1 and 3. The random tiny model always gets reward 0 and writes
# void turns of maximal length, so the group filter and the void / overlong / tool masks are off and an entropy bonus is on: the loss
# then depends on every weight and every rollout
ARGS = ["train.steps=4", "train.checkpoint_every=2", "algo.filter.group.enabled=false",
        "algo.filter.void_turn_mask=false", "algo.filter.overlong_mask=false", "algo.filter.tool.enabled=false",
        "algo.loss.entropy_coef=0.01", "train.lr=1e-2", "logging.progress=false"]


# one torch thread: two OpenMP threads spin-wait on each other when the 2 cores are shared
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cmd(run_dir, resume=False):
    if resume:  # nothing but the run directory: its saved config (with the overrides above) is used
        return [sys.executable, "-m", "taorl.cli", "train", "--resume", str(run_dir)]
    return [sys.executable, "-m", "taorl.cli", "train", str(ROOT / "configs" / "tiny.yaml"), *ARGS,
            "--run-dir", str(run_dir)]


def _manifest(run):
    p = run / "manifest.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _visible(run, table):
    last = _manifest(run)["last_step"]
    return (pl.scan_parquet(str(run / table / "**" / "*.parquet"), hive_partitioning=True)
            .filter(pl.col("step") <= last).collect())


def _losses(run):
    m = _visible(run, "metrics").filter(pl.col("name") == "loss").sort("step")
    return m["step"].to_list(), m["value"].to_list()


def test_sigkill_mid_step_then_resume_matches_uninterrupted(tmp_path):
    killed = tmp_path / "killed"
    env = {**ENV, "TAORL_TEST_STALL_STEP": "3", "TAORL_TEST_STALL_S": "600"}
    proc = subprocess.Popen(_cmd(killed), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        # wait until step 2 is published: the process is then inside step 3 (stalled after rollouts)
        while time.time() < deadline:
            m = _manifest(killed)
            if m and m["last_step"] >= 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail("training did not reach step 2")
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    m = _manifest(killed)
    assert m["last_step"] == 2 and m["status"] == "running"
    ckpts = sorted(p.name for p in (killed / "checkpoints").iterdir() if p.name.startswith("step="))
    assert ckpts == ["step=000001"]  # step 2 is published but not checkpointed: it will be redone
    assert sorted(_visible(killed, "metrics")["step"].unique().to_list()) == [0, 1, 2]

    out = subprocess.run(_cmd(killed, resume=True), capture_output=True, text=True, timeout=300, check=False,
                         env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"run directory: {killed}" in out.stdout
    # says where it continues: checkpoint after step 1, so step 2 (published before the kill) is redone
    assert f"resuming {killed} from step 2 (checkpoint step=000001) to step 3; steps 2-2 were logged " \
        "after that checkpoint and are redone" in out.stdout, out.stdout

    straight = tmp_path / "straight"
    out = subprocess.run(_cmd(straight), capture_output=True, text=True, timeout=300, check=False,
                         env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]

    assert _manifest(killed)["last_step"] == 3 and _manifest(killed)["status"] == "finished"
    steps_k, loss_k = _losses(killed)
    steps_s, loss_s = _losses(straight)
    assert steps_k == steps_s == [0, 1, 2, 3]  # every step exactly once: rewritten, not duplicated
    assert loss_k == pytest.approx(loss_s, rel=1e-6, abs=1e-9)
    assert any(abs(x) > 0 for x in loss_s)
    # the same rollouts after the resume (sampling seeded from (seed, step))
    tk = _visible(killed, "trajectories").sort("step", "traj")
    ts = _visible(straight, "trajectories").sort("step", "traj")
    assert tk["text"].to_list() == ts["text"].to_list()
    assert tk.group_by("step").len().sort("step")["len"].to_list() == [8, 8, 8, 8]


def test_resume_config_is_the_runs_own(tmp_path):
    """--resume alone takes the saved config (train.steps=4 from an override, not the file's 2);
    train.steps may be raised to extend a run; other keys must not change."""
    from taorl.config import load_config
    from taorl.errors import UserError
    from taorl.train.cli import resume_config, resume_message

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(load_config(ROOT / "configs" / "tiny.yaml", ARGS).to_yaml())
    assert load_config(ROOT / "configs" / "tiny.yaml").train.steps != 4
    assert resume_config(run, None, []).train.steps == 4
    # the file and overrides again, without the train.steps override: still the run's own end
    assert resume_config(run, str(ROOT / "configs" / "tiny.yaml"), ARGS[1:]).train.steps == 4
    assert resume_config(run, None, ["train.steps=9"]).train.steps == 9
    with pytest.raises(UserError, match=r"differs .* at train\.lr"):
        resume_config(run, None, ["train.lr=0.5"])
    with pytest.raises(UserError, match="no config.yaml"):
        resume_config(tmp_path, None, [])
    assert resume_message(run, 0, 4, -1) == f"resuming {run} from step 0 (no checkpoint yet) to step 3"
    assert "already at its end (train.steps=4)" in resume_message(run, 4, 4, 3)
